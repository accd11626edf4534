"""The conformance kit: zoo's contract with a plugin, as checks the plugin's own tests call.

    from zoo.testing import check_cell, check_task

    def test_my_cell_keeps_the_contract():
        check_cell(make_cell)                       # or check_cell(zoo.get_model("mgu"))

    def test_my_task_keeps_the_contract():
        check_task(my_task, settings={"samples": 64})   # small, fast data

Like scikit-learn's `check_estimator`: small named checks (`CELL_CHECKS`, `TASK_CHECKS`), each usable
on its own, each failing with one line, `CheckFailed("check_name: the rule broken")`. zoo runs the
kit on every built-in cell and task. It takes a few seconds per cell or task on a CPU.
"""

from __future__ import annotations

import functools
import json
import tempfile
import types
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

import zoo
from zoo.contract import registry as _registry
from zoo.nn.layers import recurrent

BATCH, TIME, INPUT, HIDDEN = 3, 5, 4, 6  # all different, so that a swapped dimension shows


class CheckFailed(AssertionError):
    """A rule of the plugin contract is broken; the message names the check and the rule."""


def ensure(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def check(function: Callable) -> Callable:
    """Name the check in its one-line failure, and turn a crash inside the plugin into one too."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except CheckFailed as e:
            raise CheckFailed(f"{function.__name__}: {e}") from None
        except Exception as e:
            raise CheckFailed(f"{function.__name__}: raised {_registry.error_line(e)}") from e

    return run


def quiet(line: str) -> None:
    pass


@contextmanager
def registered(models=(), tasks=()):
    """The registry with these models and tasks added if they are not there already (a plugin's tests
    run before, or without, its distribution being installed)."""
    current = _registry.registry()
    new_models = [m for m in models if m.name not in current.models or current.models[m.name].build is not m.build]
    new_tasks = [t for t in tasks if t.name not in current.tasks or current.tasks[t.name].data is not t.data]
    if not new_models and not new_tasks:
        yield current
        return
    reg = _registry.Registry(entry_points=False)
    module = types.ModuleType("zoo_testing_subject")
    module.register_models = zoo.hookimpl(lambda register: [register(m) for m in new_models])
    module.register_tasks = zoo.hookimpl(lambda register: [register(t) for t in new_tasks])
    reg.add(module, _registry.Plugin("zoo-testing", "zoo-testing", "kit", builtin=False))
    for kind, specs, known, own in (("model", new_models, reg.models, "build"), ("task", new_tasks, reg.tasks, "data")):
        for spec in specs:
            if spec.name not in known or getattr(known[spec.name], own) is not getattr(spec, own):
                raise CheckFailed(f"check_names: the {kind} name {spec.name!r} could not be registered: "
                                  f"{'; '.join(reg.warnings) or 'taken'}")
    saved, _registry._registry = _registry._registry, reg
    try:
        yield reg
    finally:
        _registry._registry = saved


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def states(h: Any) -> tuple:
    return tuple(h) if isinstance(h, (tuple, list)) else (h,)


# -- cells ---------------------------------------------------------------------------------------

@dataclass
class Cell:
    """A cell under test: its `make_cell`, whether it builds layers itself, its config class."""

    make_cell: Callable
    native_layers: bool = False
    config: type = zoo.RecurrentConfig
    name: str = "kit-cell"

    def settings(self, **changes) -> Any:
        return self.config(**{"hidden_size": HIDDEN, **changes})

    def build(self, seed: int = 0, **changes) -> torch.nn.Module:
        torch.manual_seed(seed)
        return recurrent(self.make_cell, self.settings(**changes), INPUT, self.native_layers)

    def models(self) -> list:
        return zoo.cell_models(self.name, "the cell under test", self.make_cell, native_layers=self.native_layers,
                               config=self.config)


def as_cell(subject: Any) -> Cell:
    if isinstance(subject, Cell):
        return subject
    if isinstance(subject, zoo.Model):
        if subject.cell is None:
            raise CheckFailed(f"check_cell: model {subject.name!r} is not a recurrent cell (its `cell` is None)")
        return Cell(subject.cell, subject.native_layers, subject.config)
    return Cell(subject)


def inputs(seed: int = 1) -> torch.Tensor:
    return torch.randn(BATCH, TIME, INPUT, generator=torch.Generator().manual_seed(seed))


def run_cell(module: torch.nn.Module, x: torch.Tensor, h0: Any = None):
    result = module(x, h0)
    ensure(isinstance(result, (tuple, list)) and len(result) == 2,
           f"cell(x, h0) must return a pair (out, h_n), got {type(result).__name__}")
    return result


@check
def check_output_shape(cell: Cell) -> None:
    """out is (batch, time, hidden): batch first, one output per step."""
    out, _ = run_cell(cell.build().eval(), inputs())
    ensure(isinstance(out, torch.Tensor), f"out must be a tensor, got {type(out).__name__}")
    ensure(tuple(out.shape) == (BATCH, TIME, HIDDEN),
           f"out must be (batch, time, hidden) = {(BATCH, TIME, HIDDEN)} for x {(BATCH, TIME, INPUT)}, "
           f"got {tuple(out.shape)}")


@check
def check_state_layout(cell: Cell) -> None:
    """h_n is (1, batch, hidden), or a tuple of such (LSTM-like): batch second, as torch.nn.RNN's."""
    _, h = run_cell(cell.build().eval(), inputs())
    for part in states(h):
        ensure(isinstance(part, torch.Tensor), f"h_n must be a tensor or a tuple of tensors, got {type(part).__name__}")
        shape = tuple(part.shape)
        ensure(not (shape[:1] == (BATCH,) and shape != (1, BATCH, HIDDEN)),
               f"h_n is {shape}, batch first: zoo's states are (layers*directions, batch, hidden) = "
               f"{(1, BATCH, HIDDEN)}, batch second, as torch.nn.RNN's")
        ensure(shape == (1, BATCH, HIDDEN), f"h_n must be (layers*directions, batch, hidden) = "
                                            f"{(1, BATCH, HIDDEN)}, got {shape}")


@check
def check_last_output_is_the_state(cell: Cell) -> None:
    """out[:, -1] equals h_n's hidden state (the first of a tuple), as torch's cells do."""
    out, h = run_cell(cell.build().eval(), inputs())
    ensure(close(out[:, -1], states(h)[0][-1]), "the last step's output must equal h_n (h_n[0] for a tuple state)")


@check
def check_initial_state(cell: Cell) -> None:
    """Reading x in two pieces, the second from the first's h_n, equals reading it whole (seq2seq steps cells)."""
    module, x = cell.build().eval(), inputs()
    whole, h = run_cell(module, x)
    first, h1 = run_cell(module, x[:, :2])
    second, h2 = run_cell(module, x[:, 2:], h1)
    ensure(close(torch.cat([first, second], 1), whole), "cell(x[:, 2:], h_n of x[:, :2]) must continue the "
                                                        "sequence: h0 is the state to start from")
    ensure(all(close(a, b) for a, b in zip(states(h2), states(h))), "the final state must not depend on how the "
                                                                    "sequence was split")


@check
def check_batch_first(cell: Cell) -> None:
    """Each example's output is its own: the batch is dimension 0 and examples never mix."""
    module, x = cell.build().eval(), inputs()
    out, _ = run_cell(module, x)
    for i in range(BATCH):
        alone, _ = run_cell(module, x[i: i + 1])
        ensure(close(alone[0], out[i]), f"example {i} gives another output alone than in the batch: read x as "
                                        f"(batch, time, input) and never mix examples")


@check
def check_causal(cell: Cell) -> None:
    """The output at step t does not depend on inputs after t (many-to-many tasks rely on it)."""
    module, x = cell.build().eval(), inputs()
    out, _ = run_cell(module, x)
    changed = x.clone()
    changed[:, 3:] += 1.0
    later, _ = run_cell(module, changed)
    ensure(close(later[:, :3], out[:, :3]), "the output at step t changed when inputs after t changed")


@check
def check_layers_and_directions(cell: Cell) -> None:
    """num_layers and bidirectional mean what they say: more layers, a backward half that reads the future."""
    x = inputs()
    one = sum(p.numel() for p in cell.build().parameters())
    two = sum(p.numel() for p in cell.build(num_layers=2).parameters())
    ensure(two > one, "num_layers=2 has no more parameters than 1: the -stacked preset would be one layer")
    module = cell.build(num_layers=2, bidirectional=True).eval()
    out, h = run_cell(module, x)
    ensure(tuple(out.shape) == (BATCH, TIME, 2 * HIDDEN),
           f"two layers, bidirectional: out must be (batch, time, 2*hidden) = {(BATCH, TIME, 2 * HIDDEN)}, "
           f"got {tuple(out.shape)}")
    for part in states(h):
        ensure(tuple(part.shape) == (4, BATCH, HIDDEN), f"two layers, bidirectional: h_n must be "
                                                        f"{(4, BATCH, HIDDEN)}, got {tuple(part.shape)}")
    module = cell.build(bidirectional=True).eval()  # one layer: its forward half sees no backward half
    out, _ = run_cell(module, x)
    changed = x.clone()
    changed[:, -1] += 1.0
    later, _ = run_cell(module, changed)
    ensure(not close(later[:, 0, HIDDEN:], out[:, 0, HIDDEN:]),
           "bidirectional: the backward half at step 0 must see the last step: the -bi preset reads one way")
    ensure(close(later[:, :-1, :HIDDEN], out[:, :-1, :HIDDEN]), "bidirectional: the forward half must stay causal")


@check
def check_gradients(cell: Cell) -> None:
    """Every parameter gets a finite gradient."""
    module = cell.build(num_layers=2)
    out, h = run_cell(module, inputs())
    (out.pow(2).sum() + sum(part.sum() for part in states(h))).backward()
    for name, parameter in module.named_parameters():
        ensure(parameter.grad is not None, f"parameter {name} gets no gradient")
        ensure(bool(torch.isfinite(parameter.grad).all()), f"parameter {name} has a non-finite gradient")


@check
def check_deterministic(cell: Cell) -> None:
    """The same seed builds the same weights, and the same input gives the same output."""
    a, b = cell.build(seed=3).eval(), cell.build(seed=3).eval()
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        ensure(torch.equal(p, q), f"{name} differs between two builds under one seed: draw weights from torch's "
                                  f"generator")
    x = inputs()
    ensure(torch.equal(run_cell(a, x)[0], run_cell(b, x)[0]), "two identical builds give different outputs")


def tiny_regression(samples: int = 64):
    """x (samples, TIME, INPUT); the target is the sum of the first feature over the steps."""
    x = torch.randn(samples, TIME, INPUT, generator=torch.Generator().manual_seed(2))
    return x, x[..., 0].sum(1, keepdim=True)


@check
def check_trains(cell: Cell) -> None:
    """A short training run (many-to-one regression through zoo's network) lowers the loss."""
    from zoo.nn.cells import build_recurrent_net

    torch.manual_seed(0)
    problem = zoo.Problem(zoo.MANY_TO_ONE, output_size=1, input_size=INPUT, regression=True)
    net = build_recurrent_net(cell.make_cell, cell.native_layers, cell.settings(hidden_size=16), problem)
    x, y = tiny_regression()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.mse_loss(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    ensure(losses[-1] < 0.7 * losses[0], f"40 Adam steps took the loss from {losses[0]:.4f} to {losses[-1]:.4f} "
                                         f"only: the cell does not learn")


def kit_task() -> zoo.Task:
    """The kit's own many-to-one regression, so that a cell can be trained, exported and loaded."""

    def data(config, meta):
        from zoo.loop.data import TensorSplit

        problem = zoo.Problem(zoo.MANY_TO_ONE, output_size=1, input_size=INPUT, regression=True)
        return zoo.TaskData(problem, train=TensorSplit(*tiny_regression()), meta={"kit": True})

    def evaluate(model, task_data, split):
        from zoo.loop.data import batched_outputs

        errors = [(out - y).pow(2).mean().item() for out, y in batched_outputs(model, task_data.split(split))]
        return {"mse": sum(errors) / len(errors)}

    return zoo.Task("kit-sum", "the conformance kit's regression", zoo.MANY_TO_ONE, data=data, evaluate=evaluate,
                    train_defaults={"epochs": 1, "batch_size": 16, "lr": 0.01}, metric="mse", minimize=True)


@check
def check_export_load(cell: Cell) -> None:
    """Export, then zoo.load: the same outputs exactly, for the plain model and its presets."""
    with registered(cell.models(), [kit_task()]), tempfile.TemporaryDirectory() as folder:
        for name in (cell.name, f"{cell.name}-stacked", f"{cell.name}-bi"):
            path = Path(folder) / f"{name}.safetensors"
            net = zoo.train(name, "kit-sum", {"hidden_size": HIDDEN}, out=path, run_dir=Path(folder) / name,
                            device="cpu", log=quiet)
            loaded = zoo.load(path)
            x = inputs()
            with torch.no_grad():
                ensure(torch.equal(net(x), loaded(x)), f"{name}: the loaded export gives other outputs")


CELL_CHECKS = (check_output_shape, check_state_layout, check_last_output_is_the_state, check_initial_state,
               check_batch_first, check_causal, check_layers_and_directions, check_gradients, check_deterministic,
               check_trains, check_export_load)


def check_cell(make_cell: Any, *, native_layers: bool = False, config: type = zoo.RecurrentConfig,
               checks: tuple = CELL_CHECKS) -> None:
    """Run every cell check on `make_cell` (or a registered cell model); the first failure raises CheckFailed."""
    cell = as_cell(make_cell) if isinstance(make_cell, (zoo.Model, Cell)) else Cell(make_cell, native_layers, config)
    for run in checks:
        run(cell)


# -- tasks ---------------------------------------------------------------------------------------

@dataclass
class TaskCase:
    task: zoo.Task
    settings: dict
    model: str

    def plan(self, **extra):
        from zoo.loop.plan import plan

        return plan(self.model, self.task.name, {"hidden_size": 16, **self.settings, **extra})

    def data(self, meta=None):
        p = self.plan()
        return p, p.task.data(p.task_config, meta)


def default_model(task: zoo.Task) -> str:
    """A registered model that fits the task's shape (the core names no built-in plugin): plain
    networks before composites (those without a recurrent cell, as seq2seq), then by name."""
    fitting = [m for m in zoo.list_models() if task.shape in m.supported_shapes() and not m.defaults]
    if not fitting:
        raise zoo.ZooError(f"no registered model fits task {task.name!r} ({task.shape})")
    return min(fitting, key=lambda m: (m.cell is None, m.name)).name


def forward(net, inputs):
    return net(*inputs) if isinstance(inputs, tuple) else net(inputs)


def first_batch(split, size: int = 4):
    return split.batch(torch.arange(min(size, len(split))))


@check
def check_data(case: TaskCase) -> None:
    """data(config, None) returns a zoo.TaskData whose problem has the task's shape and a non-empty train split."""
    _, data = case.data()  # the unchecked call: each rule is a line of its own here
    ensure(isinstance(data, zoo.TaskData), f"data() must return zoo.TaskData, got {type(data).__name__}")
    ensure(isinstance(data.problem, zoo.Problem), f"TaskData.problem must be zoo.Problem, got "
                                                  f"{type(data.problem).__name__}")
    ensure(data.problem.shape == case.task.shape, f"the task is {case.task.shape} but its data's problem is "
                                                  f"{data.problem.shape}")
    ensure(data.train is not None, "data() returned no train split (TaskData.train is None)")
    ensure(len(data.train) > 0, "the train split is empty")


@check
def check_meta_round_trip(case: TaskCase) -> None:
    """meta is JSON (it travels in exports) and data(config, meta) rebuilds the same problem from it."""
    p, data = case.data()
    try:
        meta = json.loads(json.dumps(data.meta))
    except (TypeError, ValueError) as e:
        raise CheckFailed(f"TaskData.meta must be JSON-serializable: {e}") from None
    again = p.task.data(p.task_config, meta)
    ensure(again.problem == data.problem, "data(config, meta of an export) must give the same problem")


def expected_batch(problem: zoo.Problem, inputs, targets, size: int) -> None:
    if problem.shape == zoo.SEQ2SEQ:
        ensure(isinstance(inputs, tuple) and len(inputs) == 3,
               "seq2seq batches are ((source, source_lengths, target_in), targets)")
        source, lengths, target_in = inputs
        ensure(source.dtype == torch.long and source.shape[0] == size and tuple(lengths.shape) == (size,),
               f"seq2seq source must be token ids (batch, steps) with lengths (batch,), got {tuple(source.shape)} "
               f"and {tuple(lengths.shape)}")
        ensure(tuple(targets.shape) == tuple(target_in.shape), "seq2seq targets must be as long as target_in")
        return
    ensure(isinstance(inputs, torch.Tensor), f"inputs must be a tensor, got {type(inputs).__name__}")
    ensure(inputs.shape[0] == size, f"inputs must be batch first: {size} examples asked, inputs are "
                                    f"{tuple(inputs.shape)}")
    if problem.vocab_size:
        ensure(inputs.dim() == 2 and inputs.dtype == torch.long, f"token inputs must be (batch, time) ids, got "
                                                                 f"{tuple(inputs.shape)} {inputs.dtype}")
        ensure(int(inputs.min()) >= 0 and int(inputs.max()) < problem.vocab_size, "token ids outside the vocabulary")
    else:
        ensure(inputs.dim() == 3 and inputs.shape[2] == problem.input_size and inputs.is_floating_point(),
               f"inputs must be (batch, time, input_size={problem.input_size}) floats, got {tuple(inputs.shape)} "
               f"{inputs.dtype}")
    steps = inputs.shape[1]
    width = problem.output_size if problem.regression else 1
    expected = size * width * (steps if problem.shape == zoo.MANY_TO_MANY else 1)
    ensure(targets.shape[0] == size and targets.numel() == expected,
           f"{problem.shape} targets for {size} examples of {steps} steps must hold {expected} values, batch first; "
           f"got {tuple(targets.shape)}")


@check
def check_batches(case: TaskCase) -> None:
    """Every split: len(), batch(index) -> (inputs, targets) batch first, with the problem's sizes, and to()."""
    _, data = case.data()
    for name in ("train", "val", "test"):
        split = getattr(data, name)
        if split is None:
            continue
        size = min(3, len(split))
        inputs, targets = first_batch(split, size)
        expected_batch(data.problem, inputs, targets, size)
        ensure(len(split.to("cpu")) == len(split), f"{name}.to(device) must keep every example")


@check
def check_evaluate(case: TaskCase) -> None:
    """evaluate(model, data, split) returns numbers, the headline metric among them."""
    p, data = case.data()
    torch.manual_seed(0)
    net = p.model.build(p.model_config, data.problem)
    metrics = p.task.evaluate(net, data, data.report_split)
    ensure(isinstance(metrics, dict), f"evaluate() must return a dict, got {type(metrics).__name__}")
    ensure(isinstance(metrics.get(p.task.metric), (int, float)),
           f"evaluate() must return the headline metric {p.task.metric!r} as a number; got keys {sorted(metrics)}")


@check
def check_trains(case: TaskCase) -> None:
    """A short training run on one batch lowers the loss (data, model and loss fit together)."""
    from zoo.loop.training import loss_function

    p, data = case.data()
    torch.manual_seed(0)
    net = p.model.build(p.model_config, data.problem)
    inputs, targets = first_batch(data.train, 16)
    loss_of, optimizer = loss_function(data.problem), torch.optim.Adam(net.parameters(), lr=0.01)
    losses = []
    for _ in range(30):
        loss = loss_of(forward(net, inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    ensure(losses[-1] < losses[0], f"30 Adam steps on one batch did not lower the loss ({losses[0]:.4f} -> "
                                   f"{losses[-1]:.4f})")


@check
def check_export_load(case: TaskCase) -> None:
    """Train briefly, export, zoo.load: identical outputs and metrics, data rebuilt from the export's meta."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "kit.safetensors"
        overrides = {"hidden_size": 16, **case.settings, "epochs": 1}
        net = zoo.train(case.model, case.task.name, overrides, out=path, run_dir=Path(folder) / "run", device="cpu",
                        log=quiet)
        loaded = zoo.load(path)
        # an export never follows the files its task read (its task_config has them at their defaults):
        # the data comes from the settings given here, encoded with the export's meta
        data = case.task.data(net.zoo.task_config, loaded.zoo.meta)
        inputs, _ = first_batch(data.train)
        with torch.no_grad():
            ensure(torch.equal(forward(net, inputs), forward(loaded, inputs)), "the loaded export gives other outputs")
        split = data.report_split
        again = {"split": split, **case.task.evaluate(loaded, data, split)}
        ensure(again == net.zoo.metrics, f"metrics of the loaded export {again} differ from the trained model's "
                                         f"{net.zoo.metrics}")


@check
def check_deterministic(case: TaskCase) -> None:
    """The same settings and seed give the same data and the same trained weights."""
    (x, y), (u, v) = (first_batch(case.data()[1].train) for _ in range(2))
    x, u = (x if isinstance(x, tuple) else (x,)), (u if isinstance(u, tuple) else (u,))
    ensure(all(torch.equal(p, q) for p, q in zip(x, u)) and torch.equal(y, v),
           "two calls of data() with one config give different batches")
    overrides = {"hidden_size": 16, **case.settings, "epochs": 1}
    nets = [zoo.train(case.model, case.task.name, overrides, out=False, device="cpu", log=quiet) for _ in range(2)]
    for (name, p), (_, q) in zip(nets[0].state_dict().items(), nets[1].state_dict().items()):
        ensure(torch.equal(p, q), f"two runs under one seed end with different {name}")


@check
def check_padding(case: TaskCase) -> None:
    """seq2seq: each pair in a padded batch gets the logits it gets alone."""
    if case.task.shape != zoo.SEQ2SEQ:
        return
    p, data = case.data()
    torch.manual_seed(0)
    net = p.model.build(p.model_config, data.problem).eval()
    split = data.train
    (source, lengths, target_in), targets = first_batch(split, 8)
    with torch.no_grad():
        together = net(source, lengths, target_in)
        for i in range(len(lengths)):
            (s, n, t), y = split.batch(torch.tensor([i]))
            alone = net(s, n, t)
            real = y[0] != -100
            ensure(close(alone[0][real], together[i, : t.shape[1]][real]),
                   f"pair {i} gets other logits in a padded batch than alone: padding leaks into the result")


TASK_CHECKS = (check_data, check_meta_round_trip, check_batches, check_evaluate, check_trains, check_export_load,
               check_deterministic, check_padding)


def check_task(task: zoo.Task | str, settings: dict | None = None, *, model: str | None = None,
               checks: tuple = TASK_CHECKS) -> None:
    """Run every task check on `task` (a zoo.Task or a registered name) with `settings` for small data,
    trained with `model` (default: gru, or seq2seq for seq2seq tasks); the first failure raises CheckFailed."""
    spec = zoo.get_task(task) if isinstance(task, str) else task
    with registered(tasks=[spec]):
        case = TaskCase(spec, dict(settings or {}), model or default_model(spec))
        for run in checks:
            run(case)
