"""The conformance kit (zoo.testing): every built-in cell and task passes it, and it catches what it should.

Parametrized over the registry, so a new built-in cell or task is held to the contract the day it is
registered; the example plugins' own tests run the same kit.
"""

import pytest
import torch

import zoo
from conftest import TINY, Plain, registry_with_example
from zoo.testing import CheckFailed, check_cell, check_task, parametrize_cell_checks, parametrize_task_checks

REGISTRY = registry_with_example()
CELLS = [name for name, model in REGISTRY.models.items() if model.cell is not None and not model.defaults]
TASKS = list(REGISTRY.tasks)


@parametrize_cell_checks(CELLS)  # a test item per cell and check: gru-check_causal, ...
def test_every_registered_cell_keeps_the_contract(cell, check, with_example):
    check(zoo.get_model(cell))


@parametrize_task_checks(TASKS)  # a test item per task and check: stock-check_batches, ...
def test_every_registered_task_keeps_the_contract(task, check, with_example, tmp_path):
    check(task, TINY[task](tmp_path))


def test_the_built_in_cells_and_tasks_are_all_checked():
    assert {"rnn", "lstm", "gru"} <= set(CELLS)
    assert {"hihello", "charlm", "mnist", "stock", "translate", "adding"} <= set(TASKS)


# -- what the kit catches: one line each, naming the check --------------------------------------

class WrongShape(Plain):
    def forward(self, x, h0=None):
        out, h = self.gru(x, h0)
        return out[:, -1], h


class BatchFirstState(Plain):
    def forward(self, x, h0=None):
        out, h = self.gru(x, None if h0 is None else h0.transpose(0, 1).contiguous())
        return out, h.transpose(0, 1)


class TimeFirst(Plain):  # reads dimension 0 as time: examples mix
    def __init__(self, config, input_size):
        super().__init__(config, input_size)
        self.gru = torch.nn.GRU(input_size, config.hidden_size)

    def forward(self, x, h0=None):
        out, h = self.gru(x, h0)
        return out, h


class PeeksAhead(Plain):
    def forward(self, x, h0=None):
        out, h = self.gru(x, h0)
        return out + x[:, -1:, :1], h


class IgnoresState(Plain):
    def forward(self, x, h0=None):
        return self.gru(x)


@pytest.mark.parametrize("cell,check,says", [
    (WrongShape, "check_output_shape", "out must be (batch, time, hidden) = (3, 5, 6)"),
    (BatchFirstState, "check_state_layout", "batch first"),
    (TimeFirst, "check_batch_first", "gives another output alone than in the batch"),
    (PeeksAhead, "check_last_output_is_the_state", "the last step's output must equal h_n"),
    (IgnoresState, "check_initial_state", "h0 is the state to start from"),
])
def test_a_broken_cell_fails_in_one_line_naming_the_rule(cell, check, says):
    import zoo.testing

    with pytest.raises(CheckFailed) as failure:
        getattr(zoo.testing, check)(zoo.testing.CellUnderTest(cell))
    message = str(failure.value)
    assert message.startswith(f"{check}: ") and says in message and "\n" not in message, message
    with pytest.raises(CheckFailed):  # and the whole kit fails on it, at this check or an earlier one
        check_cell(cell)


def test_a_correct_plain_cell_passes_and_gets_real_presets():
    check_cell(Plain)


def test_a_native_cell_that_ignores_num_layers_and_bidirectional_is_caught():
    with pytest.raises(CheckFailed, match="check_layers_and_directions: num_layers=2 has no more parameters"):
        check_cell(Plain, native_layers=True)


def test_causality_is_checked_on_its_own():
    from zoo.testing import CellUnderTest, check_causal

    class Acausal(Plain):
        def forward(self, x, h0=None):
            out, h = self.gru(x, h0)
            return out + x[:, -1:, :1], h

    with pytest.raises(CheckFailed, match="check_causal: the output at step t changed"):
        check_causal(CellUnderTest(Acausal))


def test_a_task_with_no_train_split_fails_in_one_line():
    hihello = zoo.get_task("hihello")

    def no_train(config, meta):
        data = hihello.data(config, meta)
        data.train = None
        return data

    import dataclasses

    broken = dataclasses.replace(hihello, name="notrain", data=no_train)
    with pytest.raises(CheckFailed, match=r"^check_data: data\(\) returned no train split"):
        check_task(broken)


def test_a_task_whose_data_is_not_task_data_fails_in_one_line():
    import dataclasses

    broken = dataclasses.replace(zoo.get_task("hihello"), name="nodata", data=lambda config, meta: {"train": []})
    with pytest.raises(CheckFailed, match=r"^check_data: data\(\) must return zoo.TaskData, got dict$"):
        check_task(broken)


# -- the same mistakes met by `zoo train`: one line, no traceback ---------------------------------

@pytest.mark.parametrize("cell,says", [(WrongShape, "returned out (32, 8) for x (32, 5, "),
                                       (BatchFirstState, "returned a state (32, 1, 8)")])
@pytest.mark.parametrize("preset", ["", "-stacked"])
def test_training_a_broken_cell_is_one_line(cell, says, preset, runner):
    import types

    from conftest import one_line_error, zoo_cli
    from zoo.contract.registry import Plugin, registry

    module = types.ModuleType("broken_cell")
    module.register_models = zoo.hookimpl(lambda register: [register(m) for m in zoo.cell_models("broken", "x", cell)])
    registry().add(module, Plugin("broken", "broken-dist", "1", builtin=False))
    line = one_line_error(zoo_cli(runner, "train", f"broken{preset}", "charlm", "--hidden-size", 8, "-e", 1, "-q",
                                  "--window", 5, "-b", 32))
    assert says in line and "cell contract" in line


def test_training_a_task_without_a_train_split_is_one_line(runner):
    import dataclasses
    import types

    from conftest import one_line_error, zoo_cli
    from zoo.contract.registry import Plugin, registry

    hihello = zoo.get_task("hihello")

    def no_train(config, meta):
        data = hihello.data(config, meta)
        data.train = None
        return data

    module = types.ModuleType("no_train")
    module.register_tasks = zoo.hookimpl(lambda register: register(dataclasses.replace(hihello, name="notrain",
                                                                                       data=no_train)))
    registry().add(module, Plugin("notrain", "nt", "1", builtin=False))
    line = one_line_error(zoo_cli(runner, "train", "gru", "notrain", "-e", 1, "-q"))
    assert "task 'notrain' (nt 1) is broken: its data() returned no train split" in line


def test_a_task_named_like_a_built_in_is_refused_not_confused_with_it():
    import dataclasses

    impostor = dataclasses.replace(zoo.get_task("charlm"), data=zoo.get_task("hihello").data)
    with pytest.raises(CheckFailed, match=r"^check_names: the task name 'charlm' could not be registered: .*built-in"):
        check_task(impostor)


def test_a_task_named_with_capitals_is_one_line_from_the_kit():
    import dataclasses

    badly_named = dataclasses.replace(zoo.get_task("hihello"), name="Hi Hello")
    with pytest.raises(CheckFailed) as failure:
        check_task(badly_named)
    message = str(failure.value)
    assert message.startswith("check_names: the task name 'Hi Hello' could not be registered")
    assert "is not valid: use lowercase letters" in message and "\n" not in message
