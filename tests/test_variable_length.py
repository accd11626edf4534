"""Variable length (issue 22): a sequence's result never depends on its batch or its padding.

Parametrized over every registered cell and preset (built through the model's own build, as
training does), over plain cells stepped by zoo's Layers, and over a cell that builds its own
directions without being torch's.
"""

import pytest
import torch

import zoo
from conftest import Plain as PlainGRU  # a plain GRU cell
from conftest import registry_with_example
from zoo.nn.layers import Layers, recurrent_lengths, run_lengths
from zoo.testing import CheckFailed, check_cell, check_variable_length

REGISTRY = registry_with_example()
CELL_MODELS = [name for name, model in REGISTRY.models.items() if model.cell is not None]
LENGTHS = torch.tensor([7, 3, 1, 5, 7, 2])


def batch(input_size: int = 4, seed: int = 0):
    """A right-padded batch, the same with junk in its padding, and the lengths."""
    x = torch.randn(len(LENGTHS), int(LENGTHS.max()), input_size, generator=torch.Generator().manual_seed(seed))
    past = torch.arange(x.shape[1])[None, :] >= LENGTHS[:, None]
    x[past] = 0.0
    junk = x.clone()
    junk[past] = 50.0
    return x, junk


@pytest.mark.parametrize("name", CELL_MODELS)
def test_every_cell_and_preset_gives_each_sequence_its_own_result(name, with_example):
    model = zoo.get_model(name)
    config = model.config(**{**model.defaults, "hidden_size": 8})
    problem = zoo.Problem(zoo.MANY_TO_ONE, output_size=3, input_size=4)
    torch.manual_seed(0)
    net = model.build(config, problem).eval()
    x, junk = batch()
    with torch.no_grad():
        together, leaked = net(x, None, LENGTHS), net(junk, None, LENGTHS)
        for i, n in enumerate(LENGTHS.tolist()):
            alone = net(x[i: i + 1, :n])[0]
            torch.testing.assert_close(together[i], alone, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(leaked[i], alone, atol=1e-5, rtol=1e-4)


class PlainLSTM(PlainGRU):
    def __init__(self, config, input_size):
        torch.nn.Module.__init__(self)
        self.gru = torch.nn.LSTM(input_size, config.hidden_size, batch_first=True)


class OwnDirections(torch.nn.Module):
    """native_layers but not torch.nn.RNNBase: zoo cannot tell it where sequences end."""

    def __init__(self, config, input_size):
        super().__init__()
        self.gru = torch.nn.GRU(input_size, config.hidden_size, **zoo.torch_rnn_kwargs(config))

    def forward(self, x, h0=None):
        return self.gru(x, h0)


@pytest.mark.parametrize("make_cell, native", [(PlainGRU, False), (PlainLSTM, False), (OwnDirections, True)])
def test_the_kit_check_passes_for_plain_and_self_built_cells(make_cell, native):
    check_cell(make_cell, native_layers=native, checks=[check_variable_length])


def test_layers_hold_each_final_state_at_the_sequence_end():
    config = zoo.RecurrentConfig(hidden_size=5, num_layers=2, bidirectional=True)
    torch.manual_seed(0)
    layers = Layers(PlainLSTM, config, 4).eval()
    x, junk = batch()
    with torch.no_grad():
        out, (h, c) = layers(junk, None, LENGTHS)
        for i, n in enumerate(LENGTHS.tolist()):
            alone, (h1, c1) = layers(x[i: i + 1, :n])
            torch.testing.assert_close(out[i, :n], alone[0], atol=1e-5, rtol=1e-4)
            assert out[i, n:].abs().max() == 0 if n < out.shape[1] else True  # zeros past the end
            torch.testing.assert_close(h[:, i], h1[:, 0], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(c[:, i], c1[:, 0], atol=1e-5, rtol=1e-4)


def test_run_lengths_gets_gradients_to_every_step_it_reads_and_none_to_padding():
    config = zoo.RecurrentConfig(hidden_size=5)
    cell = PlainGRU(config, 4)
    x, _ = batch()
    x.requires_grad_(True)
    out, h = run_lengths(cell, x, LENGTHS)
    h.sum().backward()
    past = torch.arange(x.shape[1])[None, :] >= LENGTHS[:, None]
    assert x.grad[past].abs().max() == 0
    assert (x.grad[~past].abs().sum(-1) > 0).all()


def test_packed_native_cells_match_the_unpacked_ones_for_full_length_batches():
    lstm = torch.nn.LSTM(4, 6, batch_first=True, bidirectional=True, num_layers=2).eval()
    x = torch.randn(3, 5, 4)
    with torch.no_grad():
        whole, _ = lstm(x)
        packed, _ = recurrent_lengths(lstm, x, torch.tensor([5, 5, 5]))
    torch.testing.assert_close(packed, whole, atol=1e-5, rtol=1e-4)


def test_the_kit_catches_a_network_that_reads_the_padding(monkeypatch):
    from zoo.nn import nets

    monkeypatch.setattr(nets, "recurrent_lengths", lambda rnn, x, lengths, h0, bi: rnn(x, h0))  # naive padding
    with pytest.raises(CheckFailed, match=r"check_variable_length(.|\n)*padded batch than alone"):
        check_cell(PlainGRU, checks=[check_variable_length])
