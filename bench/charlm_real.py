"""charlm on a real 1 MB English text: the defaults fitted to the file (LSTM 512 over streams of 100
characters with the state carried, truncated BPTT) against the earlier windows recipe (docs/benchmarks.md).

The text: the first 1,000,000 characters of the King James Version (public domain; bench/make_bible.py
builds it from Debian's diatheke and sword-text-kjv), one verse a line. The last 5% is held out.
Reported per epoch: held-out nats per character (perplexity's log) and the training seconds so far;
peak resident memory of each `zoo train` process.

    python bench/charlm_real.py [--text kjv.txt] [--skip-windows] [--minutes M] [-- extra zoo train options]

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


with tempfile.TemporaryDirectory() as tmp:
    text = Path(args.text) if args.text else Path(tmp) / "kjv.txt"
    if not args.text:
        subprocess.run([sys.executable, str(here / "make_bible.py"), str(text), str(Path(tmp) / "pairs.tsv")],
                       check=True)
    print(f"{text.stat().st_size:,} bytes; {os.cpu_count()} CPUs; OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; load {os.getloadavg()[0]:.1f}", flush=True)
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
            sample = subprocess.run([zoo, "predict", str(export), "--prompt", "And God said", "-n", "300",
                                     "--temperature", "0.8", "--top-k", "10"], capture_output=True, text=True)
            print("  sample:", sample.stdout.strip())
        print(f"  wall {wall:.0f} s, peak memory {peak:,.0f} MiB (largest process so far), "
              f"<= 1.6 nats/char {'at epoch ' + str(reached['epoch']) if reached else 'not reached'}; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
