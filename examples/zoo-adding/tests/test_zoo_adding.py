import zoo_adding
from zoo.testing import check_task


def test_the_task_keeps_zoos_contract():
    tasks = []
    zoo_adding.register_tasks(register=tasks.append)  # the hook, called as zoo calls it
    check_task(tasks[0], {"length": 6, "samples": 64})
