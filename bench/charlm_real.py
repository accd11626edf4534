"""charlm on a real 1 MB English text: the defaults fitted to the file (LSTM 512 over streams of 100
characters with the state carried, truncated BPTT) against the earlier windows recipe (docs/benchmarks.md).

The text: the first 1,000,000 characters of the King James Version (public domain; bench/make_bible.py
builds it from Debian's diatheke and sword-text-kjv), one verse a line. The last 5% is held out.
Reported per epoch: held-out nats per character (perplexity's log) and the training seconds so far;
peak resident memory of each `zoo train` process. The non-neural baseline beside it: interpolated
Witten-Bell character n-grams of orders 1 to 8, counted on the same training part, on the same
held-out part (over the text's own alphabet, as zoo's vocabulary).

    python bench/charlm_real.py [--text kjv.txt] [--skip-windows] [--minutes M] [--keep DIR] [-- zoo train options]

`--minutes M` stops the fitted run after M minutes of wall time (SIGTERM: zoo saves its state and
exits between two steps) and reports the epochs it finished.
"""

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

here = Path(__file__).resolve().parent
parser = argparse.ArgumentParser()
parser.add_argument("--text", help="a text file; default: built with bench/make_bible.py")
parser.add_argument("--skip-windows", action="store_true", help="leave out the earlier windows recipe")
parser.add_argument("--minutes", type=float, default=0, help="stop the fitted run after this many minutes")
parser.add_argument("--no-baseline", action="store_true", help="leave out the n-gram baseline")
parser.add_argument("--keep", help="copy the fitted run's folder (its export included) to this new folder")
parser.add_argument("extra", nargs="*", help="options added to the fitted run (after --)")
args = parser.parse_args()
zoo = shutil.which("zoo") or sys.exit("zoo is not on PATH: pip install -e . first")
WINDOWS = ["--stride", "5", "--val-fraction", "0.05", "--epochs", "2", "--hidden-size", "128", "-b", "256",
           # the recipe as it ran before files got fitted defaults
           "--lr", "0.01", "--schedule", "constant", "--grad-clip", "0", "--patience", "0", "--dropout", "0"]


def run(text, options, run_dir, minutes=0.0):
    """Train in a child process, printing each epoch as it ends; returns (rows, peak MiB, wall s)."""
    started = time.perf_counter()
    process = subprocess.Popen([zoo, "train", "lstm", "charlm", "--text", str(text), *options, "--run-dir",
                                str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if minutes:
        timer = threading.Timer(minutes * 60, process.send_signal, (signal.SIGTERM,))
        timer.daemon = True
        timer.start()
    for line in process.stdout:
        if line.startswith(("defaults", "epoch", "final", "stopping", "interrupted")):
            print("   ", line.rstrip()[:160], f"[load {os.getloadavg()[0]:.1f}]" if line.startswith("epoch") else "",
                  flush=True)
    if process.wait() not in (0, 128 + signal.SIGTERM) or (process.returncode and not minutes):
        sys.exit(f"zoo train failed ({process.returncode})")
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child so far, MiB
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return rows, peak, wall


def ngram_baseline(text: str, held: float = 0.05, orders=range(1, 9)) -> dict[int, float]:
    """Held-out nats/char of interpolated Witten-Bell character n-grams (the split zoo's charlm makes:
    the last `held` of the text, its first target right after the training part)."""
    import math
    from collections import defaultdict

    boundary = len(text) - int(len(text) * held)
    train, alphabet = text[:boundary], sorted(set(text))
    top = max(orders)
    counts = [defaultdict(lambda: defaultdict(int)) for _ in range(top)]  # counts[k][context of k chars][char]
    for i, char in enumerate(train):
        for k in range(min(i, top - 1) + 1):
            counts[k][train[i - k:i]][char] += 1
    totals = [{h: (sum(f.values()), len(f)) for h, f in level.items()} for level in counts]
    result = {}
    for order in orders:  # an n-gram of order n reads n - 1 characters of context
        nll = 0.0
        for i in range(boundary, len(text)):
            p = 1 / len(alphabet)
            for k in range(min(order - 1, i) + 1):
                h = text[i - k:i]
                if h not in totals[k]:
                    break
                seen, types = totals[k][h]
                p = (counts[k][h].get(text[i], 0) + types * p) / (seen + types)
            nll -= math.log(p)
        result[order] = nll / (len(text) - boundary)
    return result


with tempfile.TemporaryDirectory() as tmp:
    text = Path(args.text) if args.text else Path(tmp) / "kjv.txt"
    if not args.text:
        subprocess.run([sys.executable, str(here / "make_bible.py"), str(text), str(Path(tmp) / "pairs.tsv")],
                       check=True)
    print(f"{text.stat().st_size:,} bytes; {os.cpu_count()} CPUs; OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; load {os.getloadavg()[0]:.1f}", flush=True)
    body = text.read_text(encoding="utf-8")
    prompt = body[len(body) - int(len(body) * 0.05):][:16]  # the held-out part's opening, for the sample
    if not args.no_baseline:
        grams = ngram_baseline(body)
        best = min(grams, key=grams.get)
        print("baseline, Witten-Bell character n-grams: " + ", ".join(f"order {n} {v:.4f}" for n, v in grams.items())
              + f" nats/char held out (best: order {best})", flush=True)
    runs = {} if args.skip_windows else {"windows of 10 (earlier recipe)": WINDOWS}
    runs["fitted defaults (streams, --bptt 100)"] = list(args.extra)
    for number, (name, options) in enumerate(runs.items()):
        print(f"{name}: zoo train lstm charlm --text {text.name} {' '.join(options)}", flush=True)
        fitted = number == len(runs) - 1  # the fitted run comes last
        rows, peak, wall = run(text, options, Path(tmp) / f"run-{number}", args.minutes if fitted else 0)
        elapsed = 0.0
        print("| epoch | training s so far | held-out nats/char | perplexity |")
        print("| --- | --- | --- | --- |")
        for row in rows:
            elapsed += row["seconds"]
            val = row["val"]
            print(f"| {row['epoch']} | {elapsed:.0f} | {val['nats_per_char']:.4f} | {val['perplexity']:.3f} |")
        reached = next((r for r in rows if r["val"]["nats_per_char"] <= 1.6), None)
        export = Path(tmp) / f"run-{number}" / "model.safetensors"
        if export.is_file():
            sample = subprocess.run([zoo, "predict", str(export), "--prompt", prompt, "-n", "300",
                                     "--temperature", "0.8", "--top-k", "10"], capture_output=True, text=True)
            print("  sample:", sample.stdout.strip())
        if fitted and args.keep:
            shutil.copytree(Path(tmp) / f"run-{number}", args.keep)
        print(f"  wall {wall:.0f} s, peak memory {peak:,.0f} MiB (largest process so far), "
              f"<= 1.6 nats/char {'at epoch ' + str(reached['epoch']) if reached else 'not reached'}; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
