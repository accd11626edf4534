"""Stock price forecasting: an LSTM reads 7 days of prices and predicts the next close (or the next H).

Many-to-one regression with MSE. The first 70% of days train, the rest test. By default the network
learns log returns from standardized daily changes, so trends and regime shifts beyond the training
days do not throw it (`--target-mode level` is the course's exercise, number for number). Every report
is in price units, beside three baselines on the same days: persistence (tomorrow's close = today's),
drift and a linear autoregressive model of the same windows. `zoo eval RUN --backtest K` re-trains
over K expanding walk-forward folds.

The package: `prices` reads and downloads price files, `series` makes windows and targets and turns
outputs back into prices, `forecasts` has the baselines, metrics, backtests, report and plot. Only
`prices` is imported with the plugin, so that `zoo list` never imports torch.
"""

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import click

import zoo
from zoo import DownloadError, data_root, fetch

from .prices import COURSE_COLUMNS, download, is_url, read_prices

URL = "https://raw.githubusercontent.com/deeplearningzerotoall/PyTorch/master/RNN/data-02-stock_daily.csv"
SHA256 = "9b4259e27f5791a3a3191a96b43945d14f02d415c8afb8297f249b82636c2e0c"
CACHED = Path("stock") / "goog_daily.csv"  # under the data root
DOWNLOADS = Path("stock") / "downloads"  # --data URL files, under the data root


@dataclass(frozen=True)
class StockConfig:
    data: str = zoo.param("", "a CSV of daily prices, a file or an http(s):// URL (downloaded once into the data "
                              "folder); empty: the course's GOOG file, downloaded once", path=True)
    sha256: str = zoo.param("", "the sha256 a --data URL's file must have; empty: any file that reads as prices")
    root: str = zoo.param("", "where downloaded price files are kept; empty: $ZOO_DATA, else ./datasets",
                          path="folder")
    features: str = zoo.param(",".join(COURSE_COLUMNS), "input columns by name, comma-separated")
    target: str = zoo.param("Close", "the column to predict")
    window: int = zoo.param(7, "days per window (the course's sequence length)")
    horizon: int = zoo.param(1, "predict the target on each of the next H trading days; the headline metrics are "
                                "for day H, the others are reported per horizon")
    target_mode: Literal["return", "change", "level"] = zoo.param(
        "return", "what the network learns: return (log returns from standardized daily changes: survives trends), "
                  "change (the min-max scaled change), or level (the course's min-max scaled price)")
    train_fraction: float = zoo.param(0.7, "the first share of the days trains; the rest are the test days")
    order: Literal["auto", "oldest-first", "newest-first"] = zoo.param(
        "auto", "row order: auto sorts by a Date column, else takes rows as newest first like the course's file")
    backtest: int = zoo.param(0, "zoo eval only: a walk-forward backtest over this many expanding-window folds of "
                                 "the test days, each re-trained with the run's settings; 0: the single split")

    def __post_init__(self):
        if not is_url(self.data):
            zoo.absolute_paths(self, "data")
        zoo.absolute_paths(self, "root")
        zoo.require(self.window >= 1, f"window must be positive, got {self.window}")
        zoo.require(self.horizon >= 1, f"horizon must be at least 1 trading day ahead, got {self.horizon}")
        zoo.require(self.backtest >= 0, f"backtest must be a number of folds (0: none), got {self.backtest}")
        zoo.require(0 < self.train_fraction < 1, f"train_fraction must be in (0, 1), got {self.train_fraction}")
        zoo.require(bool(self.columns()), "features must name at least one column")
        zoo.require(self.sha256 == "" or (len(self.sha256) == 64 and all(c in "0123456789abcdef" for c in self.sha256)),
                    f"sha256 must be 64 lowercase hex digits, got {self.sha256!r}")
        zoo.require(not self.sha256 or is_url(self.data), "sha256 checks the file of a --data https://... URL; "
                                                          "a local file is read as it is")

    def columns(self) -> list[str]:
        return [c.strip() for c in self.features.split(",") if c.strip()]


def price_file(config: StockConfig) -> Path:
    if is_url(config.data):
        return download(config.data, data_root(config.root) / DOWNLOADS, config.sha256, config)
    if config.data:
        return Path(config.data)
    path = data_root(config.root) / CACHED
    try:
        return fetch(URL, path, SHA256)
    except DownloadError as e:
        raise zoo.ZooError(f"the course's GOOG prices could not be downloaded to {path} ({e.reason}): fetch "
                           f"{e.url} there by hand, or train on a file of your own with --data FILE") from None


def make_data(config: StockConfig, meta: dict | None) -> zoo.TaskData:
    import torch

    from .series import Backtest, build, check_meta, enough_days, first_origin

    path = price_file(config)
    where = config.data if is_url(config.data) else str(path)
    prices = read_prices(path, config)
    if meta is not None:  # an export: its outputs mean what they meant in training
        check_meta(meta, prices.names)
        for name, value in (("horizon", meta["horizon"]), ("target_mode", meta["mode"])):
            if getattr(config, name) != value:
                raise zoo.ZooError(f"this model was trained with {name} {value}; it cannot be evaluated with "
                                   f"{getattr(config, name)} (train another)")
    days, horizon, window, mode = len(prices.values), config.horizon, config.window, config.target_mode
    cut = int(days * config.train_fraction)
    test_days = days - cut
    if horizon > test_days and cut - horizon - first_origin(window, mode) >= 1:
        raise zoo.ZooError(f"horizon {horizon} is longer than the test period: {plural(test_days, 'day')} (the last "
                           f"{1 - config.train_fraction:.0%} of {days})")
    if not enough_days(days, cut, window, horizon, mode):
        need = next(d for d in itertools.count(days + 1)  # ends: both parts grow with d
                    if enough_days(d, int(d * config.train_fraction), window, horizon, mode))
        raise zoo.ZooError(f"{where} has {plural(days, 'day')}; windows of {window} forecasting "
                           f"{plural(horizon, 'day')} ahead need at least {need} ({config.train_fraction:.0%} of "
                           f"them to train)")
    table = torch.tensor(prices.values, dtype=torch.float64)
    data = build(config, prices.names, table, cut, days, meta, where)
    data.train.dates = data.test.dates = prices.dates  # the plot's x axis (None for a file without dates)
    if config.backtest:
        folds = config.backtest
        if meta is None:
            raise zoo.ZooError("backtest is an option of zoo eval, which re-trains the run's recipe on each fold: "
                               "train first, then zoo eval RUN --backtest K")
        if test_days // folds < horizon:
            raise zoo.ZooError(f"a backtest of {folds} folds needs at least {folds * horizon} test days (each fold "
                               f"forecasts {plural(horizon, 'day')} ahead); {where} has "
                               f"{plural(test_days, 'test day')}: use at most {test_days // horizon} folds")
        bounds = [cut + round(k * test_days / folds) for k in range(folds + 1)]
        data.test.backtest = Backtest(config, prices.names, table, bounds, where)
    return data


def evaluate(model, data: zoo.TaskData, split: str) -> dict:
    from .forecasts import evaluate

    return evaluate(model, data, split)


def report(metrics: dict) -> str:
    from .forecasts import report

    return report(metrics)


def plot(model, data: zoo.TaskData, split: str, path: str) -> None:
    from .forecasts import plot

    plot(model, data, split, path)


def predict(model, data: str | None) -> str:
    """The target on the next H days after the last window of a price file (by default the course's file;
    a model trained on a file of its own needs that file given again)."""
    import dataclasses

    import torch

    from zoo import device_of

    from .series import check_meta, first_origin, inputs_of, to_price

    card = model.zoo
    if not data and card.sources.get("data"):
        raise zoo.ZooError(f"this model was trained on {card.sources['data']!r}: give --data FILE to forecast from "
                           f"(zoo does not open files a weights file names)")
    config = dataclasses.replace(card.task_config, data=data) if data else card.task_config
    path = price_file(config)
    prices = read_prices(path, config)
    meta, days = card.meta, len(prices.values)
    check_meta(meta, prices.names)
    if days <= first_origin(config.window, meta["mode"]):
        reads = first_origin(config.window, meta["mode"]) + 1
        raise zoo.ZooError(f"the file has {plural(days, 'day')}; the model reads {reads}")
    table = torch.tensor(prices.values, dtype=torch.float64)
    inputs = inputs_of(table, meta, str(path))[-config.window:]
    with torch.no_grad():
        outputs = model(inputs[None].to(device_of(model))).double().cpu().reshape(1, -1)
    values = to_price(outputs, torch.tensor([days - 1]), table[:, -1], meta)[0].tolist()
    after = f" after {prices.dates[-1]}" if prices.dates else ""
    column = meta["columns"][-1]
    if len(values) == 1:
        return f"next {column}{after}: {values[0]:.2f}"
    days_after = f"trading days after {prices.dates[-1]}" if prices.dates else "trading days ahead"
    return f"{column} 1 to {len(values)} {days_after}: " + ", ".join(f"{v:.2f}" for v in values)


def plural(count: int, word: str) -> str:
    """`1 day`, `2 days`."""
    return f"{count:,} {word}{'s' * (count != 1)}"


def inspect(model, inputs):
    """zoo inspect: the forecasts against the truth and the baselines over the test days, the residuals."""
    from ..views import stock

    return stock(model, inputs)


COURSE_TRAINING = {"epochs": 500, "lr": 0.01, "batch_size": 1024}


def fit_defaults(config: StockConfig) -> zoo.Fitted:
    """The course's LSTM of 10, Adam at 0.01 and 500 full-batch steps. Daily returns are mostly noise,
    which 500 steps of a 700-weight network memorize (test RMSE 2.3x persistence's on the course's
    file, 1.3x with a weight decay of 0.01, 1.05x with 0.03); a weight decay of 0.1 pulls it back to the
    mean return when there is nothing to learn, and still lets it learn returns that can be predicted
    (see the tests: an AR(1) series of returns)."""
    # said nowhere (rule ""): these follow the task's own target_mode, not the user's data
    return zoo.Fitted("", train={"weight_decay": 0.1} if config.target_mode == "return" else {})


@zoo.hookimpl
def register_tasks(register):
    register(zoo.Task(
        name="stock",
        description="stock forecasting: 7 days of GOOG prices -> the next Close, beside persistence, drift, linear AR",
        shape=zoo.MANY_TO_ONE,
        data=make_data,
        evaluate=evaluate,
        config=StockConfig,
        train_defaults=COURSE_TRAINING,
        fit_defaults=fit_defaults,
        model_defaults={"hidden_size": 10},
        metric="rmse",
        minimize=True,
        format_metrics=report,
        plot=plot,
        predict=predict,
        inspect=inspect,
        predict_params=(click.Option(["--data"], type=click.Path(dir_okay=False),
                                     help="a price file to forecast from [default: the training file]"),),
    ))
