import zoo_mgu
from zoo.testing import check_cell


def test_the_cell_keeps_zoos_contract():
    check_cell(zoo_mgu.make_cell, config=zoo_mgu.MGUConfig)


def test_the_eager_loop_keeps_it_too():
    check_cell(lambda config, size: zoo_mgu.make_cell(zoo_mgu.MGUConfig(**{**vars(config), "script": False}), size),
               config=zoo_mgu.MGUConfig)
