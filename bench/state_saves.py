"""What writing the resumable state after every epoch costs a run of short epochs: `zoo train lstm stock`
(the course's 500 one-batch epochs on GOOG) with a state every epoch (ZOO_STATE_SECONDS=0) against the
default interval (a state after the first epoch, then every 10 s, and at the end), side by side.

    python bench/state_saves.py [--data ../shared/data/goog_daily.csv] [--rounds 3]

Times the whole zoo.train call in this process (torch imported once, before), alternating the two.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import machine  # bench/machine.py: this folder is the script's first sys.path entry

here = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(here.parent.parent / "shared" / "data" / "goog_daily.csv"))
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    os.environ.setdefault("ZOO_THREADS", "1")
    import zoo

    cpu = machine.cpu()
    print(f"{cpu}, {os.cpu_count()} CPUs, 1 thread; load average at start {os.getloadavg()[0]:.2f}")
    seconds: dict[str, list[float]] = {"every epoch": [], "interval": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(options.rounds):
            for name in (("every epoch", "interval") if round_ % 2 == 0 else ("interval", "every epoch")):
                os.environ["ZOO_STATE_SECONDS"] = "0" if name == "every epoch" else ""
                started = time.perf_counter()
                zoo.train("lstm", "stock", {"data": options.data}, run_dir=Path(tmp) / f"{name}-{round_}",
                          log=lambda line: None)
                seconds[name].append(time.perf_counter() - started)
                print(f"  {name:12} {seconds[name][-1]:6.2f} s", flush=True)
    every, interval = (statistics.median(seconds[k]) for k in ("every epoch", "interval"))
    print(f"load average at the end {os.getloadavg()[0]:.2f}\n")
    print("| state written | zoo.train s (median) |\n| --- | --- |")
    print(f"| every epoch | {every:.2f} |\n| every 10 s | {interval:.2f} |")
    print(f"\nevery epoch / interval: {every / interval:.2f}x")


if __name__ == "__main__":
    main()
