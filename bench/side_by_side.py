"""Training speed of two source trees side by side (issue 19: the refactor must not slow training).

    python bench/side_by_side.py OLD_PATH NEW_PATH [--rounds 3] [--epochs 60]

Each PATH is a folder holding `zoo` and `zoo_plugins` (symbolic links into a checkout will do); it is
put first on PYTHONPATH. Each round runs every workload once with OLD and once with NEW, alternating
which goes first, so both see the same machine; the figure is the epochs' seconds summed from the
run's metrics.jsonl (the loop alone, not Python's start), and the ratio is NEW / OLD of the medians.
  charlm  `zoo train lstm charlm` on the course's sentence, windows (--epochs)
  stock   `zoo train lstm stock` on a generated 1,500-day price file (--epochs)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def prices(path: Path, days: int = 1500) -> Path:
    import datetime
    import random

    rng, close, lines = random.Random(0), 100.0, ["Date,Open,High,Low,Close,Adj Close,Volume"]
    for day in range(days):
        close *= 1 + rng.gauss(0, 0.01)
        date = datetime.date(2000, 1, 1) + datetime.timedelta(days=day)
        lines.append(f"{date},{close:.2f},{close + 1:.2f},{close - 1:.2f},{close:.2f},{close:.2f},{1000 + day}")
    path.write_text("\n".join(lines) + "\n")
    return path


def seconds(tree: str, argv: list[str], work: Path) -> float:
    run = work / "run"
    env = {**os.environ, "PYTHONPATH": tree, "ZOO_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "zoo", "train", *argv, "-q", "--run-dir", str(run), "--overwrite"],
                          cwd=work, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {' '.join(argv)} failed:\n{done.stderr}")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return sum(row["seconds"] for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        data = prices(work / "prices.csv")
        workloads = {"charlm": ["lstm", "charlm", "-e", str(args.epochs)],
                     "stock": ["lstm", "stock", "--data", str(data), "-e", str(args.epochs)]}
        times = {(name, side): [] for name in workloads for side in ("old", "new")}
        for round_ in range(args.rounds):
            for name, argv in workloads.items():
                order = [("old", args.old), ("new", args.new)][:: 1 if round_ % 2 == 0 else -1]
                for side, tree in order:
                    times[name, side].append(seconds(tree, argv, work))
        for name in workloads:
            old, new = (statistics.median(times[name, side]) for side in ("old", "new"))
            print(f"{name:7s} old {old:6.2f}s  new {new:6.2f}s  new/old {new / old:.3f}  "
                  f"(medians of {args.rounds}; old {sorted(round(t, 2) for t in times[name, 'old'])}, "
                  f"new {sorted(round(t, 2) for t in times[name, 'new'])})")


if __name__ == "__main__":
    main()
