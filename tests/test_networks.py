"""Networks: every registered model on every task it fits (forward, backward, export and load), and
zoo's layers around a plain cell, which are torch.nn.RNN's (same outputs, state layout, dropout place).

Parametrized over the registry, so a new model or task is tested the day it is registered. A task
needs an entry in TINY (settings that make small, offline data) to take part.
"""

import math

import pytest
import torch

import zoo
from conftest import TINY, registry_with_example
from zoo.loop.training import loss_function
from zoo.nn.layers import Layers, recurrent


def run(net, inputs):
    return net(*inputs) if isinstance(inputs, tuple) else net(inputs)


def pairs():
    reg = registry_with_example()
    return [(m, t) for t, task in reg.tasks.items() for m in reg.compatible_models(task)]


PAIRS = pairs()


def tiny(task_name, tmp_path):
    if task_name not in TINY:
        pytest.skip(f"no tiny data for task {task_name}: add it to TINY")
    return TINY[task_name](tmp_path)


def test_every_model_has_a_task_to_be_tested_on():
    reg = registry_with_example()
    assert {m for m, _ in PAIRS} == set(reg.models)
    assert set(TINY) >= set(reg.tasks)


@pytest.mark.parametrize("model_name,task_name", PAIRS)
def test_forward_and_backward(model_name, task_name, with_example, tmp_path):
    from zoo.loop.plan import plan

    p = plan(model_name, task_name, {"hidden_size": 6, **tiny(task_name, tmp_path)})
    data = p.task.data(p.task_config, None)
    torch.manual_seed(0)
    net = p.model.build(p.model_config, data.problem)
    inputs, targets = data.train.batch(torch.arange(min(3, len(data.train))))
    outputs = run(net, inputs)
    width = data.problem.output_size
    assert outputs.shape[-1] == width and outputs.shape[0] == len(targets)
    loss = loss_function(data.problem)(outputs, targets)
    loss.backward()
    assert math.isfinite(loss.item())
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(parameter.grad).all(), f"{name} has a non-finite gradient"


@pytest.mark.parametrize("model_name,task_name", PAIRS)
def test_export_then_load_reproduces_outputs_exactly(model_name, task_name, with_example, tmp_path):
    path = tmp_path / "weights.safetensors"
    net = zoo.train(model_name, task_name, {"hidden_size": 6, "epochs": 1, **tiny(task_name, tmp_path)}, out=path,
                    device="cpu", log=lambda line: None)
    loaded = zoo.load(path)
    assert not loaded.training
    assert loaded.zoo.model == model_name and loaded.zoo.task == task_name
    assert loaded.zoo.model_config == net.zoo.model_config
    data = zoo.get_task(task_name).data(net.zoo.task_config, loaded.zoo.meta)  # an export names no files it opens
    inputs, _ = data.train.batch(torch.arange(min(4, len(data.train))))
    with torch.no_grad():
        assert torch.equal(run(net, inputs), run(loaded, inputs))


@pytest.mark.parametrize("settings", [{"num_layers": 3, "dropout": 0.2}, {"embed_dim": 4}, {"hidden_size": 1}])
def test_hyperparameters_change_the_network(settings, tmp_path):
    path = tmp_path / "w.safetensors"
    zoo.train("gru", "hihello", {**settings, "epochs": 2}, out=path, log=lambda line: None)
    config = zoo.load(path).zoo.model_config
    for key, value in settings.items():
        assert getattr(config, key) == value


def single_gru(config, input_size):
    return torch.nn.GRU(input_size, config.hidden_size, batch_first=True)


@pytest.mark.parametrize("layers,bidirectional", [(1, True), (2, False), (3, True)])
def test_layers_of_plain_cells_equal_torchs_multilayer_cell(layers, bidirectional):
    config = zoo.RecurrentConfig(hidden_size=5, num_layers=layers, bidirectional=bidirectional)
    torch.manual_seed(0)
    stack = recurrent(single_gru, config, 3)
    assert isinstance(stack, Layers)
    reference = torch.nn.GRU(3, 5, **zoo.torch_rnn_kwargs(config))
    with torch.no_grad():  # torch's names: weight_ih_l{layer}{_reverse}; ours: cell i = layer * directions + d
        for i, cell in enumerate(stack.cells):
            suffix = f"l{i // stack.directions}" + ("_reverse" if i % stack.directions else "")
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(reference, f"{name}_{suffix}").copy_(getattr(cell, f"{name}_l0"))
    x = torch.randn(4, 7, 3)
    h0 = torch.randn(layers * (2 if bidirectional else 1), 4, 5)
    for start in (None, h0):
        out, h_n = stack(x, start)
        expected_out, expected_h = reference(x, start)
        assert torch.allclose(out, expected_out, atol=1e-6) and torch.allclose(h_n, expected_h, atol=1e-6)


def test_one_layer_one_direction_is_the_cell_itself_and_native_cells_are_left_alone():
    config = zoo.RecurrentConfig(hidden_size=4)
    assert isinstance(recurrent(single_gru, config, 2), torch.nn.GRU)
    stacked = zoo.RecurrentConfig(hidden_size=4, num_layers=2)
    native = recurrent(lambda c, n: torch.nn.GRU(n, c.hidden_size, **zoo.torch_rnn_kwargs(c)), stacked, 2, True)
    assert isinstance(native, torch.nn.GRU) and native.num_layers == 2


def test_a_plain_cell_sees_one_layer_one_direction_and_no_dropout():
    seen = []

    def make_cell(config, input_size):
        seen.append((config.num_layers, config.bidirectional, config.dropout, input_size))
        return single_gru(config, input_size)

    recurrent(make_cell, zoo.RecurrentConfig(hidden_size=4, num_layers=2, bidirectional=True, dropout=0.3), 3)
    assert seen == [(1, False, 0.0, 3), (1, False, 0.0, 3), (1, False, 0.0, 8), (1, False, 0.0, 8)]


@pytest.mark.parametrize("name", ["rnn", "lstm-stacked", "gru-bi"])
def test_built_in_cells_keep_torchs_single_module_and_weight_names(name):
    """Exports made before the cell contract load unchanged, and oneDNN/cuDNN runs all layers at once."""
    spec = zoo.get_model(name)
    net = spec.build(spec.config(**spec.defaults), zoo.Problem(zoo.MANY_TO_ONE, output_size=2, input_size=3))
    assert isinstance(net.rnn, torch.nn.RNNBase) and "rnn.weight_ih_l0" in net.state_dict()
    assert ("rnn.weight_ih_l1" in net.state_dict()) == name.endswith("-stacked")
    assert ("rnn.weight_ih_l0_reverse" in net.state_dict()) == name.endswith("-bi")
