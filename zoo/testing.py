"""The conformance kit: zoo's contract with a plugin, as checks the plugin's own tests call.

    from zoo.testing import check_cell, check_task

    def test_my_cell_keeps_the_contract():
        check_cell(make_cell)                       # or check_cell(zoo.get_model("mgu")), or "mgu"

    def test_my_task_keeps_the_contract():
        check_task(my_task, settings={"samples": 64})   # small, fast data

Like scikit-learn's `check_estimator`: small checks named for the rule they check, each usable on its
own (`check_causal(make_cell)`, `check_task_export_reloads(task, settings)`) and failing with one line,
`CheckFailed("check_name: the rule broken")`. `check_cell` and `check_task` run every check and report
every one that fails, a line each. Like `parametrize_with_checks`, each check can be a pytest item of
its own:

    @parametrize_cell_checks([make_cell])
    def test_my_cell(cell, check):
        check(cell)

    @parametrize_task_checks([my_task])
    def test_my_task(task, check):
        check(task, {"samples": 64})

Every check is in one of two lists, `CELL_CHECKS` and `TASK_CHECKS`, at the end of its section: a new
check is a `@cell_check` or `@task_check` function added to one. zoo runs the kit on every built-in
cell and task. It takes a few seconds per cell or task on a CPU.
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
    """A rule of the plugin contract is broken; the message names the check and the rule. From
    check_cell and check_task: a line per failed check, and `failures`, a list of (check, message)."""

    failures: tuple | list = ()
    skipped: tuple | list = ()


class NotApplicable(Exception):
    """The check has no rule for this subject (a seq2seq check on a many-to-one task): check_cell and
    check_task pass over it, and a pytest item of it is skipped."""


def ensure(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def named(function: Callable, subject: Callable, needs: tuple = ()) -> Callable:
    """A check usable on its own: it takes what the user has (a `make_cell`, a registered name, a
    zoo.Task, ...), which `subject` turns into what the check reads; its failure is one line naming the
    check, and a crash inside the plugin becomes one too. `needs`: the checks whose rules this one
    relies on; when one of those fails, `check_cell`/`check_task` report that one and skip this."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        with subject(*args, **kwargs) as under_test:  # a subject that cannot be checked says so itself
            try:
                return function(under_test)
            except (CheckFailed, NotApplicable) as e:
                raise type(e)(f"{function.__name__}: {e}") from None
            except Exception as e:
                raise CheckFailed(f"{function.__name__}: raised {_registry.error_line(e)}") from e

    run.needs = needs
    return run


def run_checks(checks: list, *args, **kwargs) -> None:
    """Run every check on one subject and raise one CheckFailed listing every failure, a line each
    (the first first); a check whose prerequisite (`needs`) failed is skipped, not reported."""
    failures, skipped = [], []
    for run in checks:
        if any(need in skipped or need in dict(failures) for need in run.needs):
            skipped.append(run.__name__)
            continue
        try:
            run(*args, **kwargs)
        except CheckFailed as e:
            failures.append((run.__name__, str(e)))
        except NotApplicable:
            pass
    if failures:
        lines = [message for _, message in failures]
        if len(failures) > 1:
            lines.append(f"({len(failures)} of {len(checks)} checks failed"
                         + (f"; {len(skipped)} skipped, as they need a failed one)" if skipped else ")"))
        error = CheckFailed("\n".join(lines))
        error.failures, error.skipped = failures, skipped
        raise error


def parametrize(argnames: str, subjects, checks: list):
    """pytest.mark.parametrize over every (subject, check) pair, each a test item of its own, with ids
    such as `gru-check_causal`."""
    import pytest

    def skipping(run):
        @functools.wraps(run)
        def item(*args, **kwargs):
            try:
                return run(*args, **kwargs)
            except NotApplicable as e:
                pytest.skip(str(e))

        return item

    pairs = [(subject, skipping(run)) for subject in list(subjects) for run in checks]
    return pytest.mark.parametrize(argnames, pairs, ids=[f"{label(s)}-{run.__name__}" for s, run in pairs])


def label(subject: Any) -> str:
    for attribute in ("name", "__name__"):
        if isinstance(getattr(subject, attribute, None), str):
            return getattr(subject, attribute)
    return str(subject)


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
class CellUnderTest:
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


def as_cell(subject: Any, native_layers: bool = False, config: type = zoo.RecurrentConfig) -> CellUnderTest:
    """A `make_cell(config, input_size)`, a registered cell model or its name, as a cell under test."""
    if isinstance(subject, CellUnderTest):
        return subject
    if isinstance(subject, str):
        subject = zoo.get_model(subject)
    if isinstance(subject, zoo.Model):
        if subject.cell is None:
            raise CheckFailed(f"check_cell: model {subject.name!r} is not a recurrent cell (its `cell` is None)")
        return CellUnderTest(subject.cell, subject.native_layers, subject.config)
    return CellUnderTest(subject, native_layers, config)


@contextmanager
def a_cell(subject: Any, *, native_layers: bool = False, config: type = zoo.RecurrentConfig):
    yield as_cell(subject, native_layers, config)


def cell_check(function: Callable) -> Callable:
    """A cell check: `check(make_cell, native_layers=False, config=RecurrentConfig)`, or a registered
    cell model or its name; one line naming the check when the rule is broken."""
    return named(function, a_cell)


def inputs(seed: int = 1) -> torch.Tensor:
    return torch.randn(BATCH, TIME, INPUT, generator=torch.Generator().manual_seed(seed))


def call_cell(module: torch.nn.Module, x: torch.Tensor, h0: Any = None):
    result = module(x, h0)
    ensure(isinstance(result, (tuple, list)) and len(result) == 2,
           f"cell(x, h0) must return a pair (out, h_n), got {type(result).__name__}")
    return result


@cell_check
def check_output_shape(cell: CellUnderTest) -> None:
    """out is (batch, time, hidden): batch first, one output per step."""
    out, _ = call_cell(cell.build().eval(), inputs())
    ensure(isinstance(out, torch.Tensor), f"out must be a tensor, got {type(out).__name__}")
    ensure(tuple(out.shape) == (BATCH, TIME, HIDDEN),
           f"out must be (batch, time, hidden) = {(BATCH, TIME, HIDDEN)} for x {(BATCH, TIME, INPUT)}, "
           f"got {tuple(out.shape)}")


@cell_check
def check_state_layout(cell: CellUnderTest) -> None:
    """h_n is (1, batch, hidden), or a tuple of such (LSTM-like): batch second, as torch.nn.RNN's."""
    _, h = call_cell(cell.build().eval(), inputs())
    for part in states(h):
        ensure(isinstance(part, torch.Tensor), f"h_n must be a tensor or a tuple of tensors, got {type(part).__name__}")
        shape = tuple(part.shape)
        ensure(not (shape[:1] == (BATCH,) and shape != (1, BATCH, HIDDEN)),
               f"h_n is {shape}, batch first: zoo's states are (layers*directions, batch, hidden) = "
               f"{(1, BATCH, HIDDEN)}, batch second, as torch.nn.RNN's")
        ensure(shape == (1, BATCH, HIDDEN), f"h_n must be (layers*directions, batch, hidden) = "
                                            f"{(1, BATCH, HIDDEN)}, got {shape}")


@cell_check
def check_last_output_is_the_state(cell: CellUnderTest) -> None:
    """out[:, -1] equals h_n's hidden state (the first of a tuple), as torch's cells do."""
    out, h = call_cell(cell.build().eval(), inputs())
    ensure(close(out[:, -1], states(h)[0][-1]), "the last step's output must equal h_n (h_n[0] for a tuple state)")


@cell_check
def check_initial_state(cell: CellUnderTest) -> None:
    """Reading x in two pieces, the second from the first's h_n, equals reading it whole (seq2seq steps cells)."""
    module, x = cell.build().eval(), inputs()
    whole, h = call_cell(module, x)
    first, h1 = call_cell(module, x[:, :2])
    second, h2 = call_cell(module, x[:, 2:], h1)
    ensure(close(torch.cat([first, second], 1), whole), "cell(x[:, 2:], h_n of x[:, :2]) must continue the "
                                                        "sequence: h0 is the state to start from")
    ensure(all(close(a, b) for a, b in zip(states(h2), states(h))), "the final state must not depend on how the "
                                                                    "sequence was split")


@cell_check
def check_batch_first(cell: CellUnderTest) -> None:
    """Each example's output is its own: the batch is dimension 0 and examples never mix."""
    module, x = cell.build().eval(), inputs()
    out, _ = call_cell(module, x)
    for i in range(BATCH):
        alone, _ = call_cell(module, x[i: i + 1])
        ensure(close(alone[0], out[i]), f"example {i} gives another output alone than in the batch: read x as "
                                        f"(batch, time, input) and never mix examples")


@cell_check
def check_causal(cell: CellUnderTest) -> None:
    """The output at step t does not depend on inputs after t (many-to-many tasks rely on it)."""
    module, x = cell.build().eval(), inputs()
    out, _ = call_cell(module, x)
    changed = x.clone()
    changed[:, 3:] += 1.0
    later, _ = call_cell(module, changed)
    ensure(close(later[:, :3], out[:, :3]), "the output at step t changed when inputs after t changed")


@cell_check
def check_layers_and_directions(cell: CellUnderTest) -> None:
    """num_layers and bidirectional mean what they say: more layers, a backward half that reads the future."""
    x = inputs()
    one = sum(p.numel() for p in cell.build().parameters())
    two = sum(p.numel() for p in cell.build(num_layers=2).parameters())
    ensure(two > one, "num_layers=2 has no more parameters than 1: the -stacked preset would be one layer")
    module = cell.build(num_layers=2, bidirectional=True).eval()
    out, h = call_cell(module, x)
    ensure(tuple(out.shape) == (BATCH, TIME, 2 * HIDDEN),
           f"two layers, bidirectional: out must be (batch, time, 2*hidden) = {(BATCH, TIME, 2 * HIDDEN)}, "
           f"got {tuple(out.shape)}")
    for part in states(h):
        ensure(tuple(part.shape) == (4, BATCH, HIDDEN), f"two layers, bidirectional: h_n must be "
                                                        f"{(4, BATCH, HIDDEN)}, got {tuple(part.shape)}")
    module = cell.build(bidirectional=True).eval()  # one layer: its forward half sees no backward half
    out, _ = call_cell(module, x)
    changed = x.clone()
    changed[:, -1] += 1.0
    later, _ = call_cell(module, changed)
    ensure(not close(later[:, 0, HIDDEN:], out[:, 0, HIDDEN:]),
           "bidirectional: the backward half at step 0 must see the last step: the -bi preset reads one way")
    ensure(close(later[:, :-1, :HIDDEN], out[:, :-1, :HIDDEN]), "bidirectional: the forward half must stay causal")


@cell_check
def check_gradients(cell: CellUnderTest) -> None:
    """Every parameter gets a finite gradient."""
    module = cell.build(num_layers=2)
    out, h = call_cell(module, inputs())
    (out.pow(2).sum() + sum(part.sum() for part in states(h))).backward()
    for name, parameter in module.named_parameters():
        ensure(parameter.grad is not None, f"parameter {name} gets no gradient")
        ensure(bool(torch.isfinite(parameter.grad).all()), f"parameter {name} has a non-finite gradient")


@cell_check
def check_cell_deterministic(cell: CellUnderTest) -> None:
    """The same seed builds the same weights, and the same input gives the same output."""
    a, b = cell.build(seed=3).eval(), cell.build(seed=3).eval()
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        ensure(torch.equal(p, q), f"{name} differs between two builds under one seed: draw weights from torch's "
                                  f"generator")
    x = inputs()
    ensure(torch.equal(call_cell(a, x)[0], call_cell(b, x)[0]), "two identical builds give different outputs")


def tiny_regression(samples: int = 64):
    """x (samples, TIME, INPUT); the target is the sum of the first feature over the steps."""
    x = torch.randn(samples, TIME, INPUT, generator=torch.Generator().manual_seed(2))
    return x, x[..., 0].sum(1, keepdim=True)


@cell_check
def check_cell_learns(cell: CellUnderTest) -> None:
    """40 Adam steps of a small many-to-one regression through zoo's network lower the loss by 30%."""
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


@cell_check
def check_cell_export_reloads(cell: CellUnderTest) -> None:
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


# One export check: a cell exports to ONNX with its time axis dynamic (zoo export --format onnx).
@cell_check
def check_onnx_export(cell: CellUnderTest) -> None:
    """The cell's networks (plain, -stacked, -bi; token and feature inputs) export to ONNX and run in
    onnxruntime as in PyTorch to 1e-5 at batches 1 and 3 and every length in `lengths`, whole or one
    step at a time: the time axis is never frozen. A bidirectional network of a cell stepped in Python
    may be refused, in one ZooError line; any other refusal fails. Not applicable without the optional
    onnx and onnxruntime packages (`pip install "rnn-zoo[onnx]"`)."""
    import importlib.util

    if not all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime")):
        raise NotApplicable("needs the onnx extra: pip install onnx onnxruntime")
    from zoo.store.onnx_net import in_memory, parity

    lengths = (1, 7, 33)
    tokens = zoo.Problem(zoo.MANY_TO_MANY, output_size=5, vocab_size=7)
    features = zoo.Problem(zoo.MANY_TO_ONE, output_size=3, input_size=INPUT)
    with registered(cell.models()):
        for name in (cell.name, f"{cell.name}-stacked", f"{cell.name}-bi"):
            spec = zoo.get_model(name)
            for problem in (tokens, features):
                config = spec.config(**{**spec.defaults, "hidden_size": HIDDEN})
                if problem.shape not in spec.supported_shapes(config):
                    continue
                torch.manual_seed(0)
                net = spec.build(config, problem).eval()
                try:
                    exported = in_memory(net, problem)
                except zoo.ZooError as e:
                    ensure(name.endswith("-bi") and not cell.native_layers,
                           f"{name} ({problem.shape}) is refused: {e}")
                    continue
                problems = parity(net, exported, problem, lengths=lengths)
                ensure(not problems, f"{name} ({problem.shape}, {exported.layout['kind']} graph): "
                                     f"{'; '.join(problems[:3])}")


@cell_check
def check_variable_length(cell: CellUnderTest) -> None:
    """In a right-padded batch with lengths, each sequence gets the logits it gets alone,
    whatever its padding holds, through zoo's many-to-one network, stacked and bidirectional too."""
    from zoo.nn.cells import build_recurrent_net

    lengths = torch.tensor([TIME, 2, 1, TIME - 1])
    x = torch.randn(len(lengths), TIME, INPUT, generator=torch.Generator().manual_seed(4))
    junk = x.clone()
    past = torch.arange(TIME)[None, :] >= lengths[:, None]
    junk[past] = 1e3  # padding that would show in any result it leaked into
    x[past] = 0.0
    problem = zoo.Problem(zoo.MANY_TO_ONE, output_size=3, input_size=INPUT)
    for changes in ({}, {"num_layers": 2}, {"bidirectional": True}, {"num_layers": 2, "bidirectional": True}):
        torch.manual_seed(0)
        net = build_recurrent_net(cell.make_cell, cell.native_layers, cell.settings(**changes), problem).eval()
        with torch.no_grad():
            together, leaked = net(x, None, lengths), net(junk, None, lengths)
            for i, n in enumerate(lengths.tolist()):
                alone = net(x[i: i + 1, :n])[0]
                ensure(close(together[i], alone), f"{changes or 'one layer'}: sequence {i} of length {n} gets "
                                                  f"other logits in a padded batch than alone")
                ensure(close(leaked[i], alone), f"{changes or 'one layer'}: sequence {i} of length {n} changes "
                                                f"with what its padding holds: padding leaks into the result")


@cell_check
def check_internals(cell: CellUnderTest) -> None:
    """zoo.trace of the cell, alone, stacked and bidirectional: it does not change the outputs; every layer
    and direction gives named (batch, time, hidden) tensors whose "h" is what the cell output; a cell's
    own `internals(x, h0)` (optional) are finite, and those its `gates` names lie in [0, 1]."""
    from zoo.nn.trace import trace

    for changes in ({}, {"num_layers": 2, "bidirectional": True}):
        net = cell.build(**changes).eval()
        x = inputs()
        with torch.no_grad():
            out = call_cell(net, x)[0]
        found = trace(net, x)
        ensure(torch.equal(found.output[0], out), "tracing changed the cell's outputs")
        layers, directions = changes.get("num_layers", 1), 2 if changes.get("bidirectional") else 1
        ensure(len(found.layers) == layers * directions,
               f"the trace has {len(found.layers)} layers x directions for {layers} x {directions}")
        for layer in found.layers:
            for name, value in layer.tensors.items():
                ensure(isinstance(value, torch.Tensor) and tuple(value.shape) == (BATCH, TIME, HIDDEN),
                       f"{layer.name}: internal {name!r} must be (batch, time, hidden) = {(BATCH, TIME, HIDDEN)}, "
                       f"got {tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__}")
                ensure(bool(torch.isfinite(value).all()), f"{layer.name}: internal {name!r} is not finite")
            for gate in layer.gates:
                ensure(gate in layer.tensors, f"{layer.name}: the cell names gate {gate!r} but gives no such internal")
                value = layer.tensors[gate]
                ensure(bool(((value >= 0) & (value <= 1)).all()), f"{layer.name}: gate {gate!r} leaves [0, 1]")
        top = torch.cat([la.tensors["h"] for la in found.layers if la.layer == layers - 1], -1)
        ensure(close(top, out), "the top layer's traced h (both directions) differs from the cell's outputs: "
                                "its internals(x, h0) do not step as its forward does")


# Every cell check, in the order check_cell runs them. A new check is a @cell_check function above,
# listed here.
CELL_CHECKS = [
    check_output_shape,
    check_state_layout,
    check_last_output_is_the_state,
    check_initial_state,
    check_batch_first,
    check_causal,
    check_layers_and_directions,
    check_gradients,
    check_cell_deterministic,
    check_cell_learns,
    check_cell_export_reloads,
    check_onnx_export,
    check_variable_length,
    check_internals,
]


def check_cell(make_cell: Any, *, native_layers: bool = False, config: type = zoo.RecurrentConfig,
               checks: list | None = None) -> None:
    """Run every cell check (or `checks`) on `make_cell`, a registered cell model or its name; one
    CheckFailed reports every check that failed, a line each."""
    run_checks(CELL_CHECKS if checks is None else checks, as_cell(make_cell, native_layers, config))


def cell_checks(make_cell: Any, *, native_layers: bool = False, config: type = zoo.RecurrentConfig) -> list:
    """(name, check) pairs, each check a callable of no arguments bound to this cell."""
    cell = as_cell(make_cell, native_layers, config)
    return [(run.__name__, functools.partial(run, cell)) for run in CELL_CHECKS]


def parametrize_cell_checks(cells):
    """A pytest decorator: one test item per (cell, check), the test taking `cell` and `check` and
    calling `check(cell)` (with `config=` for a cell with a config of its own). Cells are make_cell
    functions, cell models or their names (looked up when the test runs)."""
    return parametrize("cell,check", cells, CELL_CHECKS)


# -- tasks ---------------------------------------------------------------------------------------

@dataclass
class TaskUnderTest:
    """A task under test: the task, settings for small data, and the model it is trained with."""

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


@contextmanager
def a_task(task: zoo.Task | str | TaskUnderTest, settings: dict | None = None, *, model: str | None = None):
    """The task under test, registered while the check runs (a plugin's tests run before, or without,
    its distribution being installed)."""
    if isinstance(task, TaskUnderTest):
        with registered(tasks=[task.task]):
            yield task
        return
    spec = zoo.get_task(task) if isinstance(task, str) else task
    with registered(tasks=[spec]):
        yield TaskUnderTest(spec, dict(settings or {}), model or default_model(spec))


def task_check(function: Callable = None, *, needs: tuple = ("check_data",)) -> Callable:
    """A task check: `check(task, settings=None, model=None)`, the task a zoo.Task or a registered
    name, settings for small data; one line naming the check when the rule is broken. Every check
    but check_data needs data() to keep its contract first."""
    if function is None:
        return lambda function: named(function, a_task, needs)
    return named(function, a_task, needs)


def forward(net, inputs):
    return net(*inputs) if isinstance(inputs, tuple) else net(inputs)


def first_batch(split, size: int = 4):
    return split.batch(torch.arange(min(size, len(split))))


@task_check(needs=())
def check_data(case: TaskUnderTest) -> None:
    """data(config, None) returns a zoo.TaskData whose problem has the task's shape and a non-empty train split."""
    _, data = case.data()  # the unchecked call: each rule is a line of its own here
    ensure(isinstance(data, zoo.TaskData), f"data() must return zoo.TaskData, got {type(data).__name__}")
    ensure(isinstance(data.problem, zoo.Problem), f"TaskData.problem must be zoo.Problem, got "
                                                  f"{type(data.problem).__name__}")
    ensure(data.problem.shape == case.task.shape, f"the task is {case.task.shape} but its data's problem is "
                                                  f"{data.problem.shape}")
    ensure(data.train is not None, "data() returned no train split (TaskData.train is None)")
    ensure(len(data.train) > 0, "the train split is empty")


@task_check
def check_meta_round_trip(case: TaskUnderTest) -> None:
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
    if isinstance(inputs, tuple) and len(inputs) == 2 and problem.shape == zoo.MANY_TO_ONE:  # variable length
        inputs, lengths = inputs
        ensure(isinstance(lengths, torch.Tensor) and tuple(lengths.shape) == (size,) and not lengths.is_floating_point()
               and int(lengths.min()) >= 1 and int(lengths.max()) <= inputs.shape[1],
               f"variable-length inputs are (x, lengths): lengths (batch,) = ({size},) integers in [1, steps]")
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


@task_check
def check_batches(case: TaskUnderTest) -> None:
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


@task_check
def check_evaluate(case: TaskUnderTest) -> None:
    """evaluate(model, data, split) returns numbers, the headline metric among them."""
    p, data = case.data()
    torch.manual_seed(0)
    net = p.model.build(p.model_config, data.problem)
    metrics = p.task.evaluate(net, data, data.report_split)
    ensure(isinstance(metrics, dict), f"evaluate() must return a dict, got {type(metrics).__name__}")
    ensure(isinstance(metrics.get(p.task.metric), (int, float)),
           f"evaluate() must return the headline metric {p.task.metric!r} as a number; got keys {sorted(metrics)}")


@task_check
def check_task_loss_falls(case: TaskUnderTest) -> None:
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


@task_check
def check_task_export_reloads(case: TaskUnderTest) -> None:
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


@task_check
def check_task_deterministic(case: TaskUnderTest) -> None:
    """The same settings and seed give the same data and the same trained weights."""
    (x, y), (u, v) = (first_batch(case.data()[1].train) for _ in range(2))
    x, u = (x if isinstance(x, tuple) else (x,)), (u if isinstance(u, tuple) else (u,))
    ensure(all(torch.equal(p, q) for p, q in zip(x, u)) and torch.equal(y, v),
           "two calls of data() with one config give different batches")
    overrides = {"hidden_size": 16, **case.settings, "epochs": 1}
    nets = [zoo.train(case.model, case.task.name, overrides, out=False, device="cpu", log=quiet) for _ in range(2)]
    for (name, p), (_, q) in zip(nets[0].state_dict().items(), nets[1].state_dict().items()):
        ensure(torch.equal(p, q), f"two runs under one seed end with different {name}")


@task_check
def check_many_to_one_padding(case: TaskUnderTest) -> None:
    """many-to-one batches of (x, lengths): each example in a padded batch gets the logits it gets alone."""
    if case.task.shape != zoo.MANY_TO_ONE:
        raise NotApplicable(f"the task is {case.task.shape}, not many-to-one")
    p, data = case.data()
    inputs, _ = first_batch(data.train, 8)
    if not (isinstance(inputs, tuple) and len(inputs) == 2):
        raise NotApplicable("the batches hold equal lengths: nothing is padded")
    torch.manual_seed(0)
    net = p.model.build(p.model_config, data.problem).eval()
    with torch.no_grad():
        together = forward(net, inputs)
        for i, n in enumerate(inputs[1].tolist()):
            alone = net(inputs[0][i: i + 1, :n])
            ensure(close(alone[0], together[i]), f"example {i} ({n} steps) gets other logits in a padded batch "
                                                 f"than alone: padding leaks into the result")


@task_check
def check_seq2seq_padding(case: TaskUnderTest) -> None:
    """seq2seq: each pair in a padded batch gets the logits it gets alone."""
    if case.task.shape != zoo.SEQ2SEQ:
        raise NotApplicable(f"the task is {case.task.shape}, not seq2seq")
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


# Every task check, in the order check_task runs them. A new check is a @task_check function above,
# listed here.
TASK_CHECKS = [
    check_data,
    check_meta_round_trip,
    check_batches,
    check_evaluate,
    check_task_loss_falls,
    check_task_export_reloads,
    check_task_deterministic,
    check_seq2seq_padding,
    check_many_to_one_padding,
]


def check_task(task: zoo.Task | str, settings: dict | None = None, *, model: str | None = None,
               checks: list | None = None) -> None:
    """Run every task check (or `checks`) on `task` (a zoo.Task or a registered name) with `settings`
    for small data, trained with `model` (default: a registered model that fits, plain cells first);
    one CheckFailed reports every check that failed, a line each."""
    with a_task(task, settings, model=model) as case:
        run_checks(TASK_CHECKS if checks is None else checks, case)


def task_checks(task: zoo.Task | str, settings: dict | None = None, *, model: str | None = None) -> list:
    """(name, check) pairs, each check a callable of no arguments bound to this task and settings."""
    return [(run.__name__, functools.partial(run, task, settings, model=model)) for run in TASK_CHECKS]


def parametrize_task_checks(tasks):
    """A pytest decorator: one test item per (task, check), the test taking `task` and `check` and
    calling `check(task, settings)`. Tasks are zoo.Task objects or registered names (looked up when
    the test runs)."""
    return parametrize("task,check", tasks, TASK_CHECKS)
