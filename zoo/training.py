"""The one training loop, and `train()`, which resolves a model/task pair, runs the loop and exports."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Mapping, Sequence

import torch
from torch.nn import functional as F

from zoo.plan import plan
from zoo.specs import Card, Problem, Task, TaskData, TrainConfig, ZooError


def pick_device(name: str = "auto") -> torch.device:
    """`auto` takes CUDA, then Apple's MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ZooError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ZooError("device cuda was asked for, but CUDA is not available here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ZooError("device mps was asked for, but MPS is not available here")
    return device


def loss_function(problem: Problem) -> Callable:
    if problem.regression:
        return lambda out, y: F.mse_loss(out, y.view_as(out))
    return lambda out, y: F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def evaluate(task: Task, model: torch.nn.Module, data: TaskData, split: str) -> dict:
    with torch.no_grad():
        return dict(task.evaluate(model, data, split))


def format_metrics(metrics: Mapping[str, Any]) -> str:
    return "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())


def progress_bar(enabled: bool, length: int, label: str):
    """A per-epoch progress bar on stderr, drawn only on a terminal."""
    import click

    if enabled and sys.stderr.isatty():
        return click.progressbar(length=length, label=label, file=sys.stderr, show_eta=True)
    return contextlib.nullcontext(SimpleNamespace(update=lambda steps: None))


def fit(model: torch.nn.Module, data: TaskData, task: Task, config: TrainConfig, device: torch.device,
        log: Callable[[str], None] = print, progress: bool = False, log_every: int = 0) -> dict:
    """Adam over shuffled mini-batches of the train split; logs loss and the task's metrics per epoch.

    `data` should already be on `device` (`TaskData.to`). `log_every=0` picks an interval that keeps
    the log to about 20 lines.
    """
    train = data.train
    loss_of = loss_function(data.problem)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    shuffle = torch.Generator().manual_seed(config.seed)
    log_every = log_every or math.ceil(config.epochs / 20)
    steps = math.ceil(len(train) / config.batch_size)
    metrics: dict = {}
    for epoch in range(1, config.epochs + 1):
        model.train()
        started = time.perf_counter()
        total = torch.zeros((), device=device)
        order = torch.randperm(len(train), generator=shuffle).to(device)
        with progress_bar(progress, steps, f"epoch {epoch}/{config.epochs}") as shown:
            for index in order.split(config.batch_size):
                inputs, targets = train.batch(index)
                outputs = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
                loss = loss_of(outputs, targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                total += loss.detach() * len(index)
                shown.update(1)
        seconds = time.perf_counter() - started
        mean_loss = total.item() / len(train)
        if not math.isfinite(mean_loss):
            raise ZooError(f"training diverged at epoch {epoch} (loss {mean_loss}); try a smaller --lr")
        if epoch % log_every == 0 or epoch == config.epochs:
            metrics = evaluate(task, model, data, data.monitor_split)
            width = len(str(config.epochs))
            log(f"epoch {epoch:{width}d}/{config.epochs}  loss {mean_loss:.4f}  {data.monitor_split} "
                f"{format_metrics(metrics)}  {seconds:.2f}s  {len(train) / seconds:,.0f} samples/s")
    return metrics


def default_out(model_name: str, task_name: str) -> Path:
    return Path("checkpoints") / f"{model_name}-{task_name}.safetensors"


def train(model: str, task: str, overrides: Sequence[str] | Mapping[str, Any] = (), *, device: str = "auto",
          out: str | Path | None = None, log: Callable[[str], None] = print, progress: bool = False,
          log_every: int = 0) -> torch.nn.Module:
    """Train `model` on `task`, export the weights to `out` and return the model (with `.zoo`, its Card).

    `out=None` writes checkpoints/MODEL-TASK.safetensors; `out=False` writes nothing.
    """
    from zoo import __version__
    from zoo.checkpoint import check_writable, save

    p = plan(model, task, overrides)
    target = default_out(model, task) if out is None else Path(out) if out is not False else None
    if target is not None:
        check_writable(target)
    dev = pick_device(device)
    data = p.task.data(p.task_config, None).to(dev)
    torch.manual_seed(p.train_config.seed)
    net = p.model.build(p.model_config, data.problem).to(dev)
    params = sum(t.numel() for t in net.parameters())
    log(f"training {p.model.name} on {p.task.name} ({data.problem.shape}): {params:,} parameters, "
        f"{len(data.train):,} training examples, device {dev}")
    fit(net, data, p.task, p.train_config, dev, log=log, progress=progress, log_every=log_every)
    split = data.report_split
    metrics = {"split": split, **evaluate(p.task, net, data, split)}
    log(f"final ({split} split): {format_metrics({k: v for k, v in metrics.items() if k != 'split'})}")
    net.eval()
    net.zoo = Card(model=p.model.name, task=p.task.name, model_config=p.model_config, task_config=p.task_config,
                   train_config=p.train_config, problem=data.problem, meta=data.meta, metrics=metrics,
                   versions={"zoo": __version__, "torch": torch.__version__, "model_plugin": p.model.plugin,
                             "task_plugin": p.task.plugin, "device": str(dev)})
    if target is not None:
        save(net, net.zoo, target)
        log(f"saved {target} ({target.stat().st_size / 1024:,.1f} KiB)")
    return net
