"""Exports: safetensors weights whose metadata says everything needed to rebuild the model.

Metadata keys (all strings, JSON where structured): format, model, task, model_config, task_config,
train_config, problem, meta (vocabularies, scalers), metrics, versions. No pickle anywhere.
Reading the card needs no torch, so the CLI can inspect a file cheaply.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from zoo.config import make_config, path_fields, to_dict
from zoo.files import remove_stale_temporaries, write_bytes_atomically
from zoo.registry import registry
from zoo.specs import Card, Problem, TrainConfig, ZooError

FORMAT = "zoo/1"
MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header


def check_writable(path: Path) -> None:
    """Fail before training, not after, when the export cannot be written (creating nothing)."""
    if path.is_dir():
        raise ZooError(f"{path} is a directory; give a file name ending in .safetensors")
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the folders still to make are made when the export is written
    if not folder.is_dir():
        raise ZooError(f"cannot write {path}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ZooError(f"cannot write {path}: {folder} is not writable")


def save(model: Any, card: Card, path: str | Path) -> Path:
    """Write weights and card atomically: a temporary file in the same folder, then a rename."""
    from safetensors.torch import save as serialize

    path = Path(path)
    # clone: tied weights would share storage, which safetensors refuses; loading restores both copies
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "model": card.model,
        "task": card.task,
        "model_config": json.dumps(to_dict(card.model_config)),
        "task_config": json.dumps(to_dict(card.task_config)),
        "train_config": json.dumps(to_dict(card.train_config)),
        "problem": json.dumps(asdict(card.problem)),
        "meta": json.dumps(card.meta),
        "metrics": json.dumps(card.metrics),
        "versions": json.dumps(card.versions),
    }
    check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)  # what an export killed before this one left
    data = serialize(tensors, metadata=metadata)  # bytes: safetensors' own file writer leaves .tmp files on a kill
    try:
        write_bytes_atomically(path, data, fsync=True)
    except OSError as e:
        raise ZooError(f"could not write the export {path} ({e.strerror or e}); nothing was written there") from None
    return path


def weights_file(path: str | Path) -> Path:
    """The export a path stands for: the file itself, a run folder's export, or a run's name
    (MODEL-TASK: the newest run of that pair under checkpoints/ that has an export)."""
    from zoo.runs import Run, runs_of

    path = Path(path)
    if path.is_dir():
        run = Run(path)
        if not run.export_path.exists():
            raise ZooError(run.why_no_export())
        return run.export_path
    if not path.exists() and len(path.parts) == 1:
        runs = [run for run in reversed(runs_of(path.name)) if run.export_path.is_file()]
        if runs:
            return runs[0].export_path
    return path


def read_header(path: str | Path) -> tuple[dict[str, str], dict[str, Any]]:
    """(metadata, tensor entries) of a safetensors file, checked for truncation; torch is not needed."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{path}: no such file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(9)
        length = int.from_bytes(prefix[:8], "little")
        if len(prefix) < 9 or prefix[8:9] != b"{" or length > MAX_HEADER:
            raise ZooError(f"{path} is not a safetensors file")
        if 8 + length > size:
            raise ZooError(f"{path} is truncated: its header alone needs {8 + length} bytes, the file has {size}")
        try:
            header = json.loads(prefix[8:] + f.read(length - 1))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ZooError(f"{path} is not a safetensors file (its header is not JSON)") from None
    metadata = header.pop("__metadata__", None) or {}
    try:
        end = max((entry["data_offsets"][1] for entry in header.values()), default=0)
    except (TypeError, KeyError, IndexError):
        raise ZooError(f"{path} is not a safetensors file (malformed tensor entries)") from None
    if 8 + length + end > size:
        raise ZooError(f"{path} is truncated: it should hold {8 + length + end} bytes, it has {size}")
    return metadata, header


def read_card(path: str | Path, task_overrides: dict[str, str] | None = None) -> Card:
    """The card of an export, with its configs rebuilt through the installed plugins."""
    metadata, _ = read_header(path)
    if metadata.get("format") != FORMAT:
        raise ZooError(f"{path} is a safetensors file, but not one zoo exported (no '{FORMAT}' format tag)")
    reg = registry()
    try:
        model_name, task_name = metadata["model"], metadata["task"]
        fields = {key: json.loads(metadata[key]) for key in
                  ("model_config", "task_config", "train_config", "problem", "meta", "metrics", "versions")}
    except (KeyError, json.JSONDecodeError) as e:
        raise ZooError(f"{path} has damaged zoo metadata ({type(e).__name__}: {e})") from None
    for kind, name, known in (("model", model_name, reg.models), ("task", task_name, reg.tasks)):
        if name not in known:
            raise ZooError(f"{path} was trained with {kind} {name!r}, which no installed plugin provides "
                           f"(`zoo list` shows what is installed)")
    model, task = reg.models[model_name], reg.tasks[task_name]
    recorded = fields["task_config"]
    # files the export names are provenance, never followed: evaluating needs them given again
    sources = {k: recorded.pop(k) for k in path_fields(task.config) if isinstance(recorded, dict) and k in recorded}
    try:
        problem = Problem(**fields["problem"])
    except (TypeError, ValueError) as e:
        raise ZooError(f"{path} has damaged zoo metadata (problem: {e})") from None
    return Card(
        model=model_name,
        task=task_name,
        model_config=make_config(model.config, fields["model_config"], owner=f"{path}: model {model_name}"),
        task_config=make_config(task.config, fields["task_config"], task_overrides or {}, owner=f"task {task_name}"),
        train_config=make_config(TrainConfig, fields["train_config"], owner=f"{path}: training"),
        problem=problem,
        meta=fields["meta"],
        metrics=fields["metrics"],
        versions=fields["versions"],
        sources={k: v for k, v in sources.items() if v and k in path_fields(task.config, folders=False)},
    )


def load(path: str | Path, device: Any = "cpu", task_overrides: dict[str, str] | None = None):
    """Rebuild the model an export describes, load its weights and return it in eval mode.

    The returned module carries its Card as `.zoo` (names, configs, vocabulary, metrics).
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    card = read_card(path, task_overrides)
    spec = registry().get_model(card.model)
    with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten: leave the caller's RNG alone
        model = spec.build(card.model_config, card.problem)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ZooError(f"{path} cannot be read as safetensors: {e}") from None
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in tensors]
    problems += [f"unexpected {k}" for k in tensors if k not in expected]
    problems += [f"{k} is {tuple(tensors[k].shape)} in the file but {tuple(v.shape)} in the model"
                 for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise ZooError(f"{path}: the weights do not match the {card.model} architecture its metadata describes "
                       f"({shown})")
    model.load_state_dict(tensors)
    model.to(device).eval()
    model.zoo = card
    return model
