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

import errno
import json
import os
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

from zoo.store.header import read_header
from zoo.store.files import (FolderLock, made_dirs, read_json, read_jsonl, remove_empty, remove_stale_temporaries,
                             replace_atomically, write_bytes_atomically)
from zoo.store.plotting import pyplot, save_figure
from zoo.contract.specs import ZooError

CONFIG, METRICS, STATE, EXPORT, LOCK = "config.json", "metrics.jsonl", "state.safetensors", "model.safetensors", ".lock"
STATE_FORMAT = "zoo-state/1"
RUN_FORMAT = "zoo-run/1"  # config.json's `format`: how zoo recognises a folder it made
RUNS_ROOT = "checkpoints"

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


def finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(value: Any) -> bool:
    """A JSON number that is not NaN (a metric or a loss may be infinite)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def whole(value: Any, low: int = 0) -> bool:
    return type(value) is int and value >= low


def progress_problem(progress: Any, epochs: int) -> str:
    """What is wrong with a state's progress record for a run of `epochs` epochs, or ''."""
    names = {f.name for f in fields(Progress)}
    if not isinstance(progress, dict) or set(progress) != names:
        return f"its progress is not the fields {', '.join(sorted(names))}"
    p = progress
    ends = p["schedule_ends"]
    checks = [("epoch", whole(p["epoch"], 1) and p["epoch"] <= epochs + 1),
              ("batch", whole(p["batch"])), ("loss_sum", number(p["loss_sum"])),
              ("examples", whole(p["examples"])), ("seconds", finite_number(p["seconds"]) and p["seconds"] >= 0),
              ("lr", finite_number(p["lr"]) and p["lr"] >= 0),
              ("best", p["best"] is None or number(p["best"])),
              ("best_epoch", whole(p["best_epoch"]) and p["best_epoch"] < max(p["epoch"], 1)
               if type(p["epoch"]) is int else False),
              ("bad_epochs", whole(p["bad_epochs"])), ("done", isinstance(p["done"], bool)),
              ("schedule_ends", isinstance(ends, list) and all(whole(e, 1) for e in ends)
               and ends == sorted(set(ends)))]
    bad = [name for name, ok in checks if not ok]
    return f"progress.{bad[0]} is {p[bad[0]]!r}" if bad else ""


class Run:
    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self._lock = FolderLock(self.dir, LOCK)
        self._folder: int | None = None  # the locked folder's inode
        self.made_parents: list[Path] = []

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r})"

    @property
    def state_path(self) -> Path:
        return self.dir / STATE

    def exists(self) -> bool:
        """Whether a zoo run (even one stopped before its first epoch ended) lives here: its config.json
        carries zoo's format tag (runs made before the tag: a zoo training state beside it)."""
        if not (self.dir / CONFIG).is_file():  # a FIFO or a device under that name is no run
            return self._has_zoo_state()
        try:
            with open(self.dir / CONFIG, "rb") as f:
                config = json.loads(f.read(4 * 1024 * 1024))
        except (OSError, ValueError, RecursionError):
            return self._has_zoo_state()
        if isinstance(config, dict) and config.get("format") == RUN_FORMAT:
            return True
        return isinstance(config, dict) and "format" not in config and self._has_zoo_state()

    def has_run_files(self) -> bool:
        """Whether the folder holds a config.json or a state, zoo's or not (see `exists`)."""
        return (self.dir / CONFIG).is_file() or self.state_path.is_file()

    def _has_zoo_state(self) -> bool:
        if not self.state_path.is_file():
            return False
        try:
            return read_header(self.state_path)[0].get("format") == STATE_FORMAT
        except ZooError:
            return False

    def holds_other_files(self) -> bool:
        """Whether the folder exists and holds anything (files zoo did not write, if it is no run)."""
        try:
            return any(self.dir.iterdir())
        except OSError:
            return self.dir.exists()

    def config(self) -> dict:
        if not os.path.lexists(self.dir / CONFIG):
            raise ZooError(f"{self.dir} is not a zoo run (no {CONFIG})")
        config = read_json(self.dir / CONFIG, "a run's config")  # a FIFO or a huge file: refused, not read
        if not isinstance(config, dict) or not isinstance(config.get("model"), str) or not isinstance(
                config.get("task"), str) or not isinstance(config.get("export", EXPORT), str):
            raise ZooError(f"{self.dir / CONFIG} is damaged (not a zoo run's config)")
        return config

    @property
    def export_path(self) -> Path:
        """The run's export: always its own model.safetensors. The `export` config.json records (where
        `--out` put it) is provenance, never followed: a copied or downloaded folder could name any file."""
        return self.dir / EXPORT

    def exported_elsewhere(self) -> str | None:
        """Where `--out` sent this run's export (as recorded, for messages only), or None."""
        try:
            recorded = self.config().get("export", EXPORT)
        except ZooError:
            return None
        return None if recorded == EXPORT else os.path.normpath(self.dir / recorded)

    def relative(self, path: Path) -> str:
        """`path` as the run folder records it: relative to the folder."""
        return os.path.relpath(Path(path).absolute(), self.dir.absolute())

    # -- one writer ---------------------------------------------------------------------------
    def lock(self) -> None:
        """Become the one process writing this run, or say in one line who is."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self._lock.acquire():
            raise self._busy()
        self._folder = os.stat(self.dir).st_ino  # check_still_here compares against it
        remove_stale_temporaries(self.dir)  # ours alone now: whatever a killed writer left can go

    @property
    def locked(self) -> bool:
        return self._lock.held

    def discard(self) -> None:
        """Remove a run that never saved a state (the caller holds the lock), and its folder if empty."""
        try:
            replaced = self._folder is not None and os.stat(self.dir).st_ino != self._folder
        except OSError:
            replaced = True
        if replaced:  # the folder is someone else's now: leave it alone
            self.unlock()
            return
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
        """Start a new run here (the caller holds the lock): drop what an earlier run left, write the config
        with zoo's format tag first."""
        for name in (CONFIG, METRICS, STATE, "curves.png"):
            (self.dir / name).unlink(missing_ok=True)
        config = {"format": RUN_FORMAT, **config}
        replace_atomically(self.dir / CONFIG, lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2) + "\n"))
        replace_atomically(self.dir / METRICS, lambda tmp: Path(tmp).write_text(""))

    def update_config(self, **changes: Any) -> None:
        config = {**self.config(), **changes}
        replace_atomically(self.dir / CONFIG, lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2) + "\n"))

    def log(self, row: dict) -> None:
        self.check_still_here()
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
        self.check_still_here()
        try:
            write_bytes_atomically(self.state_path, data)
        except OSError as e:
            then = "free some space and" if e.errno == errno.ENOSPC else "once the folder can be written,"
            kept = (f"the state saved before is intact: {then} resume" if self.state_path.is_file() else
                    f"no state was saved before this one: {then} train again")
            raise ZooError(f"could not write {self.state_path} ({e.strerror or e}); {kept}") from None

    def check_still_here(self) -> None:
        """The folder this process locked must still be the run's: one deleted (or replaced by another)
        mid-run would take the state and the export without its config.json."""
        try:
            same = self._folder is None or os.stat(self.dir).st_ino == self._folder
        except OSError:
            same = False
        if not same or (self._folder is not None and not (self.dir / CONFIG).is_file()):
            raise ZooError(f"{self.dir} was removed or replaced while the run trained (its {CONFIG} is gone): "
                           f"nothing more is written there; train again")

    def state_info(self) -> dict:
        """The JSON part of the saved state (torch-free)."""
        if not self.state_path.is_file():
            if self.exists():
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
        wrong = [k for k, kind in (("model", str), ("task", str), ("model_config", dict), ("task_config", dict),
                                   ("train_config", dict), ("status", str)) if not isinstance(info.get(k), kind)]
        if wrong:
            raise ZooError(f"{self.state_path} is damaged ({wrong[0]} is missing or of the wrong type)")
        epochs = info["train_config"].get("epochs")
        problem = progress_problem(info["progress"], epochs if type(epochs) is int else 0)
        if problem:
            raise ZooError(f"{self.state_path} is damaged or not this run's state ({problem}); nothing was changed")
        return info

    def check_state_identity(self, info: dict) -> None:
        """Refuse a state that is not of the run its folder's config.json describes (a state copied in from
        another run): the same model, task and settings, the epochs aside (a run can be extended)."""
        if not (self.dir / CONFIG).is_file():
            return  # a run killed before its config was written, or one older than it
        config = self.config()
        for key in ("model", "task", "model_config", "task_config", "train_config"):
            mine, theirs = config.get(key), info.get(key)
            if key == "train_config" and isinstance(mine, dict):
                mine, theirs = ({k: v for k, v in c.items() if k != "epochs"} for c in (mine, theirs))
            if mine != theirs:
                raise ZooError(f"{self.state_path} is not the state of the run in {self.dir}: its {key} is "
                               f"{_short(theirs)}, the folder's config.json says {_short(mine)}; nothing was changed")

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
        elsewhere = self.exported_elsewhere()
        if elsewhere:
            return (f"the run in {self.dir} was exported with --out to {elsewhere}, which zoo does not follow from a "
                    f"run folder: give that file" + (f", or zoo resume {self.dir} writes the run's own export"
                                                     if status == "finished" else ""))
        if status == "finished":
            return f"the run in {self.dir} finished training but has no export yet: zoo resume {self.dir} writes it"
        return (f"the run in {self.dir} has no export yet: it stopped in epoch {progress.get('epoch')} ({status}); "
                f"zoo resume {self.dir} continues it")


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- opening a run folder ---------------------------------------------------------------------------------
def run_base(model: str, task: str, root: str | Path = RUNS_ROOT) -> Path:
    """Where the runs of a pair go: ROOT/MODEL-TASK, then -2, -3, ... (see `new_run`)."""
    return Path(root) / f"{model}-{task}"


def run_to_resume(model: str, task: str, run_dir: str | Path | None) -> Run:
    """The run `--resume` continues: `run_dir`, or the pair's newest run; its state's JSON is checked here."""
    runs = [Run(run_dir)] if run_dir else runs_of(f"{model}-{task}")
    if not runs:
        raise ZooError(f"no run of {model} on {task} in {RUNS_ROOT}/ to resume (give its --run-dir)")
    if runs[-1].in_use():  # said first: a run another process writes is not one to continue (state or not)
        raise runs[-1]._busy()
    runs[-1].state_info()  # says what is wrong before anything else happens
    return runs[-1]


def run_to_replace(run_dir: str | Path | None, overwrite: bool) -> Run | None:
    """The folder a new run goes to when `--run-dir` is given (None: a new numbered one). A folder that holds
    a zoo run needs `overwrite`; one that holds anything else is refused (zoo replaces only what it made)."""
    if run_dir is None:
        return None
    run = Run(run_dir)
    if run.dir.exists() and not run.dir.is_dir():
        raise ZooError(f"--run-dir {run.dir} is a file, not a folder")
    if run.exists() and run.in_use():  # said first: --resume or --overwrite would not help
        raise run._busy()
    if run.exists() and not overwrite:
        raise ZooError(f"{run.dir} holds a run already: --resume continues it, --overwrite replaces it, or give "
                       f"another --run-dir")
    if not run.exists() and run.holds_other_files():  # `/`, a home folder, a folder with its own config.json
        raise ZooError(f"--run-dir {run.dir} holds files zoo did not write, and no zoo run: give a new or empty "
                       f"folder (only folders zoo made are replaced, with --overwrite)")
    return run


def check_out(out: Path, run: Run | None, inputs: dict[str, str]) -> None:
    """--out must not land on a run's own files, or on the files the task reads (`inputs`: option -> path)."""
    target = out.resolve()
    for name, value in inputs.items():
        if value and "://" not in value and Path(value).resolve() == target:
            raise ZooError(f"--out {out} is the task's input ({name}); choose another file for the export")
    own = target.parent == run.dir.resolve() if run is not None else False
    if target.name in (CONFIG, METRICS, STATE, LOCK) and (own or (target.parent / CONFIG).is_file()):
        raise ZooError(f"--out {out} would overwrite a run's own {target.name}; choose another file for the export")


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
        # in zoo's own folder, under a pair's name: a damaged run is still that run (its commands say what is wrong)
        if match and entry.is_dir() and match.group(1) != "1" and Run(entry).has_run_files():
            found.append((int(match.group(1) or 1), Run(entry)))
    return [run for _, run in sorted(found, key=lambda pair: pair[0])]


# -- the one run locator ------------------------------------------------------------------------------------
@dataclass
class Found:
    """What a command's RUN or WEIGHTS argument stands for."""

    path: Path  # the file or the run folder
    run: Run | None  # the run, or None for a file given as such
    picked: str = ""  # when a name chose among several runs: which folder, said on stderr by the command


def find(target: str | Path, root: str | Path = RUNS_ROOT) -> Found:
    """Resolve a path or a name, the same way for every command and for `zoo.load`.

    A path that exists is taken as given: a folder is that run, a file that export. A bare name
    (no separator) is a run's name under `root`: MODEL-TASK means the pair's newest run (MODEL-TASK,
    -2, -3, ...: the highest number), MODEL-TASK-2 that run. What is looked for is said by the caller
    (`export_of`, `resumable`, `run_of`); the same name means the same run for all of them."""
    path = Path(target)
    if path.is_dir():
        return Found(path, Run(path))
    if path.exists() or path.is_symlink() or path.suffix in (".safetensors", ".onnx"):
        return Found(path, None)  # a file (or what should be one): the caller says what is wrong with it
    if len(path.parts) != 1:
        raise ZooError(f"{path}: no such file or run folder")
    runs = runs_of(path.name, root)
    if not runs:
        raise ZooError(f"{path}: no such file, and no run named {path} under {root}/ (zoo runs lists them)")
    run = runs[-1]
    picked = f"using {run.dir}, the newest of {len(runs)} runs named {path.name}" if len(runs) > 1 else ""
    return Found(run.dir, run, picked)


def export_of(target: str | Path, root: str | Path = RUNS_ROOT) -> Found:
    """An export: the file given, or the export of the run the folder or name stands for (see `find`)."""
    found = find(target, root)
    if found.run is None:
        return found
    run = found.run
    run.config()  # a folder zoo made, and not damaged: said before anything else
    if not run.export_path.exists():  # (what is wrong with one that exists, read_header says)
        older = [r for r in runs_of(Path(target).name, root)[:-1] if r.export_path.is_file()] if found.picked else []
        hint = f" ({older[-1].dir} has an export: give that folder)" if older else ""
        raise ZooError(run.why_no_export() + hint)
    return Found(run.export_path, run, found.picked)


def resumable(target: str | Path, root: str | Path = RUNS_ROOT) -> tuple[Found, dict]:
    """A run with a resumable state, and the state's JSON (see `find`)."""
    if len(Path(target).parts) != 1 and not Path(target).exists():
        Run(target).state_info()  # says there is no saved state there
    found = run_of(target, root, "resume")
    if found.run.in_use():  # said first, before what its state says (it may have none yet)
        raise found.run._busy()
    return found, found.run.state_info()


def run_of(target: str | Path, root: str | Path = RUNS_ROOT, verb: str = "open") -> Found:
    """A run folder (see `find`); a file is one line."""
    found = find(target, root)
    if found.run is None:
        raise ZooError(f"{found.path} is not a run folder: zoo can {verb} only a run's folder or name"
                       if found.path.exists() else f"{found.path}: no such run folder")
    return found


def find_runs(root: str | Path) -> Iterator[Run]:
    """The runs in `root` and the folders below it, by path: each folder whose config.json zoo made, or
    that holds a zoo training state or a metrics log beside it (a damaged run is still a run, listed as
    damaged); another program's config.json alone makes no run."""
    for config in sorted(Path(root).rglob(CONFIG)):
        run = Run(config.parent)
        if (run.dir / METRICS).is_file() or run.exists() or run._has_zoo_state():  # a stat first
            yield run


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
