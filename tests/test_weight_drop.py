"""`--weight-drop`: DropConnect on the recurrent weights while training (AWD-LSTM's weight drop)."""

import pytest
import torch

from conftest import one_line_error, zoo_cli
from zoo.contract.registry import registry
from zoo.contract.specs import MANY_TO_MANY, Problem, ZooError
from zoo.nn.nets import RecurrentNet

PROBLEM = Problem(MANY_TO_MANY, output_size=5, vocab_size=5)


def net_of(model: str, **settings) -> RecurrentNet:
    spec = registry().models[model]
    torch.manual_seed(0)
    return spec.build(spec.config(**{**spec.defaults, "hidden_size": 8, **settings}), PROBLEM)


@pytest.mark.parametrize("model", ["rnn", "lstm-stacked", "gru"])
def test_training_drops_recurrent_weights_and_evaluation_does_not(model):
    net = net_of(model, weight_drop=0.5)
    x = torch.randint(0, 5, (3, 7))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    first, second = net.train()(x), net(x)
    assert not torch.equal(first, second)  # a fresh mask per batch
    second.sum().backward()
    assert all(net.get_parameter(name).grad.abs().sum() > 0 for name in net.recurrent_weights)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # the weights themselves stay whole
    net.eval()
    assert torch.equal(net(x), net(x))
    plain = net_of(model)  # the same weights without weight drop: equal in evaluation
    assert torch.equal(plain.eval()(x), net(x))


def test_a_cell_without_recurrent_weights_refuses_weight_drop():
    class Elman(torch.nn.Module):  # its recurrent weight is named U: there is nothing zoo knows to drop
        def __init__(self, config, input_size):
            super().__init__()
            self.U = torch.nn.Linear(input_size, config.hidden_size)

        def forward(self, x, h0=None):
            out = torch.tanh(self.U(x))
            return out, out[:, -1:].transpose(0, 1)

    config = registry().models["rnn"].config(hidden_size=4, weight_drop=0.2)
    named = r"weight_drop=0.2 \(given, or a task's defaults for your data\) needs a cell whose recurrent weights.*: -o"
    with pytest.raises(ZooError, match=named):
        RecurrentNet(Elman, config, PROBLEM)


def test_a_bad_weight_drop_is_one_line(runner, tmp_path):
    line = one_line_error(zoo_cli(runner, "train", "lstm", "hihello", "--weight-drop", "1",
                                  "--run-dir", tmp_path / "run"))
    assert "weight_drop must be in [0, 1), got 1" in line


def test_a_run_with_weight_drop_exports_weights_that_load(tmp_path):
    import zoo

    net = zoo.train("lstm", "hihello", {"epochs": 30, "weight_drop": 0.3}, run_dir=tmp_path / "run",
                    log=lambda line: None)
    loaded = zoo.load(tmp_path / "run")
    x = torch.randint(0, loaded.zoo.problem.vocab_size, (2, 6))
    assert loaded.zoo.model_config.weight_drop == 0.3
    assert torch.equal(loaded(x), net.eval()(x))


def test_weight_drop_trains_under_torchrun(tmp_path):
    """Two CPU processes (gloo): the dropped weights' gradients reach DistributedDataParallel's reducer."""
    import os
    import subprocess
    import sys

    import zoo

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "zoo",
               "train", "lstm-stacked", "charlm", "-e", "3", "-q", "-o", "weight_drop=0.3", "--run-dir",
               str(tmp_path / "run")]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    net = zoo.load(tmp_path / "run")
    assert net.zoo.model_config.weight_drop == 0.3 and net.rnn.weight_hh_l1.abs().sum() > 0

