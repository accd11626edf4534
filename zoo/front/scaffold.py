"""`zoo new-plugin NAME`: a ready plugin package that installs and passes its own tests unchanged.

It writes `zoo-NAME/` with a pyproject.toml (the `zoo` entry point), `zoo_NAME.py` (a cell stepped
explicitly, a task, or both; torch imported inside the functions) and `tests/test_zoo_NAME.py`, which
runs the conformance kit (zoo.testing) on them. No torch here.
"""

from __future__ import annotations

import re
from pathlib import Path

from zoo.contract.registry import NAME
from zoo.contract.specs import ZooError


PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "{what} for zoo, the recurrent network model zoo"
dependencies = ["rnn-zoo"]

[project.optional-dependencies]
test = ["pytest"]

[project.entry-points.zoo]
{name} = "{module}"

[tool.setuptools]
py-modules = ["{module}"]
'''

HEADER = '''"""{what} for zoo. Install with `pip install -e .`, then `zoo list {name}`; test with `pytest`.

Keep `import torch` inside functions, so that `zoo list` and `zoo --help` stay fast with this
plugin installed.
"""

from dataclasses import dataclass

import zoo
'''

CELL = '''

def make_cell(config: zoo.RecurrentConfig, input_size: int):
    """One layer read left to right (zoo's cell contract): out, h_n = cell(x, h0), x (batch, time,
    input), h0 None or (1, batch, hidden). zoo builds {name}-stacked and {name}-bi around it."""
    import torch
    from torch import nn

    class Cell(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden_size = config.hidden_size
            self.input = nn.Linear(input_size, config.hidden_size)  # U x_t + b, every step in one product
            self.recurrent = nn.Linear(config.hidden_size, config.hidden_size, bias=False)  # W h_(t-1)

        def forward(self, x, h0=None):
            h = x.new_zeros(x.shape[0], self.hidden_size) if h0 is None else h0[0]
            inputs, outputs = self.input(x), []
            for t in range(x.shape[1]):  # h_t = tanh(U x_t + W h_(t-1) + b): change the recurrence here
                h = torch.tanh(inputs[:, t] + self.recurrent(h))
                outputs.append(h)
            out = torch.stack(outputs, 1)
            return out, out[:, -1][None]  # h_n: (1, batch, hidden), batch second as in torch

    return Cell()


@zoo.hookimpl
def register_models(register):
    for model in zoo.cell_models("{name}", "{name}: a vanilla RNN stepped explicitly", make_cell):
        register(model)
'''

TASK = '''

@dataclass(frozen=True)
class {config}:
    length: int = zoo.param(10, "steps per sequence")
    samples: int = zoo.param(512, "training sequences; a quarter as many are drawn for the test")

    def __post_init__(self):
        zoo.require(self.length >= 1, f"length must be at least 1, got {{self.length}}")
        zoo.require(self.samples >= 1, f"samples must be positive, got {{self.samples}}")


def make_data(config, meta):
    """Sequences of numbers; the class says whether their sum is positive (many-to-one)."""
    import torch

    from zoo.loop.data import TensorSplit

    def draw(count, seed):
        x = torch.randn(count, config.length, 1, generator=torch.Generator().manual_seed(seed))
        return TensorSplit(x, (x.sum(dim=(1, 2)) > 0).long())

    problem = zoo.Problem(zoo.MANY_TO_ONE, output_size=2, input_size=1)
    return zoo.TaskData(problem, train=draw(config.samples, 0), test=draw(max(config.samples // 4, 1), 1))


def evaluate(model, data, split):
    import torch

    from zoo.loop.data import batched_outputs

    right = [(out.argmax(-1) == y).float() for out, y in batched_outputs(model, data.split(split))]
    return {{"accuracy": torch.cat(right).mean().item()}}


TASK = zoo.Task(
    name="{name}",
    description="{name}: is the sum of a sequence positive?",
    shape=zoo.MANY_TO_ONE,
    data=make_data,
    evaluate=evaluate,
    config={config},
    train_defaults={{"epochs": 10, "lr": 0.01, "batch_size": 64}},
)


@zoo.hookimpl
def register_tasks(register):
    register(TASK)
'''

TEST_HEADER = '''"""The conformance kit that zoo runs on its own cells and tasks, run on this plugin's: a test
item per check (`pytest -k check_causal` runs one)."""

import {module}
from zoo.testing import {imports}
'''

TEST_CELL = '''

@parametrize_cell_checks([{module}.make_cell])
def test_the_cell_keeps_zoos_contract(cell, check):
    check(cell)
'''

TEST_TASK = '''

@parametrize_task_checks([{module}.TASK])
def test_the_task_keeps_zoos_contract(task, check):
    check(task, {{"samples": 64, "length": 6}})
'''


def new_plugin(name: str, cell: bool, task: bool, where: str | Path = ".") -> Path:
    """Write the package `zoo-NAME` into `where`; both a cell and a task unless one is asked for."""
    if not (NAME.match(name) and name[0].isalpha() and "." not in name):  # registry's names, and a module's
        raise ZooError(f"plugin name {name!r} is not valid: use lowercase letters, digits, '-' and '_', starting "
                       f"with a letter")
    if not cell and not task:
        cell = task = True
    from zoo.contract.registry import registry

    reg = registry()  # a plugin named after a built-in would clash with it in every command
    taken = [(kind, n, getattr(spec, "plugin", "")) for kind, names, wanted in (("model", reg.models, cell),
                                                                                 ("task", reg.tasks, task))
             for n, spec in names.items() if wanted and n in (name, f"{name}-stacked", f"{name}-bi")]
    if taken:
        kind, clash, plugin = taken[0]
        raise ZooError(f"{kind} {clash!r} exists already (from {plugin}): a plugin named {name!r} would clash with it; "
                       f"choose another name")
    module, dist = f"zoo_{name.replace('-', '_')}", f"zoo-{name.replace('_', '-')}"
    root = Path(where) / dist
    if root.exists():
        raise ZooError(f"{root} exists already; choose another name or folder")
    what = " and ".join(kind for kind, wanted in (("a recurrent cell", cell), ("a task", task)) if wanted)
    what = what[0].upper() + what[1:]
    config = "".join(part.capitalize() for part in re.split(r"[-_]", name)) + "Config"
    source = HEADER.format(what=what, name=name)
    source += (CELL.format(name=name) if cell else "") + (TASK.format(name=name, config=config) if task else "")
    if not task:
        source = source.replace("from dataclasses import dataclass\n\n", "")
    kit = (("parametrize_cell_checks", cell), ("parametrize_task_checks", task))
    imports = ", ".join(name for name, wanted in kit if wanted)
    tests = TEST_HEADER.format(module=module, imports=imports)
    tests += (TEST_CELL.format(module=module) if cell else "") + (TEST_TASK.format(module=module) if task else "")
    files = {
        "pyproject.toml": PYPROJECT.format(dist=dist, name=name, module=module, what=what),
        f"{module}.py": source,
        f"tests/test_{module}.py": tests,
        "README.md": f"# {dist}\n\n{what} for zoo.\n\n```\npip install -e .\nzoo list {name}\npytest\n```\n",
    }
    try:
        for path, text in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
    except OSError as e:
        raise ZooError(f"cannot write {root}: {e.strerror}") from None
    return root
