"""What a recurrent network computed at every step: hidden states, gates and cell states, as tensors.

`zoo.trace(model, *inputs)` calls the model once, as it is (in eval mode, without gradients), so its
output is exactly what `zoo predict` computes; forward hooks record what every recurrent part of it
received and returned. From those records:

- torch's fused nn.RNN, nn.LSTM and nn.GRU (zoo's built-in cells keep them for training) are
  recomputed step by step from their weights: LSTM gates i, f, g, o and cell state c, GRU gates
  r, z and candidate n, and h, every layer and direction;
- a plain cell (the cell contract, zoo/nn/layers.py) that has `internals(x, h0)` gives its own named
  per-step tensors (its optional `gates` attribute names those that are gates, in [0, 1]);
- any other cell gives its outputs, the hidden states, and never an error.

A part called several times in one forward (a decoder stepped one token at a time) has its calls
joined along the time axis. Tensors are (batch, time, hidden), the time axis in reading order for
the forward direction and put back in the sequence's order for the backward one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

GATES = {"LSTM": ("i", "f", "o"), "GRU": ("r", "z"), "RNN": ()}


@dataclass
class Layer:
    """One layer in one direction of one recurrent part of a network."""

    part: str  # the module's name in the network: "rnn", "encoders.0", "decoder"
    layer: int
    direction: str  # "forward" or "backward"
    tensors: dict[str, torch.Tensor]  # name -> (batch, time, hidden); "h" always
    gates: tuple[str, ...] = ()  # the names among `tensors` that are gates (sigmoids, in [0, 1])

    @property
    def name(self) -> str:
        where = "" if self.part in ("rnn", "") else f"{self.part} "
        return f"{where}layer {self.layer} {self.direction}"


@dataclass
class Trace:
    """`output`: what the model returned; `layers`: what each of its recurrent layers computed."""

    output: Any
    layers: list[Layer] = field(default_factory=list)

    def parts(self) -> list[str]:
        return list(dict.fromkeys(layer.part for layer in self.layers))

    def top(self, part: str | None = None, direction: str = "forward") -> Layer:
        """The last layer of `part` (default: the first part) read in `direction`."""
        part = self.parts()[0] if part is None else part
        return [la for la in self.layers if la.part == part and la.direction == direction][-1]


def recompute(module: nn.RNNBase, x: torch.Tensor, hx: Any = None) -> list[dict[str, torch.Tensor]]:
    """The per-step internals of torch's fused RNN, LSTM or GRU over x, from its weights: one dict per
    layer and direction, in torch's order (layer 0 forward, layer 0 backward, layer 1 forward, ...).

    x is (batch, time, input) whatever the module's batch_first; `hx` as the module takes it. Each
    layer runs fused once (a one-layer copy of its weights) for its states h_{t-1}; from those and
    x_t, every gate of every step is one matrix product, and the new states are computed from the
    gates (for an LSTM, c_t = f_t c_{t-1} + i_t g_t is stepped, elementwise): the h returned is the
    recomputed one, which the tests compare with the fused module's outputs."""
    kind = module.mode.split("_")[0]  # LSTM, GRU, RNN
    if getattr(module, "proj_size", 0):
        raise NotImplementedError("LSTMs with proj_size are not recomputed")
    directions = 2 if module.bidirectional else 1
    batch = x.shape[0]
    hidden = module.hidden_size
    if hx is None:
        zeros = x.new_zeros(module.num_layers * directions, batch, hidden)
        hx = (zeros, zeros) if kind == "LSTM" else zeros
    h0, c0 = hx if kind == "LSTM" else (hx, None)
    found, inputs = [], x
    for layer in range(module.num_layers):
        single = _one_layer(module, layer, inputs.shape[-1])
        start = slice(layer * directions, (layer + 1) * directions)
        fused, _ = single(inputs, (h0[start], c0[start]) if kind == "LSTM" else h0[start])
        for direction in range(directions):
            suffix = f"_l{layer}{'_reverse' if direction else ''}"
            w_ih, w_hh = getattr(module, "weight_ih" + suffix), getattr(module, "weight_hh" + suffix)
            b_ih = getattr(module, "bias_ih" + suffix) if module.bias else None
            b_hh = getattr(module, "bias_hh" + suffix) if module.bias else None
            index = layer * directions + direction
            seq = inputs.flip(1) if direction else inputs
            states = fused[..., direction * hidden: (direction + 1) * hidden]
            states = states.flip(1) if direction else states  # in reading order
            previous = torch.cat([h0[index][:, None], states[:, :-1]], 1)  # h_{t-1} for every step
            xs = nn.functional.linear(seq, w_ih, b_ih)
            hs = nn.functional.linear(previous, w_hh, b_hh)
            if kind == "LSTM":
                i, f, g, o = (xs + hs).chunk(4, -1)
                i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
                c, cells = c0[index], []
                for f_t, ig_t in zip(f.unbind(1), (i * g).unbind(1)):
                    c = f_t * c + ig_t
                    cells.append(c)
                c = torch.stack(cells, 1)
                tensors = {"i": i, "f": f, "g": g, "o": o, "c": c, "h": o * c.tanh()}
            elif kind == "GRU":
                xr, xz, xn = xs.chunk(3, -1)
                hr, hz, hn = hs.chunk(3, -1)
                r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
                n = (xn + r * hn).tanh()
                tensors = {"r": r, "z": z, "n": n, "h": (1 - z) * n + z * previous}
            else:
                tensors = {"h": (xs + hs).tanh() if module.nonlinearity == "tanh" else (xs + hs).relu()}
            if direction:
                tensors = {name: value.flip(1) for name, value in tensors.items()}
            found.append(tensors)
        inputs = fused  # eval mode: no dropout between layers
    return found


def _one_layer(module: nn.RNNBase, layer: int, input_size: int) -> nn.RNNBase:
    """Layer `layer` of a fused module as a module of its own (batch first), sharing its weights."""
    kwargs = {"nonlinearity": module.nonlinearity} if isinstance(module, nn.RNN) else {}
    with torch.device("meta"):
        single = type(module)(input_size, module.hidden_size, num_layers=1, bias=module.bias, batch_first=True,
                              bidirectional=module.bidirectional, **kwargs)
    weights = {name.replace(f"_l{layer}", "_l0"): value for name, value in module.named_parameters()
               if _layer_of(name) == layer}
    single.load_state_dict(weights, assign=True)
    return single.eval()


def _layer_of(name: str) -> int:
    return int(name.split("_l")[1].split("_")[0])


def _as_batch_first(module: nn.Module, x: Any) -> torch.Tensor:
    if isinstance(x, PackedSequence):
        return pad_packed_sequence(x, batch_first=True)[0]
    if isinstance(module, nn.RNNBase) and not module.batch_first:
        return x.transpose(0, 1)
    return x


def _plain_layers(module: nn.Module) -> list[nn.Module] | None:
    """The plain cells of zoo's Layers (stacking and directions around a plain cell), else None."""
    from zoo.nn.layers import Layers

    return list(module.cells) if isinstance(module, Layers) else None


def _recurrent_parts(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The outermost recurrent modules: torch's RNNBase, zoo's Layers, or a plain cell marked by
    zoo.nn.layers.recurrent (`zoo_recurrent`)."""
    from zoo.nn.layers import Layers

    parts, inside = [], []
    for name, module in model.named_modules():
        if any(p == "" or name.startswith(p + ".") for p in inside):  # "": the network is the cell itself
            continue
        if isinstance(module, (nn.RNNBase, Layers)) or getattr(module, "zoo_recurrent", False):
            parts.append((name, module))
            inside.append(name)
    return parts


def trace(model: nn.Module, *inputs: Any, **kwargs: Any) -> Trace:
    """Call `model(*inputs, **kwargs)` once and return its output with every recurrent layer's per-step
    internals (see the module docstring). Call a method other than forward with `zoo.trace(model.generate,
    ...)`: `model` may be a bound method of the network."""
    network = model.__self__ if hasattr(model, "__self__") else model
    call = model
    calls: dict[int, list[tuple[Any, Any, Any]]] = {}
    hooks, watched = [], []  # watched: (part name, layer index or None, direction, module)
    for name, module in _recurrent_parts(network):
        cells = _plain_layers(module)
        if cells is None:
            watched.append((name, None, 0, module))
        else:
            directions = module.directions
            watched += [(name, i // directions, i % directions, cell) for i, cell in enumerate(cells)]
    for _, _, _, module in watched:
        def hook(mod, args, kw, out, key=id(module)):
            x = args[0] if args else kw.get("input", kw.get("x"))
            h0 = args[1] if len(args) > 1 else kw.get("hx", kw.get("h0"))
            calls.setdefault(key, []).append((x, h0, out))
        hooks.append(module.register_forward_hook(hook, with_kwargs=True))
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            output = call(*inputs, **kwargs)
            layers = []
            for name, index, direction, module in watched:
                layers += _internals(name, index, direction, module, calls.get(id(module), []))
    finally:
        for hook in hooks:
            hook.remove()
        network.train(was_training)
    return Trace(output, layers)


def _internals(name: str, index: int | None, direction: int, module: nn.Module, calls: list) -> list[Layer]:
    """The layers one watched module computed over its calls, each call's steps joined along time."""
    if not calls:
        return []
    per_call = []
    for x, h0, out in calls:
        x = _as_batch_first(module, x)
        if isinstance(module, nn.RNNBase) and not getattr(module, "proj_size", 0):
            per_call.append((recompute(module, x, h0), GATES[module.mode.split("_")[0]]))
            continue
        y = out[0] if isinstance(out, tuple) else out
        y = _as_batch_first(module, y)
        if isinstance(module, nn.RNNBase):  # not recomputed: the top layer's outputs, one per direction
            size = module.hidden_size if not module.proj_size else module.proj_size
            per_call.append(([{"h": part} for part in y.split(size, -1)], ()))
        elif hasattr(module, "internals"):
            tensors = dict(module.internals(x, h0))
            per_call.append(([{"h": y, **tensors}], tuple(getattr(module, "gates", ()))))
        else:
            per_call.append(([{"h": y}], ()))
    joined = []
    for number in range(len(per_call[0][0])):
        names = per_call[0][0][number]
        joined.append({key: torch.cat([c[0][number][key] for c in per_call], 1) for key in names})
    gates = per_call[0][1]
    if index is not None:  # one cell of zoo's Layers: it read the backward direction reversed
        tensors = joined[0] if not direction else {k: v.flip(1) for k, v in joined[0].items()}
        return [Layer(name, index, ("forward", "backward")[direction], tensors, gates)]
    directions = 2 if isinstance(module, nn.RNNBase) and module.bidirectional else 1
    if isinstance(module, nn.RNNBase) and getattr(module, "proj_size", 0):
        return [Layer(name, module.num_layers - 1, ("forward", "backward")[d], t, ()) for d, t in enumerate(joined)]
    return [Layer(name, i // directions, ("forward", "backward")[i % directions], tensors, gates)
            for i, tensors in enumerate(joined)]


def saturation(values: torch.Tensor, low: float = 0.1, high: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    """Per unit, the share of steps (over the batch too) a gate is left-saturated (< low) and right-saturated
    (> high), as in Karpathy, Johnson & Fei-Fei (2015), figure 3."""
    flat = values.reshape(-1, values.shape[-1]).float()
    return (flat < low).float().mean(0), (flat > high).float().mean(0)
