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
    """The scalar metrics on one line (tables such as a confusion matrix are for `zoo eval`)."""
    shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and k != "split"}
    return "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())


def progress_bar(enabled: bool, length: int, label: str):
    """A per-epoch progress bar on stderr, drawn only on a terminal."""
    import click

    if enabled and sys.stderr.isatty():
        return click.progressbar(length=length, label=label, file=sys.stderr, show_eta=True)
    return contextlib.nullcontext(SimpleNamespace(update=lambda steps: None))


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype training steps autocast to, or None for plain fp32.

    `auto` picks bf16 on CPUs that compute it natively (AVX512-BF16 or AMX), where oneDNN's LSTM
    runs about twice as fast; fp32 elsewhere. Weights and evaluation stay fp32 either way.
    """
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def cpu_has_native_bf16() -> bool:
    checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(check() for check in checks if check is not None)  # private probes: absent means unknown, so no


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    """A per-step learning-rate schedule, or None for a constant rate."""
    if config.schedule == "cosine":  # from lr down to 0 over the whole run
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if config.schedule == "onecycle":  # warm up to lr over the first 30%, then cosine down to ~0
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps)
    return None


def fit(model: torch.nn.Module, data: TaskData, task: Task, config: TrainConfig, device: torch.device,
        log: Callable[[str], None] = print, progress: bool = False, log_every: int = 0) -> list[dict]:
    """Adam over shuffled mini-batches of the train split; logs loss and the task's metrics per epoch.

    `data` should already be on `device` (`TaskData.to`). `log_every=0` picks an interval that keeps
    the log to about 20 lines. Returns one row per epoch: loss, learning rate, seconds, samples/s,
    and the monitored split's metrics on the epochs that were logged.
    """
    train = data.train
    loss_of = loss_function(data.problem)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    shuffle = torch.Generator().manual_seed(config.seed)
    log_every = log_every or math.ceil(config.epochs / 20)
    steps = math.ceil(len(train) / config.batch_size)
    scheduler = make_scheduler(optimizer, config, config.epochs * steps)
    dtype = autocast_dtype(config.precision, device)
    history = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        lr = optimizer.param_groups[0]["lr"]
        started = time.perf_counter()
        total = torch.zeros((), device=device)
        order = torch.randperm(len(train), generator=shuffle).to(device)
        with progress_bar(progress, steps, f"epoch {epoch}/{config.epochs}") as shown:
            for index in order.split(config.batch_size):
                inputs, targets = train.batch(index)
                with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                    outputs = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
                    loss = loss_of(outputs, targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                total += loss.detach() * len(index)
                shown.update(1)
        seconds = time.perf_counter() - started
        row = {"epoch": epoch, "loss": total.item() / len(train), "lr": lr, "seconds": seconds,
               "samples_per_s": len(train) / seconds}
        if not math.isfinite(row["loss"]):
            raise ZooError(f"training diverged at epoch {epoch} (loss {row['loss']}); try a smaller --lr")
        if epoch % log_every == 0 or epoch == config.epochs:
            row[data.monitor_split] = evaluate(task, model, data, data.monitor_split)
            log(f"epoch {epoch:{len(str(config.epochs))}d}/{config.epochs}  loss {row['loss']:.4f}  "
                f"{data.monitor_split} {format_metrics(row[data.monitor_split])}  {seconds:.2f}s  "
                f"{row['samples_per_s']:,.0f} samples/s")
        history.append(row)
    return history


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
    dtype = autocast_dtype(p.train_config.precision, dev)
    log(f"training {p.model.name} on {p.task.name} ({data.problem.shape}): {params:,} parameters, "
        f"{len(data.train):,} training examples, device {dev}{', bf16 autocast' if dtype else ''}")
    fit(net, data, p.task, p.train_config, dev, log=log, progress=progress, log_every=log_every)
    split = data.report_split
    metrics = {"split": split, **evaluate(p.task, net, data, split)}
    log(f"final ({split} split): {format_metrics(metrics)}")
    net.eval()
    net.zoo = Card(model=p.model.name, task=p.task.name, model_config=p.model_config, task_config=p.task_config,
                   train_config=p.train_config, problem=data.problem, meta=data.meta, metrics=metrics,
                   versions={"zoo": __version__, "torch": torch.__version__, "model_plugin": p.model.plugin,
                             "task_plugin": p.task.plugin, "device": str(dev),
                             "precision": "bf16 autocast" if dtype else "fp32"})
    if target is not None:
        save(net, net.zoo, target)
        log(f"saved {target} ({target.stat().st_size / 1024:,.1f} KiB)")
    return net
