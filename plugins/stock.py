"""Stock price prediction, the course's way: an LSTM reads 7 days of prices and predicts the next Close.

Many-to-one regression with MSE. The first 70% of days train, the rest test. Min-max scaling is fitted
on the training days only (the course scaled the test days with their own minimum and maximum, which
lets the future leak in) and travels in the export, so every report is in price units, next to the
naive persistence forecast (tomorrow's close = today's close) that a network has to beat.
"""

import csv
import io
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import click

import zoo
from zoo.config import suggest
from zoo.download import DownloadError, data_root, fetch

URL = "https://raw.githubusercontent.com/deeplearningzerotoall/PyTorch/master/RNN/data-02-stock_daily.csv"
SHA256 = "9b4259e27f5791a3a3191a96b43945d14f02d415c8afb8297f249b82636c2e0c"
CACHED = Path("stock") / "goog_daily.csv"  # under the data root
COURSE_COLUMNS = ("Open", "High", "Low", "Volume", "Close")  # the course file has no header row


@dataclass(frozen=True)
class StockConfig:
    data: str = zoo.param("", "a CSV of daily prices; empty: the course's GOOG file, downloaded once", path=True)
    root: str = zoo.param("", "where the course's file is kept; empty: $ZOO_DATA, else ./datasets", path="folder")
    features: str = zoo.param(",".join(COURSE_COLUMNS), "input columns by name, comma-separated")
    target: str = zoo.param("Close", "the column to predict, one day ahead")
    window: int = zoo.param(7, "days per window (the course's sequence length)")
    train_fraction: float = zoo.param(0.7, "the first share of the days trains; the rest are the test days")
    order: Literal["auto", "oldest-first", "newest-first"] = zoo.param(
        "auto", "row order: auto sorts by a Date column, else takes rows as newest first like the course's file")
    change: bool = zoo.param(False, "learn the change from the last day instead of the level (the same MSE, "
                                    "another parameterization); off reproduces the course")

    def __post_init__(self):
        zoo.absolute_paths(self, "data", "root")
        zoo.require(self.window >= 1, f"window must be positive, got {self.window}")
        zoo.require(0 < self.train_fraction < 1, f"train_fraction must be in (0, 1), got {self.train_fraction}")
        zoo.require(bool(self.columns()), "features must name at least one column")

    def columns(self) -> list[str]:
        return [c.strip() for c in self.features.split(",") if c.strip()]


@dataclass
class Prices:
    """A price file read and put in date order: one row of values per day."""

    names: list[str]  # the columns of `values`: the features, then the target
    values: list[list[float]]
    dates: list[str] | None


def price_file(config: StockConfig) -> Path:
    if config.data:
        return Path(config.data)
    path = data_root(config.root) / CACHED
    try:
        return fetch(URL, path, SHA256)
    except DownloadError as e:
        raise zoo.ZooError(f"the course's GOOG prices could not be downloaded to {path} ({e.reason}): fetch "
                           f"{e.url} there by hand, or train on a file of your own with --data FILE") from None


def read_prices(path: Path, config: StockConfig) -> Prices:
    """Read the course's format (no header, # comments, newest first) or a header format such as
    Yahoo's Date,Open,High,Low,Close,Adj Close,Volume; every problem is named with its line number."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except FileNotFoundError:
        raise zoo.ZooError(f"price file {path} not found") from None
    except OSError as e:
        raise zoo.ZooError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise zoo.ZooError(f"{path} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    comments = [line.lstrip("# ").strip() for _, line in lines if line.lstrip().startswith("#")]
    rows = [(n, [cell.strip() for cell in next(csv.reader(io.StringIO(line)))])
            for n, line in lines if not line.lstrip().startswith("#")]
    if not rows:
        raise zoo.ZooError(f"{path} has no data rows")
    if not all(is_number(cell) for cell in rows[0][1]):  # a header row
        header, rows = rows[0][1], rows[1:]
    elif comments and len(comments[-1].split(",")) == len(rows[0][1]):  # "# Open,High,..." as in the course
        header = [c.strip() for c in comments[-1].split(",")]
    elif len(rows[0][1]) == len(COURSE_COLUMNS):
        header = list(COURSE_COLUMNS)
    else:
        raise zoo.ZooError(f"{path} has no header row: add one (Date,Open,...) or a '# Open,High,...' comment line")
    lower = {name.lower(): i for i, name in enumerate(header)}
    wanted = config.columns() + [config.target]
    for name in wanted:
        if name.lower() not in lower:
            raise zoo.ZooError(f"{path} has no column {name!r}{suggest(name, header)} (it has: {', '.join(header)})")
    columns = [lower[name.lower()] for name in wanted]
    dated = lower.get("date")
    values, dates = [], []
    for n, cells in rows:
        if len(cells) != len(header):
            raise zoo.ZooError(f"{path} line {n} has {len(cells)} cells, the header has {len(header)}")
        row = []
        for name, i in zip(wanted, columns):
            cell = cells[i]
            if not is_number(cell) or not math.isfinite(float(cell)):
                what = "is empty" if cell in ("", "null", "NaN", "nan") else f"is {cell!r}, not a number"
                raise zoo.ZooError(f"{path} line {n}: {name} {what}")
            row.append(float(cell))
        values.append(row)
        if dated is not None:
            try:
                dates.append(date.fromisoformat(cells[dated]).isoformat())
            except ValueError:
                raise zoo.ZooError(f"{path} line {n}: Date {cells[dated]!r} is not a YYYY-MM-DD date") from None
    if dated is not None and config.order == "auto":
        order = sorted(range(len(values)), key=dates.__getitem__)
        values, dates = [values[i] for i in order], [dates[i] for i in order]
    elif config.order in ("auto", "newest-first"):
        values.reverse()
        dates.reverse()
    return Prices(wanted, values, dates or None)


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def make_data(config: StockConfig, meta: dict | None) -> zoo.TaskData:
    import torch


    path = price_file(config)
    prices = read_prices(path, config)
    days = len(prices.values)
    train_days = int(days * config.train_fraction)
    if days < config.window + 2 or train_days <= config.window or train_days >= days:
        raise zoo.ZooError(f"{path} has {days} days; windows of {config.window} need at least {config.window + 2}, "
                           f"with more than {config.window} among the first {config.train_fraction:.0%}")
    table = torch.tensor(prices.values, dtype=torch.float64)
    if meta is None:  # fit the scaling on the training days only
        low, high = table[:train_days].min(0).values, table[:train_days].max(0).values
        flat = [name for name, lo, hi in zip(prices.names, low, high) if lo == hi]
        if flat:
            raise zoo.ZooError(f"{path}: column {flat[0]} is constant over the training days, so it cannot be "
                               f"scaled; leave it out of --features")
        meta = {"columns": prices.names, "min": low.tolist(), "max": high.tolist(), "change": config.change}
    low, high = torch.tensor(meta["min"], dtype=torch.float64), torch.tensor(meta["max"], dtype=torch.float64)
    scaled = ((table - low) / (high - low)).float()
    features, level = scaled[:, :-1], scaled[:, -1:]
    # with `change`, day d's target is level[d] - level[d - 1]: predicted price = last price + output
    target = torch.cat([torch.zeros(1, 1), level.diff(dim=0)]) if config.change else level

    def windows(first, last):  # windows whose predicted day lies in [first + window, last)
        return PriceWindows(features, target, torch.arange(first, last - config.window), config.window, level)

    problem = zoo.Problem(zoo.MANY_TO_ONE, output_size=1, input_size=features.shape[1], regression=True)
    # the test windows start inside the training days: their first predicted day is the first test day
    return zoo.TaskData(problem, train=windows(0, train_days), test=windows(train_days - config.window, days),
                        meta=meta)


class PriceWindows:
    """Windows of days predicting the next day's target; they also keep the scaled price level, which
    the persistence forecast and the `change` parameterization need."""

    def __init__(self, features, target, starts, window: int, level):
        from zoo.data import Windows

        self.windows = Windows(features, target, starts, window, many_to_one=True, horizon=1)
        self.level, self.starts, self.length = level, starts, window

    def __len__(self) -> int:
        return len(self.windows)

    def batch(self, index):
        return self.windows.batch(index)

    def to(self, device) -> "PriceWindows":
        w = self.windows
        return PriceWindows(w.inputs.to(device), w.targets.to(device), w.starts.to(device), w.length,
                            self.level.to(device))


def unscale(values, meta: dict):
    """Scaled target values -> price units."""
    return values * (meta["max"][-1] - meta["min"][-1]) + meta["min"][-1]


def predictions(model, data: zoo.TaskData, split: str):
    """(predicted, true, persistence) target values of every window of the split, in price units."""
    import torch

    from zoo.data import batched_outputs

    windows = data.split(split)
    outputs = torch.cat([out for out, _ in batched_outputs(model, windows)]).flatten()
    last = windows.starts + windows.length
    today, truth = windows.level[last - 1].flatten(), windows.level[last].flatten()  # persistence, and the truth
    predicted = today + outputs if data.meta.get("change") else outputs
    return [unscale(values.double().cpu(), data.meta) for values in (predicted, truth, today)]


def evaluate(model, data: zoo.TaskData, split: str) -> dict:
    predicted, true, persistence = predictions(model, data, split)

    def rmse(guess):
        return (guess - true).pow(2).mean().sqrt().item()

    def mae(guess):
        return (guess - true).abs().mean().item()

    return {"rmse": rmse(predicted), "mae": mae(predicted), "persistence_rmse": rmse(persistence),
            "persistence_mae": mae(persistence), "rmse_vs_persistence": rmse(predicted) / rmse(persistence)}


def plot(model, data: zoo.TaskData, split: str, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError:
        raise zoo.ZooError("--plot needs matplotlib: pip install 'rnn-zoo[plot]'") from None
    predicted, true, _ = predictions(model, data, split)
    figure, axes = plt.subplots(figsize=(10, 4.5))
    axes.plot(true.numpy(), label="truth")
    axes.plot(predicted.numpy(), label="prediction")
    axes.set_xlabel(f"{split} day")
    axes.set_ylabel(data.meta["columns"][-1])
    axes.set_title(f"next-day {data.meta['columns'][-1]}, {split} days")
    axes.legend()
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=120)
    except OSError as e:
        raise zoo.ZooError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        plt.close(figure)


def predict(model, data: str | None) -> str:
    """The next day's target after the last window of a price file (by default the training file)."""
    import dataclasses

    import torch

    from zoo.data import device_of

    card = model.zoo
    if not data and card.sources.get("data"):
        raise zoo.ZooError(f"this model was trained on {card.sources['data']!r}: give --data FILE to forecast from "
                           f"(zoo does not open files a weights file names)")
    config = dataclasses.replace(card.task_config, data=data) if data else card.task_config
    prices = read_prices(price_file(config), config)
    if len(prices.values) < config.window:
        raise zoo.ZooError(f"the file has {len(prices.values)} days; the model reads {config.window}")
    low, high = torch.tensor(card.meta["min"]), torch.tensor(card.meta["max"])
    last = (torch.tensor(prices.values[-config.window:]) - low) / (high - low)
    with torch.no_grad():
        value = model(last[None, :, :-1].float().to(device_of(model))).item()
    value = unscale(value + (last[-1, -1].item() if card.meta.get("change") else 0), card.meta)
    after = f" after {prices.dates[-1]}" if prices.dates else ""
    return f"next {card.meta['columns'][-1]}{after}: {value:.2f}"


@zoo.hookimpl
def register_tasks(register):
    register(zoo.Task(
        name="stock",
        description="the course's stock prediction: 7 days of GOOG prices -> the next Close",
        shape=zoo.MANY_TO_ONE,
        data=make_data,
        evaluate=evaluate,
        config=StockConfig,
        # the course: LSTM of 10, Adam at 0.01, 500 full-batch iterations
        train_defaults={"epochs": 500, "lr": 0.01, "batch_size": 1024},
        model_defaults={"hidden_size": 10},
        metric="rmse",
        minimize=True,
        plot=plot,
        predict=predict,
        predict_params=(click.Option(["--data"], type=click.Path(dir_okay=False),
                                     help="a price file to forecast from [default: the training file]"),),
    ))
