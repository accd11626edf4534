import zoo_mgu
from zoo.testing import check_cell


def test_the_cell_keeps_zoos_contract():
    check_cell(zoo_mgu.make_cell, config=zoo_mgu.MGUConfig)


def test_the_cell_exports_to_onnx_at_any_length():
    import pytest

    pytest.importorskip("onnxruntime")
    from zoo.testing import Cell, check_onnx_export

    check_onnx_export(Cell(zoo_mgu.make_cell, config=zoo_mgu.MGUConfig, name="mgu"), lengths=(1, 7, 33))
