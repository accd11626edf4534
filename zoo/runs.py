"""Run directories: the config, a JSON-lines metrics log, the resumable state and the export.

    checkpoints/MODEL-TASK/
        config.json      what was trained, with every setting, and where the export goes
        metrics.jsonl    one line per epoch: loss, learning rate, seconds, samples/s, metrics
        state.safetensors  everything a resumed run needs: weights, optimizer, schedule, random
                         states, position; tensors as safetensors, the rest as JSON in its metadata
        model.safetensors  the export (zoo eval / predict / load)

Files are replaced atomically (a temporary file, then a rename), so a killed run leaves the last
complete state. Only torch-free code here, so `zoo runs` stays fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from zoo.files import replace_atomically
from zoo.specs import ZooError

CONFIG, METRICS, STATE, EXPORT = "config.json", "metrics.jsonl", "state.safetensors", "model.safetensors"
STATE_FORMAT = "zoo-state/1"


class Run:
    def __init__(self, directory: str | Path):
        self.dir = Path(directory)

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r})"

    @property
    def state_path(self) -> Path:
        return self.dir / STATE

    def config(self) -> dict:
        try:
            return json.loads((self.dir / CONFIG).read_text())
        except FileNotFoundError:
            raise ZooError(f"{self.dir} is not a zoo run (no {CONFIG})") from None
        except (OSError, json.JSONDecodeError) as e:
            raise ZooError(f"{self.dir / CONFIG} is damaged ({e})") from None

    def begin(self, config: dict) -> None:
        """Start a new run here: write its config, empty its log, drop an old state."""
        self.dir.mkdir(parents=True, exist_ok=True)
        replace_atomically(self.dir / CONFIG, lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2) + "\n"))
        replace_atomically(self.dir / METRICS, lambda tmp: Path(tmp).write_text(""))
        self.state_path.unlink(missing_ok=True)

    def log(self, row: dict) -> None:
        with open(self.dir / METRICS, "a") as f:
            f.write(json.dumps(row) + "\n")

    def history(self) -> list[dict]:
        try:
            lines = (self.dir / METRICS).read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def keep_history(self, epochs: int) -> None:
        """Forget log lines of epochs after `epochs` (written before a kill, but not in the saved state)."""
        kept = [row for row in self.history() if row["epoch"] <= epochs]
        replace_atomically(self.dir / METRICS, lambda tmp: Path(tmp).write_text("".join(
            json.dumps(row) + "\n" for row in kept)))

    def save_state(self, tensors: dict, info: dict) -> None:
        """Replace the state (once per epoch, so it is kept cheap: a fixed temporary name, as one
        process writes; numpy's writer, which skips the torch writer's shared-memory checks)."""
        import torch
        from safetensors.numpy import save_file as save_numpy
        from safetensors.torch import save_file as save_torch

        metadata = {"format": STATE_FORMAT, "state": json.dumps(info)}
        tmp = self.state_path.with_name(f".{STATE}.tmp")
        try:
            if any(t.dtype == torch.bfloat16 for t in tensors.values()):  # numpy has no bfloat16
                save_torch(tensors, tmp, metadata=metadata)
            else:
                save_numpy({k: t.numpy() for k, t in tensors.items()}, tmp, metadata=metadata)
            os.replace(tmp, self.state_path)
        finally:
            tmp.unlink(missing_ok=True)

    def state_info(self) -> dict:
        """The JSON part of the saved state (torch-free)."""
        from zoo.checkpoint import read_header

        if not self.state_path.is_file():
            raise ZooError(f"no saved state in {self.dir}: nothing to resume (train without --resume)")
        metadata, _ = read_header(self.state_path)
        if metadata.get("format") != STATE_FORMAT:
            raise ZooError(f"{self.state_path} is not a zoo training state")
        try:
            return json.loads(metadata["state"])
        except (KeyError, json.JSONDecodeError) as e:
            raise ZooError(f"{self.state_path} is damaged ({type(e).__name__})") from None

    def load_state(self) -> tuple[dict, dict]:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        info = self.state_info()
        try:
            return load_file(self.state_path), info
        except (SafetensorError, OSError) as e:
            raise ZooError(f"{self.state_path} is damaged ({e})") from None


def find_runs(root: str | Path) -> Iterator[Run]:
    """The runs in `root` and the folders below it, by path."""
    for config in sorted(Path(root).rglob(CONFIG)):
        yield Run(config.parent)


def summary(run: Run) -> dict[str, Any]:
    """What `zoo runs` shows of a run: names, progress, status and its best monitored metric."""
    config = run.config()
    history = run.history()
    try:
        info = run.state_info()
    except ZooError:
        info = {}
    metric, split = config.get("metric", ""), config.get("monitor", "")
    scored = [(row[split][metric], row["epoch"]) for row in history if isinstance(row.get(split, {}).get(metric),
                                                                                 (int, float))]
    sign = -1 if config.get("minimize") else 1  # the best score, and the first epoch that reached it
    best = max(scored, key=lambda pair: (sign * pair[0], -pair[1])) if scored else None
    status = info.get("status", "no state")
    if status == "running" and not _alive(info.get("pid")):
        status = "stopped"  # killed: `zoo resume` continues from its last epoch
    return {"run": str(run.dir), "model": config.get("model"), "task": config.get("task"),
            "epochs": f"{history[-1]['epoch'] if history else 0}/{config.get('train_config', {}).get('epochs', '?')}",
            "status": status, "metric": f"{split} {metric}".strip(),
            "best": None if best is None else best[0], "best_epoch": None if best is None else best[1],
            "export": config.get("export")}


def plot_curves(run: Run, path: str | Path) -> None:
    """Loss, and each monitored metric, against the epoch, from the run's metrics log."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError:
        raise ZooError("plotting needs matplotlib: pip install 'rnn-zoo[plot]'") from None
    config, history = run.config(), run.history()
    if not history:
        raise ZooError(f"{run.dir} has no epochs logged yet")
    split = config.get("monitor", "")
    metrics = sorted({k for row in history for k, v in row.get(split, {}).items() if isinstance(v, (int, float))})
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
    for axis in axes[1 + len(metrics):]:
        axis.set_visible(False)
    figure.suptitle(f"{config['model']} on {config['task']}")
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=110)
    except OSError as e:
        raise ZooError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        plt.close(figure)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
