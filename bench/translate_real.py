"""translate on a real corpus: the defaults fitted to a file against the course's toy settings, with
and without attention, each given the same wall-clock training time.

The corpus: verses of the King James Version with their Reina-Valera 1909 translation (English ->
Spanish, both public domain), those of at most 16 words on both sides: 3,869 pairs, 85/5/10 split
(bench/make_bible.py builds it from Debian's diatheke, sword-text-kjv and sword-text-sparv).

Each setting trains in its own `zoo train` process (50 epochs at most) which is stopped after
BUDGET seconds (SIGTERM: zoo saves its state between two steps). The weights it would keep, the best
validation epoch's when early stopping is on, else the last, are then scored on the test split:
BLEU, exact match, token accuracy. A run that ends by itself before the budget is scored from its export.

    python bench/translate_real.py [--pairs kjv-rv.tsv] [--budget 300]
"""

import argparse
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

here = Path(__file__).resolve().parent
parser = argparse.ArgumentParser()
parser.add_argument("--pairs", help="a pairs file; default: built with bench/make_bible.py")
parser.add_argument("--budget", type=float, default=300, help="wall-clock seconds of training per setting")
args = parser.parse_args()
zoo_command = shutil.which("zoo") or sys.exit("zoo is not on PATH: pip install -e . first")
COURSE = ["--hidden-size", "16", "--dropout", "0", "--lr", "0.01", "--batch-size", "64", "--max-vocab", "0",
          "--fallback", "unk", "--grad-clip", "0", "--patience", "0"]  # the course's toy, whatever the file
SETTINGS = {
    "course's toy, no attention": [*COURSE, "--attention", "none"],
    "course's toy, luong attention": [*COURSE, "--attention", "luong"],
    "file defaults, no attention": ["--attention", "none"],
    "file defaults (luong attention)": [],
}


def train(pairs, extra, run):
    process = subprocess.Popen([zoo_command, "train", "seq2seq", "translate", "--pairs", str(pairs), *extra,
                                "-e", "50", "--run-dir", str(run), "-q"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        process.wait(timeout=args.budget)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        process.wait()
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def score(pairs, extra, run):
    """Test metrics of the weights the run keeps: its export, or the state it was stopped with."""
    import torch
    from safetensors.torch import load_file

    import zoo
    from zoo.loop.plan import plan
    from zoo.loop.training import evaluate

    if (run / "model.safetensors").is_file():
        net = zoo.load(run / "model.safetensors")
        task = zoo.get_task("translate")
        # the card keeps no local path (zoo eval takes --pairs again): the file is this bench's
        data = task.data(dataclasses.replace(net.zoo.task_config, pairs=str(pairs)), net.zoo.meta)
        return evaluate(task, net, data, "test")
    options = [f"{a.lstrip('-').replace('-', '_')}={b}" for a, b in zip(extra[::2], extra[1::2])]
    p = plan("seq2seq", "translate", [f"pairs={pairs}", *options])
    data = p.task.data(p.task_config, None)
    net = p.model.build(p.model_config, data.problem)
    state = load_file(str(run / "state.safetensors"))
    kept = "best/" if any(k.startswith("best/") for k in state) else "model/"
    net.load_state_dict({k[len(kept):]: v for k, v in state.items() if k.startswith(kept)})
    with torch.no_grad():
        return evaluate(p.task, net.eval(), data, "test")


with tempfile.TemporaryDirectory() as tmp:
    pairs = Path(args.pairs) if args.pairs else Path(tmp) / "kjv-rv.tsv"
    if not args.pairs:
        subprocess.run([sys.executable, str(here / "make_bible.py"), str(Path(tmp) / "kjv.txt"), str(pairs),
                        "--words", "16"], check=True)
    print(f"{sum(1 for _ in open(pairs, encoding='utf-8')):,} pairs; {args.budget:.0f} s of training per setting; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; load {os.getloadavg()[0]:.1f}")
    print("| setting | epochs done | best val BLEU (epoch) | test BLEU | test exact match | test token accuracy "
          "| load |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for number, (name, extra) in enumerate(SETTINGS.items()):
        started = time.perf_counter()
        rows = train(pairs, extra, Path(tmp) / f"run-{number}")
        best = max(rows, key=lambda r: r["val"]["bleu"]) if rows else None
        m = score(pairs, extra, Path(tmp) / f"run-{number}")
        shown = f"{best['val']['bleu']:.2f} ({best['epoch']})" if best else "-"
        print(f"| {name} | {len(rows)} | {shown} | {m['bleu']:.2f} | {m['exact_match']:.4f} | "
              f"{m['token_accuracy']:.4f} | {os.getloadavg()[0]:.1f} |", flush=True)
