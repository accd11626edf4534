"""zoo: a plugin-style model zoo of recurrent neural networks.

The public API, which the `zoo` command line uses too::

    import zoo
    zoo.list_models("lstm*")           # registered models, wildcards allowed
    net = zoo.train("lstm", "charlm")  # train, export to checkpoints/lstm-charlm.safetensors
    net = zoo.load("checkpoints/lstm-charlm.safetensors")  # rebuilt from the file alone, eval mode

Importing zoo does not import torch; training and loading do.
"""

from __future__ import annotations

__version__ = "0.1.0"

from zoo.cells import RecurrentConfig, build_cell, cell_models, torch_rnn_kwargs
from zoo.hookspecs import hookimpl
from zoo import registry as _registry
from zoo.specs import (BOS, EOS, MANY_TO_MANY, MANY_TO_ONE, PAD, SEQ2SEQ, SPECIAL_TOKENS, UNK, Card, Fitted, Model,
                       NoConfig, Problem, Task, TaskData, TrainConfig, ZooError, absolute_paths, param, require)

__all__ = [
    "BOS", "EOS", "PAD", "SPECIAL_TOKENS", "UNK", "MANY_TO_MANY", "MANY_TO_ONE", "SEQ2SEQ", "Card", "Fitted", "Model",
    "NoConfig", "Problem", "RecurrentConfig", "Task", "TaskData", "TrainConfig", "ZooError", "build_cell",
    "cell_models",
    "get_model", "get_task", "hookimpl", "list_models", "list_tasks", "load", "param", "require",
    "torch_rnn_kwargs", "train", "absolute_paths",
]


def list_models(pattern: str | None = None) -> list[Model]:
    """Registered models (presets included) whose names match the wildcard `pattern`, sorted by name."""
    models = _registry.registry().models
    return [models[name] for name in _registry.matching(models, pattern)]


def list_tasks(pattern: str | None = None) -> list[Task]:
    tasks = _registry.registry().tasks
    return [tasks[name] for name in _registry.matching(tasks, pattern)]


def get_model(name: str) -> Model:
    return _registry.registry().get_model(name)


def get_task(name: str) -> Task:
    return _registry.registry().get_task(name)


def load(path, device="cpu"):
    """The model an export (or a run folder's export) describes, with its weights, in eval mode; `.zoo`
    holds its Card."""
    from zoo.checkpoint import load as _load
    from zoo.checkpoint import weights_file

    return _load(weights_file(path), device)


def train(model: str, task: str, overrides=(), **options):
    """Train `model` on `task` (options: `zoo.training.train`) and return the trained network."""
    from zoo.training import train as _train

    return _train(model, task, overrides, **options)
