"""Settle a model/task pair before any data is loaded: look up both, build the configs, check the fit.

No torch here: `zoo train MODEL TASK --help` uses it to show a pair's hyperparameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from zoo.contract.config import applicable, make_config, route_overrides
from zoo.contract.registry import registry
from zoo.contract.specs import Fitted, Model, Task, TrainConfig, ZooError


@dataclass
class Plan:
    """A model/task pair with every hyperparameter settled, before any data is loaded."""

    model: Model
    task: Task
    model_config: Any
    task_config: Any
    train_config: TrainConfig
    note: str = ""  # the defaults fitted to the user's data (Task.fit_defaults), said when training starts


def plan(model_name: str, task_name: str, overrides: Sequence[str] | Mapping[str, Any] = (),
         saved: Mapping[str, Mapping[str, Any]] | None = None) -> Plan:
    """Look up both plugins, check they fit, and build the three configs.

    Precedence, lowest first: config defaults, the task's suggestions (model hidden size, epochs...),
    the defaults it fits to the user's data (`Task.fit_defaults`, not when resuming), the preset's
    settings, `saved` (the configs of a run being resumed: keys model, task, train),
    then `overrides` (`key=value` strings or a dict, keys optionally qualified as model./task./train.).
    """
    saved = saved or {}
    reg = registry()
    model, task = reg.get_model(model_name), reg.get_task(task_name)
    namespaces = {"model": (model.name, model.config), "task": (task.name, task.config),
                  "train": ("training", TrainConfig)}
    pairs = [f"{k}={v}" for k, v in overrides.items()] if isinstance(overrides, Mapping) else list(overrides)
    routed = route_overrides(pairs, namespaces)
    task_config = make_config(task.config, saved.get("task", {}), routed["task"], owner=task.name)
    fitted = task.fit_defaults(task_config) if task.fit_defaults is not None and not saved else None
    fit = fitted or Fitted("")
    if fitted:  # sized to the user's data: below the preset, the saved run and the options
        task_config = make_config(task.config, fit.task, routed["task"], owner=task.name)
    model_config = make_config(model.config, applicable(model.config, task.model_defaults),
                               applicable(model.config, fit.model), model.defaults, saved.get("model", {}),
                               routed["model"], owner=model.name)
    train_defaults = task.train_defaults(task_config) if callable(task.train_defaults) else task.train_defaults
    train_config = make_config(TrainConfig, train_defaults, fit.train, saved.get("train", {}), routed["train"],
                               owner="training")
    note = ""
    if fitted:
        kept = {**{k: v for k, v in applicable(model.config, fit.model).items()
                   if k not in model.defaults and k not in routed["model"]},
                **{k: v for k, v in fit.task.items() if k not in routed["task"]},
                **{k: v for k, v in fit.train.items() if k not in routed["train"]}}
        if kept:
            note = (f"defaults for this data: {' '.join(f'{k}={v}' for k, v in kept.items())} "
                    f"({fitted.rule}; options override)")
    shapes = model.supported_shapes(model_config)
    if task.shape not in shapes:
        does = " and ".join(shapes)
        if task.shape in model.supported_shapes():  # the overrides narrowed it (bidirectional=true, say)
            raise ZooError(f"with the settings given, model {model.name!r} does only {does}, and task "
                           f"{task.name!r} is {task.shape}")
        fits = ", ".join(reg.compatible_models(task)) or "none"
        raise ZooError(f"model {model.name!r} does not fit task {task.name!r}: the task is {task.shape}, the model "
                       f"does {does}; models that fit {task.name}: {fits}")
    return Plan(model, task, model_config, task_config, train_config, note)
