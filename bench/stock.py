"""The stock task against the course's script: test RMSE in dollars beside persistence, and wall time.

    python bench/stock.py [FILE] [--rounds 5] [--seeds 5]

FILE defaults to ../shared/data/goog_daily.csv (the course's GOOG file). Wall times are whole
commands, Python start-up and imports included, run round-robin; the target is zoo <= 1.3x the script.
"""

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zoo

here = Path(__file__).resolve().parent
parser = argparse.ArgumentParser()
parser.add_argument("file", nargs="?", default=str(here.parent.parent / "shared" / "data" / "goog_daily.csv"))
parser.add_argument("--rounds", type=int, default=5)
parser.add_argument("--seeds", type=int, default=5)
args = parser.parse_args()
zoo_command = shutil.which("zoo") or sys.exit("zoo is not on PATH: pip install -e . first")
course = [sys.executable, str(here / "course_stock.py"), args.file]

print("test RMSE in dollars (the last 30% of days), lower is better")
for label, extra in (("as in the lecture (test scaled on itself)", []),
                     ("test scaled on the training days", ["--train-scaled-test"])):
    out = subprocess.run(course + extra, capture_output=True, text=True, check=True).stdout
    rmse, persistence = map(float, re.findall(r"rmse ([\d.]+)", out))
    print(f"  course script, {label}: {rmse:.2f}   persistence {persistence:.2f}")
for change in (False, True):
    results = [zoo.train("lstm", "stock", {"data": args.file, "seed": seed, "change": change}, out=False,
                         log=lambda line: None).zoo.metrics for seed in range(args.seeds)]
    rmses = [m["rmse"] for m in results]
    print(f"  zoo train lstm stock{' --change' if change else '':<9}: seeds 0-{args.seeds - 1}: "
          f"{', '.join(f'{r:.2f}' for r in rmses)} (median {statistics.median(rmses):.2f})   "
          f"persistence {results[0]['persistence_rmse']:.2f}")

times = {"course script": [], "zoo train lstm stock": []}
with tempfile.TemporaryDirectory() as tmp:
    commands = {"course script": course,
                "zoo train lstm stock": [zoo_command, "train", "lstm", "stock", "--data", args.file, "-q",
                                         "--out", str(Path(tmp) / "stock.safetensors")]}
    for _ in range(args.rounds):
        for name, command in commands.items():
            started = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - started)
median = {name: statistics.median(t) for name, t in times.items()}
ratio = median["zoo train lstm stock"] / median["course script"]
print(f"\nwhole-command wall time, median of {args.rounds}: " + ", ".join(f"{n} {m:.2f} s" for n, m in median.items()))
print(f"zoo / course = {ratio:.2f} (target <= 1.3: {'met' if ratio <= 1.3 else 'MISSED'})")
