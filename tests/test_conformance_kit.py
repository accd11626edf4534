"""The conformance kit's own machinery: check_cell and check_task report every failing check, each
check runs on its own and as a pytest item of its own, and a check added to the list is run.

What each check catches, and the kit run on every built-in cell and task: test_conformance.py.
"""

import dataclasses

import pytest
import torch

import zoo
import zoo.testing
from conftest import Plain
from zoo.testing import (CELL_CHECKS, TASK_CHECKS, CheckFailed, NotApplicable, cell_checks, check_cell, check_task,
                         parametrize_cell_checks, parametrize_task_checks, task_checks)


class IgnoresStateAndPeeksAhead(Plain):
    def forward(self, x, h0=None):
        out, h = self.gru(x)
        return out + x[:, -1:, :1], h


def test_check_cell_reports_every_failing_check_a_line_each():
    with pytest.raises(CheckFailed) as failure:
        check_cell(IgnoresStateAndPeeksAhead)
    failed = [name for name, _ in failure.value.failures]
    assert {"check_last_output_is_the_state", "check_initial_state", "check_causal"} <= set(failed)
    assert "check_output_shape" not in failed and "check_batch_first" not in failed
    lines = str(failure.value).splitlines()
    assert lines[:-1] == [message for _, message in failure.value.failures]
    assert all(line.startswith(f"{name}: ") for line, name in zip(lines, failed))
    assert lines[-1] == f"({len(failed)} of {len(CELL_CHECKS)} checks failed)"


def test_check_task_reports_every_failing_check_a_line_each():
    hihello = zoo.get_task("hihello")

    def data(config, meta):  # meta that cannot travel in an export: two rules broken
        task_data = hihello.data(config, meta)
        task_data.meta = {**task_data.meta, "when": object()}
        return task_data

    with pytest.raises(CheckFailed) as failure:
        check_task(dataclasses.replace(hihello, name="badmeta", data=data))
    assert [name for name, _ in failure.value.failures] == ["check_meta_round_trip", "check_task_export_reloads"]
    assert str(failure.value).splitlines()[0].startswith("check_meta_round_trip: TaskData.meta must be JSON")
    assert str(failure.value).splitlines()[-1] == f"(2 of {len(TASK_CHECKS)} checks failed)"


def test_checks_that_need_the_data_are_skipped_when_it_is_broken():
    broken = dataclasses.replace(zoo.get_task("hihello"), name="nodata", data=lambda config, meta: {"train": []})
    with pytest.raises(CheckFailed) as failure:
        check_task(broken)
    assert [name for name, _ in failure.value.failures] == ["check_data"]
    assert failure.value.skipped == [run.__name__ for run in TASK_CHECKS if run.__name__ != "check_data"]


def test_every_check_runs_on_its_own_from_what_a_plugin_has():
    zoo.testing.check_causal(Plain)  # a make_cell
    zoo.testing.check_state_layout("gru")  # a registered cell's name
    zoo.testing.check_data("hihello")  # a registered task's name
    zoo.testing.check_meta_round_trip(zoo.get_task("charlm"), {"window": 5, "stride": 7})
    with pytest.raises(CheckFailed, match=r"^check_causal: the output at step t changed"):
        zoo.testing.check_causal(IgnoresStateAndPeeksAhead)
    with pytest.raises(NotApplicable, match="^check_seq2seq_padding: the task is many-to-many, not seq2seq$"):
        zoo.testing.check_seq2seq_padding("hihello")


def test_the_check_names_are_one_each():
    names = [run.__name__ for run in [*CELL_CHECKS, *TASK_CHECKS]]
    assert len(names) == len(set(names))
    assert all(getattr(zoo.testing, name).__name__ == name for name in names)
    for shadowed in ("check_trains", "check_export_load", "check_deterministic", "check_padding", "Cell", "run_cell"):
        assert not hasattr(zoo.testing, shadowed), shadowed  # each meant two things


def test_cell_checks_and_task_checks_are_bound_name_check_pairs():
    pairs = cell_checks(IgnoresStateAndPeeksAhead)
    assert [name for name, _ in pairs] == [run.__name__ for run in CELL_CHECKS]
    checks = dict(pairs)
    checks["check_output_shape"]()
    with pytest.raises(CheckFailed, match="^check_initial_state: "):
        checks["check_initial_state"]()
    assert [name for name, _ in task_checks("hihello")] == [run.__name__ for run in TASK_CHECKS]
    dict(task_checks("hihello"))["check_batches"]()


def test_parametrize_makes_a_test_item_per_subject_and_check():
    cells = parametrize_cell_checks(["gru", Plain]).mark
    assert cells.args[0] == "cell,check"
    assert cells.kwargs["ids"] == [f"{subject}-{run.__name__}" for subject in ("gru", "Plain") for run in CELL_CHECKS]
    assert [subject for subject, _ in cells.args[1]] == ["gru"] * len(CELL_CHECKS) + [Plain] * len(CELL_CHECKS)
    tasks = parametrize_task_checks([zoo.get_task("stock")]).mark
    assert tasks.args[0] == "task,check"
    assert tasks.kwargs["ids"] == [f"stock-{run.__name__}" for run in TASK_CHECKS]


@parametrize_task_checks(["hihello"])
def test_an_item_of_a_check_that_does_not_apply_is_skipped(task, check):
    if check.__name__ == "check_seq2seq_padding":
        with pytest.raises(pytest.skip.Exception, match="not seq2seq"):
            check(task)
    else:
        check(task)


def test_a_check_added_to_the_list_is_run(monkeypatch):
    @zoo.testing.cell_check
    def check_at_most_one_module(cell):
        """A made-up rule, to show where a new check goes."""
        zoo.testing.ensure(len(list(cell.build().children())) <= 1, "more than one module")

    class TwoModules(Plain):
        def __init__(self, config, input_size):
            super().__init__(config, input_size)
            self.extra = torch.nn.Identity()

    monkeypatch.setattr(zoo.testing, "CELL_CHECKS", [*CELL_CHECKS, check_at_most_one_module])
    check_cell(Plain)
    with pytest.raises(CheckFailed, match=r"^check_at_most_one_module: more than one module$"):
        check_cell(TwoModules)
    ids = zoo.testing.parametrize_cell_checks(["x"]).mark.kwargs["ids"]
    assert ids[-1] == "x-check_at_most_one_module"
