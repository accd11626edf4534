"""The one training loop (`fit`), and `run`, which trains a settled `Start` and exports it.

Read top to bottom: `train` is `plan` + `run`; `run` opens the run folder, sets up the data and the
network (`_set_up`), writes the run's config (`_open_folder`), trains (`fit`) and exports (`_export`).
`fit` is the loop: each epoch's steps (`Loop.steps`), then its metrics, log line and saved state.

A run saves a resumable state after its first epoch, then at the end of an epoch every STATE_SECONDS
(10 s; $ZOO_STATE_SECONDS, 0 for every epoch), at its end, at a time budget and when asked to stop
(Ctrl-C, SIGTERM) between two steps; resuming from it gives bit for bit the weights of a run never
interrupted (CPU). A run killed outright goes on from its last state; the metrics log is cut back to it.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch.nn import functional as F

from zoo.contract.specs import Card, Problem, Stopped, Task, TaskData, TrainConfig, ZooError, plugin_failed
from zoo.loop.data import epoch_order
from zoo.loop.distributed import World, join, leave
from zoo.loop.inference import evaluate, format_metrics, pick_device
from zoo.loop.plan import Start, named, plan_run
from zoo.loop.state import Progress, capture, restore, restore_optimizer
from zoo.loop.state import part as state_part
from zoo.loop.state import check as check_state
from zoo.loop.clock import Budget, format_duration, parse_duration
from zoo.loop.threads import Policy, Threads, current
from zoo.loop.threads import prepare as prepare_threads
from zoo.nn.budget import check_step_memory, check_training_memory
from zoo.store.runs import EXPORT, Run, new_run



def loss_function(problem: Problem) -> Callable:
    if problem.regression:
        return lambda out, y: F.mse_loss(out, y.view_as(out))
    return lambda out, y: F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


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


@functools.lru_cache(maxsize=None)  # asked once per process: the answer is the machine's
def cpu_has_native_bf16() -> bool:
    checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(check() for check in checks if check is not None)  # private probes: absent means unknown, so no


def cosine_rate(optimizer: torch.optim.Optimizer, scheduler, config: TrainConfig, spent: float = 0.0) -> None:
    """A cosine schedule's rate, in closed form at whichever is further on: the share of the schedule's
    steps done or `spent`, the share of a time budget spent. Under `--max-time` a run the budget stops
    has so annealed (as nanoGPT's lr_decay_iters); one whose steps stay ahead of the clock is unchanged;
    a run resumed from a budget's stop goes on at its steps' rate (or anneals again over a new budget)."""
    done = max(scheduler.last_epoch / max(scheduler.T_max, 1), min(spent, 1.0))
    for group in optimizer.param_groups:  # closed form every step: the chained scheduler's drift is overwritten
        group["lr"] = config.lr * (1 + math.cos(math.pi * done)) / 2


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


Interrupted = Stopped  # the name this module gave it before zoo.contract.specs.Stopped was the one stop


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

    # a signal the process inherited as ignored (a shell script's background job: SIGINT) stays ignored
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)
                if signal.getsignal(sig) is not signal.SIG_IGN}
    _stop_request = request
    try:
        yield request
    finally:
        _stop_request = None
        for sig, old in previous.items():
            signal.signal(sig, old)


_stop_request = None


def _model_failed(name: str, what: str, error: BaseException) -> ZooError:
    """One line for a fault in a model plugin's code during a run, naming the plugin."""
    from zoo.contract.registry import registry

    spec = registry().models.get(name)
    return plugin_failed("model", name, spec.plugin if spec is not None else "", what, error)


# -- the loop ----------------------------------------------------------------------------------------------
@dataclass
class Loop:
    """What the loop carries from step to step: the network, Adam, the schedule, the shuffle, the progress."""

    model: torch.nn.Module
    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    data: TaskData
    config: TrainConfig
    device: torch.device
    world: World
    optimizer: torch.optim.Optimizer
    shuffle: torch.Generator
    at: Progress
    best: dict | None
    dtype: torch.dtype | None
    batches_per_epoch: int
    scheduler: Any = None
    schedule_end: int = 0
    task: Task | None = None  # whose data and evaluation these are, and the model's name: named in a fault
    model_name: str = "?"
    keep_best: bool = False  # keep the best weights (--patience, or a monitored held-out split: a budget loads them)
    status_before: str | None = None  # a resumed state's status, which a zero budget (zoo export) leaves as it was
    average: dict | None = None  # --average: the moving average of each parameter, by name (as a state saves it)
    averaged: int = 0  # optimizer steps so far (the average's warm-up)

    @classmethod
    def begin(cls, model, data: TaskData, config: TrainConfig, device, world: World, resume, where,
              dtype: torch.dtype | None) -> "Loop":
        """A fresh loop, or one that picks up a captured state exactly where it was saved."""
        net = torch.nn.parallel.DistributedDataParallel(model) if world.size > 1 else model
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        shuffle = torch.Generator().manual_seed(config.seed)
        if resume:  # checked (state.check) by whoever loaded it, before anything was written
            at, best = Progress(**resume[1]["progress"]), restore(*resume, model, shuffle)
        else:
            at, best = Progress(), None
        if not at.schedule_ends or at.schedule_ends[-1] < config.epochs:
            at.schedule_ends.append(config.epochs)
        at.done = at.done and at.epoch > config.epochs
        loop = cls(model, net, data, config, device, world, optimizer, shuffle, at, best, dtype,
                   math.ceil(len(data.train) / config.batch_size))
        fresh = at.batch == 0 and at.epoch - 1 in (0, *at.schedule_ends)  # a schedule starts with this epoch
        try:
            if resume and not fresh:  # optimizer after scheduler: a new scheduler resets the learning rate
                loop.new_schedule(min(at.epoch, config.epochs))
                restore_optimizer(*resume, optimizer)
                if loop.scheduler is not None:
                    loop.scheduler.load_state_dict(resume[1]["scheduler"])
                if config.schedule == "cosine":  # at the restored step's rate, not a budget's annealed one
                    cosine_rate(optimizer, loop.scheduler, config)
            else:
                if resume:
                    restore_optimizer(*resume, optimizer)
                loop.new_schedule(min(at.epoch, config.epochs))  # a finished run trains no more
        except (TypeError, KeyError, ValueError, RuntimeError, IndexError, AttributeError) as e:
            raise ZooError(f"{where} is damaged: its optimizer or schedule cannot be restored "
                           f"({type(e).__name__})") from None
        if config.average:
            loop.start_average(state_part(resume[0], "average/") if resume else {},
                               resume[1].get("averaged", 0) if resume else 0)
        return loop

    def start_average(self, saved: dict, averaged: int) -> None:
        """The moving average of the weights and the steps folded into it: a resumed state's (checked:
        complete), or the weights as they stand."""
        with torch.no_grad():
            self.average = {name: saved[name].to(p.device, p.dtype) if saved else p.detach().clone()
                            for name, p in self.model.named_parameters()}
        self.averaged = averaged if saved else 0

    def put_weights(self, weights: dict) -> None:
        """Copy `weights` (by parameter name) into the network's parameters, in place."""
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                p.copy_(weights[name])

    def fold_average(self) -> None:
        """Fold the weights just stepped into their average: a shorter memory while few steps were taken
        ((1 + n) / (10 + n) of the average kept at step n), then `config.average` of it each step."""
        self.averaged += 1
        keep = min(self.config.average, (1 + self.averaged) / (10 + self.averaged))
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                self.average[name].lerp_(p.detach(), 1 - keep)

    @contextlib.contextmanager
    def averaged_weights(self):
        """The network holds the averaged weights inside, its trained ones again after (no --average: as is)."""
        if self.average is None:
            yield
            return
        trained = {name: p.detach().clone() for name, p in self.model.named_parameters()}
        self.put_weights(self.average)
        try:
            yield
        finally:
            self.put_weights(trained)

    def new_schedule(self, epoch: int) -> None:
        """The scheduler of the schedule `epoch` belongs to, and that schedule's last epoch."""
        ends = self.at.schedule_ends
        self.schedule_end = next(e for e in ends if e >= epoch)
        start = max([0] + [e for e in ends if e < epoch]) + 1
        for group in self.optimizer.param_groups:  # a schedule starts from the run's lr (schedulers read the group's)
            group["lr"] = self.config.lr
        self.scheduler = make_scheduler(self.optimizer, self.config,
                                        (self.schedule_end - start + 1) * self.batches_per_epoch)

    def steps(self, epoch: int, stop, bar: "ProgressBar", save: Callable, threads: Threads | None,
              budget: Budget | None = None) -> torch.Tensor:
        """One epoch's steps from where it stands; returns the epoch's summed loss (on the device). With a
        time `budget` that is over before a step (a safe point), the state is saved there, `budget.reached`
        says where, and the epoch's steps end."""
        at, config, train = self.at, self.config, self.data.train
        loss_of = loss_function(self.data.problem)
        epoch_start = self.shuffle.get_state()
        batches = epoch_order(train, config.batch_size, self.shuffle, self.device)
        if at.batch == 0:
            at.lr = self.optimizer.param_groups[0]["lr"]
        started = time.perf_counter() - at.seconds
        total = torch.tensor(at.loss_sum, device=self.device)
        self.model.train()
        for number in range(at.batch, len(batches)):
            index = batches[number]
            if len(index) < self.world.size:  # too few examples to give every process some
                continue
            if threads is not None:
                threads.adjust()
            if budget is not None and self.world.size == 1 and budget.over():  # a safe point: before a step
                at.batch, at.loss_sum, at.seconds = number, total.item(), time.perf_counter() - started
                kept = self.status_before or "interrupted" if budget.seconds == 0 else "out of time"
                save(epoch_start, kept)  # a zero budget (zoo export) leaves the run's status as it was
                budget.reached = f"in epoch {epoch} after step {number}" if number else f"before epoch {epoch}"
                return total
            part = self.world.shard(index)
            inputs, targets = self.batch(part)
            try:
                with torch.autocast(self.device.type, dtype=self.dtype or torch.float32,
                                    enabled=self.dtype is not None):
                    outputs = self.net(*inputs) if isinstance(inputs, tuple) else self.net(inputs)
                    loss = loss_of(outputs, targets)
            except (ZooError, KeyboardInterrupt):
                raise
            except Exception as e:  # the network's forward pass, or outputs the loss cannot take
                raise _model_failed(self.model_name, "its forward pass (or its outputs do not fit the loss)",
                                    e) from None
            # DDP averages gradients over processes: weigh each by its share of the global batch
            weight = len(part) * self.world.size / len(index)
            self.optimizer.zero_grad(set_to_none=True)
            (loss * weight if weight != 1 else loss).backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            self.optimizer.step()
            if self.average is not None:
                self.fold_average()
            if self.scheduler is not None:
                self.scheduler.step()
                if config.schedule == "cosine":  # one process only follows a clock: under torchrun each has its own
                    timed = budget is not None and budget.seconds and self.world.size == 1
                    spent = budget.elapsed() / budget.seconds if timed else 0.0
                    cosine_rate(self.optimizer, self.scheduler, config, spent)
            total += loss.detach() * len(part)
            at.examples += len(part)
            bar.step(f"{epoch}/{config.epochs}", loss)
            if stop.pending and self.world.size == 1:  # between two steps: save exactly here, then leave
                at.batch, at.loss_sum, at.seconds = number + 1, total.item(), time.perf_counter() - started
                save(epoch_start, "interrupted")
                raise Stopped(f"interrupted in epoch {epoch} after step {number + 1}", stop.signal)
        at.seconds = time.perf_counter() - started
        return total

    def batch(self, part: torch.Tensor):
        """The task's batch of these examples; a fault in its code is one line naming the plugin."""
        try:
            return self.data.train.batch(part)
        except (ZooError, KeyboardInterrupt):
            raise
        except Exception as e:
            task = self.task
            raise plugin_failed("task", task.name if task else "?", task.plugin if task else "",
                                "its data's batch()", e) from None

    def record(self, epoch: int, total: torch.Tensor, run: Run | None, saved_epoch: int = 0) -> dict:
        """The epoch's line of metrics.jsonl (every process's share summed); a loss that diverged is one line
        (naming the epoch of the last state saved, `saved_epoch`)."""
        seconds = self.at.seconds
        loss_sum, examples = self.world.total(total.item(), self.at.examples)
        row = {"epoch": epoch, "loss": loss_sum / max(examples, 1), "lr": self.at.lr, "seconds": seconds,
               "samples_per_s": examples / seconds}
        if not math.isfinite(row["loss"]):
            kept = f"; the state after epoch {saved_epoch} is kept in {run.dir}" if run and saved_epoch else ""
            raise ZooError(f"training diverged in epoch {epoch} (loss {row['loss']}){kept}; try a smaller --lr")
        return row

    def judge(self, task: Task, epoch: int, row: dict, monitor: str) -> None:
        """Score the monitored split into `row`; keep the best score (and, with `keep_best`, its weights)."""
        with self.averaged_weights():  # --average: the average is what is scored, kept and exported
            row[monitor] = evaluate(task, self.model, self.data, monitor)
            score = row[monitor].get(task.metric)
            if not isinstance(score, (int, float)):
                return
            at = self.at
            if at.best is None or (score < at.best if task.minimize else score > at.best):
                at.best, at.best_epoch, at.bad_epochs = score, epoch, 0
                if self.keep_best:
                    self.best = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            else:
                at.bad_epochs += 1


    def end_epoch(self, epoch: int, total: torch.Tensor, watch: "Watch") -> bool:
        """An epoch's end: its record and metrics, early stopping, the log line, metrics.jsonl and the
        resumable state (when due). A stop request ends the run here; True when the time is up."""
        config, data, task, world, run = self.config, self.data, watch.task, self.world, watch.run
        monitor, last = data.monitor_split, epoch == config.epochs
        row = self.record(epoch, total, run, watch.saves.epoch)
        if world.main and (data.val is not None or config.patience or epoch % watch.log_every == 0 or last):
            try:
                self.judge(task, epoch, row, monitor)
            except ZooError as e:  # a plugin's mistake: the epochs saved before stay resumable
                kept = (f"; the trained state after epoch {watch.saves.epoch} is kept: zoo resume {run.dir} "
                        f"continues once the plugin is fixed") if run and watch.saves.epoch else ""
                raise ZooError(f"{e}{kept}") from None
        early = world.agree(bool(config.patience) and self.at.bad_epochs >= config.patience)
        self.at = at = replace(self.at, epoch=epoch + 1, batch=0, loss_sum=0.0, examples=0, seconds=0.0,
                               done=last or early)
        if world.main and (epoch % watch.log_every == 0 or last or early):
            watch.bar.write(watch.log, metric_line(
                f"epoch {epoch:{len(str(config.epochs))}d}/{config.epochs}  loss {row['loss']:.4f}", monitor,
                row.get(monitor, {}), task.metric, f"{row['seconds']:.2f}s  {row['samples_per_s']:,.0f} samples/s"))
        if run is not None:
            run.log(row)
        stopping = world.agree(watch.stop.pending)
        budget = watch.budget
        out_of_time = not at.done and not stopping and budget is not None and world.agree(budget.over())
        # the state after the first epoch (the run is resumable), then every STATE_SECONDS, and at the end or
        # a stop: short epochs (stock's 500 of one batch) do not spend their time writing states
        if at.done or stopping or out_of_time or watch.saves.due():
            watch.saves.save(self.shuffle.get_state(), "finished" if at.done else "interrupted" if stopping else
                             "out of time" if out_of_time else "running")
            watch.saves.epoch = epoch
        if early:
            watch.bar.write(watch.log, f"stopping early: no better {monitor} {task.metric} for {config.patience} "
                                       f"epochs; keeping the weights of epoch {at.best_epoch} ({task.metric} "
                                       f"{at.best:.4f})")
        if stopping:
            raise Stopped(f"interrupted after epoch {epoch}", watch.stop.signal)
        if out_of_time:
            budget.reached = f"after epoch {epoch}"
        return out_of_time

    def restore_best(self, task: Task, config: TrainConfig, budget: Budget | None) -> None:
        """With --patience, or a time budget that ended the run, the best weights seen are the result;
        else, with --average, the average of the weights."""
        if self.best is None or not (config.patience or (budget is not None and budget.reached)):
            if self.average is not None:
                self.put_weights(self.average)
                if budget is not None:
                    budget.weights = "the moving average of the weights (--average)"
            return
        self.model.load_state_dict(self.best)
        if budget is not None:
            at, monitor = self.at, self.data.monitor_split
            budget.weights = f"the best weights ({monitor} {task.metric} {at.best:.4f}, epoch {at.best_epoch})"


@dataclass
class Saves:
    """When the run writes its resumable state (`run` None: never): after the first epoch, then every
    `interval` seconds, at the end and on a stop or a budget; `epoch`: the last epoch a state holds."""

    run: Run | None
    capture: Callable  # (shuffle state, status) -> what Run.save_state takes
    epoch: int
    interval: float
    at: float | None = None  # time.monotonic() of the last write

    def save(self, shuffle_state: torch.Tensor, status: str) -> None:
        if self.run is not None:
            self.run.save_state(*self.capture(shuffle_state, status))
            self.at = time.monotonic()

    def due(self) -> bool:
        return self.at is None or time.monotonic() - self.at >= self.interval


@dataclass
class Watch:
    """What an epoch's end reports to and heeds: the task, the run folder (None: nothing written), the
    log and the bar, a stop request, the time budget, the state saves, how often a line is logged."""

    task: Task
    run: Run | None
    log: Callable[[str], None]
    bar: "ProgressBar"
    stop: Any
    budget: Budget | None
    saves: Saves
    log_every: int


def fit(model: torch.nn.Module, data: TaskData, task: Task, config: TrainConfig, device: torch.device, *,
        run: Run | None = None, identity: dict | None = None, resume: tuple[dict, dict] | None = None,
        world: World = World(), log: Callable[[str], None] = print, progress: bool = False,
        log_every: int = 0, threads: Threads | None = None, dtype: torch.dtype | None | str = "config",
        budget: Budget | None = None) -> Progress:
    """Adam over shuffled mini-batches of the train split, one epoch after another.

    Each epoch: the steps, then the monitored split's metrics (every epoch when there is a validation
    split or --patience, else on the logged epochs), a log line (about 20 in all unless `log_every`),
    a line in the run's metrics.jsonl and a resumable state. `data` should be on `device` already.
    A resumed run whose `config.epochs` grew continues with a new learning-rate schedule of the same
    kind over the added epochs (a warm restart) once the one it started with has ended. A `resume`
    state must have passed `zoo.loop.state.check` against this network. `dtype`: the autocast dtype
    (None: fp32), by default `autocast_dtype(config.precision, device)`.
    With a time `budget`, the run stops at the first safe point after it (between two steps, or at an
    epoch's end), saves its state and returns with `budget.reached` set and, when a held-out split is
    monitored, the best weights loaded. The best weights are kept (in the state too) whenever a
    held-out split or --patience is monitored, so that a stopped run can be exported as it stands.
    `threads`: by default the controller of the command's policy (a backtest's refits follow it).
    """
    threads = threads or current()
    dtype = autocast_dtype(config.precision, device) if dtype == "config" else dtype
    loop = Loop.begin(model, data, config, device, world, resume, run.state_path if run else "the state", dtype)
    loop.task, loop.model_name = task, (identity or {}).get("model", "?")  # named in a plugin's fault
    log_every = log_every or math.ceil(config.epochs / 20)
    monitor = data.monitor_split
    saving = run is not None and world.main
    loop.keep_best = bool(config.patience) or (data.val is not None and monitor != "train")
    loop.status_before = resume[1].get("status") if resume else None
    bar = ProgressBar(progress and world.main, config.epochs * loop.batches_per_epoch,
                      (loop.at.epoch - 1) * loop.batches_per_epoch + loop.at.batch)
    saves = Saves(run if saving else None, lambda shuffle, status: capture(
        model, loop.optimizer, loop.scheduler, shuffle, loop.at, loop.best, identity or {}, status,
        loop.average, loop.averaged),
        epoch=loop.at.epoch - 1, interval=state_seconds())
    with stop_requests() as stop, contextlib.closing(bar):
        if stop.pending:  # asked while the run was being set up
            raise Stopped("interrupted before the first step", stop.signal)
        watch = Watch(task, run if saving else None, log, bar, stop, budget, saves, log_every)
        for epoch in range(loop.at.epoch, config.epochs + 1):
            if loop.at.done:
                break
            if epoch > loop.schedule_end:
                loop.new_schedule(epoch)
            total = loop.steps(epoch, stop, bar, saves.save, threads, budget)
            if budget is not None and budget.reached or loop.end_epoch(epoch, total, watch):
                break  # out of time: between two steps, or at this epoch's end
    loop.restore_best(task, config, budget)
    return loop.at


# -- a run: plan, open the folder, set up, fit, export -----------------------------------------------------
def train(model: str, task: str, overrides: Sequence[str] | Mapping[str, Any] = (), *, device: str = "auto",
          out: str | Path | None = None, write: bool = True, run_dir: str | Path | None = None,
          resume: bool = False, overwrite: bool = False, init_from: str | Path | None = None,
          threads: int | str | Policy | None = None, log: Callable[[str], None] = print, progress: bool = False,
          log_every: int = 0, force: bool = False, max_time: float | str | Budget | None = None) -> torch.nn.Module:
    """Train `model` on `task` and return the network (with `.zoo`, its Card): `plan_run` + `run`.

    Files go to the run folder: `run_dir`, or by default a new checkpoints/MODEL-TASK, -2, -3, ...
    (config.json, metrics.jsonl, the resumable state.safetensors and the export model.safetensors;
    `out` puts the export elsewhere; `write=False` writes nothing at all). A `run_dir` that holds a
    run needs `resume=True` (continue it; without `run_dir`, the pair's newest run) or `overwrite=True`.
    `init_from` starts from the weights of an export of the same model and task, its vocabulary
    and scaling included. `threads`: a fixed count of CPU threads, else it follows the machine's
    load (see zoo.loop.threads). Under torchrun, every process trains its share and rank 0 writes.
    `max_time`: a time budget (seconds, or `20m`, `1h30m`), counted from this call: training stops at
    the first safe point after it and exports (see zoo.loop.clock).
    """
    if out is False:  # the old spelling of write=False
        out, write = None, False
    budget = _budget(max_time)
    policy = threads if isinstance(threads, Policy) else prepare_threads(threads, force)
    begun = plan_run(model, task, overrides, out=out, write=write, run_dir=run_dir, resume=resume,
                  overwrite=overwrite, init_from=init_from)
    return run(begun, device=device, threads=policy, log=log, progress=progress, log_every=log_every, force=force,
               budget=budget)


def _budget(max_time: float | str | Budget | None) -> Budget | None:
    if max_time is None or isinstance(max_time, Budget):
        return max_time
    return Budget(parse_duration(max_time) if isinstance(max_time, str) else float(max_time))


def run(begun: Start, *, device: str = "auto", threads: Policy | int | str | None = None,
        log: Callable[[str], None] = print, progress: bool = False, log_every: int = 0,
        force: bool = False, budget: float | str | Budget | None = None) -> torch.nn.Module:
    """Train a settled start: lock its folder, set up, fit, export (see `train`); `budget`: a time budget."""
    budget = _budget(budget)
    policy = threads if isinstance(threads, Policy) else prepare_threads(threads, force)
    state_seconds()  # a bad $ZOO_STATE_SECONDS is answered before any work
    world, device = join(device)
    try:
        say = log if world.main else (lambda line: None)
        folder = begun.run if begun.write and world.main else None
        if folder is not None and (begun.resumed or folder.dir.exists()):
            folder.lock()  # continued or replaced: ours from now on
        with _unlocked_on_failure(folder):
            net, data, state, dev, pool = _set_up(begun, device, policy, force, folder)
        dtype = autocast_dtype(begun.plan.train_config.precision, dev)
        return _train_and_export(begun, folder, net, data, state, dev, dtype, pool, world, say, progress, log_every,
                                 budget)
    finally:
        if world.size > 1:
            leave()


@contextlib.contextmanager
def _unlocked_on_failure(folder: Run | None) -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt as e:
        if folder is not None:
            folder.unlock()
        raise Stopped("interrupted before training started; nothing was written",
                          getattr(e, "signal", signal.SIGINT)) from None
    except BaseException:
        if folder is not None:
            folder.unlock()
        raise


def _set_up(begun: Start, device: str, policy: Policy, force: bool, folder: Run | None):
    """The device, the data and the network (from an export's weights, or a checked state); nothing written."""
    p = begun.plan
    dev = pick_device(device)
    if not force:  # settings that cannot fit are refused before any file, data or weights exist
        check_training_memory(p, dev)
    pool = policy.start()
    try:
        data = p.task.load_data(p.task_config, begun.init_card.meta if begun.init_card else None).to(dev)
    except (ZooError, KeyboardInterrupt):
        raise
    except Exception as e:
        raise plugin_failed("task", p.task.name, p.task.plugin, "its data()", e) from None
    torch.manual_seed(p.train_config.seed)
    try:
        net = p.model.build(p.model_config, data.problem).to(dev)
    except (ZooError, KeyboardInterrupt):
        raise
    except Exception as e:
        raise plugin_failed("model", p.model.name, p.model.plugin, "build()", e) from None
    if not force:  # now with the data's sizes and sequence lengths
        check_step_memory(net, data, p, dev)
    if begun.init_from is not None:
        _init_weights(net, begun.init_from)
    state = None
    if begun.resumed:  # a damaged or foreign state is one line, before any file changes
        state = begun.run.load_state()
        check_state(*state, net, torch.optim.Adam(net.parameters()), p.train_config.epochs, begun.run.state_path)
    return net, data, state, dev, pool


def _open_folder(begun: Start, folder: Run | None, data: TaskData, world: World) -> Run | None:
    """Write the run's config (a new run) or trim its log to the saved state (a resumed one)."""
    if folder is None and (not begun.write or not world.main):
        return None
    p = begun.plan
    if begun.resumed:
        folder.keep_history(begun.state["progress"]["epoch"] - 1)
        if begun.extended:
            folder.update_config(train_config=begun.identity()["train_config"])
        return folder
    made, folder = folder is None, folder or new_run(begun.base)
    try:
        if not folder.locked:
            folder.lock()  # makes the folder if need be
        export = begun.export or folder.dir / EXPORT
        folder.begin({**begun.identity(), "export": folder.relative(export), "metric": p.task.metric,
                      "minimize": p.task.minimize, "monitor": data.monitor_split, "world_size": world.size,
                      **({"init_from": str(begun.init_from)} if begun.init_from is not None else {})})
    except BaseException:
        if made or folder.locked:
            folder.discard()  # a run that never started leaves no half-made folder
        raise
    return folder


def _announce(begun: Start, folder: Run | None, net, data: TaskData, dev, dtype, pool: Threads, world: World,
              say, budget: Budget | None = None) -> None:
    p = begun.plan
    params = sum(t.numel() for t in net.parameters())
    verb = ("exporting" if budget is not None and budget.seconds == 0 else "extending" if begun.extended
            else "resuming" if begun.resumed else "training")
    say(f"{verb} {p.model.name} on {p.task.name} ({data.problem.shape}): {params:,} parameters, "
        f"{len(data.train):,} training example{'s' * (len(data.train) != 1)}, device {dev}"
        f"{f', {pool.summary()}' if dev.type == 'cpu' else ''}"
        f"{f', {world.size} processes' if world.size > 1 else ''}{', bf16 autocast' if dtype else ''}"
        f"{f', from {begun.init_from}' if begun.init_from is not None else ''}"
        f"{f'; run in {folder.dir}' if folder else ''}")
    if p.note:
        say(p.note)
    if budget is not None:
        say(budget.describe())
    if begun.extended:
        say(f"extending from {begun.planned} to {p.train_config.epochs} epochs"
            + (f"; the added epochs get a {p.train_config.schedule} schedule of their own"
               if p.train_config.schedule != "constant" else ""))


def _train_and_export(begun: Start, folder: Run | None, net, data, state, dev, dtype, pool, world, say, progress,
                      log_every, budget: Budget | None = None) -> torch.nn.Module:
    """Open the folder, fit, evaluate, export; a stop or a failure says what was kept."""
    p, fresh_run = begun.plan, not begun.resumed  # a run this call starts: discarded if it ends before a state
    try:
        with stop_requests():  # from here a stop waits for a safe point: no half-made run folder
            folder = _open_folder(begun, folder, data, world)
            _announce(begun, folder, net, data, dev, dtype, pool, world, say, budget)
            fit(net, data, p.task, p.train_config, dev, run=folder if world.main else None,
                identity=begun.identity(), resume=state, world=world, log=say, progress=progress,
                log_every=log_every, threads=pool, dtype=dtype, budget=budget)
            if budget is not None and budget.reached:
                kept = folder is not None and folder.state_path.is_file()
                say((f"time budget of {format_duration(budget.seconds)} reached {budget.reached} "
                     f"({format_duration(budget.elapsed())})" if budget.seconds else f"stopped {budget.reached}")
                    + f": exporting {budget.weights}" + (f"; zoo resume {folder.dir} trains further" if kept else ""))
        fresh_run = False  # from here on the run folder holds a state worth keeping
        split = data.report_split
        try:
            metrics = {"split": split, **evaluate(p.task, net, data, split)} if world.main else {}
        except ZooError as e:
            if folder is None or isinstance(e, Stopped):
                raise
            raise ZooError(f"{e}; the trained state is kept: zoo resume {folder.dir} writes the export once the "
                           f"plugin is fixed") from None
        say(f"final ({split} split): {format_metrics(metrics)}")
        net.eval()
        net.zoo = _card(begun, data, metrics, dev, dtype)
        export = begun.export or (folder.dir / EXPORT if folder is not None else None)
        if export is not None and world.main:
            _export(net, export, folder, say)
        return net
    except (Stopped, KeyboardInterrupt) as e:  # KeyboardInterrupt: outside the steps (set-up, final evaluation)
        raise _interrupted(e, folder, fresh_run) from None
    except BaseException:
        if folder is not None and fresh_run and not folder.state_path.is_file():
            folder.discard()  # failed before its first epoch ended: leave no half-made run behind
        raise
    finally:
        if folder is not None:
            folder.unlock()


def _card(begun: Start, data: TaskData, metrics: dict, dev, dtype) -> Card:
    from zoo import __version__

    p = begun.plan
    return Card(model=p.model.name, task=p.task.name, model_config=p.model_config, task_config=p.task_config,
                train_config=p.train_config, problem=data.problem, meta=data.meta, metrics=metrics,
                versions={"zoo": __version__, "torch": torch.__version__, "model_plugin": p.model.plugin,
                          "task_plugin": p.task.plugin, "device": str(dev),
                          "precision": "bf16 autocast" if dtype else "fp32"})


def _export(net, export: Path, folder: Run | None, say) -> None:
    from zoo.store.checkpoint import save

    with stop_requests() as stop:
        if folder is not None:
            folder.check_still_here()  # no "saved ..." into a folder that is no longer the run's
        try:
            save(net, net.zoo, export, checked=True)
        except ZooError as e:
            if folder is None:
                raise
            raise ZooError(f"{e}; the trained state is saved: zoo resume {folder.dir} writes the export once "
                           f"there is room") from None
    where = "" if folder is None or export.absolute().parent == folder.dir.absolute() else f"; run in {folder.dir}"
    say(f"saved {export} ({export.stat().st_size / 1024:,.1f} KiB){where}")
    if stop.pending:
        raise Stopped(f"interrupted as the run ended; its export {export} is complete", stop.signal,
                          complete=True)


def _interrupted(e: BaseException, folder: Run | None, fresh_run: bool) -> Stopped:
    """The one line a stop ends with: what was kept, and how to continue."""
    if isinstance(e, Stopped) and e.complete:
        return e
    said = str(e) if isinstance(e, Stopped) else "interrupted"
    signum = getattr(e, "signal", signal.SIGINT)
    if folder is not None and folder.state_path.is_file():
        said += f"; the state is saved: zoo resume {folder.dir} continues it"
    elif folder is not None and fresh_run:
        folder.discard()
        said += "; nothing was kept"
    else:
        said += "; nothing was written"
    return Stopped(said, signum)


def _init_weights(net: torch.nn.Module, path: Path) -> None:
    """Load an export's weights into a freshly built network of the same architecture."""
    from zoo.store.checkpoint import load, tensor_differences

    with named("--init-from"):
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
