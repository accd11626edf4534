"""The conformance kit that zoo runs on its own cells and tasks, run on this plugin's: a test
item per check (`pytest -k check_causal` runs one)."""

import zoo_elman
from zoo.testing import parametrize_cell_checks, parametrize_task_checks


@parametrize_cell_checks([zoo_elman.make_cell])
def test_the_cell_keeps_zoos_contract(cell, check):
    check(cell)


@parametrize_task_checks([zoo_elman.TASK])
def test_the_task_keeps_zoos_contract(task, check):
    check(task, {"samples": 64, "length": 6})
