"""Settle a run before any data is loaded: look up the pair, build the configs, check the fit (`plan`),
and choose the run folder, the export and the state or weights it starts from (`fresh_start`,
`resumed_start`). The command line does this once and hands the `Start` to `zoo.loop.training.run`.

No torch here: `zoo train MODEL TASK --help` uses it to show a pair's hyperparameters, and every
mistake in the settings is answered before torch is imported.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from zoo.contract.config import applicable, make_config, path_fields, route_overrides, to_dict
from zoo.contract.registry import registry
from zoo.contract.specs import Card, Fitted, Model, Task, TrainConfig, ZooError
from zoo.store.runs import EXPORT, Run, check_out, run_base, run_to_replace, run_to_resume


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
    the defaults it fits to the config and data (`Task.fit_defaults`, not when resuming), the preset's
    settings, `saved` (the configs of a run being resumed, keys model, task, train; or of an export a
    run starts from, model and task),
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
    # the one hook for defaults that depend on the task's config or data; a resumed run keeps its own
    fitted = task.fit_defaults(task_config) if task.fit_defaults is not None and "train" not in saved else None
    fit = fitted or Fitted("")
    if fitted and fit.task:  # sized to the user's data: below the preset, the saved run and the options
        task_config = make_config(task.config, fit.task, saved.get("task", {}), routed["task"], owner=task.name)
    model_config = make_config(model.config, applicable(model.config, task.model_defaults),
                               applicable(model.config, fit.model), model.defaults, saved.get("model", {}),
                               routed["model"], owner=model.name)
    train_config = make_config(TrainConfig, task.train_defaults, fit.train, saved.get("train", {}), routed["train"],
                               owner="training")
    note = ""
    if fitted and fitted.rule:  # a rule of "" fits silently (defaults that follow the task's own settings)
        kept = {**{k: v for k, v in applicable(model.config, fit.model).items()
                   if k not in model.defaults and k not in routed["model"] and k not in saved.get("model", {})},
                **{k: v for k, v in fit.task.items() if k not in routed["task"] and k not in saved.get("task", {})},
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


@dataclass
class Start:
    """A run settled before torch is imported: its plan, its folder, its export, what it starts from."""

    plan: Plan
    run: Run | None  # the run continued, or the --run-dir folder a new run (re)makes; None: a new numbered one
    base: Path  # where a new numbered run goes (checkpoints/MODEL-TASK)
    export: Path | None  # where the export goes: --out, or (None) the run's own model.safetensors
    write: bool = True  # False: no run folder and no export (zoo.train(..., write=False))
    state: dict | None = None  # a resumed run: the JSON part of its state (the tensors are loaded with torch)
    init_from: Path | None = None  # a new run that starts from the weights of this export
    init_card: Card | None = None

    @property
    def resumed(self) -> bool:
        return self.state is not None

    @property
    def planned(self) -> int:
        """The epochs a resumed run was to train before this call."""
        return self.state["train_config"].get("epochs") if self.state else self.plan.train_config.epochs

    @property
    def extended(self) -> bool:
        return self.resumed and self.plan.train_config.epochs > self.planned

    def identity(self) -> dict:
        """What a run records of itself in its config.json and its state."""
        p = self.plan
        return {"model": p.model.name, "task": p.task.name, "model_config": to_dict(p.model_config),
                "task_config": to_dict(p.task_config), "train_config": to_dict(p.train_config)}

    def export_target(self) -> Path:
        """The file the export will be written to (for a new numbered run: the pair's base folder's)."""
        if self.export is not None:
            return self.export
        return (self.run.dir if self.run is not None else self.base) / EXPORT


@contextlib.contextmanager
def named(option: str) -> Iterator[None]:
    """Prefix the one-line errors raised inside with the option they came from."""
    try:
        yield
    except ZooError as e:
        if str(e).startswith(option):
            raise
        raise ZooError(f"{option} {e}") from None


def fresh_start(model: str, task: str, overrides: Sequence[str] | Mapping[str, Any] = (), *,
                run_dir: str | Path | None = None, overwrite: bool = False, init_from: str | Path | None = None,
                out: str | Path | None = None, write: bool = True) -> Start:
    """A new run: the plan (under an `init_from` export's architecture and task settings), its folder
    (`run_dir`, checked; else a new numbered one), and where the export goes (`out`, checked)."""
    from zoo.store.checkpoint import check_writable, read_card
    from zoo.store.runs import export_of

    init_card = None
    if init_from is not None:  # its architecture and task settings, under the options given
        with named("--init-from"):
            init_from = export_of(init_from).path
            init_card = read_card(init_from)
        if (init_card.model, init_card.task) != (model, task):
            raise ZooError(f"--init-from {init_from} is {init_card.model} on {init_card.task}: it can start "
                           f"{model} on {task} only if it is {model} on {task} too")
    settled = {"model": to_dict(init_card.model_config), "task": to_dict(init_card.task_config)} if init_card else None
    run = run_to_replace(run_dir, overwrite) if write else None
    p = plan(model, task, overrides, settled)
    start = Start(p, run, run_base(model, task), Path(out) if out is not None and write else None, write,
                  init_from=init_from, init_card=init_card)
    if write:
        if start.export is not None:
            inputs = {name: getattr(p.task_config, name) for name in path_fields(type(p.task_config))}
            check_out(start.export, run, inputs)
        check_writable(start.export_target())
    return start


def resumed_start(model: str, task: str, overrides: Sequence[str] | Mapping[str, Any] = (), *,
                  run_dir: str | Path | None = None, out: str | Path | None = None) -> Start:
    """Continue the run in `run_dir` (else the pair's newest): its own settings, the epochs extended if
    `overrides` asks; its state's JSON is checked against the folder here, its tensors when loaded."""
    from zoo.store.checkpoint import check_writable

    run = run_to_resume(model, task, run_dir)
    info = run.state_info()
    if (info["model"], info["task"]) != (model, task):
        raise ZooError(f"the state in {run.dir} is of {info['model']} on {info['task']}, not {model} on {task}")
    run.check_state_identity(info)
    saved = {"model": info["model_config"], "task": info["task_config"], "train": info["train_config"]}
    p = plan(model, task, overrides, saved)

    def then(ns: str, config, name: str):  # a setting newer than the run: it ran as the setting's default
        default = next((f.default for f in fields(config) if f.name == name), None)
        return saved[ns].get(name, default)

    changed = [f"{name} is {then(ns, config, name)!r} there, {value!r} here"
               for ns, config in (("model", p.model_config), ("task", p.task_config), ("train", p.train_config))
               for name, value in to_dict(config).items()
               if then(ns, config, name) != value and (ns, name) != ("train", "epochs")]
    if changed:
        raise ZooError(f"a resumed run keeps the settings it started with: {'; '.join(changed)}")
    start = Start(p, run, run_base(model, task), Path(out) if out is not None else run.export_path, state=info)
    done, planned = info["progress"]["epoch"] - 1, start.planned
    if p.train_config.epochs < planned:
        raise ZooError(f"the run in {run.dir} was to train {planned} epochs and has done {done}: a resumed "
                       f"run can be extended (--epochs above {planned}), not shortened")
    if info["status"] == "finished" and not start.extended and out is None and start.export.is_file():
        raise ZooError(f"the run in {run.dir} has finished its {planned} epochs and exported {start.export}: "
                       f"nothing to resume (--epochs N, N above {planned}, extends it)")
    check_writable(start.export)
    return start


def plan_run(model: str, task: str, overrides: Sequence[str] | Mapping[str, Any] = (), *, out=None, write=True,
             run_dir=None, resume=False, overwrite=False, init_from=None) -> Start:
    """The run `zoo.train` would make, settled without torch: the fresh or the resumed start."""
    if resume and overwrite:
        raise ZooError("--resume continues the run in the folder and --overwrite replaces it: give one of them")
    if resume and init_from is not None:
        raise ZooError("--init-from starts a new run; a resumed run continues from its own state")
    if resume:
        return resumed_start(model, task, overrides, run_dir=run_dir, out=out)
    return fresh_start(model, task, overrides, run_dir=run_dir, overwrite=overwrite, init_from=init_from, out=out,
                       write=write)
