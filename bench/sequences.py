"""The sequences and texts tasks against their baselines, packing against naive padding, a 10^6-line file.

    python bench/sequences.py archive --data DIR [--sets JapaneseVowels,ItalyPowerDemand] [--seeds 0,1,2]
    python bench/sequences.py packing --data DIR [--set JapaneseVowels] [--epochs 30]
    python bench/sequences.py grammar [--texts 4000]
    python bench/sequences.py big [--lines 1000000]
    python bench/sequences.py kernels
    python bench/sequences.py epochs --data DIR [--set JapaneseVowels] [--rounds 20]

DIR holds the archive's sets as DIR/NAME/NAME_TRAIN.ts and NAME_TEST.ts: aeon's wheel ships them,
`pip download --no-deps aeon==1.6.0 -d /tmp/aeon && unzip -q /tmp/aeon/aeon-1.6.0-*.whl 'aeon/datasets/data/*'`
gives DIR=aeon/datasets/data. `archive`: the default LSTM and GRU (the defaults fitted to the file)
on each set's own train/test split, beside the 1-NN DTW computed on the same split and the archive's
published 1-NN DTW figure. `packing`: accuracy and seconds per epoch (training only) with the batch
read packed or naively padded, bucketed by length or not, the same epochs and seed for each.
`grammar`: a synthetic text set whose label is the order of two marker words far apart, which no
bag of words can see, beside naive Bayes. `big`: time and peak memory of reading a 10^6-line text
file into the task's data (a child process each, so that the peak is its own). `kernels`: the
milliseconds of one forward and backward pass of a batch of 32 (12 channels, hidden 32, one thread,
median of 100 interleaved repeats) read packed, in segments between lengths (zoo's way for plain
cells) and padded with the output read at each sequence's end (exact for one direction: the cells
are causal), on a bucketed batch (lengths 14-16) and a mixed one (7-29). Results print as JSON
lines; CPU and load are printed first. `epochs`: seconds of a training epoch for each way of
batching, measured interleaved (the `packing` runs' own per-epoch times are too noisy on a busy machine).
"""

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zoo

from machine import cpu  # bench/machine.py: this folder is the script's first sys.path entry

# the archive's 1-NN DTW accuracy on the set's own split (recalled from the publications named; the
# bench also computes its own on the same split, which is the reference it can vouch for)
PUBLISHED = {
    "JapaneseVowels": (0.949, "DTW_D, Bagnall et al. 2018, the UEA multivariate archive (Ruiz et al. 2021)"),
    "BasicMotions": (0.975, "DTW_D, Bagnall et al. 2018, the UEA multivariate archive (Ruiz et al. 2021)"),
    "ItalyPowerDemand": (0.950, "DTW (full window), the UCR archive (Dau et al. 2018, timeseriesclassification.com)"),
    "GunPoint": (0.907, "DTW (full window), the UCR archive (Dau et al. 2018, timeseriesclassification.com)"),
    "ArrowHead": (0.703, "DTW (full window), the UCR archive (Dau et al. 2018, timeseriesclassification.com)"),
}


def machine() -> dict:
    return {"cpu": cpu(), "load": os.getloadavg()[0], "cores": os.cpu_count(), "zoo": zoo.__version__}


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def split_files(data: str, name: str) -> dict:
    return {"train": f"{data}/{name}/{name}_TRAIN.ts", "test": f"{data}/{name}/{name}_TEST.ts"}


def epoch_seconds(lines: list[str]) -> list[float]:
    return [float(m.group(1)) for line in lines for m in [re.search(r"  (\d+\.\d+)s  ", line)] if m]


def train(model: str, task: str, settings: dict) -> tuple:
    lines: list[str] = []
    start = time.perf_counter()
    net = zoo.train(model, task, settings, out=False, log=lines.append, log_every=1)
    return net, time.perf_counter() - start, lines


def archive(args) -> None:
    for name in args.sets.split(","):
        files = split_files(args.data, name)
        published, source = PUBLISHED.get(name, (None, ""))
        for model in ("lstm", "gru"):
            for seed in [int(s) for s in args.seeds.split(",")]:
                net, seconds, lines = train(model, "sequences", {**files, "seed": seed})
                m = net.zoo.metrics
                dtw = next(v for k, v in m["baselines"].items() if k.startswith("1-NN"))
                emit({"set": name, "model": model, "seed": seed, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                      "own_1nn_dtw": dtw["accuracy"], "majority": m["baselines"]["majority class"]["accuracy"],
                      "published_1nn_dtw": published, "source": source, "seconds": round(seconds, 1),
                      "epochs_run": len(epoch_seconds(lines)),
                      "fitted": next((x for x in lines if "defaults" in x), "")})


def packing(args) -> None:
    files = split_files(args.data, args.set)
    for model in ("lstm", "gru", "lstm-bi"):
        for packed, bucket in (("packed", True), ("packed", False), ("padded", False), ("padded", True)):
            for seed in [int(s) for s in args.seeds.split(",")]:
                settings = {**files, "packing": packed, "bucket": bucket, "epochs": args.epochs, "patience": 0,
                            "seed": seed, "baseline": "none", "val_fraction": 0.0001}
                net, seconds, lines = train(model, "sequences", settings)
                per_epoch = epoch_seconds(lines)
                emit({"set": args.set, "model": model, "packing": packed, "bucket": bucket, "seed": seed,
                      "accuracy": net.zoo.metrics["accuracy"], "epochs": args.epochs,
                      "train_seconds_per_epoch": round(sum(per_epoch) / len(per_epoch), 4)})


def epoch_timing(args) -> None:
    """Seconds of one training epoch (forward, backward, Adam) for each way of batching, measured
    interleaved, a round of the four ways after another, the median of `--rounds`: on a busy machine
    side-by-side timings are the only fair ones."""
    import statistics

    import torch

    from zoo.loop.plan import plan

    torch.set_num_threads(1)  # as zoo train on a busy machine; two threads fight the other jobs
    files = split_files(args.data, args.set)
    for model in ("lstm", "gru", "lstm-bi"):
        ways = {}
        for packed, bucket in (("packed", True), ("packed", False), ("padded", True), ("padded", False)):
            p = plan(model, "sequences", {**files, "packing": packed, "bucket": bucket, "baseline": "none"})
            data = p.task.data(p.task_config, None)
            torch.manual_seed(0)
            net = p.model.build(p.model_config, data.problem)
            ways[(packed, bucket)] = (net, torch.optim.Adam(net.parameters()), data.train, torch.Generator())
        times = {key: [] for key in ways}
        for _ in range(args.rounds):
            for key, (net, optimizer, split, generator) in ways.items():
                start = time.perf_counter()
                for index in split.buckets(32, generator):
                    inputs, labels = split.batch(index)
                    loss = torch.nn.functional.cross_entropy(net(*inputs) if isinstance(inputs, tuple)
                                                             else net(inputs), labels)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                times[key].append(time.perf_counter() - start)
        emit({"set": args.set, "model": model, "unit": "s per training epoch, median",
              **{f"{packed}{', bucketed' if bucket else ''}": round(statistics.median(v), 4)
                 for (packed, bucket), v in times.items()}})


def grammar_texts(n: int, seed: int) -> list[str]:
    """Label: which of two marker words comes first. Every text holds both once among 10-40 filler
    words, so its bag of words says nothing about the label."""
    rng = random.Random(seed)
    filler = [f"w{i}" for i in range(50)]
    lines = []
    for _ in range(n):
        words = rng.choices(filler, k=rng.randint(10, 40))
        first, second = sorted(rng.sample(range(len(words) + 1), 2))
        label = rng.choice(["alpha-first", "omega-first"])
        a, b = ("alpha", "omega") if label == "alpha-first" else ("omega", "alpha")
        words.insert(first, a)
        words.insert(second + 1, b)
        lines.append(f"{label}\t{' '.join(words)}")
    return lines


def grammar(args) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "grammar.tsv"
        path.write_text("\n".join(grammar_texts(args.texts, 0)) + "\n")
        for model in ("lstm", "gru"):
            net, seconds, lines = train(model, "texts", {"train": str(path)})
            m = net.zoo.metrics
            emit({"set": f"synthetic order grammar, {args.texts} texts", "model": model, "accuracy": m["accuracy"],
                  "naive_bayes": m["baselines"]["bag-of-words naive Bayes"]["accuracy"],
                  "majority": m["baselines"]["majority class"]["accuracy"], "seconds": round(seconds, 1),
                  "fitted": next((x for x in lines if "defaults" in x), "")})


def big(args) -> None:
    if args.child:
        from zoo.loop.plan import plan

        start = time.perf_counter()
        p = plan("gru", "texts", {"train": args.child})
        data = p.task.data(p.task_config, None)
        emit({"lines": args.lines, "read_and_split_seconds": round(time.perf_counter() - start, 1),
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              "train_texts": len(data.train), "vocab": len(data.meta["vocab"]), "fitted": p.note})
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.tsv"
        rng = random.Random(0)
        words = [f"w{i}" for i in range(5000)]
        with open(path, "w") as f:
            for i in range(args.lines):
                f.write(f"{'pos' if i % 2 else 'neg'}\t{' '.join(rng.choices(words, k=rng.randint(3, 15)))}\n")
        emit({"file_mib": round(path.stat().st_size / 2**20, 1)})
        subprocess.run([sys.executable, __file__, "big", "--lines", str(args.lines), "--child", str(path)], check=True)


def kernels(args) -> None:
    import statistics

    import torch

    from zoo.nn.layers import recurrent_lengths, run_lengths

    torch.set_num_threads(1)
    torch.manual_seed(0)
    for name, cls in (("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU)):
        rnn = cls(12, 32, batch_first=True)
        for spread, lengths in (("bucketed", torch.tensor([14] * 12 + [15] * 12 + [16] * 8)),
                                ("mixed", torch.randint(7, 30, (32,)))):
            x = torch.randn(32, int(lengths.max()), 12)
            last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, 32)
            ways = {"packed": lambda: recurrent_lengths(rnn, x, lengths)[0].gather(1, last),
                    "segments": lambda: run_lengths(rnn, x, lengths)[0].gather(1, last),
                    "padded, read at each end": lambda: rnn(x)[0].gather(1, last)}
            times = {k: [] for k in ways}
            for _ in range(100):
                for k, f in ways.items():
                    start = time.perf_counter()
                    f().sum().backward()
                    times[k].append(time.perf_counter() - start)
            emit({"cell": name, "batch": spread, **{k: round(statistics.median(v) * 1000, 2) for k, v in times.items()},
                  "unit": "ms forward+backward"})


parser = argparse.ArgumentParser()
parser.add_argument("what", choices=["archive", "packing", "grammar", "big", "kernels", "epochs"])
parser.add_argument("--rounds", type=int, default=20)
parser.add_argument("--data", default="aeon/datasets/data")
parser.add_argument("--sets", default="JapaneseVowels,ItalyPowerDemand")
parser.add_argument("--set", default="JapaneseVowels")
parser.add_argument("--seeds", default="0")
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--texts", type=int, default=4000)
parser.add_argument("--lines", type=int, default=1_000_000)
parser.add_argument("--child", default="")
args = parser.parse_args()
if not args.child:
    emit(machine())
{"archive": archive, "packing": packing, "grammar": grammar, "big": big, "kernels": kernels,
 "epochs": epoch_timing}[args.what](args)
