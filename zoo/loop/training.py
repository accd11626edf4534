"""The one training loop, and `train()`, which resolves a model/task pair, runs the loop and exports.

A run saves a resumable state after its first epoch, then at the end of an epoch every STATE_SECONDS
(10 s; $ZOO_STATE_SECONDS, 0 for every epoch), at its end, at a time budget and when asked to stop
(Ctrl-C, SIGTERM) between two steps; resuming from it gives bit for bit the weights of a run never
interrupted (CPU). A run killed outright goes on from its last state; the metrics log is cut back to it.
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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from zoo.nn.budget import check_training_memory
from zoo.contract.config import to_dict
from zoo.loop.data import epoch_order
from zoo.loop.distributed import World, join, leave
from zoo.loop.plan import plan
from zoo.store.runs import CONFIG, EXPORT, LOCK, METRICS, RUNS_ROOT, STATE, Run, new_run, runs_of
from zoo.contract.specs import Card, Problem, Task, TaskData, TrainConfig, ZooError
from zoo.loop.clock import Budget, format_duration, parse_duration
from zoo.loop.threads import Policy, Threads, current
from zoo.loop.threads import prepare as prepare_threads


def pick_device(name: str = "auto") -> torch.device:
    """`auto` takes CUDA, then Apple's MPS, then the CPU; any other device must exist here and hold data."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ZooError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "meta":
        raise ZooError("device meta holds shapes, not numbers: nothing can be trained or run on it; use auto, cpu, "
                       "cuda or mps")
    if device.type == "cpu":
        return device
    if device.type == "mps":
        backend = getattr(torch.backends, "mps", None)
        available, count = bool(backend and backend.is_available()), 1
    else:  # cuda, and the accelerators torch names after their module: xpu, ...
        module = getattr(torch, device.type, None)
        available = bool(module and hasattr(module, "is_available") and module.is_available())
        count = module.device_count() if available and hasattr(module, "device_count") else 1
    if not available:
        raise ZooError(f"device {device.type} was asked for, but {device.type.upper()} is not available here"
                       if device.type in ("cuda", "mps", "xpu") else
                       f"torch cannot train on device {name!r} here; use auto, cpu, cuda, cuda:N or mps")
    if device.index is not None and device.index >= count:
        raise ZooError(f"device {name} was asked for, but there {'is' if count == 1 else 'are'} only {count} "
                       f"{device.type} device{'s' * (count != 1)} (numbered from 0)")
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


LINE_WIDTH = 100  # a metric line fits a terminal of 100 columns; `zoo eval` shows every metric


def metric_line(head: str, split: str, metrics: Mapping[str, Any], headline: str, tail: str,
                width: int = LINE_WIDTH) -> str:
    """`head  split headline v  other v ...  tail` in at most `width` characters: the task's headline
    metric first, then the others while they fit (the speed goes before any metric)."""
    shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and k != "split"}
    order = sorted(shown, key=lambda k: k != headline)  # stable: the rest keep the task's order
    parts = [f"{k} {shown[k]:.4f}" if isinstance(shown[k], float) else f"{k} {shown[k]}" for k in order]
    for tails in ([tail], [tail.split("  ")[0]]):
        line = head
        for i, part in enumerate(parts):
            candidate = f"{line}  {split} {part}" if i == 0 else f"{line}  {part}"
            if len(candidate) + sum(len(t) + 2 for t in tails) > width and i > 0:
                break
            line = candidate
        else:
            return "  ".join([line, *tails])
    return "  ".join([line, *tails])


class ProgressBar:
    """One bar for the whole run on a terminal's stderr (tqdm): epochs, steps, ETA and the current loss.

    Off a terminal it draws nothing, and log lines pass straight through."""

    def __init__(self, enabled: bool, total: int, done: int):
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit="step", file=sys.stderr, dynamic_ncols=True,
                            leave=False, smoothing=0.05)
        self._shown_at = 0.0
        self._epoch = ""

    def step(self, epoch: str, loss: torch.Tensor) -> None:
        if self.bar is None:
            return
        if epoch != self._epoch:  # the label keeps step with the metric lines: changed as the epoch does
            self._epoch = epoch
            self.bar.set_description_str(f"epoch {epoch}", refresh=False)
        self.bar.update(1)
        now = time.monotonic()
        if now - self._shown_at > 0.5:  # reading the loss waits for the device: not at every step
            self._shown_at = now
            self.bar.set_postfix_str(f"loss {loss.item():.4f}", refresh=False)

    def write(self, log: Callable[[str], None], line: str) -> None:
        if self.bar is None:
            log(line)
            return
        self.bar.clear()  # the line goes where the bar was; the bar comes back below it
        log(line)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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


STATE_SECONDS_ENV = "ZOO_STATE_SECONDS"
STATE_SECONDS = 10.0  # a killed run loses at most this much training; short epochs do not each write a state


def state_seconds() -> float:
    """How often (seconds) a run writes its resumable state between epochs; $ZOO_STATE_SECONDS, 0: every epoch."""
    value = os.environ.get(STATE_SECONDS_ENV, "").strip()
    try:
        return max(0.0, float(value)) if value else STATE_SECONDS
    except ValueError:
        raise ZooError(f"{STATE_SECONDS_ENV} must be a number of seconds, got {value!r}") from None


class Interrupted(ZooError):
    """Training stopped on request; the message says what was kept."""

    def __init__(self, message: str, signal: int = 2, complete: bool = False):
        super().__init__(message)
        self.signal = signal  # SIGINT or SIGTERM: the shell's exit code is 128 + it
        self.complete = complete  # the message says all there is to say


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
    # the last epoch of each learning-rate schedule: one for a run, one more each time it is extended
    schedule_ends: list[int] = field(default_factory=list)


@contextlib.contextmanager
def stop_requests():
    """Turn the first Ctrl-C or SIGTERM into a request honoured at the next safe point (between two
    steps, after an export is written); a second Ctrl-C interrupts at once."""
    global _stop_request
    if _stop_request is not None:  # nested: the outer one decides
        yield _stop_request
        return
    request = SimpleNamespace(pending=False, signal=signal.SIGINT)
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum, frame):
        if request.pending and signum == signal.SIGINT:
            raise KeyboardInterrupt
        request.pending, request.signal = True, signum

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    _stop_request = request
    try:
        yield request
    finally:
        _stop_request = None
        for sig, old in previous.items():
            signal.signal(sig, old)


_stop_request = None


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


def _part(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def restore_optimizer(tensors: dict, info: dict, optimizer) -> None:
    state: dict = {}
    for key, value in _part(tensors, "optimizer/").items():
        index, name = key.split("/")
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": info["optimizer_groups"]})


def restore(tensors: dict, info: dict, model, shuffle: torch.Generator) -> dict | None:
    """Put back the weights and every random state of a captured state; returns the best weights or None."""
    model.load_state_dict(_part(tensors, "model/"))
    torch.set_rng_state(tensors["rng/torch"])
    shuffle.set_state(tensors["rng/shuffle"])
    name, position, has_gauss, cached = info["numpy_rng"]
    np.random.set_state((name, tensors["rng/numpy"].numpy().astype(np.uint32), position, has_gauss, cached))
    version, internal, gauss = info["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda/")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    return _part(tensors, "best/") or None


def fit(model: torch.nn.Module, data: TaskData, task: Task, config: TrainConfig, device: torch.device, *,
        run: Run | None = None, identity: dict | None = None, resume: tuple[dict, dict] | None = None,
        world: World = World(), log: Callable[[str], None] = print, progress: bool = False,
        log_every: int = 0, threads: Threads | None = None, budget: Budget | None = None) -> Progress:
    """Adam over shuffled mini-batches of the train split, one epoch after another.

    Each epoch: the steps, then the monitored split's metrics (every epoch when there is a validation
    split or --patience, else on the logged epochs), a log line (about 20 in all unless `log_every`),
    a line in the run's metrics.jsonl and a resumable state. `data` should be on `device` already.
    A resumed run whose `config.epochs` grew continues with a new learning-rate schedule of the same
    kind over the added epochs (a warm restart) once the one it started with has ended.
    With a time `budget`, the run stops at the first safe point after it (between two steps, or at an
    epoch's end), saves its state and returns with `budget.reached` set and, when a held-out split is
    monitored, the best weights loaded. The best weights are kept (in the state too) whenever a
    held-out split or --patience is monitored, so that a stopped run can be exported as it stands.
    """
    threads = threads or current()  # a backtest's refits follow the policy of the command that runs them
    train, loss_of = data.train, loss_function(data.problem)
    net = torch.nn.parallel.DistributedDataParallel(model) if world.size > 1 else model
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    batches_per_epoch = math.ceil(len(train) / config.batch_size)
    dtype = autocast_dtype(config.precision, device)
    shuffle = torch.Generator().manual_seed(config.seed)
    at, best = (Progress(**resume[1]["progress"]), restore(*resume, model, shuffle)) if resume else (Progress(), None)
    if not at.schedule_ends or at.schedule_ends[-1] < config.epochs:
        at.schedule_ends.append(config.epochs)
    at.done = at.done and at.epoch > config.epochs

    def schedule(epoch: int):
        """The scheduler of the schedule `epoch` belongs to, and that schedule's last epoch."""
        end = next(e for e in at.schedule_ends if e >= epoch)
        start = max([0] + [e for e in at.schedule_ends if e < epoch]) + 1
        for group in optimizer.param_groups:  # a schedule starts from the run's lr (schedulers read the group's)
            group["lr"] = config.lr
        return make_scheduler(optimizer, config, (end - start + 1) * batches_per_epoch), end

    fresh = at.batch == 0 and at.epoch - 1 in (0, *at.schedule_ends)  # a schedule starts with this epoch
    if resume and not fresh:  # optimizer after scheduler: a new scheduler resets the learning rate
        (scheduler, schedule_end), _ = schedule(min(at.epoch, config.epochs)), restore_optimizer(*resume, optimizer)
        if scheduler is not None:
            scheduler.load_state_dict(resume[1]["scheduler"])
    else:
        if resume:
            restore_optimizer(*resume, optimizer)
        scheduler, schedule_end = schedule(min(at.epoch, config.epochs))  # a finished run trains no more
    log_every = log_every or math.ceil(config.epochs / 20)
    monitor, width = data.monitor_split, len(str(config.epochs))
    saving = run is not None and world.main
    keep_best = bool(config.patience) or (data.val is not None and monitor != "train")
    bar = ProgressBar(progress and world.main, config.epochs * batches_per_epoch,
                      (at.epoch - 1) * batches_per_epoch + at.batch)

    saved = SimpleNamespace(at=None, epoch=at.epoch - 1)  # when the state was last written, and after which epoch
    interval = state_seconds()

    def save(shuffle_state, status):
        if saving:
            run.save_state(*capture(model, optimizer, scheduler, shuffle_state, at, best, identity or {}, status))
            saved.at = time.monotonic()

    with stop_requests() as stop, contextlib.closing(bar):
        if stop.pending:  # asked while the run was being set up
            raise Interrupted("interrupted before the first step", stop.signal)
        for epoch in range(at.epoch, config.epochs + 1):
            if at.done:
                break
            if epoch > schedule_end:
                scheduler, schedule_end = schedule(epoch)
            epoch_start = shuffle.get_state()
            batches = epoch_order(train, config.batch_size, shuffle, device)
            if at.batch == 0:
                at.lr = optimizer.param_groups[0]["lr"]
            started = time.perf_counter() - at.seconds
            total = torch.tensor(at.loss_sum, device=device)
            model.train()
            for number in range(at.batch, len(batches)):
                index = batches[number]
                if len(index) < world.size:  # too few examples to give every process some
                    continue
                if threads is not None:
                    threads.adjust()
                if budget is not None and world.size == 1 and budget.over():  # a safe point: before a step
                    at.batch, at.loss_sum, at.seconds = number, total.item(), time.perf_counter() - started
                    kept = resume[1].get("status", "interrupted") if resume and not budget.seconds else "out of time"
                    save(epoch_start, kept)  # a zero budget (zoo export) leaves the run's status as it was
                    budget.reached = f"in epoch {epoch} after step {number}" if number else f"before epoch {epoch}"
                    break
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
                bar.step(f"{epoch}/{config.epochs}", loss)
                if stop.pending and world.size == 1:  # between two steps: save exactly here, then leave
                    at.batch, at.loss_sum, at.seconds = number + 1, total.item(), time.perf_counter() - started
                    save(epoch_start, "interrupted")
                    raise Interrupted(f"interrupted in epoch {epoch} after step {number + 1}", stop.signal)
            if budget is not None and budget.reached:
                break
            seconds = time.perf_counter() - started
            loss_sum, examples = world.total(total.item(), at.examples)
            row = {"epoch": epoch, "loss": loss_sum / max(examples, 1), "lr": at.lr, "seconds": seconds,
                   "samples_per_s": examples / seconds}
            if not math.isfinite(row["loss"]):
                kept = f"; the state after epoch {saved.epoch} is kept in {run.dir}" if run and saved.epoch else ""
                raise ZooError(f"training diverged in epoch {epoch} (loss {row['loss']}){kept}; try a smaller --lr")
            last = epoch == config.epochs
            if world.main and (data.val is not None or config.patience or epoch % log_every == 0 or last):
                row[monitor] = evaluate(task, model, data, monitor)
                score = row[monitor].get(task.metric)
                if isinstance(score, (int, float)):
                    if at.best is None or (score < at.best if task.minimize else score > at.best):
                        at.best, at.best_epoch, at.bad_epochs = score, epoch, 0
                        if keep_best:
                            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    else:
                        at.bad_epochs += 1
            early = world.agree(bool(config.patience) and at.bad_epochs >= config.patience)
            at = replace(at, epoch=epoch + 1, batch=0, loss_sum=0.0, examples=0, seconds=0.0, done=last or early)
            if world.main and (epoch % log_every == 0 or last or early):
                bar.write(log, metric_line(f"epoch {epoch:{width}d}/{config.epochs}  loss {row['loss']:.4f}",
                                           monitor, row.get(monitor, {}), task.metric,
                                           f"{seconds:.2f}s  {row['samples_per_s']:,.0f} samples/s"))
            if saving:
                run.log(row)
            stopping = world.agree(stop.pending)
            out_of_time = not at.done and not stopping and budget is not None and world.agree(budget.over())
            # the state after the first epoch (the run is resumable), then every STATE_SECONDS, and at the end or
            # a stop: short epochs (stock's 500 of one batch) do not spend their time writing states
            if (at.done or stopping or out_of_time or saved.at is None
                    or time.monotonic() - saved.at >= interval):
                save(shuffle.get_state(), "finished" if at.done else "interrupted" if stopping else
                     "out of time" if out_of_time else "running")
                saved.epoch = epoch
            if early:
                bar.write(log, f"stopping early: no better {monitor} {task.metric} for {config.patience} epochs; "
                               f"keeping the weights of epoch {at.best_epoch} ({task.metric} {at.best:.4f})")
            if stopping:
                raise Interrupted(f"interrupted after epoch {epoch}", stop.signal)
            if out_of_time:
                budget.reached = f"after epoch {epoch}"
                break
    if best is not None and (config.patience or (budget is not None and budget.reached)):
        model.load_state_dict(best)
        if budget is not None:
            budget.weights = f"the best weights ({monitor} {task.metric} {at.best:.4f}, epoch {at.best_epoch})"
    return at


def train(model: str, task: str, overrides: Sequence[str] | Mapping[str, Any] = (), *, device: str = "auto",
          out: str | Path | bool | None = None, run_dir: str | Path | None = None, resume: bool = False,
          overwrite: bool = False, init_from: str | Path | None = None, threads: int | str | Policy | None = None,
          log: Callable[[str], None] = print, progress: bool = False, log_every: int = 0,
          force: bool = False, max_time: float | str | Budget | None = None) -> torch.nn.Module:
    """Train `model` on `task` and return the network (with `.zoo`, its Card).

    Files go to the run folder: `run_dir`, or by default a new checkpoints/MODEL-TASK, -2, -3, ...
    (config.json, metrics.jsonl, the resumable state.safetensors and the export model.safetensors;
    `out` puts the export elsewhere; `out=False` writes nothing at all). A `run_dir` that holds a
    run needs `resume=True` (continue it; without `run_dir`, the pair's newest run) or `overwrite=True`.
    `init_from` starts from the weights of an export of the same model and task, its vocabulary
    and scaling included. `threads`: a fixed count of CPU threads, else it follows the machine's
    load (see zoo.loop.threads). Under torchrun, every process trains its share and rank 0 writes.
    `max_time`: a time budget (seconds, or `20m`, `1h30m`), counted from this call: training stops at
    the first safe point after it and exports (see zoo.loop.clock).
    """
    budget = max_time if isinstance(max_time, Budget) or max_time is None else Budget(
        parse_duration(max_time) if isinstance(max_time, str) else float(max_time))
    policy = threads if isinstance(threads, Policy) else prepare_threads(threads, force)
    state_seconds()  # a bad $ZOO_STATE_SECONDS is answered before any work
    world, device = join(device)
    try:
        return _train(model, task, overrides, device, out, run_dir, resume, overwrite, init_from, world, policy,
                      log, progress, log_every, force, budget)
    finally:
        if world.size > 1:
            leave()


def _existing_run(model: str, task: str, run_dir, resume: bool, overwrite: bool, lock: bool) -> Run | None:
    """The run folder to continue or replace, checked and (if `lock`) locked; None when a new one is to be made."""
    if resume and overwrite:
        raise ZooError("--resume continues the run in the folder and --overwrite replaces it: give one of them")
    if resume:
        runs = [Run(run_dir)] if run_dir else runs_of(f"{model}-{task}")
        if not runs:
            raise ZooError(f"no run of {model} on {task} in {RUNS_ROOT}/ to resume (give its --run-dir)")
        run = runs[-1]
        run.state_info()  # says what is wrong before anything else happens
    elif run_dir is None:
        return None
    else:
        run = Run(run_dir)
        if run.dir.exists() and not run.dir.is_dir():
            raise ZooError(f"--run-dir {run.dir} is a file, not a folder")
        if run.exists() and run.in_use():  # said first: --resume or --overwrite would not help
            pid = run.locked_by()
            raise ZooError(f"{run.dir} is in use by another zoo process{f' (pid {pid})' if pid else ''}; wait for it "
                           f"to end, or give another --run-dir")
        if run.exists() and not overwrite:
            raise ZooError(f"{run.dir} holds a run already: --resume continues it, --overwrite replaces it, or give "
                           f"another --run-dir")
        if not run.dir.exists():
            return run  # made when training starts, so that a failure before leaves no empty folder
    if lock:
        run.lock()
    return run


def _check_out(out: Path, run: Run | None, task_config: Any) -> None:
    """--out must not land on a run's own files or on the data the task reads."""
    from zoo.contract.config import path_fields

    target = out.resolve()
    for name in path_fields(type(task_config)):
        value = getattr(task_config, name)
        if value and "://" not in value and Path(value).resolve() == target:
            raise ZooError(f"--out {out} is the task's input ({name}); choose another file for the export")
    own = target.parent == run.dir.resolve() if run is not None else False
    if target.name in (CONFIG, METRICS, STATE, LOCK) and (own or (target.parent / CONFIG).is_file()):
        raise ZooError(f"--out {out} would overwrite a run's own {target.name}; choose another file for the export")


@contextlib.contextmanager
def _named(option: str) -> Iterator[None]:
    """Prefix the one-line errors raised inside with the option they came from."""
    try:
        yield
    except ZooError as e:
        if str(e).startswith(option):
            raise
        raise ZooError(f"{option} {e}") from None


def _init_weights(net: torch.nn.Module, path: Path) -> None:
    """Load an export's weights into a freshly built network of the same architecture."""
    from zoo.store.checkpoint import load, tensor_differences

    with _named("--init-from"):
        tensors = load(path).state_dict()  # checked as any export is: header, architecture, dtypes, finite values
    expected = net.state_dict()
    different = tensor_differences(*({k: (tuple(v.shape), str(v.dtype)) for k, v in state.items()}
                                     for state in (tensors, expected)))
    if different:
        raise ZooError(f"--init-from {path} does not fit the network built here ({different}): "
                       f"train with its settings, vocabulary and output size")
    with torch.no_grad():
        for name, value in expected.items():
            value.copy_(tensors[name])


def _train(model, task, overrides, device, out, run_dir, resume, overwrite, init_from, world, policy, log, progress,
           log_every, force=False, budget=None):
    from zoo import __version__
    from zoo.store.checkpoint import check_writable, read_card, save, weights_file

    say = log if world.main else (lambda line: None)
    run = None if out is False else _existing_run(model, task, run_dir, resume, overwrite, lock=world.main)
    fresh_run = not resume  # a run this call starts: discarded if it ends before saving a state
    state = None
    try:
        if resume:
            state = run.load_state()
            info = state[1]
            if (info.get("model"), info.get("task")) != (model, task):
                raise ZooError(f"the state in {run.dir} is of {info.get('model')} on {info.get('task')}, "
                               f"not {model} on {task}")
            saved = {"model": info["model_config"], "task": info["task_config"], "train": info["train_config"]}
            p = plan(model, task, overrides, saved)
            done, planned = info["progress"]["epoch"] - 1, saved["train"].get("epochs")
            changed = [f"{name} is {saved[ns][name]!r} there, {value!r} here"
                       for ns, config in (("model", p.model_config), ("task", p.task_config), ("train", p.train_config))
                       for name, value in to_dict(config).items()
                       if saved[ns].get(name) != value and (ns, name) != ("train", "epochs")]
            if changed:
                raise ZooError(f"a resumed run keeps the settings it started with: {'; '.join(changed)}")
            if p.train_config.epochs < planned:
                raise ZooError(f"the run in {run.dir} was to train {planned} epochs and has done {done}: a resumed "
                               f"run can be extended (--epochs above {planned}), not shortened")
            extended = p.train_config.epochs > planned
            export = run.export_path if out is None else Path(out)
            if info.get("status") == "finished" and not extended and out is None and export.is_file():
                raise ZooError(f"the run in {run.dir} has finished its {planned} epochs and exported {export}: "
                               f"nothing to resume (--epochs N, N above {planned}, extends it)")
            if init_from is not None:
                raise ZooError("--init-from starts a new run; a resumed run continues from its own state")
            init_card = None
        else:
            init_card = None
            if init_from is not None:  # its architecture and task settings, under the options given
                with _named("--init-from"):
                    init_from = weights_file(init_from)
                    init_card = read_card(init_from)
                if (init_card.model, init_card.task) != (model, task):
                    raise ZooError(f"--init-from {init_from} is {init_card.model} on {init_card.task}: it can start "
                                   f"{model} on {task} only if it is {model} on {task} too")
            settled = {"model": to_dict(init_card.model_config), "task": to_dict(init_card.task_config)} if (
                init_card) else None
            p = plan(model, task, overrides, settled)
            export = Path(out) if out not in (None, True, False) else None
        dev = pick_device(device)
        if not force:  # settings that cannot fit are refused before any file, data or weights exist
            check_training_memory(p, dev)
        if world.main and out is not False:
            if export is not None and not resume:
                _check_out(export, run, p.task_config)
            check_writable(export or (run.dir if run else Path(RUNS_ROOT) / f"{model}-{task}") / EXPORT)
        threads = policy.start()
        data = p.task.load_data(p.task_config, init_card.meta if init_card else None).to(dev)
        torch.manual_seed(p.train_config.seed)
        net = p.model.build(p.model_config, data.problem).to(dev)
        if init_from is not None:
            _init_weights(net, init_from)
    except KeyboardInterrupt as e:
        if run is not None:
            run.unlock()
        raise Interrupted("interrupted before training started; nothing was written",
                          getattr(e, "signal", signal.SIGINT)) from None
    except BaseException:
        if run is not None:
            run.unlock()
        raise
    identity = {"model": p.model.name, "task": p.task.name, "model_config": to_dict(p.model_config),
                "task_config": to_dict(p.task_config), "train_config": to_dict(p.train_config)}
    try:
        with stop_requests():  # from here a stop waits for a safe point: no half-made run folder
            if out is not False and world.main:
                if resume:
                    run.keep_history(info["progress"]["epoch"] - 1)
                    if extended:
                        run.update_config(train_config=identity["train_config"])
                else:
                    if run is None:
                        run = new_run(Path(RUNS_ROOT) / f"{model}-{task}")
                    if not run.locked:
                        run.lock()  # makes the folder if need be
                    export = export or run.dir / EXPORT
                    run.begin({**identity, "export": run.relative(export), "metric": p.task.metric,
                               "minimize": p.task.minimize, "monitor": data.monitor_split, "world_size": world.size,
                               **({"init_from": str(init_from)} if init_from is not None else {})})
            dtype = autocast_dtype(p.train_config.precision, dev)
            params = sum(t.numel() for t in net.parameters())
            verb = ("exporting" if budget is not None and budget.seconds == 0 else "extending" if resume and extended
                    else "resuming" if resume else "training")
            say(f"{verb} {p.model.name} on {p.task.name} ({data.problem.shape}): {params:,} parameters, "
                f"{len(data.train):,} training example{'s' * (len(data.train) != 1)}, device {dev}"
                f"{f', {threads.describe()}' if dev.type == 'cpu' else ''}"
                f"{f', {world.size} processes' if world.size > 1 else ''}{', bf16 autocast' if dtype else ''}"
                f"{f', from {init_from}' if init_from is not None else ''}{f'; run in {run.dir}' if run else ''}")
            if p.note:
                say(p.note)
            if budget is not None:
                say(budget.describe())
            if resume and extended:
                say(f"extending from {planned} to {p.train_config.epochs} epochs"
                    + (f"; the added epochs get a {p.train_config.schedule} schedule of their own"
                       if p.train_config.schedule != "constant" else ""))
            fit(net, data, p.task, p.train_config, dev, run=run if world.main else None, identity=identity,
                resume=state, world=world, log=say, progress=progress, log_every=log_every, threads=threads,
                budget=budget)
            if budget is not None and budget.reached:
                kept = run is not None and run.state_path.is_file()
                say((f"time budget of {format_duration(budget.seconds)} reached {budget.reached} "
                     f"({format_duration(budget.elapsed())})" if budget.seconds else f"stopped {budget.reached}")
                    + f": exporting {budget.weights}" + (f"; zoo resume {run.dir} trains further" if kept else ""))
        fresh_run = False  # from here on the run folder holds a state worth keeping
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
            with stop_requests() as stop:
                try:
                    save(net, net.zoo, export)
                except ZooError as e:
                    if run is None:
                        raise
                    raise ZooError(f"{e}; the trained state is saved: zoo resume {run.dir} writes the export once "
                                   f"there is room") from None
            where = "" if run is None or export.absolute().parent == run.dir.absolute() else f"; run in {run.dir}"
            say(f"saved {export} ({export.stat().st_size / 1024:,.1f} KiB){where}")
            if stop.pending:
                raise Interrupted(f"interrupted as the run ended; its export {export} is complete", stop.signal,
                                  complete=True)
        return net
    except (Interrupted, KeyboardInterrupt) as e:  # KeyboardInterrupt: outside the steps (set-up, final evaluation)
        if isinstance(e, Interrupted) and e.complete:
            raise
        said = str(e) if isinstance(e, Interrupted) else "interrupted"
        signum = getattr(e, "signal", signal.SIGINT)
        if run is not None and run.state_path.is_file():
            said += f"; the state is saved: zoo resume {run.dir} continues it"
        elif run is not None and fresh_run:
            run.discard()
            said += "; nothing was kept"
        else:
            said += "; nothing was written"
        raise Interrupted(said, signum) from None
    except BaseException:
        if run is not None and fresh_run and not run.state_path.is_file():
            run.discard()  # failed before its first epoch ended: leave no half-made run behind
        raise
    finally:
        if run is not None:
            run.unlock()
