"""The course's first exercise, hihello: the defaults predict `ihello`; train, eval and predict."""


import pytest

import zoo
from conftest import zoo_cli


def quiet(line):
    pass


@pytest.mark.parametrize("model", ["rnn", "lstm", "gru"])
def test_hihello_defaults_predict_ihello_exactly(model):
    net = zoo.train(model, "hihello", out=False, log=quiet)
    assert net.zoo.metrics["prediction"] == "ihello"
    assert zoo.get_task("hihello").predict(net, "hihell") == "ihello"


def test_train_eval_predict_hihello(runner, tmp_path):
    result = zoo_cli(runner, "train", "rnn", "hihello")
    assert result.exit_code == 0, result.output
    assert "epoch 100/100" in result.output
    path = tmp_path / "checkpoints" / "rnn-hihello" / "model.safetensors"
    assert path.is_file()
    result = zoo_cli(runner, "eval", path.parent)  # a run folder stands for its export
    assert result.exit_code == 0, result.output
    assert "prediction   ihello" in result.output
    result = zoo_cli(runner, "predict", path, "hihell")
    assert (result.exit_code, result.output) == (0, "ihello\n")
