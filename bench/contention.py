"""Training on a shared machine: torch's thread defaults against zoo's, quiet and beside busy processes.

    python bench/contention.py [--rounds 1] [--workloads charlm,stock,mnist] [--modes zoo,torch,pinned]
    python bench/contention.py --workloads charlm --conditions "2 busy" --modes zoo,pinned --rounds 5

Each workload is a whole `zoo train` command; the table gives its training time (the epochs' seconds
from the run's metrics.jsonl, where the threads matter) and its wall time (start to exit, which adds
about 2.5 s of starting Python and importing torch):
  charlm  `zoo train lstm charlm` (the course's ship sentence and windows, 100 epochs)
  stock   `zoo train lstm stock -e 300` on a generated 4,000-day price file (2,793 windows a step)
  mnist   one epoch of `zoo train lstm mnist` on 20,480 generated 28x28 images: 80 MNIST-sized steps
  backtest  `zoo eval STOCK_EXPORT --data FILE --backtest 3` on the same price file: three walk-forward
          refits of the stock recipe (its train column is the command's wall time, as the issue measured)
Conditions: quiet (nothing started by this script), beside one and two pure-Python busy loops, and
beside another `zoo train` (zoo's defaults). "torch" runs the same command with torch imported before
zoo, so zoo cannot set the OpenMP wait policy, and with torch's own thread count; "zoo" is the
default; "pinned" runs it with `--threads 1` (nothing spins: the best a loaded machine allows). The modes
alternate within a round (their order turning each round), so all see the same machine.
Targets (issue 9): zoo beside busy processes <= 1.5x its quiet time; zoo quiet <= 1.05x torch quiet.
Target (issue 23): a short `zoo train lstm charlm`, and a backtest, beside two busy processes <= 1.2x the
pinned run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine  # bench/machine.py: this folder is the script's first sys.path entry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

TORCH_FIRST = "import sys, torch; sys.argv[0] = 'zoo'; from zoo.front.cli import main; main()"


def make_data(folder: Path) -> dict[str, list[str]]:
    import numpy as np

    from conftest import write_idx, write_yahoo_prices

    prices = write_yahoo_prices(folder / "long.csv", days=4000, shuffle=False)
    raw = folder / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 20_480 + 1_000), ("t10k", 200)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, count))
    return {
        "charlm": ["lstm", "charlm"],
        "stock": ["lstm", "stock", "--data", str(prices), "--target-mode", "change", "-e", "300"],
        "mnist": ["lstm", "mnist", "--root", str(folder / "mnist"), "--no-download", "--val-size", "1000", "-e", "1",
                  "--precision", "fp32"],
        "backtest": ["eval", str(folder / "stock" / "model.safetensors"), "--data", str(prices), "--backtest", "3"],
    }


def stock_export(folder: Path, prices: Path) -> None:
    """The export a backtest re-fits: the stock recipe on the price file, once, pinned."""
    subprocess.run([sys.executable, "-m", "zoo", "train", "lstm", "stock", "--data", str(prices), "--target-mode",
                    "change", "--threads", "1",
                    "-q", "--run-dir", str(folder / "stock")], check=True, stdout=subprocess.DEVNULL)


def busy_loop() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def other_training(folder: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zoo", "train", "lstm", "charlm", "-e", "100000", "-q",
                             "--run-dir", str(folder / "other"), "--overwrite"], stdout=subprocess.DEVNULL)


def timed(mode: str, args: list[str], folder: Path, cap: float) -> tuple[float, float]:
    """(training seconds, wall seconds) of one command; infinite when it ran past the cap."""
    command = [sys.executable, "-m", "zoo"] if mode == "zoo" else [sys.executable, "-c", TORCH_FIRST]
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "ZOO_THREADS")}
    env["ZOO_LOAD_PLUGINS"] = ""
    # torch's default: one thread per core; pinned: one thread
    extra = {"torch": ["--threads", str(os.cpu_count())], "pinned": ["--threads", "1"]}.get(mode, [])
    run = folder / f"run-{mode}"
    evaluation = args[0] == "eval"
    start = time.perf_counter()
    try:
        subprocess.run(command + (args + extra if evaluation else ["train", *args, *extra, "-q", "--run-dir", str(run),
                                                                    "--overwrite"]), check=True,
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if evaluation else None,
                       timeout=cap)
    except subprocess.TimeoutExpired:
        return float("inf"), float("inf")  # slower than the cap: shown as "> cap"
    wall = time.perf_counter() - start
    if evaluation:  # no metrics log: the command's wall time
        return wall, wall
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return sum(row["seconds"] for row in epochs), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workloads", default="charlm,stock,mnist")
    parser.add_argument("--conditions", default="quiet,1 busy,2 busy,zoo beside")
    parser.add_argument("--modes", default="zoo,torch", help="zoo, torch and pinned (zoo with --threads 1)")
    parser.add_argument("--cap", type=float, default=300,
                        help="seconds after which a run is stopped and shown as '> cap'")
    options = parser.parse_args()
    cpu = machine.cpu()
    print(f"{cpu}, {os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        workloads = make_data(folder)
        if "backtest" in options.workloads.split(","):
            stock_export(folder, Path(workloads["stock"][3]))
        results: dict[tuple[str, str, str], list[float]] = {}
        for name in options.workloads.split(","):
            for condition in options.conditions.split(","):
                load = {"quiet": lambda: [], "1 busy": lambda: [busy_loop()],
                        "2 busy": lambda: [busy_loop(), busy_loop()],
                        "zoo beside": lambda: [other_training(folder)]}[condition]()
                try:
                    time.sleep(1 if load else 0)  # let the load get going
                    modes = options.modes.split(",")
                    for round_ in range(options.rounds):
                        turn = round_ % len(modes)
                        for mode in modes[turn:] + modes[:turn]:
                            train, wall = timed(mode, workloads[name], folder, options.cap)
                            results.setdefault((name, condition, mode), []).append(train)
                            results.setdefault((name, condition, mode + " wall"), []).append(wall)
                            print(f"  {name:6} {condition:10} {mode:5} train {train:7.2f} s  wall {wall:7.2f} s",
                                  flush=True)
                finally:
                    for process in load:
                        process.kill()
                        process.wait()
        print(f"\nload average at the end {os.getloadavg()[0]:.2f}; medians of {options.rounds} round(s)\n")
        modes = options.modes.split(",")

        def shown(value: float) -> str:
            return f"> {options.cap:.0f}" if math.isinf(value) else f"{value:.2f}"

        def median(name, condition, mode):
            return statistics.median(results[(name, condition, mode)]) if (name, condition, mode) in results else None

        print("| workload | condition | " + " | ".join(f"train s, {m}" for m in modes)
              + " | zoo / torch | zoo / pinned | zoo / zoo quiet | wall s, " + " / ".join(modes) + " |")
        print("|" + " --- |" * (len(modes) + 6))
        for name in options.workloads.split(","):
            quiet = median(name, "quiet", "zoo")
            for condition in options.conditions.split(","):
                train = {m: median(name, condition, m) for m in modes}
                walls = [median(name, condition, f"{m} wall") for m in modes]
                ratio = lambda other: f"{train['zoo'] / train[other]:.2f}" if train.get(other) and train.get(  # noqa: E731
                    "zoo") else "-"
                versus_quiet = f"{train['zoo'] / quiet:.2f}" if quiet and train.get("zoo") else "-"
                print(f"| {name} | {condition} | " + " | ".join(shown(train[m]) for m in modes)
                      + f" | {ratio('torch')} | {ratio('pinned')} | {versus_quiet} | "
                      + " / ".join(shown(w) for w in walls) + " |")


if __name__ == "__main__":
    main()
