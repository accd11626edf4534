"""zoo's layers around a plain cell are torch.nn.RNN's: same outputs, same state layout, same dropout place."""

import pytest
import torch

import zoo
from zoo.nn.layers import Layers, recurrent


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
