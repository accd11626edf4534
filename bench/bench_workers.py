"""`zoo bench` with --workers 1 (2 threads, then 1) and --workers 2 (1 thread each) on the same grid, timed.

    python bench/bench_workers.py [--models '*'] [--tasks hihello,charlm,stock,translate] [--seeds 0,1,2]
                                  [--out bench-workers] [-- extra zoo bench options]

Each run writes its own results folder (OUT/w1-t2, ...; none may exist yet, so nothing is skipped).
--workers 1 on its own gives each run both cores' threads; `--threads 1` separates what the second
process gains from what one thread instead of two gains on these small networks. The machine's load
average is sampled every 5 s during each run: on a shared machine it says how much of the cores the
runs had.
"""

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def timed(argv: list[str]) -> tuple[float, list[float], int]:
    samples, done = [], threading.Event()

    def sample():
        while not done.wait(5):
            samples.append(load_average())

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    started = time.monotonic()
    code = subprocess.call(argv)
    seconds = time.monotonic() - started
    done.set()
    return seconds, samples or [load_average()], code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="*")
    parser.add_argument("--tasks", default="hihello,charlm,stock,translate")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default="bench-workers")
    parser.add_argument("extra", nargs="*")
    args = parser.parse_args()
    zoo = [sys.executable, "-m", "zoo", "bench", args.models, args.tasks, "--seeds", args.seeds, *args.extra]
    times = {}
    loads = {}
    for workers, threads in ((1, 2), (1, 1), (2, 1)):
        out = Path(args.out) / f"w{workers}-t{threads}"
        if out.exists():
            sys.exit(f"{out} exists: give another --out, so that every cell is trained")
        seconds, samples, code = timed([*zoo, "--workers", str(workers), "--threads", str(threads), "--out", str(out)])
        if code != 0:
            sys.exit(f"zoo bench --workers {workers} failed (exit {code})")
        times[workers, threads] = seconds
        loads[workers, threads] = f"{statistics.fmean(samples):.1f} ({min(samples):.1f}-{max(samples):.1f})"
        print(f"--workers {workers} --threads {threads}: {seconds:.1f} s, load average {loads[workers, threads]} on "
              f"{os.cpu_count()} CPUs", flush=True)
    first = times[1, 2]
    print("\n| workers x threads | wall time | load average | speed-up over 1 x 2 |\n| --- | --- | --- | --- |")
    for (workers, threads), seconds in times.items():
        print(f"| {workers} x {threads} | {seconds:.1f} s | {loads[workers, threads]} | {first / seconds:.2f}x |")


if __name__ == "__main__":
    main()
