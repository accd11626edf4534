"""`zoo bench`: train every model/task pair that fits, over seeds, a few processes at a time, into one table.

    results/                     (--out)
        bench.json               the recipe every row shares (-o settings, --epochs); another is refused
        results.jsonl            one line per finished (model, task, seed)
        summary.md               mean ± std over seeds, the best model per task in bold
        summary.png              --plot: each task's metric against train time
        runs/MODEL-TASK-sSEED/   each cell's zoo run folder (a stopped one is resumed, not restarted)
        logs/MODEL-TASK-sSEED.log  what its worker printed

Each cell is `python -m zoo train ...` in a process of its own (so a crash or a kill takes one cell
down, and its peak memory is its own), `--workers` at a time with `--threads` such that workers x
threads <= cores. A row is written only once its run has exported; a rerun skips the rows there are and
resumes or restarts the rest. `--shard I/N` takes every N-th cell of the sorted grid from the I-th,
so N machines split a grid with no coordination; `--merge` joins their folders. Torch-free: the
workers import torch, this module does not.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from zoo.contract.config import field_types, suggest
from zoo.store.files import FolderLock, read_bytes, read_json, read_jsonl, replace_atomically
from zoo.contract.registry import matching, registry
from zoo.store.plotting import pyplot, save_figure
from zoo.store.runs import Run
from zoo.contract.specs import Stopped, TrainConfig, ZooError

FORMAT = "zoo-bench/1"
RECIPE, RESULTS, SUMMARY, PLOT, LOCK = "bench.json", "results.jsonl", "summary.md", "summary.png", ".lock"


@dataclass(frozen=True, order=True)
class Job:
    """One (model, task, seed) of the grid: one training run, one row of results.jsonl."""

    task: str  # sorted by task first, so that a shard's cells spread over the tasks
    model: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.model}-{self.task}-s{self.seed}"


# -- the grid ---------------------------------------------------------------------------------

def expand(patterns: str, names: Iterable[str], kind: str) -> list[str]:
    """`lstm*,gru` -> the registered names matching any item; an item that matches nothing is an error."""
    names, chosen = sorted(names), []
    for item in [p.strip() for p in patterns.split(",")]:
        found = matching(names, item) if item else []
        if not found:
            raise ZooError(f"no {kind} matches {item!r} ({kind}s: {', '.join(names)}){suggest(item, names)}")
        chosen += [n for n in found if n not in chosen]
    return chosen


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise ZooError(f"--seeds takes integers separated by commas, e.g. 0,1,2; got {text!r}") from None
    return sorted(set(seeds))


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`I/N`, I counted from 0 as SLURM_ARRAY_TASK_ID and Kubernetes' JOB_COMPLETION_INDEX are."""
    if text is None:
        return None
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = -1
    if n < 1 or not 0 <= i < n:
        raise ZooError(f"--shard takes I/N with 0 <= I < N (the I-th of N slices, counted from 0); got {text!r}")
    return i, n


def parse_epochs(text: str | None, tasks: list[str]) -> dict[str, int]:
    """`--epochs 5` (every task) or `--epochs stock=50,translate=30` (the others keep their default)."""
    if text is None:
        return {}
    budget = {}
    for item in text.split(","):
        task, eq, value = item.rpartition("=") if "=" in item else ("*", "", item)
        task = task.strip()
        if task != "*" and task not in tasks:
            raise ZooError(f"--epochs names task {task!r}, which is not in the grid ({', '.join(tasks)})")
        try:
            budget[task] = int(value)
        except ValueError:
            budget[task] = 0
        if budget[task] < 1:
            raise ZooError(f"--epochs takes N or TASK=N,... with N a positive integer; got {text!r}")
    return budget


def settings_for(model, task, settings: list[str]) -> list[str]:
    """The `-o` settings that a pair has: `-o window=5` sets charlm's window, and nothing of hihello."""
    spaces = {"model": model.config, "task": task.config, "train": TrainConfig}
    kept = []
    for pair in settings:
        key = pair.partition("=")[0].strip().replace("-", "_")
        prefix, _, name = key.rpartition(".")
        if any(name in field_types(cls) for space, cls in spaces.items() if prefix in ("", space)):
            kept.append(pair)
    return kept


@dataclass
class Grid:
    cells: list[Job]
    skipped: int  # model/task pairs that match the patterns but whose shapes do not fit
    settings: dict[tuple[str, str], list[str]]  # (model, task) -> its `-o` settings, --epochs included


def make_grid(models: str, tasks: str, seeds: list[int], settings: list[str], epochs: dict[str, int]) -> Grid:
    """Every (model, task, seed) that fits, sorted, with each pair's settings checked before anything runs."""
    from zoo.loop.plan import plan

    reg = registry()
    model_names, task_names = expand(models, reg.models, "model"), expand(tasks, reg.tasks, "task")
    pairs = [(m, t) for t in task_names for m in model_names if t in reg.compatible_tasks(reg.models[m])]
    if not pairs:
        does = ", ".join(f"{m} ({'/'.join(reg.models[m].supported_shapes())})" for m in model_names)
        needs = ", ".join(f"{t} ({reg.tasks[t].shape})" for t in task_names)
        raise ZooError(f"no model fits a task in this grid: models {does}; tasks {needs}")
    used = {pair: settings_for(reg.models[pair[0]], reg.tasks[pair[1]], settings) for pair in pairs}
    for pair in settings:
        if not any(pair in kept for kept in used.values()):
            raise ZooError(f"-o {pair}: no model, task or training loop of this grid has that setting")
    for (m, t), kept in used.items():
        budget = epochs.get(t, epochs.get("*"))
        used[m, t] = ([f"train.epochs={budget}"] if budget else []) + kept
        try:
            plan(m, t, used[m, t])
        except ZooError as e:
            raise ZooError(f"{m} on {t}: {e}") from None
    cells = sorted(Job(t, m, s) for m, t in pairs for s in seeds)
    return Grid(cells, len(model_names) * len(task_names) - len(pairs), used)


def shard_of(cells: list[Job], shard: tuple[int, int] | None) -> list[Job]:
    """Every N-th cell from the I-th: deterministic, and each shard gets some of every task."""
    return cells if shard is None else cells[shard[0]::shard[1]]


# -- the results folder -----------------------------------------------------------------------

class Results:
    """A results folder: its recipe, its rows, and (while open for writing) its lock."""

    def __init__(self, folder: str | Path):
        self.dir = Path(folder)
        self._lock = FolderLock(self.dir, LOCK)
        self._write = threading.Lock()

    @property
    def file(self) -> Path:
        return self.dir / RESULTS

    def recipe(self) -> dict | None:
        data = read_json(self.dir / RECIPE, "a bench recipe", missing_ok=True)  # a FIFO: refused, not waited on
        if data is None:
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("recipe"), dict):
            raise ZooError(f"{self.dir / RECIPE} is not a zoo bench recipe")
        return data["recipe"]

    def rows(self) -> list[dict]:
        """The finished rows; a last line cut short by a kill is left out (its cell runs again)."""
        return read_jsonl(self.file, lambda row: all(k in row for k in ("model", "task", "seed", "value")), "a result")

    def open(self, recipe: dict) -> None:
        """Make or reopen the folder for `recipe`, and hold its lock; refuse another recipe's folder."""
        if self.dir.exists() and not self.dir.is_dir():
            raise ZooError(f"--out {self.dir} is a file, not a folder")
        held = self.recipe() if self.dir.is_dir() else None
        if held is None and self.dir.is_dir() and any(self.dir.iterdir()):
            raise ZooError(f"--out {self.dir} holds other files and no {RECIPE}: give an empty or new folder")
        if held is not None and held != recipe:
            raise ZooError(f"--out {self.dir} holds the results of another recipe ({recipe_line(held)}; this one: "
                           f"{recipe_line(recipe)}): give another --out")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.lock()
            if held is None:
                text = json.dumps({"format": FORMAT, "recipe": recipe}, indent=2) + "\n"
                replace_atomically(self.dir / RECIPE, lambda tmp: Path(tmp).write_text(text))
            self._drop_torn_line()
        except OSError as e:
            self.unlock()
            raise ZooError(f"cannot write results to --out {self.dir}: {e.strerror or e}") from None

    def _drop_torn_line(self) -> None:
        """A bench killed while appending leaves part of a line: cut it, or the next row would join it."""
        if not os.path.lexists(self.file):
            return
        data = read_bytes(self.file, "a results file")
        if data and not data.endswith(b"\n"):
            kept = data[: data.rfind(b"\n") + 1]
            replace_atomically(self.file, lambda tmp: Path(tmp).write_bytes(kept))

    def lock(self) -> None:
        if not self._lock.acquire():
            raise ZooError(f"{self.dir} is in use by another zoo bench (pid {self._lock.holder() or '?'}); wait for "
                           f"it, or give another --out")

    def unlock(self) -> None:
        self._lock.release()

    def add(self, row: dict) -> None:
        """Append a row in one write, flushed to disk: a kill leaves at most a torn last line."""
        with self._write, open(self.file, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())


def recipe_line(recipe: dict) -> str:
    epochs = recipe.get("epochs") or {}
    shown = ", ".join(f"{t}={n}" if t != "*" else str(n) for t, n in sorted(epochs.items())) or "the tasks' defaults"
    settings = " ".join(f"-o {s}" for s in recipe.get("settings", []))
    budget = f", --max-time {recipe['max_time']}" if recipe.get("max_time") else ""
    return f"epochs {shown}" + (f", {settings}" if settings else "") + budget


# -- one cell ---------------------------------------------------------------------------------

def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def train_command(cell: Job, settings: list[str], threads: "Share", max_time: str | None = None) -> list[str]:
    """The `zoo train` arguments that make this cell (what a row quotes to reproduce it)."""
    args = ["train", cell.model, cell.task, "--seed", str(cell.seed)]
    for pair in settings:
        args += ["--epochs", pair.split("=", 1)[1]] if pair.startswith("train.epochs=") else ["-o", pair]
    return args + threads.options() + (["--max-time", max_time] if max_time else [])


class Share:
    """Each worker's share of the threads: a count given with --threads, or by default zoo's adaptive
    policy capped at the cores / --workers (ZOO_MAX_THREADS), so that a worker beside busy processes
    drops to the cores they leave (zoo.loop.threads) instead of spinning on its share."""

    def __init__(self, count: int, fixed: bool):
        self.count, self.fixed = count, fixed

    def options(self) -> list[str]:
        return ["--threads", str(self.count)] if self.fixed else []

    def env(self) -> dict[str, str]:
        from zoo.loop.threads import MAX_THREADS_ENV

        return {} if self.fixed else {MAX_THREADS_ENV: str(self.count)}

    def quoted(self, command: list[str]) -> str:
        return shlex.join([*(f"{k}={v}" for k, v in self.env().items()), "zoo", *command])

    def __str__(self) -> str:
        plural = "s" * (self.count != 1)
        return f"{self.count} thread{plural}" if self.fixed else f"at most {self.count} thread{plural} (adaptive)"


def collect(cell: Job, run: Run, results: Results, command: list[str], threads: Share, wall: float,
            peak_kib: int, resumed: bool) -> dict:
    """A result row from a finished run: the export's metrics and card, the run's log of epochs."""
    from zoo import __version__
    from zoo.store.checkpoint import describe as card_of
    from zoo.store.checkpoint import read_header

    export = run.export_path
    card = card_of(export)
    _, tensors = read_header(export)
    config = run.config()  # the task's headline metric and its direction, as the run recorded them
    metric = config["metric"]
    history = run.history()
    seconds = sum(r["seconds"] for r in history)
    samples = sum(r["samples_per_s"] * r["seconds"] for r in history)
    metrics = {k: v for k, v in card["metrics"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    params = sum(math.prod(entry["shape"]) for entry in tensors.values())
    headline = card["metrics"].get(metric)  # text in place of a number is kept, and the summary says so
    return {"model": cell.model, "task": cell.task, "seed": cell.seed, "metric": metric,
            "minimize": bool(config["minimize"]),
            "value": metrics.get(metric, headline if isinstance(headline, str) else None),
            "split": card["metrics"].get("split"), "metrics": metrics,
            "parameters": params, "epochs": len(history), "out_of_time": run.status() == "out of time",
            "train_seconds": round(seconds, 3),
            "wall_seconds": round(wall, 3), "samples_per_s": round(samples / seconds, 1) if seconds else None,
            "peak_mib": round(peak_kib / 1024, 1), "threads": threads.count,
            "threads_policy": "fixed" if threads.fixed else "adaptive", "resumed": resumed,
            "versions": {**card["versions"], "python": platform.python_version(), "zoo": __version__},
            "cpu": cpu_name(), "command": threads.quoted(command),
            "run": os.path.relpath(run.dir, results.dir),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


class Workers:
    """The worker processes running now, so that a stop request reaches each of them."""

    def __init__(self):
        self.running: set[subprocess.Popen] = set()
        self.stopping: int | None = None  # the signal that asked us to stop
        self._lock = threading.Lock()

    def stop(self, signum: int) -> None:
        with self._lock:
            self.stopping = self.stopping or signum
            for process in self.running:
                try:
                    process.send_signal(signal.SIGTERM)  # zoo train saves a resumable state and ends
                except ProcessLookupError:
                    pass

    def run(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> tuple[int, float, int]:
        """(exit code, seconds, peak resident KiB) of one worker; its output goes to `log`."""
        started = time.monotonic()
        with open(log, "ab") as out:
            with self._lock:
                if self.stopping:
                    return -self.stopping, 0.0, 0
                process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           env={**os.environ, **(env or {})})
                self.running.add(process)
            try:
                # wait4 gives this child's own peak memory (getrusage(RUSAGE_CHILDREN) is the max over all)
                _, status, usage = os.wait4(process.pid, 0)
            finally:
                with self._lock:
                    self.running.discard(process)
        process.returncode = code = os.waitstatus_to_exitcode(status)
        peak = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss  # bytes on macOS
        return code, time.monotonic() - started, peak


def run_job(cell: Job, grid: Grid, results: Results, workers: Workers, threads: Share,
             max_time: str | None = None) -> tuple[str, dict | str]:
    """Train (or resume, or only collect) one cell; ("done", row), ("failed", why) or ("stopped", why)."""
    run = Run(results.dir / "runs" / cell.name)
    command = train_command(cell, grid.settings[cell.model, cell.task], threads, max_time)
    action, argv = "trained", [*command, "--run-dir", str(run.dir), "-q"]
    if run.exists():
        status = run.status()
        if status == "running":
            return "failed", f"{run.dir} is in use by another process (pid {run.locked_by()})"
        if status == "finished" and run.export_path.is_file():
            action, argv = "collected", None  # trained by an earlier call that stopped before writing its row
        elif status == "no state":  # killed before its first epoch ended
            argv.append("--overwrite")
        elif status == "out of time" and run.export_path.is_file():
            action, argv = "collected", None  # its budget ran out and it exported: that is its result
        else:  # stopped, interrupted, or finished without its export: zoo resume continues it
            action, argv = "resumed", ["resume", str(run.dir), "-q", *threads.options(),
                                       *(["--max-time", max_time] if max_time else [])]
    code, wall, peak = (0, 0.0, 0) if argv is None else workers.run(
        [sys.executable, "-m", "zoo", *argv], results.dir / "logs" / f"{cell.name}.log", threads.env())
    if code != 0:
        if workers.stopping:
            return "stopped", "stopped"
        why = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        return "failed", f"{why}: {last_line(results.dir / 'logs' / f'{cell.name}.log')}"
    try:
        row = collect(cell, run, results, command, threads, wall, peak, resumed=action == "resumed")
    except ZooError as e:
        return "failed", str(e)
    if argv is None:  # the time and memory of the process that trained it are not known
        row.update(wall_seconds=None, peak_mib=None)
    results.add(row)
    return "done", row


def last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1].strip() if lines else "(no output)"


# -- the command ------------------------------------------------------------------------------

def bench(models: str, tasks: str, *, seeds: str = "0,1,2", workers: int | None = None, out: str = "results",
          settings: Iterable[str] = (), epochs: str | None = None, shard: str | None = None, plot: bool = False,
          threads: str | int | None = None, max_time: str | None = None,
          echo: Callable[[str], None] = print) -> list[dict]:
    """Run the grid (or its shard) into `out`, print and write the summary; returns the folder's rows.

    `max_time` gives every cell the same time budget (`zoo train --max-time`), so that the cells are
    compared at equal wall time as well as at equal epochs."""
    from zoo.loop.clock import format_duration, parse_duration

    from zoo.loop.threads import prepare, usable_cpus

    if workers is not None and workers < 1:
        raise ZooError(f"--workers must be at least 1, got {workers}")
    fixed = prepare(threads).fixed  # --threads, ZOO_THREADS or OMP_NUM_THREADS (the workers inherit the last two)
    part = parse_shard(shard)
    seed_list = parse_seeds(seeds)
    reg = registry()
    budget = parse_epochs(epochs, expand(tasks, reg.tasks, "task"))
    settings = list(settings)
    grid = make_grid(models, tasks, seed_list, settings, budget)
    mine = shard_of(grid.cells, part)
    if not mine:
        raise ZooError(f"shard {shard} of a grid of {len(grid.cells)} cell{'s' * (len(grid.cells) != 1)} is empty: "
                       f"use at most {len(grid.cells)} shards")
    results = Results(out)
    if max_time is not None:
        max_time = format_duration(parse_duration(max_time))
    results.open({"settings": settings, "epochs": budget, **({"max_time": max_time} if max_time else {})})
    try:
        done = {(r["model"], r["task"], r["seed"]) for r in results.rows()}
        todo = [c for c in mine if (c.model, c.task, c.seed) not in done]
        workers = min(workers or usable_cpus(), max(len(todo), 1))
        # workers x threads <= cores: no thread collapse; each worker adapts below its share unless fixed
        threads = Share(fixed or max(1, usable_cpus() // workers), fixed is not None)
        (results.dir / "logs").mkdir(exist_ok=True)
        (results.dir / "runs").mkdir(exist_ok=True)
        plural = lambda n, word: f"{n} {word}{'s' * (n != 1)}"  # noqa: E731
        echo(f"{len(grid.cells)} cells ({len(grid.cells) // len(seed_list)} model/task pairs x "
             f"{plural(len(seed_list), 'seed')}; {plural(grid.skipped, 'pair')} skipped: shapes do not fit)"
             + (f", shard {part[0]}/{part[1]}: {len(mine)}" if part else "")
             + f"; {len(mine) - len(todo)} done already, {len(todo)} to run"
             + (f" with {plural(workers, 'worker')} x {threads}" if todo else "")
             + f"; results in {results.dir}/")
        started = time.monotonic()
        failed = _run_all(todo, grid, results, workers, threads, echo, max_time)
        if todo:
            echo(f"{len(todo) - len(failed)} of {len(todo)} cells done in {time.monotonic() - started:.1f} s")
    finally:
        results.unlock()
    rows = results.rows()
    write_summary(results, rows, echo, plot)
    if failed:
        raise ZooError(f"{len(failed)} of {len(todo)} cells failed ({'; '.join(failed[:3])}"
                       f"{'; ...' if len(failed) > 3 else ''}); their logs are in {results.dir}/logs; the same "
                       f"command runs them again and keeps the rest")
    return rows


def _run_all(todo: list[Job], grid: Grid, results: Results, workers: int, threads: Share,
             echo: Callable[[str], None], max_time: str | None = None) -> list[str]:
    """Run the cells `workers` at a time; Ctrl-C or SIGTERM stops the workers (each saves its state)."""
    pool, failed, finished = Workers(), [], 0
    say = threading.Lock()
    width = len(str(len(todo)))

    def one(cell: Job) -> None:
        nonlocal finished
        outcome, detail = run_job(cell, grid, results, pool, threads, max_time)
        with say:
            if outcome == "stopped":
                return
            finished += 1
            head = f"[{finished:{width}d}/{len(todo)}] {cell.model} on {cell.task}, seed {cell.seed}:"
            if outcome == "failed":
                failed.append(f"{cell.name}: {detail}")
                echo(f"{head} FAILED: {detail}")
            else:
                value = detail["value"]
                shown = f"{value:.4f}" if isinstance(value, float) else str(value)
                took = f", {detail['wall_seconds']:.1f} s" if detail["wall_seconds"] is not None else ", collected"
                echo(f"{head} {detail['metric']} {shown}{took}{' (resumed)' if detail['resumed'] else ''}")

    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is not signal.SIG_IGN:  # an inherited ignore stays
                handlers[signum] = signal.signal(signum, lambda signum, frame: pool.stop(signum))
    try:
        with ThreadPoolExecutor(max_workers=workers) as executor:
            futures = [executor.submit(one, cell) for cell in todo]
            while not all(f.done() for f in futures):  # a short sleep loop keeps the main thread able to take signals
                time.sleep(0.2)
            for future in futures:
                future.result()  # a bug in a worker thread surfaces here
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if pool.stopping:
        raise Stopped(f"stopped: {finished} of {len(todo)} cells finished and kept; the same command resumes the "
                      f"others from their saved states", pool.stopping)
    return failed


# -- summary, plot, merge ---------------------------------------------------------------------

def summarize(rows: list[dict]) -> list[dict]:
    """One entry per (task, model): the headline metric's mean and std over seeds, and the costs."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["model"]), []).append(row)
    entries = []
    for (task, model), group in sorted(groups.items()):
        numbers = [r.get("value") for r in group if is_number(r.get("value"))]
        values = [v for v in numbers if math.isfinite(v)]  # a NaN or inf seed is counted, not averaged
        left_out = {"not finite": len(numbers) - len(values), "missing": sum(r.get("value") is None for r in group),
                    "not a number": sum(r.get("value") is not None and not is_number(r.get("value")) for r in group)}

        def mean(key):
            known = [r[key] for r in group if is_number(r.get(key)) and math.isfinite(r[key])]
            return statistics.fmean(known) if known else None

        entries.append({"task": task, "model": model, "metric": group[0]["metric"], "minimize": group[0]["minimize"],
                        "seeds": len(group), "mean": statistics.fmean(values) if values else None,
                        "std": statistics.stdev(values) if len(values) > 1 else None,
                        "parameters": group[0]["parameters"], "train_seconds": mean("train_seconds"),
                        "samples_per_s": mean("samples_per_s"), "peak_mib": mean("peak_mib"),
                        "left_out": {why: n for why, n in left_out.items() if n}})
    for task in {e["task"] for e in entries}:
        scored = [e for e in entries if e["task"] == task and e["mean"] is not None]
        if scored:  # compared as shown (4 decimals): models that tie on the page are all bold
            best = (min if scored[0]["minimize"] else max)(round(e["mean"], 4) for e in scored)
            for e in scored:
                e["best"] = round(e["mean"], 4) == best
    return entries


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def markdown(rows: list[dict]) -> str:
    def number(value, digits=1):
        return "" if value is None else f"{value:,.{digits}f}"

    lines = ["| task | metric | model | mean ± std | seeds | parameters | train s | samples/s | peak MiB |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for e in summarize(rows):
        spread = f" ± {e['std']:.4f}" if e["std"] is not None else ""
        score = "" if e["mean"] is None else f"{e['mean']:.4f}{spread}"
        score = f"**{score}**" if e.get("best") else score
        if e["left_out"]:  # a seed whose metric is NaN, inf, missing or text: said, not an empty cell
            score = (score + " " if score else "") + "(" + ", ".join(
                f"{n} of {e['seeds']} seeds {why}" for why, n in e["left_out"].items()) + ")"
        arrow = "↓" if e["minimize"] else "↑"
        lines.append(f"| {e['task']} | {e['metric']} {arrow} | {e['model']} | {score} | {e['seeds']} | "
                     f"{e['parameters']:,} | {number(e['train_seconds'], 2)} | {number(e['samples_per_s'], 0)} | "
                     f"{number(e['peak_mib'], 0)} |")
    return "\n".join(lines) + "\n"


def write_summary(results: Results, rows: list[dict], echo: Callable[[str], None], plot: bool) -> None:
    if not rows:
        return
    cpus = sorted({r.get("cpu", "?") for r in rows})
    versions = sorted({f"zoo {r['versions'].get('zoo')}, torch {r['versions'].get('torch')}" for r in rows})
    recipe = results.recipe() or {}
    text = markdown(rows)
    head = (f"{len(rows)} results; {recipe_line(recipe)}; CPU: {', '.join(cpus)}; {'; '.join(versions)}\n\n")
    replace_atomically(results.dir / SUMMARY, lambda tmp: Path(tmp).write_text(head + text))
    echo("")
    echo(text.rstrip())
    echo(f"written to {results.dir / SUMMARY}")
    if plot:
        draw(rows, results.dir / PLOT)
        echo(f"plotted to {results.dir / PLOT}")


def draw(rows: list[dict], path: Path) -> None:
    """Each task's headline metric against train time, a point per model (mean, with std bars)."""
    plt = pyplot("--plot")
    entries = [e for e in summarize(rows) if e["mean"] is not None and e["train_seconds"] is not None]
    tasks = sorted({e["task"] for e in entries})
    figure, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.8), squeeze=False)
    for axis, task in zip(axes[0], tasks):
        mine = [e for e in entries if e["task"] == task]
        middle = (min(e["train_seconds"] for e in mine) + max(e["train_seconds"] for e in mine)) / 2
        for e in mine:
            axis.errorbar(e["train_seconds"], e["mean"], yerr=e["std"] or 0, fmt="o", capsize=3)
            right = e["train_seconds"] > middle  # a label in the right half reads leftwards: none leaves the axes
            axis.annotate(e["model"], (e["train_seconds"], e["mean"]), fontsize=8, xytext=(-4 if right else 4, 4),
                          textcoords="offset points", ha="right" if right else "left")
        axis.margins(x=0.12, y=0.12)  # room for the labels of the outermost points
        axis.set_title(task)
        axis.set_xlabel("train seconds")
        axis.set_ylabel(next(e["metric"] for e in entries if e["task"] == task))
    save_figure(figure, path)


def merge(sources: list[str], out: str = "results", plot: bool = False,
          echo: Callable[[str], None] = print) -> list[dict]:
    """Join the rows of results folders (a grid's shards) into `out`; they must share one recipe."""
    if not sources:
        raise ZooError("--merge needs the results folders to join")
    folders, recipe = [], None
    for source in sources:
        folder = Path(source).parent if Path(source).name == RESULTS else Path(source)
        held = Results(folder).recipe()
        if held is None:
            raise ZooError(f"{source} is not a zoo bench results folder (no {RECIPE})")
        if recipe is not None and held != recipe:
            raise ZooError(f"{source} holds the results of another recipe ({recipe_line(held)}; {folders[0].dir}: "
                           f"{recipe_line(recipe)}): merge the shards of one grid only")
        recipe = recipe or held
        folders.append(Results(folder))
    target = Results(out)
    target.open(recipe)  # refuses a folder of another recipe, before anything is written
    try:
        rows = {(r["model"], r["task"], r["seed"]): r for r in target.rows()}
        added = 0
        for folder in folders:
            if folder.dir.resolve() == target.dir.resolve():
                continue
            for row in folder.rows():
                key = (row["model"], row["task"], row["seed"])
                if key not in rows:  # the run folder stays where it is; the row points to it from `out`
                    rows[key] = {**row, "run": os.path.relpath(folder.dir / row["run"], target.dir)}
                    added += 1
        merged = sorted(rows.values(), key=lambda r: (r["task"], r["model"], r["seed"]))
        replace_atomically(target.file, lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in merged)))
    finally:
        target.unlock()
    echo(f"merged {added} rows from {len(folders)} folder{'s' * (len(folders) != 1)} into {target.dir}/ "
         f"({len(merged)} in all)")
    write_summary(target, merged, echo, plot)
    return merged
