"""The example plugins: their own tests (the conformance kit) pass, and the from-scratch cell works
everywhere a built-in cell does, seq2seq included."""

import os
import subprocess
import sys

import pytest

import zoo
from conftest import ROOT, one_line_error, zoo_cli
from zoo.contract.registry import LOAD_ENV, reset

EXAMPLES = ROOT / "examples"
MGU = EXAMPLES / "zoo-mgu"


@pytest.mark.parametrize("example", ["zoo-adding", "zoo-mgu"])
def test_the_examples_own_tests_pass(example):
    folder = EXAMPLES / example
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]),
           LOAD_ENV: ""}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=folder,
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0 and " passed" in result.stdout, result.stdout + result.stderr


@pytest.fixture
def mgu_installed(fake_distribution, monkeypatch):
    fake_distribution((MGU / "zoo_mgu.py").read_text(), module="zoo_mgu", entry="mgu", dist="zoo_mgu")
    monkeypatch.setenv(LOAD_ENV, "mgu")
    yield
    sys.modules.pop("zoo_mgu", None)


def test_the_mgu_presets_are_real(mgu_installed):
    from zoo.nn.layers import Layers

    problem = zoo.Problem(zoo.MANY_TO_ONE, output_size=2, input_size=3)
    for name, cells in (("mgu", None), ("mgu-stacked", 2), ("mgu-bi", 2)):
        spec = zoo.get_model(name)
        net = spec.build(spec.config(**spec.defaults), problem)
        assert (cells is None and not isinstance(net.rnn, Layers)) or len(net.rnn.cells) == cells


def test_mgu_trains_on_tasks_and_inside_seq2seq_then_loads(mgu_installed, runner, tmp_path, monkeypatch):
    out = tmp_path / "mgu.safetensors"
    result = zoo_cli(runner, "train", "mgu-bi", "stock", "--data", _prices(tmp_path), "-e", 2, "--out", out, "-q")
    assert result.exit_code == 0, result.output
    assert zoo.load(out).zoo.model_config.bidirectional
    translator = tmp_path / "translate.safetensors"
    result = zoo_cli(runner, "train", "seq2seq", "translate", "--cell", "mgu", "--num-layers", 2, "--attention",
                     "luong", "-e", 3, "--out", translator, "-q")
    assert result.exit_code == 0, result.output
    assert zoo_cli(runner, "predict", translator, "i feel hungry.").exit_code == 0
    monkeypatch.setenv(LOAD_ENV, "")  # the cell's plugin gone: one line
    reset()
    assert one_line_error(zoo_cli(runner, "eval", out))


def _prices(tmp_path):
    from conftest import write_course_prices

    return write_course_prices(tmp_path / "prices.csv", days=40)
