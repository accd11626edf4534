"""The network's forecasts beside three baselines on the same days, their metrics, walk-forward backtests,
the `zoo eval` report and the plot.

Baselines, all in price units, for the close h days after origin t:
- persistence: the close on day t (daily closes are close to a random walk: a hard one to beat);
- drift: persistence plus h times the mean daily change over the training days;
- linear AR: a linear model (with intercept) of the very windows and targets the network learns from,
  fitted by least squares on the training examples, its outputs turned into prices the same way.
"""

from __future__ import annotations

import torch

import zoo
from zoo import batched_outputs, device_of, pyplot, save_figure

from .series import to_price

PREFIX = {"model": "", "persistence": "persistence_", "drift": "drift_", "linear AR": "linear_ar_"}


def flat_examples(split) -> tuple[torch.Tensor, torch.Tensor]:
    """(each example's window as one row, with a constant 1 for the intercept; its targets): float64, CPU."""
    inputs, targets = split.batch(torch.arange(len(split), device=split.windows.starts.device))
    rows = inputs.reshape(len(split), -1).double().cpu()
    return torch.cat([rows, torch.ones(len(rows), 1, dtype=rows.dtype)], 1), targets.double().cpu()


def forecasts(model, data: zoo.TaskData, split: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(truth, {forecaster: forecasts}) for every example of the split: examples x H prices each."""
    windows, train = data.split(split), data.train
    meta, origins, prices = windows.meta, windows.origins, windows.prices
    steps = torch.arange(1, meta["horizon"] + 1, dtype=torch.float64)
    truth = prices[origins[:, None] + steps.long()]
    outputs = torch.cat([out for out, _ in batched_outputs(model, windows)]).double().cpu().reshape(len(origins), -1)
    today = prices[origins, None].expand_as(truth)
    drift = (prices[train.cut - 1] - prices[0]) / (train.cut - 1)  # the mean daily change over the training days
    x_train, y_train = flat_examples(train)
    coefficients = torch.linalg.lstsq(x_train, y_train, driver="gelsd").solution  # least squares, rank-safe
    linear = flat_examples(windows)[0] @ coefficients
    return truth, {"model": to_price(outputs, origins, prices, meta), "persistence": today,
                   "drift": today + steps * drift, "linear AR": to_price(linear, origins, prices, meta)}


def scores(truth: torch.Tensor, guesses: dict[str, torch.Tensor]) -> dict:
    """RMSE and MAE of each forecaster at the last horizon (the headline), which is best, and, for a
    horizon above 1, the same at every horizon."""

    def at(h: int) -> dict:
        row = {}
        for name, guess in guesses.items():
            error = guess[:, h] - truth[:, h]
            row[f"{PREFIX[name]}rmse"] = error.pow(2).mean().sqrt().item()
            row[f"{PREFIX[name]}mae"] = error.abs().mean().item()
        row["rmse_vs_persistence"] = row["rmse"] / row["persistence_rmse"]
        row["best"] = min(guesses, key=lambda name: row[f"{PREFIX[name]}rmse"])
        return row

    horizon = truth.shape[1]
    metrics = at(horizon - 1)
    if horizon > 1:
        metrics["horizons"] = [{"horizon": h + 1, **at(h)} for h in range(horizon)]
    return metrics


def evaluate(model, data: zoo.TaskData, split: str) -> dict:
    windows = data.split(split)
    if split == "test" and windows.backtest is not None:
        return backtest(model, windows.backtest)
    truth, guesses = forecasts(model, data, split)
    if split == "train":  # the per-epoch log: the baselines fitted on these very days say little there
        guesses = {name: guesses[name] for name in ("model", "persistence")}
    return scores(truth, guesses)


def backtest(model, plan) -> dict:
    """Walk-forward: each fold re-fits the scaling, the baselines and a fresh network (the run's model,
    settings and seed) on every day before its test days; metrics per fold and over all test days."""
    from zoo import fit

    card = getattr(model, "zoo", None)
    if card is None:
        raise zoo.ZooError("a backtest re-trains the exported model's recipe: run it with zoo eval RUN --backtest K")
    spec, task, device = zoo.get_model(card.model), zoo.get_task(card.task), device_of(model)
    folds, truths, guesses = [], [], []
    bounds = list(plan.folds())
    for number, (cut, end) in enumerate(bounds, 1):
        zoo.progress(f"backtest fold {number} of {len(bounds)}: re-fitting {card.model} on {cut:,} days, "
                     f"{card.train_config.epochs} epochs")
        data = plan.data(cut, end).to(device)
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            torch.manual_seed(card.train_config.seed)
            net = spec.build(card.model_config, data.problem).to(device)
            fit(net, data, task, card.train_config, device, log=lambda line: None)
        truth, guess = forecasts(net, data, "test")
        folds.append({"fold": number, "train_days": cut, "test_days": end - cut, **scores(truth, guess)})
        truths.append(truth)
        guesses.append(guess)
    pooled = {name: torch.cat([g[name] for g in guesses]) for name in guesses[0]}
    return {**scores(torch.cat(truths), pooled), "folds": folds}


def report(metrics: dict) -> str:
    """`zoo eval`'s text: which forecaster is best, then every one's errors (per horizon, per fold)."""
    best = metrics["best"]
    ratio = metrics["rmse_vs_persistence"]
    lines = [f"best: {best} (rmse {metrics[PREFIX[best] + 'rmse']:.4f}); the model: rmse {metrics['rmse']:.4f}, "
             f"{ratio:.3f}x persistence's"]
    if "folds" in metrics:
        lines[0] = f"walk-forward backtest over {len(metrics['folds'])} folds, all test days: " + lines[0]
    horizons = metrics.get("horizons")
    ahead = f"{horizons[-1]['horizon']} days ahead" if horizons else "next day"
    lines += ["", f"{'forecast':<12} {'rmse':>10} {'mae':>10}   ({ahead})"]
    lines += [f"{name:<12} {metrics[p + 'rmse']:>10.4f} {metrics[p + 'mae']:>10.4f}" for name, p in PREFIX.items()]
    columns = "".join(f" {name:>12}" for name in PREFIX)
    if horizons:
        lines += ["", "rmse by horizon (trading days ahead)", f"{'horizon':<8}{columns}  best"]
        lines += [f"{row['horizon']:<8}" + "".join(f" {row[p + 'rmse']:>12.4f}" for p in PREFIX.values())
                  + f"  {row['best']}" for row in horizons]
    if "folds" in metrics:
        lines += ["", "rmse by fold (each re-fitted on every day before its test days)",
                  f"{'fold':<5}{'train days':>11}{'test days':>11}{columns}  best"]
        lines += [f"{row['fold']:<5}{row['train_days']:>11}{row['test_days']:>11}"
                  + "".join(f" {row[p + 'rmse']:>12.4f}" for p in PREFIX.values()) + f"  {row['best']}"
                  for row in metrics["folds"]]
    return "\n".join(lines)


def plot(model, data: zoo.TaskData, split: str, path: str) -> None:
    """Truth, the network and the best baseline over the split's days, at the last horizon."""
    plt = pyplot("--plot")
    truth, guesses = forecasts(model, data, split)
    metrics = scores(truth, guesses)
    baseline = min((name for name in guesses if name != "model"), key=lambda n: metrics[PREFIX[n] + "rmse"])
    horizon, column = truth.shape[1], data.meta["columns"][-1]
    figure, axes = plt.subplots(figsize=(10, 4.5))
    windows = data.split(split)
    dates = getattr(windows, "dates", None)
    if dates:  # the day each forecast is for: its window's last day plus the horizon
        import numpy as np

        x = np.array([dates[o] for o in (windows.origins + horizon).tolist()], dtype="datetime64[D]")
    else:
        x = list(range(len(truth)))
    axes.plot(x, truth[:, -1].numpy(), label="truth", color="black", linewidth=1)
    axes.plot(x, guesses["model"][:, -1].numpy(), label=f"model (rmse {metrics['rmse']:.2f})")
    axes.plot(x, guesses[baseline][:, -1].numpy(), label=f"{baseline} (rmse {metrics[PREFIX[baseline] + 'rmse']:.2f})",
              linestyle="--")
    if dates:
        figure.autofmt_xdate()
    axes.set_xlabel("date" if dates else f"{split} day (the file has no dates)")
    axes.set_ylabel(column)
    axes.set_title(f"{column} {horizon} trading day{'s' * (horizon > 1)} ahead, {split} days")
    axes.legend()
    save_figure(figure, path, dpi=120)
