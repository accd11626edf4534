"""How many CPU threads training uses, so that a run does not collapse when the machine is shared.

torch's OpenMP worker threads spin-wait between parallel regions. When another process holds a
core, the spinning threads burn each other's time slices: a run beside one busy process was measured
6-20x slower than alone. zoo therefore uses as many threads as there are cores that other processes
leave idle, between 1 and torch's own default (the physical cores): at the start from the threads
runnable at that instant (/proc/loadavg), then every few seconds while training from the CPU time the
machine spent beyond this process's own (/proc/stat, `Threads.adjust`). With one thread nothing
spins; on idle cores spinning is what makes small parallel regions fast, so zoo leaves OpenMP's wait
policy as it is (making idle threads sleep, OMP_WAIT_POLICY=PASSIVE, measured 1.5-5.7x slower on an
idle machine; see bench/contention.py).

The first choice matters most to a short run (a few seconds lives on it): `prepare()`, called before
torch is imported, takes a first /proc/stat sample, so that the choice at `start()` also measures what
the other processes used while torch and the data loaded (a second or more), not only the instant's
runnable count, which misses a busy process that happens to be waiting. The first look again comes
after one second, then every few seconds.

Every command that computes (train, resume, eval, predict, a backtest's refits, bench's workers)
follows this policy (`current()` is the controller in effect, which `fit` follows when given none).
`--threads N` or `ZOO_THREADS=N` fix the count (at most the CPUs this process may use, unless forced:
more threads than cores only spin); so does `OMP_NUM_THREADS`, which zoo leaves alone.
`ZOO_MAX_THREADS=N` caps the adaptive count (bench gives each of its workers its share of the cores).
Nothing here imports torch at module level.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from zoo.contract.specs import ZooError

THREADS_ENV = "ZOO_THREADS"
MAX_THREADS_ENV = "ZOO_MAX_THREADS"
RESAMPLE_SECONDS = 3.0  # how often a training run looks again at what the other processes use
FIRST_RESAMPLE_SECONDS = 1.0  # the first look again comes sooner: a short run lives on its first choices
MEASURED_START_SECONDS = 0.25  # a prepare-to-start window shorter than this measures too little to use


def parse_threads(value: str | int | None, where: str) -> int | None:
    """A thread count from an option or the environment: a positive integer, `auto` or empty (None)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return None
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ZooError(f"{where} must be a positive integer or auto, got {value!r}") from None
    if count < 1:
        raise ZooError(f"{where} must be a positive integer or auto, got {value!r}")
    return count


def prepare(threads: str | int | None = None, force: bool = False) -> "Policy":
    """Decide the thread policy (checking the values given, before any work starts).

    `threads` (the `--threads` option) wins over ZOO_THREADS, which wins over OMP_NUM_THREADS; with
    none of them the count adapts to the machine's load. A count above the CPUs this process may use
    is refused unless `force` (`--threads 10000` would start 10,000 spinning threads).
    """
    fixed = parse_threads(threads, "--threads")
    source = "--threads"
    if fixed is None:
        fixed, source = parse_threads(os.environ.get(THREADS_ENV), THREADS_ENV), THREADS_ENV
    if fixed is not None and fixed > usable_cpus() and not force:
        cpus = usable_cpus()
        raise ZooError(f"{source} {fixed} is more than the {cpus} CPU{'s' * (cpus != 1)} this process may use: "
                       f"extra threads only wait for a core (give at most {cpus}, or auto"
                       f"{', or --force to insist' if source == '--threads' else ''})")
    if fixed is None and os.environ.get("OMP_NUM_THREADS"):
        first = os.environ["OMP_NUM_THREADS"].split(",")[0]  # OpenMP's "2,1" sets nested levels too
        fixed, source = (int(first), "OMP_NUM_THREADS") if first.strip().isdigit() and int(first) > 0 else (None, "")
    cap = parse_threads(os.environ.get(MAX_THREADS_ENV), MAX_THREADS_ENV) if fixed is None else None
    return Policy(fixed, source if fixed is not None else "adaptive", cap, _sample())


@dataclass
class Policy:
    fixed: int | None  # a count the user chose, or None to adapt
    source: str  # where the count comes from: --threads, ZOO_THREADS, OMP_NUM_THREADS or adaptive
    cap: int | None = None  # ZOO_MAX_THREADS: the most an adaptive count may be
    since: tuple | None = None  # the /proc/stat sample taken when the policy was prepared

    def start(self) -> "Threads":
        """Apply the policy to torch (importing it) and return the running controller (also `current()`)."""
        global _current
        import torch

        ceiling = torch.get_num_threads() if self.fixed is None else self.fixed
        if self.cap is not None:
            ceiling = min(ceiling, self.cap)
        threads = Threads(self, max(ceiling, 1))
        threads.apply(self.fixed if self.fixed is not None else threads.idle_cores(first=True))
        _current = threads
        return threads


_current: "Threads | None" = None


def current() -> "Threads | None":
    """The controller the last `Policy.start()` made in this process, or None."""
    return _current


class Threads:
    """Keeps torch's intra-op thread count at the number of cores other processes leave idle."""

    def __init__(self, policy: Policy, ceiling: int):
        self.policy, self.ceiling = policy, ceiling
        self.count = 0
        self._last = None  # (monotonic time, busy jiffies of the machine, this process's CPU seconds)
        self._next = 0.0

    def summary(self) -> str:
        """The thread count and where it comes from, for the line a run starts with."""
        if self.policy.fixed is not None:
            return f"{self.count} thread{'s' * (self.count != 1)} ({self.policy.source})"
        return f"{self.count} of {self.ceiling} threads (adapting to the load; --threads fixes it)"

    def apply(self, count: int) -> None:
        import torch

        count = max(1, min(count, self.ceiling))
        if count != self.count:
            torch.set_num_threads(count)
            self.count = count

    def adjust(self) -> None:
        """Between two training steps: every few seconds, follow what the other processes leave idle."""
        if self.policy.fixed is not None or time.monotonic() < self._next:
            return
        self.apply(self.idle_cores())

    def idle_cores(self, first: bool = False) -> int:
        """Cores not used by other processes since the last look. The first time: the fewer of the
        threads runnable at this instant (/proc/loadavg) and, when the policy was prepared long enough
        ago, the cores the others used since then (/proc/stat); neither costs any waiting."""
        previous, now = (self.policy.since if first else self._last), _sample()
        self._last = now
        self._next = time.monotonic() + (FIRST_RESAMPLE_SECONDS if first else RESAMPLE_SECONDS)
        if first:
            others = runnable_elsewhere()
            counts = [] if others is None else [int((os.cpu_count() or 1) - others + 0.3)]
            if previous is not None and now is not None and now[0] - previous[0] >= MEASURED_START_SECONDS:
                counts.append(self._measured(previous, now))
            return max(1, min(self.ceiling, usable_cpus(), *counts)) if counts else self.ceiling
        if previous is None or now is None:
            return self.ceiling  # no /proc/stat (macOS, Windows): torch's default count
        if now[0] - previous[0] <= 0:
            return self.count or self.ceiling
        return max(1, min(self.ceiling, usable_cpus(), self._measured(previous, now)))

    @staticmethod
    def _measured(previous: tuple, now: tuple) -> int:
        """The cores other processes left idle between two samples."""
        seconds = now[0] - previous[0]
        ticks = os.sysconf("SC_CLK_TCK")
        busy_cores = (now[1] - previous[1]) / ticks / seconds
        own_cores = (now[2] - previous[2]) / seconds
        others = max(0.0, busy_cores - own_cores)
        idle = (os.cpu_count() or 1) - others  # /proc/stat counts every CPU, not only those we may use
        return int(idle + 0.3)


def _sample() -> tuple | None:
    """(monotonic time, busy jiffies of the machine, this process's CPU seconds), or None without /proc/stat."""
    busy = machine_busy_jiffies()
    if busy is None:
        return None
    times = os.times()
    return time.monotonic(), busy, times.user + times.system


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def runnable_elsewhere() -> int | None:
    """Threads of other processes runnable right now (Linux's /proc/loadavg counts ours too), or None."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None
    return max(0, running - 1)


def machine_busy_jiffies() -> int | None:
    """Clock ticks all CPUs spent on anything but idling, since boot (Linux), or None."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(values) - values[3] - values[4]
