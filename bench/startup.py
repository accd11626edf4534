"""How long `zoo --help`, `zoo list` and `zoo plugins` take, against `python -c "import torch"`.

Target (issue 2): each well under half the time of importing torch. The commands run round-robin,
several times each, and the medians are compared, so machine noise hits all of them alike.

    python bench/startup.py [--runs 7]
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--runs", type=int, default=7)
args = parser.parse_args()

zoo = shutil.which("zoo") or sys.exit("zoo is not on PATH: pip install -e . first")
commands = {
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "zoo --help": [zoo, "--help"],
    "zoo list": [zoo, "list"],
    "zoo plugins": [zoo, "plugins"],
}
times = {name: [] for name in commands}
for _ in range(args.runs):
    for name, command in commands.items():
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times[name].append(time.perf_counter() - started)

reference = statistics.median(times["python -c 'import torch'"])
print(f"{'command':<28} {'median s':>9} {'ratio to import torch':>22}")
for name, samples in times.items():
    median = statistics.median(samples)
    print(f"{name:<28} {median:9.3f} {median / reference:22.3f}")
worst = max(statistics.median(times[n]) for n in commands if n.startswith("zoo")) / reference
print(f"\nworst ratio {worst:.3f} (target < 0.5): {'met' if worst < 0.5 else 'MISSED'}")
