"""Run directories: the config, a JSON-lines metrics log, the resumable state and the export.

    checkpoints/MODEL-TASK/      the first run of a pair; later ones go to MODEL-TASK-2, -3, ...
        config.json      what was trained, with every setting, and where the export goes
        metrics.jsonl    one line per epoch: loss, learning rate, seconds, samples/s, metrics
        state.safetensors  everything a resumed run needs: weights, optimizer, schedule, random
                         states, position; tensors as safetensors, the rest as JSON in its metadata
        model.safetensors  the export (zoo eval / predict / load)
        .lock            held by the one process writing the run (its pid inside)

Every path a run folder records is relative to the folder, so a copied or moved run resumes and
exports into itself. Files are replaced atomically (a temporary file unique to the writing process,
then a rename), so a killed run leaves the last complete state; the next writer removes what a dead
one left. Only torch-free code here, so `zoo runs` stays fast.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

from zoo.store.files import (FolderLock, made_dirs, read_jsonl, remove_empty, remove_stale_temporaries,
                             replace_atomically, write_bytes_atomically)
from zoo.store.plotting import pyplot, save_figure
from zoo.contract.specs import ZooError

CONFIG, METRICS, STATE, EXPORT, LOCK = "config.json", "metrics.jsonl", "state.safetensors", "model.safetensors", ".lock"
STATE_FORMAT = "zoo-state/1"
RUNS_ROOT = "checkpoints"

class Run:
    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self._lock = FolderLock(self.dir, LOCK)
        self.made_parents: list[Path] = []

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r})"

    @property
    def state_path(self) -> Path:
        return self.dir / STATE

    def exists(self) -> bool:
        """Whether a run (even one stopped before its first epoch ended) lives here."""
        return (self.dir / CONFIG).is_file() or self.state_path.is_file()

    def config(self) -> dict:
        try:
            config = json.loads((self.dir / CONFIG).read_text())
        except FileNotFoundError:
            raise ZooError(f"{self.dir} is not a zoo run (no {CONFIG})") from None
        except IsADirectoryError:
            raise ZooError(f"{self.dir / CONFIG} is a directory, not a run's config") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise ZooError(f"{self.dir / CONFIG} is damaged ({type(e).__name__})") from None
        if not isinstance(config, dict) or not isinstance(config.get("model"), str) or not isinstance(
                config.get("task"), str) or not isinstance(config.get("export", EXPORT), str):
            raise ZooError(f"{self.dir / CONFIG} is damaged (not a zoo run's config)")
        return config

    @property
    def export_path(self) -> Path:
        """Where this run's export is: recorded relative to the run folder (older runs: as written)."""
        return self.dir / self.config().get("export", EXPORT)

    def relative(self, path: Path) -> str:
        """`path` as the run folder records it: relative to the folder."""
        return os.path.relpath(Path(path).absolute(), self.dir.absolute())

    # -- one writer ---------------------------------------------------------------------------
    def lock(self) -> None:
        """Become the one process writing this run, or say in one line who is."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self._lock.acquire():
            raise self._busy()
        remove_stale_temporaries(self.dir)  # ours alone now: whatever a killed writer left can go

    @property
    def locked(self) -> bool:
        return self._lock.held

    def discard(self) -> None:
        """Remove a run that never saved a state (the caller holds the lock), and its folder if empty."""
        for name in (CONFIG, METRICS):
            (self.dir / name).unlink(missing_ok=True)
        self.unlock()
        remove_empty([self.dir, *self.made_parents])  # --run-dir may hold the user's other files: then it stays

    def unlock(self) -> None:
        self._lock.release()

    def locked_by(self) -> int | None:
        """The pid written in the lock file, or None."""
        return self._lock.holder()

    def in_use(self) -> bool:
        """Whether another process is writing this run now."""
        return self._lock.in_use()

    def _busy(self) -> ZooError:
        pid = self.locked_by()
        return ZooError(f"{self.dir} is in use by another zoo process{f' (pid {pid})' if pid else ''}; wait for it "
                        f"to end, or give another --run-dir")

    # -- files --------------------------------------------------------------------------------
    def begin(self, config: dict) -> None:
        """Start a new run here (the caller holds the lock): drop what an earlier run left, write the config."""
        for name in (CONFIG, METRICS, STATE, "curves.png"):
            (self.dir / name).unlink(missing_ok=True)
        replace_atomically(self.dir / CONFIG, lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2) + "\n"))
        replace_atomically(self.dir / METRICS, lambda tmp: Path(tmp).write_text(""))

    def update_config(self, **changes: Any) -> None:
        config = {**self.config(), **changes}
        replace_atomically(self.dir / CONFIG, lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2) + "\n"))

    def log(self, row: dict) -> None:
        with open(self.dir / METRICS, "a") as f:
            f.write(json.dumps(row) + "\n")

    def history(self) -> list[dict]:
        """The logged epochs. A last line cut short by a kill is left out; damage elsewhere is an error."""
        return read_jsonl(self.dir / METRICS, lambda row: isinstance(row.get("epoch"), int), "an epoch's record")

    def keep_history(self, epochs: int) -> None:
        """Forget log lines of epochs after `epochs` (written before a kill, but not in the saved state),
        and a torn last line."""
        kept = [row for row in self.history() if row["epoch"] <= epochs]
        replace_atomically(self.dir / METRICS, lambda tmp: Path(tmp).write_text("".join(
            json.dumps(row) + "\n" for row in kept)))

    def save_state(self, tensors: dict, info: dict) -> None:
        """Replace the state (once per epoch: numpy's serializer, which skips the torch one's checks).

        A failed write (a full disk, say) leaves the previous state as it was."""
        import torch
        from safetensors.numpy import save as serialize_numpy
        from safetensors.torch import save as serialize_torch

        metadata = {"format": STATE_FORMAT, "state": json.dumps(info)}
        if any(t.dtype == torch.bfloat16 for t in tensors.values()):  # numpy has no bfloat16
            data = serialize_torch(tensors, metadata=metadata)
        else:
            data = serialize_numpy({k: t.numpy() for k, t in tensors.items()}, metadata=metadata)
        try:
            write_bytes_atomically(self.state_path, data)
        except OSError as e:
            raise ZooError(f"could not write {self.state_path} ({e.strerror or e}); the state saved before is "
                           f"intact: free some space and resume") from None

    def state_info(self) -> dict:
        """The JSON part of the saved state (torch-free)."""
        from zoo.store.checkpoint import read_header

        if not self.state_path.is_file():
            if (self.dir / CONFIG).is_file():
                raise ZooError(f"the run in {self.dir} stopped before its first epoch ended: nothing to resume "
                               f"(train it again)")
            raise ZooError(f"no saved state in {self.dir}: nothing to resume (train without --resume)")
        metadata, _ = read_header(self.state_path)
        if metadata.get("format") != STATE_FORMAT:
            raise ZooError(f"{self.state_path} is not a zoo training state")
        try:
            info = json.loads(metadata["state"])
        except (KeyError, json.JSONDecodeError, RecursionError) as e:
            raise ZooError(f"{self.state_path} is damaged ({type(e).__name__})") from None
        if not isinstance(info, dict) or not isinstance(info.get("progress"), dict):
            raise ZooError(f"{self.state_path} is damaged (no progress in it)")
        return info

    def load_state(self) -> tuple[dict, dict]:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        info = self.state_info()
        try:
            return load_file(self.state_path), info
        except (SafetensorError, OSError) as e:
            raise ZooError(f"{self.state_path} is damaged ({e})") from None

    def status(self) -> str:
        """running, finished, interrupted, stopped (killed), or starting (no epoch saved yet)."""
        if self.in_use():
            return "running"
        try:
            status = self.state_info().get("status", "?")
        except ZooError:
            return "no state"
        return "stopped" if status == "running" else status  # killed: `zoo resume` continues from its last epoch


    def why_no_export(self) -> str:
        status = self.status()
        if status == "running":
            return f"{self.dir} is still training (pid {self.locked_by()}): its export is written when it ends"
        if status == "no state":
            return f"the run in {self.dir} has no export: it stopped before its first epoch ended"
        progress = self.state_info()["progress"]
        if status == "finished":
            return f"the run in {self.dir} finished training but has no export yet: zoo resume {self.dir} writes it"
        return (f"the run in {self.dir} has no export yet: it stopped in epoch {progress.get('epoch')} ({status}); "
                f"zoo resume {self.dir} continues it")


def numbered(base: Path) -> Iterator[Path]:
    """base, base-2, base-3, ...: the folders the runs of one model/task pair take in turn."""
    yield base
    number = 2
    while True:
        yield base.with_name(f"{base.name}-{number}")
        number += 1


def new_run(base: Path) -> Run:
    """A run in the first of base, base-2, ... that does not exist, created (mkdir decides races)."""
    parents = made_dirs(base.parent)
    for folder in numbered(base):
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        run = Run(folder)
        run.made_parents = parents  # removed again with the run if it is discarded
        return run
    raise AssertionError("unreachable")


def runs_of(name: str, root: str | Path = RUNS_ROOT) -> list[Run]:
    """The runs named `name` (MODEL-TASK) under root, oldest first: NAME, NAME-2, NAME-3, ..."""
    pattern = re.compile(re.escape(name) + r"(?:-(\d+))?")
    found = []
    try:
        entries = list(Path(root).iterdir())
    except OSError:
        return []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match and entry.is_dir() and match.group(1) != "1" and Run(entry).exists():
            found.append((int(match.group(1) or 1), Run(entry)))
    return [run for _, run in sorted(found, key=lambda pair: pair[0])]


def find_runs(root: str | Path) -> Iterator[Run]:
    """The runs in `root` and the folders below it, by path."""
    for config in sorted(Path(root).rglob(CONFIG)):
        yield Run(config.parent)


def summary(run: Run) -> dict[str, Any]:
    """What `zoo runs` shows of a run: names, progress, status and its best monitored metric."""
    config = run.config()
    history = run.history()
    metric, split = config.get("metric", ""), config.get("monitor", "")
    scored = [(row[split][metric], row["epoch"]) for row in history
              if isinstance(row.get(split), dict) and isinstance(row[split].get(metric), (int, float))]
    sign = -1 if config.get("minimize") else 1  # the best score, and the first epoch that reached it
    best = max(scored, key=lambda pair: (sign * pair[0], -pair[1])) if scored else None
    epochs = config.get("train_config", {}).get("epochs", "?") if isinstance(config.get("train_config"), dict) else "?"
    exported = exported_metric(run.export_path, metric)
    return {"run": str(run.dir), "model": config.get("model"), "task": config.get("task"),
            "epochs": f"{history[-1]['epoch'] if history else 0}/{epochs}",
            "status": run.status(), "metric": f"{split} {metric}".strip(),
            "best": None if best is None else best[0], "best_epoch": None if best is None else best[1],
            "export": str(run.export_path),
            "export_metric": exported and exported[0], "export_value": exported and exported[1]}


def exported_metric(path: Path, metric: str) -> tuple[str, float] | None:
    """("test rmse", 9.95): the headline metric an export reports (what `zoo eval` shows), or None."""
    from zoo.store.checkpoint import describe

    if not metric or not path.is_file():
        return None
    try:
        metrics = describe(path)["metrics"]
    except ZooError:
        return None
    value = metrics.get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return f"{metrics.get('split', '')} {metric}".strip(), float(value)


MIN_RELATIVE_SPAN = 0.02  # a y axis spans at least 2% of its values' size: 9.951-9.957 would magnify noise


def plot_curves(run: Run, path: str | Path) -> None:
    """Loss, and each monitored metric that moves, against the epoch (whole epochs on the axis), from
    the run's metrics log. A metric that never changes (a baseline fitted once, such as stock's
    persistence) gets no panel of its own; the task's headline metric always has one."""
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    plt = pyplot("plotting")
    config, history = run.config(), run.history()
    if not history:
        raise ZooError(f"{run.dir} has no epochs logged yet")
    split, headline = config.get("monitor", ""), config.get("metric", "")
    values = {}
    for row in history:
        for k, v in row.get(split, {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                values.setdefault(k, []).append(v)
    metrics = sorted((k for k, seen in values.items() if k == headline or max(seen) != min(seen)),
                     key=lambda k: (k != headline, k))
    columns = min(3, 1 + len(metrics))
    lines = -(-(1 + len(metrics)) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(4.5 * columns, 3.4 * lines), squeeze=False)
    axes = axes.flatten()
    axes[0].plot([r["epoch"] for r in history], [r["loss"] for r in history])
    axes[0].set_title("training loss")
    for axis, name in zip(axes[1:], metrics):
        rows = [r for r in history if name in r.get(split, {})]
        axis.plot([r["epoch"] for r in rows], [r[split][name] for r in rows], marker="." if len(rows) < 30 else None)
        axis.set_title(f"{split} {name}")
    for axis in axes[: 1 + len(metrics)]:
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # a 2-epoch run: 1 and 2, not 1.2, 1.4, ...
        axis.yaxis.set_major_formatter(ScalarFormatter(useOffset=False))
        low, high = axis.get_ylim()
        span = MIN_RELATIVE_SPAN * max(abs(low), abs(high))
        if high - low < span:
            middle = (low + high) / 2
            axis.set_ylim(middle - span / 2, middle + span / 2)
    for axis in axes[1 + len(metrics):]:
        axis.set_visible(False)
    figure.suptitle(f"{config['model']} on {config['task']}")
    save_figure(figure, path)
