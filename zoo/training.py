"""The one training loop, and `train()`, which resolves a model/task pair, runs the loop and exports.

A run saves a resumable state at the end of every epoch, and when asked to stop (Ctrl-C, SIGTERM)
between two steps; resuming from it gives bit for bit the weights of a run never interrupted (CPU).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from zoo.config import to_dict
from zoo.data import epoch_order
from zoo.distributed import World, join, leave
from zoo.plan import plan
from zoo.runs import CONFIG, EXPORT, Run
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


class Interrupted(ZooError):
    """Training stopped on request; the state to resume from is saved."""

    def __init__(self, message: str, signal: int = 2):
        super().__init__(message)
        self.signal = signal  # SIGINT or SIGTERM: the shell's exit code is 128 + it


@dataclass
class Progress:
    """Where a run stands. Saved with the state, so that a resumed run picks up exactly here."""

    epoch: int = 1  # the epoch in progress, or the next one between epochs
    batch: int = 0  # batches of that epoch already done
    loss_sum: float = 0.0  # that epoch's loss so far, times its examples
    examples: int = 0
    seconds: float = 0.0
    lr: float = 0.0  # the learning rate the epoch began with
    best: float | None = None  # the best monitored metric, for --patience
    best_epoch: int = 0
    bad_epochs: int = 0
    done: bool = False  # every epoch ran, or early stopping ended the run


@contextlib.contextmanager
def stop_requests():
    """Turn the first Ctrl-C or SIGTERM into a request the loop honours between two steps; a second
    Ctrl-C interrupts at once."""
    request = SimpleNamespace(pending=False, signal=signal.SIGINT)
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum, frame):
        if request.pending and signum == signal.SIGINT:
            raise KeyboardInterrupt
        request.pending, request.signal = True, signum

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def capture(model, optimizer, scheduler, shuffle_state: torch.Tensor, at: Progress, best: dict | None,
            identity: dict, status: str) -> tuple[dict, dict]:
    """Everything a resumed run needs, as safetensors tensors and JSON (the tensors may share memory
    with the model: write them out before the next step)."""
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"best/{k}": v.cpu().contiguous() for k, v in (best or {}).items()})
    optimizer_state = optimizer.state_dict()
    for index, values in optimizer_state["state"].items():
        tensors.update({f"optimizer/{index}/{name}": t.cpu().contiguous() for name, t in values.items()})
    numpy_state = np.random.get_state()
    tensors["rng/torch"], tensors["rng/shuffle"] = torch.get_rng_state(), shuffle_state
    tensors["rng/numpy"] = torch.from_numpy(numpy_state[1].astype(np.int64))
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors.update({f"rng/cuda/{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    python_state = random.getstate()
    info = {**identity, "status": status, "pid": os.getpid(), "progress": asdict(at),
            "optimizer_groups": optimizer_state["param_groups"],
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "numpy_rng": [numpy_state[0], *numpy_state[2:]],
            "python_rng": [python_state[0], list(python_state[1]), python_state[2]]}
    return tensors, info


def restore(tensors: dict, info: dict, model, optimizer, scheduler, shuffle: torch.Generator):
    """Put a captured state back; returns (progress, best weights or None)."""
    def part(prefix: str) -> dict:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    model.load_state_dict(part("model/"))
    state: dict = {}
    for key, value in part("optimizer/").items():
        index, name = key.split("/")
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": info["optimizer_groups"]})
    if scheduler is not None:
        scheduler.load_state_dict(info["scheduler"])
    torch.set_rng_state(tensors["rng/torch"])
    shuffle.set_state(tensors["rng/shuffle"])
    name, position, has_gauss, cached = info["numpy_rng"]
    np.random.set_state((name, tensors["rng/numpy"].numpy().astype(np.uint32), position, has_gauss, cached))
    version, internal, gauss = info["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda/")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    return Progress(**info["progress"]), part("best/") or None


def fit(model: torch.nn.Module, data: TaskData, task: Task, config: TrainConfig, device: torch.device, *,
        run: Run | None = None, identity: dict | None = None, resume: tuple[dict, dict] | None = None,
        world: World = World(), log: Callable[[str], None] = print, progress: bool = False,
        log_every: int = 0) -> Progress:
    """Adam over shuffled mini-batches of the train split, one epoch after another.

    Each epoch: the steps, then the monitored split's metrics (every epoch when there is a validation
    split or --patience, else on the logged epochs), a log line (about 20 in all unless `log_every`),
    a line in the run's metrics.jsonl and a resumable state. `data` should be on `device` already.
    """
    train, loss_of = data.train, loss_function(data.problem)
    net = torch.nn.parallel.DistributedDataParallel(model) if world.size > 1 else model
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    batches_per_epoch = math.ceil(len(train) / config.batch_size)
    scheduler = make_scheduler(optimizer, config, config.epochs * batches_per_epoch)
    dtype = autocast_dtype(config.precision, device)
    shuffle = torch.Generator().manual_seed(config.seed)
    at, best = restore(*resume, model, optimizer, scheduler, shuffle) if resume else (Progress(), None)
    log_every = log_every or math.ceil(config.epochs / 20)
    monitor, width = data.monitor_split, len(str(config.epochs))
    saving = run is not None and world.main

    def save(shuffle_state, status):
        if saving:
            run.save_state(*capture(model, optimizer, scheduler, shuffle_state, at, best, identity or {}, status))

    with stop_requests() as stop:
        for epoch in range(at.epoch, config.epochs + 1):
            if at.done:
                break
            epoch_start = shuffle.get_state()
            batches = epoch_order(train, config.batch_size, shuffle, device)
            if at.batch == 0:
                at.lr = optimizer.param_groups[0]["lr"]
            started = time.perf_counter() - at.seconds
            total = torch.tensor(at.loss_sum, device=device)
            model.train()
            with progress_bar(progress and world.main, len(batches), f"epoch {epoch}/{config.epochs}") as shown:
                shown.update(at.batch)
                for number in range(at.batch, len(batches)):
                    index = batches[number]
                    if len(index) < world.size:  # too few examples to give every process some
                        continue
                    part = world.shard(index)
                    inputs, targets = train.batch(part)
                    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                        outputs = net(*inputs) if isinstance(inputs, tuple) else net(inputs)
                        loss = loss_of(outputs, targets)
                    # DDP averages gradients over processes: weigh each by its share of the global batch
                    weight = len(part) * world.size / len(index)
                    optimizer.zero_grad(set_to_none=True)
                    (loss * weight if weight != 1 else loss).backward()
                    if config.grad_clip:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                    optimizer.step()
                    if scheduler is not None:
                        scheduler.step()
                    total += loss.detach() * len(part)
                    at.examples += len(part)
                    shown.update(1)
                    if stop.pending and world.size == 1:  # between two steps: save exactly here, then leave
                        at.batch, at.loss_sum, at.seconds = number + 1, total.item(), time.perf_counter() - started
                        save(epoch_start, "interrupted")
                        raise Interrupted(f"interrupted in epoch {epoch} after step {number + 1}", stop.signal)
            seconds = time.perf_counter() - started
            loss_sum, examples = world.total(total.item(), at.examples)
            row = {"epoch": epoch, "loss": loss_sum / max(examples, 1), "lr": at.lr, "seconds": seconds,
                   "samples_per_s": examples / seconds}
            if not math.isfinite(row["loss"]):
                raise ZooError(f"training diverged in epoch {epoch} (loss {row['loss']})"
                               + (f"; the state after epoch {epoch - 1} is kept in {run.dir}" if run else "")
                               + "; try a smaller --lr")
            last = epoch == config.epochs
            if world.main and (data.val is not None or config.patience or epoch % log_every == 0 or last):
                row[monitor] = evaluate(task, model, data, monitor)
                score = row[monitor].get(task.metric)
                if isinstance(score, (int, float)):
                    if at.best is None or (score < at.best if task.minimize else score > at.best):
                        at.best, at.best_epoch, at.bad_epochs = score, epoch, 0
                        if config.patience:
                            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    else:
                        at.bad_epochs += 1
            early = world.agree(bool(config.patience) and at.bad_epochs >= config.patience)
            at = replace(at, epoch=epoch + 1, batch=0, loss_sum=0.0, examples=0, seconds=0.0, done=last or early)
            if world.main and (epoch % log_every == 0 or last or early):
                shown_metrics = f"  {monitor} {format_metrics(row[monitor])}" if monitor in row else ""
                log(f"epoch {epoch:{width}d}/{config.epochs}  loss {row['loss']:.4f}{shown_metrics}  "
                    f"{seconds:.2f}s  {row['samples_per_s']:,.0f} samples/s")
            if saving:
                run.log(row)
            save(shuffle.get_state(), "finished" if at.done else "running")
            if early:
                log(f"stopping early: no better {monitor} {task.metric} for {config.patience} epochs; keeping the "
                    f"weights of epoch {at.best_epoch} ({task.metric} {at.best:.4f})")
            if world.size > 1 and world.agree(stop.pending):
                raise Interrupted(f"interrupted after epoch {epoch}", stop.signal)
    if config.patience and best is not None:
        model.load_state_dict(best)
    return at


def default_run_dir(model_name: str, task_name: str) -> Path:
    return Path("checkpoints") / f"{model_name}-{task_name}"


def train(model: str, task: str, overrides: Sequence[str] | Mapping[str, Any] = (), *, device: str = "auto",
          out: str | Path | bool | None = None, run_dir: str | Path | None = None, resume: bool = False,
          log: Callable[[str], None] = print, progress: bool = False, log_every: int = 0) -> torch.nn.Module:
    """Train `model` on `task` and return the network (with `.zoo`, its Card).

    Files go to the run directory (`run_dir`, default checkpoints/MODEL-TASK): config.json,
    metrics.jsonl, the resumable state.safetensors and the export model.safetensors (`out` puts the
    export elsewhere; `out=False` writes nothing at all). `resume=True` continues the run saved there.
    Under torchrun, every process trains its share and rank 0 writes.
    """
    world, device = join(device)
    try:
        return _train(model, task, overrides, device, out, run_dir, resume, world, log, progress, log_every)
    finally:
        if world.size > 1:
            leave()


def _train(model, task, overrides, device, out, run_dir, resume, world, log, progress, log_every):
    from zoo import __version__
    from zoo.checkpoint import check_writable, save

    run = None if out is False else Run(run_dir or default_run_dir(model, task))
    state = None
    if resume:
        if run is None:
            raise ZooError("resuming needs a run directory")
        state = run.load_state()
        info = state[1]
        if (info.get("model"), info.get("task")) != (model, task):
            raise ZooError(f"the state in {run.dir} is of {info.get('model')} on {info.get('task')}, "
                           f"not {model} on {task}")
        saved_export = Path(run.config().get("export", run.dir / EXPORT))
        if info.get("status") == "finished" and out is None and saved_export.is_file():
            raise ZooError(f"the run in {run.dir} has finished and exported {saved_export}: nothing to resume")
        saved = {"model": info["model_config"], "task": info["task_config"], "train": info["train_config"]}
        p = plan(model, task, overrides, saved)
        changed = [f"{name} is {saved[ns][name]!r} there, {value!r} here"
                   for ns, config in (("model", p.model_config), ("task", p.task_config), ("train", p.train_config))
                   for name, value in to_dict(config).items() if saved[ns].get(name) != value]
        if changed:
            raise ZooError(f"a resumed run keeps the settings it started with: {'; '.join(changed)}")
    else:
        p = plan(model, task, overrides)
    export = None if out is False else Path(out) if out not in (None, True) else (
        saved_export if resume else run.dir / EXPORT)
    if export is not None:
        check_writable(export)
    dev = pick_device(device)
    data = p.task.data(p.task_config, None).to(dev)
    torch.manual_seed(p.train_config.seed)
    net = p.model.build(p.model_config, data.problem).to(dev)
    say = log if world.main else (lambda line: None)
    identity = {"model": p.model.name, "task": p.task.name, "model_config": to_dict(p.model_config),
                "task_config": to_dict(p.task_config), "train_config": to_dict(p.train_config)}
    if run is not None and world.main:
        if resume:
            run.keep_history(info["progress"]["epoch"] - 1)
        else:
            if (run.dir / CONFIG).is_file():
                say(f"replacing the earlier run in {run.dir} (--run-dir keeps runs apart)")
            run.begin({**identity, "export": str(export), "metric": p.task.metric, "minimize": p.task.minimize,
                       "monitor": data.monitor_split, "world_size": world.size})
    dtype = autocast_dtype(p.train_config.precision, dev)
    params = sum(t.numel() for t in net.parameters())
    say(f"{'resuming' if resume else 'training'} {p.model.name} on {p.task.name} ({data.problem.shape}): "
        f"{params:,} parameters, {len(data.train):,} training example{'s' * (len(data.train) != 1)}, device {dev}"
        f"{f', {world.size} processes' if world.size > 1 else ''}{', bf16 autocast' if dtype else ''}"
        f"{f'; run in {run.dir}' if run else ''}")
    if p.note:
        say(p.note)
    try:
        fit(net, data, p.task, p.train_config, dev, run=run, identity=identity, resume=state, world=world, log=say,
            progress=progress, log_every=log_every)
    except Interrupted as e:
        where = f"; resume with: zoo resume {run.dir}" if run is not None else ""
        raise Interrupted(f"{e}{where}", e.signal) from None
    split = data.report_split
    metrics = {"split": split, **evaluate(p.task, net, data, split)} if world.main else {}
    say(f"final ({split} split): {format_metrics(metrics)}")
    net.eval()
    net.zoo = Card(model=p.model.name, task=p.task.name, model_config=p.model_config, task_config=p.task_config,
                   train_config=p.train_config, problem=data.problem, meta=data.meta, metrics=metrics,
                   versions={"zoo": __version__, "torch": torch.__version__, "model_plugin": p.model.plugin,
                             "task_plugin": p.task.plugin, "device": str(dev),
                             "precision": "bf16 autocast" if dtype else "fp32"})
    if export is not None and world.main:
        save(net, net.zoo, export)
        say(f"saved {export} ({export.stat().st_size / 1024:,.1f} KiB)")
    return net
