"""zoo's dropout (a CPU mask from random 16-bit words) and torch's stacked cells run a layer at a time."""

import pytest
import torch
from torch import nn

from zoo.contract.registry import registry
from zoo.contract.specs import MANY_TO_MANY, Problem
from zoo.nn.layers import Dropout, drops_by_layer, dropout, native_by_layer


@pytest.mark.parametrize("p", [0.1, 0.25, 0.4, 0.9])
def test_dropout_keeps_each_element_with_probability_1_minus_p_and_scales_the_survivors(p):
    torch.manual_seed(0)
    x = torch.rand(1000, 1000) + 0.5  # never 0: a zero out is a dropped element
    out = dropout(x, p)
    kept = out != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.003  # 1M draws: the standard error is below 0.0005
    scale = out[kept] / x[kept]
    assert torch.allclose(scale, torch.full_like(scale, 1 / (1 - p)), rtol=1e-4)  # p rounded to 1/65536
    assert abs(out.mean().item() - x.mean().item()) < 0.01 * x.mean().item()  # the expectation is kept
    rows, cols = kept.float().mean(1), kept.float().mean(0)  # no lane of the 16-bit words is favoured
    assert (rows - (1 - p)).abs().max() < 0.07 and (cols - (1 - p)).abs().max() < 0.07
    assert abs(kept[:, 0::4].float().mean() - kept[:, 3::4].float().mean()) < 0.01


def test_dropout_is_seeded_by_torch_and_backward_is_the_mask():
    x = torch.randn(3, 5, 7, requires_grad=True)
    torch.manual_seed(4)
    first = dropout(x, 0.3)
    torch.manual_seed(4)
    assert torch.equal(first, dropout(x, 0.3))  # a seeded run repeats
    assert not torch.equal(first, dropout(x, 0.3))  # each call a fresh mask
    first.sum().backward()
    assert torch.equal(x.grad, (first != 0).float() / (1 - round(0.3 * 65536) / 65536))


def test_dropout_off_is_the_input_itself():
    x = torch.randn(4, 4)
    assert dropout(x, 0.5, training=False) is x and dropout(x, 0.0) is x
    module = Dropout(0.5).eval()
    assert module(x) is x and repr(module) == repr(nn.Dropout(0.5))
    assert dropout(torch.empty(0, 3), 0.5).shape == (0, 3)


def test_dropout_keeps_a_bf16_input_bf16_under_autocast():
    x = torch.randn(8, 8, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert dropout(x, 0.5).dtype == torch.bfloat16


@pytest.mark.parametrize("p", [1e-7, 1 - 1e-7])
def test_a_p_too_near_0_or_1_for_16_bits_is_torchs_to_draw(p):
    torch.manual_seed(0)
    x = torch.ones(1000)
    torch.manual_seed(0)
    assert torch.equal(dropout(x, p), torch.nn.functional.dropout(x, p))


def stack(kind: type, bidirectional: bool, dropout_p: float = 0.3) -> nn.RNNBase:
    torch.manual_seed(0)
    return kind(5, 6, num_layers=3, dropout=dropout_p, batch_first=True, bidirectional=bidirectional)


def flat(result) -> list[torch.Tensor]:
    out, state = result
    return [out, *(state if isinstance(state, tuple) else (state,))]


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU, nn.RNN])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_stacked_torch_cell_run_by_layer_is_the_cell_itself(kind, bidirectional):
    rnn = stack(kind, bidirectional, dropout_p=0.0)  # the same layers in one call and in one call each
    x = torch.randn(4, 9, 5)
    h = torch.randn(3 * (1 + bidirectional), 4, 6)
    for h0 in (None, (h, h.flip(1)) if kind is nn.LSTM else h):
        want, got = flat(rnn(x, h0)), flat(native_by_layer(rnn, x, h0))
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(want, got, strict=True))


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU])
def test_a_stacked_torch_cell_run_by_layer_drops_out_between_layers_only(kind):
    rnn = stack(kind, bidirectional=False)
    layers = []
    for layer in range(3):  # the same weights as one-layer cells
        one = kind(5 if layer == 0 else 6, 6, batch_first=True)
        one.load_state_dict({name.replace(f"_l{layer}", "_l0"): value for name, value in rnn.state_dict().items()
                             if name.endswith(f"_l{layer}")})
        layers.append(one)
    x = torch.randn(4, 9, 5)
    torch.manual_seed(7)
    got, _ = native_by_layer(rnn, x)
    torch.manual_seed(7)
    want = x
    for number, one in enumerate(layers):
        want, _ = one(dropout(want, 0.3) if number else want)
    assert torch.allclose(got, want, atol=1e-6)


def test_only_training_on_the_cpu_with_dropout_between_layers_runs_by_layer():
    x = torch.randn(2, 3, 5)
    assert drops_by_layer(stack(nn.LSTM, False).train(), x)
    assert not drops_by_layer(stack(nn.LSTM, False).eval(), x)
    assert not drops_by_layer(stack(nn.LSTM, False, dropout_p=0.0).train(), x)
    assert not drops_by_layer(nn.LSTM(5, 6, batch_first=True).train(), x)  # one layer: nothing between
    assert not drops_by_layer(nn.LSTM(5, 6, num_layers=2, dropout=0.3, batch_first=True, proj_size=3), x)
    assert not drops_by_layer(nn.LSTMCell(5, 6), x)

    class Own(nn.LSTM):  # a plugin's subclass with its own forward is called as it is
        def forward(self, x, h0=None):
            return super().forward(x, h0)

    assert not drops_by_layer(Own(5, 6, num_layers=2, dropout=0.3, batch_first=True), x)
    hooked = stack(nn.LSTM, False)
    hooked.register_forward_pre_hook(lambda module, args: None)
    assert not drops_by_layer(hooked, x)


def test_a_network_with_weight_drop_runs_its_layers_on_the_dropped_weights():
    """RecurrentNet: weight drop's swapped-in recurrent weights, then dropout between the layers and before the
    head, in that order of random draws: the same numbers computed by hand."""
    spec = registry().models["lstm"]
    config = spec.config(hidden_size=6, num_layers=2, dropout=0.3, weight_drop=0.5)
    torch.manual_seed(0)
    net = spec.build(config, Problem(MANY_TO_MANY, output_size=5, vocab_size=5)).train()
    x = torch.randint(0, 5, (3, 7))
    torch.manual_seed(1)
    got = net(x)
    torch.manual_seed(1)
    weights = {name: dropout(net.get_parameter(name), 0.5) for name in net.recurrent_weights}
    hidden = nn.functional.one_hot(x, 5).float()
    for layer in range(2):
        if layer:
            hidden = dropout(hidden, 0.3)
        w_ih, b_ih, b_hh = (getattr(net.rnn, f"{part}_l{layer}") for part in ("weight_ih", "bias_ih", "bias_hh"))
        w_hh = weights[f"rnn.weight_hh_l{layer}"]
        h, c, outputs = torch.zeros(3, 6), torch.zeros(3, 6), []
        for t in range(7):
            i, f, g, o = (hidden[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        hidden = torch.stack(outputs, 1)
    want = net.head(dropout(hidden, 0.3))
    assert torch.allclose(got, want, atol=1e-5)
