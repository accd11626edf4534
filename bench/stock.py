"""The stock task against its baselines and the course's script: test RMSE over several seeds and
walk-forward folds, on the course's GOOG file and on a long trending series, and wall time.

    python bench/stock.py [--goog FILE] [--file LABEL=FILE ...] [--seeds 3] [--folds 3] [--rounds 5]

--goog defaults to ../shared/data/goog_daily.csv (the course's file); the trending series is made by
bench/make_prices.py (a geometric random walk with drift, 4,000 days). --file adds any price file; the
docs/benchmarks.md's MSFT figures come from the daily Microsoft prices 1986-2017 that the pmdarima package ships
(pip download pmdarima --no-deps; unzip its pmdarima/datasets/data/msft.tar.gz; tar xzf it: msft.csv).
Every figure is a ratio to the persistence forecast's RMSE on the same days (below 1: better than
"tomorrow = today"). Wall times are whole commands, Python start-up and imports included, run
round-robin; the target is zoo <= 1.3x the course script.
"""

import argparse
import dataclasses
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zoo
from zoo.store.checkpoint import load

here = Path(__file__).resolve().parent
parser = argparse.ArgumentParser()
parser.add_argument("--goog", default=str(here.parent.parent / "shared" / "data" / "goog_daily.csv"))
parser.add_argument("--file", action="append", default=[], metavar="LABEL=FILE", help="another price file")
parser.add_argument("--seeds", type=int, default=3)
parser.add_argument("--folds", type=int, default=3)
parser.add_argument("--rounds", type=int, default=5)
args = parser.parse_args()
zoo_command = shutil.which("zoo") or sys.exit("zoo is not on PATH: pip install -e . first")
tmp = Path(tempfile.mkdtemp())
trend = tmp / "trend.csv"
subprocess.run([sys.executable, str(here / "make_prices.py"), str(trend)], check=True)
FORECASTS = {"model": "rmse", "persistence": "persistence_rmse", "drift": "drift_rmse", "linear AR": "linear_ar_rmse"}


def ratios(metrics: dict) -> dict:
    return {name: metrics[key] / metrics["persistence_rmse"] for name, key in FORECASTS.items()}


def run(file: str, seed: int, mode: str) -> list[tuple[str, dict]]:
    """The single split's metrics, then each walk-forward fold's and the folds' pooled ones."""
    run_dir = tmp / f"{Path(file).stem}-{seed}-{mode}"  # the bench's own folder, not the checkout's checkpoints/
    net = zoo.train("lstm", "stock", {"data": file, "seed": seed, "target_mode": mode}, run_dir=run_dir,
                    log=lambda line: None)
    out = run_dir / "model.safetensors"
    rows = [("70/30 split", net.zoo.metrics)]
    if args.folds:
        task = zoo.get_task("stock")
        refit = load(out, task_overrides={"backtest": str(args.folds)})
        config = dataclasses.replace(refit.zoo.task_config, data=file)  # the card keeps no local path
        backtest = task.evaluate(refit, task.data(config, refit.zoo.meta), "test")
        rows += [(f"fold {f['fold']}", f) for f in backtest["folds"]] + [("folds pooled", backtest)]
    return rows


for label, extra in (("as in the lecture (test days scaled on themselves)", []),
                     ("test days scaled on the training days", ["--train-scaled-test"])):
    out = subprocess.run([sys.executable, str(here / "course_stock.py"), args.goog] + extra, capture_output=True,
                         text=True, check=True).stdout
    rmse, persistence = map(float, re.findall(r"rmse ([\d.]+)", out))
    print(f"course script, {label}: test rmse {rmse:.2f}, persistence {persistence:.2f}")

print("\n| series | target mode | seed | test days | model | drift | linear AR | best |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
worst = {}
files = [("course GOOG, 732 days", args.goog), ("trend, 4,000 days", str(trend))]
files += [tuple(item.split("=", 1)) for item in args.file]
for label, file in files:
    for mode, seeds in (("return", range(args.seeds)), ("level", range(1))):
        for seed in seeds:
            for part, metrics in run(file, seed, mode):
                r = ratios(metrics)
                worst[label, mode] = max(worst.get((label, mode), 0), r["model"])
                print(f"| {label} | {mode} | {seed} | {part} | {r['model']:.3f} | {r['drift']:.3f} | "
                      f"{r['linear AR']:.3f} | {metrics['best']} |", flush=True)
print("\nworst model / persistence over seeds, split and folds: "
      + ", ".join(f"{label} {mode}: {w:.3f}" for (label, mode), w in worst.items()))

times = {"course script": [], "zoo train lstm stock": []}
commands = {"course script": [sys.executable, str(here / "course_stock.py"), args.goog],
            "zoo train lstm stock": [zoo_command, "train", "lstm", "stock", "--data", args.goog, "-q"]}
for round_ in range(args.rounds):
    for name, command in commands.items():
        own = ["--run-dir", str(tmp / f"timed-{round_}")] if name.startswith("zoo") else []  # not checkpoints/
        started = time.perf_counter()
        subprocess.run(command + own, check=True, stdout=subprocess.DEVNULL)
        times[name].append(time.perf_counter() - started)
median = {name: statistics.median(t) for name, t in times.items()}
ratio = median["zoo train lstm stock"] / median["course script"]
print(f"\nwhole-command wall time, median of {args.rounds}: " + ", ".join(f"{n} {m:.2f} s" for n, m in median.items()))
print(f"zoo / course = {ratio:.2f} (target <= 1.3: {'met' if ratio <= 1.3 else 'MISSED'})")
shutil.rmtree(tmp)
