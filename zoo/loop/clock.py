"""Time budgets (`--max-time 20m`): durations as people write them, and the deadline a run stops at.

A run with a budget stops at the first safe point after it (between two steps, where Ctrl-C stops
too), saves its resumable state, and exports: the best weights when a held-out split is monitored,
else the weights as they stand. `zoo resume RUN` continues it; `zoo export RUN` is a zero budget,
which exports a stopped run as it stands without training further. Torch-free.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from zoo.contract.specs import ZooError

UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
DURATION = re.compile(r"(?:(\d+(?:\.\d*)?)d)?(?:(\d+(?:\.\d*)?)h)?(?:(\d+(?:\.\d*)?)m)?(?:(\d+(?:\.\d*)?)s)?")


def parse_duration(text: str, where: str = "--max-time") -> float:
    """Seconds in `90s`, `20m`, `1h30m`, `2d` or a bare number of seconds."""
    value = str(text).strip().lower().replace(" ", "")
    try:
        seconds = float(value)
    except ValueError:
        match = DURATION.fullmatch(value)
        if not value or match is None or not any(match.groups()):
            raise ZooError(f"{where} must be a duration such as 90s, 20m or 1h30m, got {text!r}") from None
        seconds = sum(float(part) * unit for part, unit in zip(match.groups(), UNITS.values()) if part)
    if not seconds > 0 or seconds == float("inf"):
        raise ZooError(f"{where} must be a duration above zero, such as 90s, 20m or 1h30m, got {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """`1h30m`, `20m`, `45s`, `2m05s`, `1d2h`: the way parse_duration reads it back (whole seconds;
    tenths under ten seconds)."""
    if seconds < 10:
        return f"{seconds:.1f}s".replace(".0s", "s")
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"


@dataclass
class Budget:
    """The wall time a command may train for, counted from when it was given (the command's start)."""

    seconds: float
    started: float = field(default_factory=time.monotonic)
    reached: str | None = None  # where the run stopped for it ("in epoch 3 after step 12"), once it has
    weights: str = "the weights as they stand"  # what the export then holds

    def over(self) -> bool:
        return time.monotonic() - self.started >= self.seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def describe(self) -> str:
        if self.seconds == 0:
            return "no further training (exporting as it stands)"
        return f"time budget {format_duration(self.seconds)}: stops at the first safe point after it and exports"
