"""zoo: a plugin-style model zoo of recurrent neural networks.

The public API, which the `zoo` command line uses too::

    import zoo
    zoo.list_models("lstm*")           # registered models, wildcards allowed
    net = zoo.train("lstm", "charlm")  # train; the run and its export go to checkpoints/lstm-charlm/
    net = zoo.load("lstm-charlm")      # a run's name, folder or export: rebuilt from the file alone, eval mode

Everything a plugin needs is importable from here (the plugin API, `__all__`; the conformance kit
for a plugin's tests is `zoo.testing`). Importing zoo does not import torch: the names that need it
(splits, `fit`, ...) are loaded on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

from zoo.nn.cells import RecurrentConfig, build_cell, cell_models, torch_rnn_kwargs
from zoo.hookspecs import hookimpl
from zoo.contract import registry as _registry
from zoo.contract.specs import (BOS, EOS, MANY_TO_MANY, MANY_TO_ONE, PAD, SEQ2SEQ, SPECIAL_TOKENS, UNK, Card, Fitted,
                                Model, NoConfig, Problem, Task, TaskData, TrainConfig, ZooError, ZooWarning,
                                absolute_paths, param, require)

# The plugin API that needs torch or reads files: name -> the module that defines it, imported on
# first use so that `import zoo` (and `zoo list`) stays torch-free. docs/plugins.md has a line on each.
_LAZY = {name: module for module, names in {
    # splits the training loop draws batches from, and inference over them
    "zoo.loop.data": "TensorSplit Windows Streams PairSplit batched_outputs device_of encode",
    # files a task reads or writes, and downloads
    "zoo.store.files": "read_text read_bytes replace_atomically made_dirs remove_empty",
    "zoo.store.download": "fetch DownloadError data_root DATA_ENV",
    # configs, pictures, recurrent states
    "zoo.contract.config": "make_config applicable suggest",
    "zoo.store.plotting": "pyplot save_figure",
    "zoo.store.display": "progress",
    "zoo.nn.layers": "map_state Carry Dropout",
    # the one training loop, for a task that re-trains inside its evaluation (stock's backtest)
    "zoo.loop.training": "fit",
    # what each cell computed, step by step (zoo inspect), and the views a task's page is made of
    "zoo.nn.trace": "trace Trace",
    "zoo.front.inspect": "InspectExample View",
}.items() for name in names.split()}

__all__ = [
    "BOS", "EOS", "PAD", "SPECIAL_TOKENS", "UNK", "MANY_TO_MANY", "MANY_TO_ONE", "SEQ2SEQ", "Card", "Fitted", "Model",
    "NoConfig", "Problem", "RecurrentConfig", "Task", "TaskData", "TrainConfig", "ZooError", "ZooWarning", "build_cell",
    "cell_models",
    "get_model", "get_task", "hookimpl", "list_models", "list_tasks", "load", "param", "require",
    "torch_rnn_kwargs", "train", "absolute_paths", *_LAZY,
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
    from zoo.store.exports import load as _load
    from zoo.store.runs import export_of

    return _load(export_of(path).path, device)


def train(model: str, task: str, overrides=(), **options):
    """Train `model` on `task` (options: `zoo.loop.training.train`) and return the trained network."""
    from zoo.loop.training import train as _train

    return _train(model, task, overrides, **options)
