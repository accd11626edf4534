"""Stacking, both directions and inter-layer dropout, built around a one-layer, one-direction cell.

The cell contract (docs/plugins.md, "The cell contract"): a plain cell is one layer reading left to right,

    out, h_n = cell(x, h0)      x: (batch, time, input), h0: None or (1, batch, hidden)
                                out: (batch, time, hidden), h_n: (1, batch, hidden)

(an LSTM-like cell may carry a tuple of such states). `Layers` makes `num_layers` x directions of
them behave like torch.nn.RNN with `batch_first=True`: outputs `[forward | backward]` along the last
dimension, states `(layers * directions, batch, hidden)` in torch's order (layer 0 forward, layer 0
backward, layer 1 forward, ...), dropout between layers. So every preset means what it says for
every cell, and a cell author writes the recurrence only.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F


def check_step(out: Any, state: Any, x: torch.Tensor, hidden: int, layers: int = 1, directions: int = 1) -> None:
    """Shape checks (a few integer comparisons) that turn a cell breaking the contract into one line."""
    from zoo.contract.specs import ZooError

    expected = (x.shape[0], x.shape[1], hidden * directions)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ZooError(f"the recurrent cell returned out {got} for x {tuple(x.shape)}; the cell contract wants "
                       f"(batch, time, hidden) = {expected} (zoo.testing.check_cell checks a cell)")
    for part in (state if isinstance(state, (tuple, list)) else (state,)) if state is not None else ():
        layers_directions = layers * directions
        if not isinstance(part, torch.Tensor) or tuple(part.shape) != (layers_directions, x.shape[0], hidden):
            got = tuple(part.shape) if isinstance(part, torch.Tensor) else type(part).__name__
            raise ZooError(f"the recurrent cell returned a state {got}; the cell contract wants (layers*directions, "
                           f"batch, hidden) = {(layers_directions, x.shape[0], hidden)}, batch second "
                           f"(zoo.testing.check_cell checks a cell)")


def map_state(function: Callable, *states):
    """Apply `function` to a recurrent state, a tensor or (as for LSTMs) a tuple of them."""
    if isinstance(states[0], (tuple, list)):
        return tuple(function(*parts) for parts in zip(*states))
    return function(*states)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """F.dropout, with the CPU's mask made from random 16-bit words compared with a threshold.

    torch's CPU dropout draws its Bernoulli mask one element at a time: 7.6 ms forward and backward
    for a (16, 100, 512) batch, against 1.35 ms here; charlm's fitted LSTM (two layers of 512, weight
    drop) trains 1.30x the characters a second with it (bench/dropout.py). The keep probability is
    1 - p rounded to 1/65536 and the survivors are scaled by its inverse, so the expectation is x's.
    The words come from torch's default generator: a seeded run repeats, and resumes bit for bit.
    Elsewhere (CUDA's fused kernel) it is F.dropout.
    """
    if not training or p == 0.0:
        return x
    n, dropped = x.numel(), round(p * 65536)
    if x.device.type != "cpu" or not 0 < dropped < 65536:  # a p this near 0 or 1 is torch's to draw
        return F.dropout(x, p, training)
    words = torch.randint(-2**63, 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64)  # 64 random bits each
    keep = words.view(torch.int16)[:n].view(x.shape) >= dropped - 32768  # P = (65536 - dropped) / 65536
    return x * keep.to(x.dtype).mul_(65536 / (65536 - dropped))


class Dropout(nn.Dropout):
    """torch.nn.Dropout through `dropout` (its faster CPU mask): the same module, state and repr."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, self.training, inplace=True) if self.inplace else dropout(x, self.p, self.training)


_NATIVE = {"LSTM": torch.lstm, "GRU": torch.gru, "RNN_TANH": torch.rnn_tanh, "RNN_RELU": torch.rnn_relu}


def drops_by_layer(rnn: nn.Module, x: torch.Tensor) -> bool:
    """Whether `native_by_layer` should run torch's own stacked cell: training on the CPU with dropout.

    torch's classes themselves only, without hooks: a subclass's own forward, or a hook (weight_norm's,
    say), is called as it is."""
    return (type(rnn) in (nn.LSTM, nn.GRU, nn.RNN) and rnn.training and rnn.dropout > 0 and rnn.num_layers > 1
            and x.device.type == "cpu" and rnn.batch_first and not rnn.proj_size
            and not (rnn._forward_hooks or rnn._forward_pre_hooks))


def native_by_layer(rnn: nn.RNNBase, x: torch.Tensor, h0=None):
    """torch's own stacked cell (nn.LSTM, GRU, RNN) run one layer at a time, `dropout` between layers.

    The same op, weights and kernels as rnn(x, h0), but torch's dropout between the layers draws the
    slow CPU mask (`dropout`'s docstring). The weights are read by name, so the ones
    torch.func.functional_call swaps in (weight drop) are the ones used.
    """
    lstm, directions = rnn.mode == "LSTM", 2 if rnn.bidirectional else 1
    weights = [getattr(rnn, name) for name in rnn._flat_weights_names]
    each = len(weights) // rnn.num_layers  # per layer: w_ih, w_hh(, b_ih, b_hh) for each direction
    if h0 is None:
        zeros = x.new_zeros(rnn.num_layers * directions, x.shape[0], rnn.hidden_size)
        h0 = (zeros, zeros) if lstm else zeros
    finals = []
    for layer in range(rnn.num_layers):
        if layer:
            x = dropout(x, rnn.dropout, True)
        rows = slice(layer * directions, (layer + 1) * directions)
        hx = [h0[0][rows], h0[1][rows]] if lstm else h0[rows]
        x, *state = _NATIVE[rnn.mode](x, hx, weights[layer * each: (layer + 1) * each], rnn.bias, 1, 0.0, True,
                                      rnn.bidirectional, True)
        finals.append(state)
    state = tuple(torch.cat(parts) for parts in zip(*finals))
    return x, state if lstm else state[0]


def one_layer(config: Any) -> Any:
    """The config a plain cell sees: one layer, one direction, no dropout (zoo does those)."""
    changes = {"num_layers": 1, "bidirectional": False, "dropout": 0.0}
    names = {f.name for f in dataclasses.fields(config)}
    return dataclasses.replace(config, **{k: v for k, v in changes.items() if k in names})


class Layers(nn.Module):
    """`num_layers` x (1 or 2 directions) plain cells with torch.nn.RNN's batch-first interface."""

    def __init__(self, make_cell: Callable[[Any, int], nn.Module], config: Any, input_size: int):
        super().__init__()
        self.num_layers = config.num_layers
        self.directions = 2 if config.bidirectional else 1
        self.dropout, self.hidden_size = config.dropout, config.hidden_size
        single = one_layer(config)
        self.cells = nn.ModuleList(
            make_cell(single, input_size if layer == 0 else config.hidden_size * self.directions)
            for layer in range(self.num_layers) for _ in range(self.directions))

    def forward(self, x: torch.Tensor, h0=None, lengths: torch.Tensor | None = None):
        """`lengths` (batch,): x is right-padded, sequence b is x[b, :lengths[b]]; each sequence then
        gets the outputs and final states it gets alone, zeros past its end (see `run_lengths`)."""
        states = []
        for layer in range(self.num_layers):
            if layer:  # between layers only, as torch.nn.RNN's dropout
                x = dropout(x, self.dropout, self.training)
            outputs = []
            for direction in range(self.directions):
                i = layer * self.directions + direction
                start = None if h0 is None else map_state(lambda s: s[i: i + 1], h0)
                if lengths is not None:  # variable length: backward starts at each sequence's real end
                    x_in = reverse_within(x, lengths) if direction else x
                    out, state = run_lengths(self.cells[i], x_in, lengths, start)
                    check_step(out, state, x, self.hidden_size)
                    outputs.append(reverse_within(out, lengths) if direction else out)
                    states.append(state)
                    continue
                # the backward direction reads the sequence reversed and its outputs are put back in order
                out, state = self.cells[i](x.flip(1) if direction else x, start)
                check_step(out, state, x, self.hidden_size)
                outputs.append(out.flip(1) if direction else out)
                states.append(state)
            x = outputs[0] if len(outputs) == 1 else torch.cat(outputs, -1)
        return x, map_state(lambda *parts: torch.cat(parts, 0), *states)


# -- variable length (issue 22): right-padded batches whose results never depend on the padding ------

def reverse_within(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each sequence of a right-padded batch reversed within its length, its padding left at the end."""
    steps = torch.arange(x.shape[1], device=x.device)[None, :]
    lengths = lengths.to(x.device)[:, None]
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)
    return x.gather(1, index[:, :, None].expand_as(x))


def run_lengths(cell: nn.Module, x: torch.Tensor, lengths: torch.Tensor, h0=None):
    """(out, h_n) of a one-direction cell over a right-padded batch, each sequence as if it ran alone.

    What pack_padded_sequence does for torch's cells, for any cell keeping the contract: the batch is
    sorted by length, longest first, and read in segments between consecutive lengths, each segment
    by the sequences still running, from the state the previous segment left (the kit's
    check_initial_state and check_batch_first are what make this exact). A sequence's final state is
    the one it had at its own end, held there; its outputs past the end are zeros. One cell call per
    distinct length in the batch, and no step is computed on padding.
    """
    lengths = lengths.to(x.device)
    order = lengths.argsort(descending=True, stable=True)
    ordered = lengths[order].tolist()
    xs = x[order]
    state = None if h0 is None else map_state(lambda s: s[:, order], h0)
    pieces, finals, start = [], [], 0
    for end in sorted(set(ordered)):  # segment [start, end) is read by the sequences longer than start
        if end <= start:
            continue
        active = sum(1 for n in ordered if n > start)
        if state is not None:
            state = map_state(lambda s: s[:, :active], state)
        out, state = cell(xs[:active, start:end], state)
        pieces.append(F.pad(out, (0, 0, 0, 0, 0, len(ordered) - active)))  # zeros for those already ended
        ended = active - sum(1 for n in ordered if n > end)
        finals.append(map_state(lambda s: s[:, active - ended: active], state))
        start = end
    out = torch.cat(pieces, 1)
    out = F.pad(out, (0, 0, 0, x.shape[1] - out.shape[1]))  # padding steps past the longest sequence
    # finals were collected shortest first, i.e. the sorted order reversed in blocks: put them back
    state = map_state(lambda *parts: torch.cat(parts[::-1], 1), *finals)
    inverse = order.argsort()
    return out[inverse], map_state(lambda s: s[:, inverse], state)


def recurrent_lengths(rnn: nn.Module, x: torch.Tensor, lengths: torch.Tensor, h0=None, bidirectional: bool = False):
    """The recurrent part of a network (`recurrent`'s module) over a right-padded batch with `lengths`.

    torch's own cells read it packed (pack_padded_sequence, enforce_sorted=False); `Layers` runs each
    cell with `run_lengths`, the backward ones over each sequence reversed within its length; a plain
    one-direction cell is `run_lengths` itself. A cell building its own directions that is not torch's
    cannot be told where sequences end, so each group of equal length runs alone, unpadded.
    """
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    if isinstance(rnn, nn.RNNBase):
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = rnn(packed, h0)
        return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0], state
    if isinstance(rnn, Layers):
        return rnn(x, h0, lengths)
    if not bidirectional:
        return run_lengths(rnn, x, lengths, h0)
    out, finals = x.new_zeros(0), {}
    for n in lengths.unique().tolist():
        rows = (lengths == n).nonzero()[:, 0].to(x.device)
        part, state = rnn(x[rows, :n], None if h0 is None else map_state(lambda s: s[:, rows], h0))
        if not out.numel():
            out = part.new_zeros(x.shape[0], x.shape[1], part.shape[-1])
        out[rows, :n] = part
        finals[n] = (rows, state)
    def gather(*parts):
        whole = parts[0].new_zeros(parts[0].shape[0], x.shape[0], parts[0].shape[-1])
        for (rows, _), part in zip(finals.values(), parts):
            whole[:, rows] = part
        return whole
    return out, map_state(gather, *(state for _, state in finals.values()))


def recurrent(make_cell: Callable[[Any, int], nn.Module], config: Any, input_size: int,
              native_layers: bool = False) -> nn.Module:
    """The recurrent part of a network, honouring num_layers, bidirectional and dropout.

    A cell with `native_layers` (torch's, for cuDNN/oneDNN speed) builds them itself; any other is
    stacked by `Layers`. One layer in one direction is the cell itself, so its weights keep their names.
    """
    if native_layers:
        return make_cell(config, input_size)
    if config.num_layers == 1 and not getattr(config, "bidirectional", False):
        cell = make_cell(one_layer(config), input_size)
        cell.zoo_recurrent = True  # what zoo.trace looks for (zoo/nn/trace.py)
        return cell
    return Layers(make_cell, config, input_size)


class Carry:
    """The recurrent state handed from one batch to the next (truncated backpropagation through time).

    A network called as `net(x, carry)` starts from `carry.state` (None: zeros) and leaves its final
    state there, detached, so gradients stop at the batch boundary while the state flows on.
    """

    def __init__(self):
        self.state = None
        self.last: torch.Tensor | None = None  # the example numbers of the batch that left the state

    def follow(self, index: torch.Tensor) -> "Carry":
        """Keep the state only when `index` continues the last batch lane by lane; else start from zeros
        (a new epoch, an evaluation, a resumed run)."""
        last, self.last = self.last, index
        if last is None or last.shape != index.shape or not torch.equal(index, last + 1):
            self.state = None
        return self
