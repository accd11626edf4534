"""Training throughput of one process against two (torchrun, gloo) on this machine's CPU cores.

    python bench/ddp.py [--model lstm] [--task fashion-mnist] [--epochs 3]

One process uses every core through torch's threads; two processes get one thread each and split
every global batch between them. The samples/s are read from each run's metrics.jsonl (the median
over epochs after the first), so start-up and evaluation are left out.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="lstm")
parser.add_argument("--task", default="fashion-mnist")
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()
zoo = shutil.which("zoo") or sys.exit("zoo is not on PATH: pip install -e . first")
torchrun = shutil.which("torchrun") or sys.exit("torchrun is not on PATH")
cores = os.cpu_count()

with tempfile.TemporaryDirectory() as tmp:
    runs = {
        f"1 process, {cores} threads": [zoo],
        f"2 processes, {max(cores // 2, 1)} thread(s) each": [torchrun, "--standalone", "--nproc-per-node", "2",
                                                               "-m", "zoo"],
    }
    speeds = {}
    for label, launcher in runs.items():
        run_dir = Path(tmp) / label.split(",")[0].replace(" ", "-")
        env = {**os.environ, "OMP_NUM_THREADS": str(max(cores // (2 if "2 p" in label else 1), 1))}
        subprocess.run([*launcher, "train", args.model, args.task, "-e", str(args.epochs), "-q", "--run-dir",
                        str(run_dir)], check=True, env=env, stderr=subprocess.DEVNULL)
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        speeds[label] = statistics.median(r["samples_per_s"] for r in rows[1:] or rows)
        print(f"{label}: {speeds[label]:,.0f} samples/s", flush=True)
    one, two = speeds.values()
    print(f"2 processes / 1 process = {two / one:.2f}")
