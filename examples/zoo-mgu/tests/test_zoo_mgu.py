import zoo_mgu
from zoo.testing import check_cell


def test_the_cell_keeps_zoos_contract():
    check_cell(zoo_mgu.make_cell, config=zoo_mgu.MGUConfig)

