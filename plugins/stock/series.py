"""From a table of daily prices to the windows a network learns from, and from its outputs back to prices.

An example is a forecast origin t, the last day of its window: the inputs are days t-window+1..t,
the targets the target column on days t+1..t+H (H is the horizon). Three target modes (`meta["mode"]`):

- `return`, the default: the inputs are each column's day-over-day log change (the plain change for
  a column that is not always positive), standardized on the training days; the targets are the log
  returns of the target column from day t to days t+1..t+H, each divided by its standard deviation
  over the training days. Nothing depends on the price level, so days that leave the training range
  (a trend, a regime shift) look like the training days to the network, and an output of 0 is the
  persistence forecast. Price = close on day t x exp(output x scale).
- `change`: min-max scaled inputs; the targets are the scaled changes from day t.
- `level`: the course's: min-max scaled inputs and the scaled level itself, which a network cannot
  extrapolate once prices leave the training days' range.

Every scaling is fitted on the training days only and travels in the export's metadata.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

import zoo
from zoo import Windows

MODES = ("return", "change", "level")


MAX_HORIZON = 10_000  # trading days: forty years ahead


def check_meta(meta, names: list[str]) -> None:
    """An export's scaling checked before any number is computed from it: one line for a vector that is
    short, long, not finite, or a spread that is not positive (a hand-edited or foreign export)."""
    def damaged(why: str):
        raise zoo.ZooError(f"the model's stock metadata is damaged: {why}")

    def numbers(key: str, length: int, positive: bool = False) -> None:
        value = meta.get(key)
        if not isinstance(value, list) or len(value) != length:
            damaged(f"meta.{key} must be a list of {length} numbers"
                    + (f", it has {len(value):,}" if isinstance(value, list) else ""))
        for x in value:
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or (positive and x <= 0):
                damaged(f"meta.{key} holds {x!r}, not a {'positive ' if positive else ''}finite number")

    if not isinstance(meta, dict):
        damaged("meta is not a map")
    mode, horizon, columns = meta.get("mode"), meta.get("horizon"), meta.get("columns")
    if mode not in MODES:
        damaged(f"meta.mode is {mode!r}, not one of {', '.join(MODES)}")
    if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= MAX_HORIZON:
        damaged(f"meta.horizon is {horizon!r}, not a whole number of days from 1 to {MAX_HORIZON:,}")
    if not isinstance(columns, list) or len(columns) != len(names) or not all(isinstance(c, str) for c in columns):
        damaged(f"meta.columns must name the {len(names)} columns the model reads ({', '.join(names)})")
    if mode == "return":
        numbers("mean", len(names) - 1)
        numbers("std", len(names) - 1, positive=True)
        numbers("scale", horizon, positive=True)
        logs = meta.get("log")
        if not isinstance(logs, list) or len(logs) != len(names) - 1 or not all(isinstance(x, bool) for x in logs):
            damaged(f"meta.log must be {len(names) - 1} true/false values")
    else:
        numbers("min", len(names))
        numbers("max", len(names))
        if any(high <= low for low, high in zip(meta["min"], meta["max"])):
            damaged("meta.max must be above meta.min in every column")


def first_origin(window: int, mode: str) -> int:
    """The first day a window can end on: a return needs the day before the window too."""
    return window - 1 + (mode == "return")


def enough_days(days: int, cut: int, window: int, horizon: int, mode: str) -> bool:
    """At least one training example (its targets inside the training days) and one test example."""
    return cut - horizon - first_origin(window, mode) >= 1 and days - cut >= horizon


def fit_scaling(names: list[str], table: torch.Tensor, cut: int, mode: str, horizon: int, where: str) -> dict:
    """The export's `meta`: the scaling of inputs and targets, fitted on the first `cut` days of `table`
    (float64, the feature columns then the target column)."""
    meta = {"columns": names, "mode": mode, "horizon": horizon}
    train = table[:cut]
    if mode in ("level", "change"):
        low, high = train.min(0).values, train.max(0).values
        constant(where, names, high - low)
        return {**meta, "min": low.tolist(), "max": high.tolist()}
    target = table[:, -1]
    if (target <= 0).any():
        day = int((target <= 0).nonzero()[0])
        raise zoo.ZooError(f"{where}: {names[-1]} is {target[day].item():g} on day {day + 1}; log returns need "
                           f"positive prices: use --target-mode change")
    logs = [bool((table[:, c] > 0).all()) for c in range(table.shape[1] - 1)]
    steps = changes(train[:, :-1], logs)[1:]
    std = steps.std(0, correction=0)
    constant(where, names, std)
    log_target = train[:, -1].log()
    scale = [(log_target[h:] - log_target[:-h]).std(correction=0).item() for h in range(1, horizon + 1)]
    constant(where, names[-1:], torch.tensor(scale))
    return {**meta, "log": logs, "mean": steps.mean(0).tolist(), "std": std.tolist(), "scale": scale}


def constant(where: str, names: list[str], spread: torch.Tensor) -> None:
    flat = [name for name, s in zip(names, spread.tolist()) if not s > 0]
    if flat:
        raise zoo.ZooError(f"{where}: column {flat[0]} is constant over the training days, so it cannot be "
                           f"scaled; leave it out of --features")


def changes(values: torch.Tensor, logs: list[bool]) -> torch.Tensor:
    """Day-over-day changes of each column, of its logarithm where `logs` says; the first day's are 0."""
    moved = torch.stack([c.log() if log else c for c, log in zip(values.unbind(1), logs)], 1)
    return torch.cat([torch.zeros_like(moved[:1]), moved.diff(dim=0)])


def scaled_level(table: torch.Tensor, meta: dict) -> torch.Tensor:
    low, high = torch.tensor(meta["min"], dtype=table.dtype), torch.tensor(meta["max"], dtype=table.dtype)
    return (table - low) / (high - low)


def inputs_of(table: torch.Tensor, meta: dict, where: str) -> torch.Tensor:
    """The network's inputs for every day of `table` (float32, one row a day)."""
    if meta["mode"] != "return":
        return scaled_level(table, meta)[:, :-1].float()
    features = table[:, :-1]
    for name, log, column in zip(meta["columns"], meta["log"], features.unbind(1)):
        if log and (column <= 0).any():
            raise zoo.ZooError(f"{where}: {name} has values <= 0, but the model reads its log changes "
                               f"(it was positive on every training day)")
    steps = changes(features, meta["log"])
    scaled = (steps - torch.tensor(meta["mean"], dtype=steps.dtype)) / torch.tensor(meta["std"], dtype=steps.dtype)
    scaled[0] = 0  # no day before the first: no window ever reads it
    return scaled.float()


def targets_of(table: torch.Tensor, meta: dict) -> torch.Tensor:
    """Row t: what the network should output at origin t for days t+1..t+H (float32; 0 past the end)."""
    horizon, days = meta["horizon"], len(table)
    if meta["mode"] == "return":
        series = table[:, -1].log()
    else:
        series = scaled_level(table, meta)[:, -1]
    out = torch.zeros(days, horizon, dtype=torch.float64)
    for h in range(1, min(horizon, days - 1) + 1):
        ahead = series[h:]
        if meta["mode"] == "level":
            out[:-h, h - 1] = ahead
        elif meta["mode"] == "change":
            out[:-h, h - 1] = ahead - series[:-h]
        else:
            out[:-h, h - 1] = (ahead - series[:-h]) / meta["scale"][h - 1]
    return out.float()


def to_price(outputs: torch.Tensor, origins: torch.Tensor, prices: torch.Tensor, meta: dict) -> torch.Tensor:
    """Network outputs (examples x H, float64) at `origins` -> forecasts in the target column's units."""
    if meta["mode"] == "return":
        return prices[origins, None] * torch.exp(outputs * torch.tensor(meta["scale"], dtype=outputs.dtype))
    low, high = meta["min"][-1], meta["max"][-1]
    if meta["mode"] == "change":
        outputs = outputs + ((prices[origins] - low) / (high - low))[:, None]
    return outputs * (high - low) + low


class PriceWindows:
    """The examples of one split: windows over the inputs, their origins, and the target column in
    price units (on the CPU, float64), which the forecasts and the baselines are measured against."""

    def __init__(self, windows: Windows, origins: torch.Tensor, prices: torch.Tensor, meta: dict, cut: int,
                 backtest: "Backtest | None" = None):
        self.windows, self.origins, self.prices, self.meta = windows, origins, prices, meta
        self.cut = cut  # the training days: drift and the linear model are fitted on them
        self.backtest = backtest  # set on the test split when `zoo eval --backtest K` asks for one
        self.dates: list[str] | None = None  # ISO dates of the file's days, when it has them

    def __len__(self) -> int:
        return len(self.windows)

    def batch(self, index):
        return self.windows.batch(index)

    def to(self, device) -> "PriceWindows":
        moved = PriceWindows(self.windows.to(device), self.origins, self.prices, self.meta, self.cut, self.backtest)
        moved.dates = self.dates
        return moved


def build(config, names: list[str], table: torch.Tensor, cut: int, end: int, meta: dict | None,
          where: str) -> zoo.TaskData:
    """The task's data over days [0, end) of `table`: the first `cut` train (and fit the scaling when
    `meta` is None), the test examples are the origins whose targets all lie in [cut, end)."""
    table = table[:end]
    if meta is None:
        meta = fit_scaling(names, table, cut, config.target_mode, config.horizon, where)
    inputs, targets, horizon = inputs_of(table, meta, where), targets_of(table, meta), meta["horizon"]
    window = config.window

    def split(first: int, last: int) -> PriceWindows:  # origins first..last-1
        origins = torch.arange(first, last)
        windows = Windows(inputs, targets, origins - window + 1, window, many_to_one=True, horizon=0)
        return PriceWindows(windows, origins, table[:, -1], meta, cut)

    problem = zoo.Problem(zoo.MANY_TO_ONE, output_size=horizon, input_size=inputs.shape[1], regression=True)
    return zoo.TaskData(problem, train=split(first_origin(window, meta["mode"]), cut - horizon),
                        test=split(cut - 1, end - horizon), meta=meta)


@dataclass
class Backtest:
    """Walk-forward folds over the test days: fold k trains on every day before bounds[k] and is tested
    on the days up to bounds[k + 1]."""

    config: object
    names: list[str]
    table: torch.Tensor
    bounds: list[int]
    where: str

    def folds(self) -> list[tuple[int, int]]:
        return list(zip(self.bounds[:-1], self.bounds[1:]))

    def data(self, cut: int, end: int) -> zoo.TaskData:
        return build(self.config, self.names, self.table, cut, end, None, self.where)
