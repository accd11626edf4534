"""An ONNX export run by onnxruntime, behind the interface of the torch network it was exported from.

`load(path)` returns a module that the tasks' evaluate and predict functions use as they use
`zoo.load`'s: `net(x, carry)` for a RecurrentNet (the state in `carry`, a step graph looped here);
for seq2seq, the network's own Python (its `generate`, beam search, `start`, `reorder`) with `encode`
and `step` answered by the exported encoder and decoder graphs. Tensors in, tensors out; the
arithmetic is onnxruntime's, on the CPU.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from zoo.contract.specs import SEQ2SEQ, ZooError
from zoo.store.onnx_export import difference, leaves, rebuild
from zoo.store.onnx_file import decoder_model, read_layout, read_model, require


def session(model: Any, path: Any):
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 4  # failures come back as exceptions, said in one line by the caller
    try:
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own errors (InvalidGraph, Fail, ...) share no base class
        raise ZooError(f"{path}: onnxruntime cannot run its graph ({type(e).__name__}: "
                       f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''})") from None


class Graph:
    """An onnxruntime session called with tensors, by input name; what it cannot take is one line."""

    def __init__(self, model: Any, path: Any):
        self.session, self.path = session(model, path), path
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, feeds: dict[str, torch.Tensor], device: torch.device) -> list[torch.Tensor]:
        missing = [name for name in self.inputs if name not in feeds]
        if missing:
            raise ZooError(f"{self.path}: its graph wants inputs zoo does not have ({', '.join(missing)})")
        arrays = {name: feeds[name].detach().cpu().contiguous().numpy() for name in self.inputs}
        try:
            outputs = self.session.run(None, arrays)
        except Exception as e:
            raise ZooError(f"{self.path}: onnxruntime could not run its graph ({type(e).__name__}: "
                           f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''})") from None
        return [torch.from_numpy(o).to(device) for o in outputs]


class OnnxRecurrentNet(nn.Module):
    """A RecurrentNet's export: `net(x, carry=None)` as RecurrentNet's forward, the state carried in `carry`."""

    def __init__(self, graph: Graph, layout: dict, card: Any):
        super().__init__()
        self.graph, self.layout, self.zoo = graph, layout, card
        self.anchor = nn.Parameter(torch.zeros(0), requires_grad=False)  # zoo.device_of finds the device here
        self.names = layout["state"]
        shapes = layout.get("state_shapes")
        if not (isinstance(shapes, list) and len(shapes) == len(self.names) and all(
                isinstance(s, list) and len(s) == 2 and all(type(n) is int and 0 < n <= 2**20 for n in s)
                for s in shapes)):
            raise ZooError(f"{graph.path} has damaged zoo metadata (onnx_layout's state_shapes)")
        declared = {i.name: i.shape for i in graph.session.get_inputs()}
        for name, (layers, hidden) in zip(self.names, shapes):  # the zero state is made from these: bound them
            if list(declared.get(name) or [])[::2] != [layers, hidden]:
                raise ZooError(f"{graph.path} has damaged zoo metadata (onnx_layout's state_shapes say {name} is "
                               f"[{layers}, batch, {hidden}]; the graph says {declared.get(name)})")
        self.shapes = shapes
        self.many_to_one = bool(layout.get("many_to_one"))
        self.tokens = card.problem.vocab_size > 0

    def zeros(self, batch: int, device) -> list[torch.Tensor]:
        return [torch.zeros(layers, batch, hidden, device=device) for layers, hidden in self.shapes]

    def forward(self, x: torch.Tensor, carry=None, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(carry, torch.Tensor):  # a split's (x, lengths) inputs, as RecurrentNet takes them
            carry, lengths = None, carry
        if lengths is not None:
            return self.by_length(x, lengths)
        x = x.long() if self.tokens else x.float()
        state = leaves(carry.state) if carry is not None and carry.state is not None else self.zeros(len(x), x.device)
        if self.layout["kind"] == "sequence":
            logits, *state = self.run(x, state)
        else:  # a step graph: looped over the time axis, the state fed back
            steps = []
            for t in range(x.shape[1]):
                step, *state = self.run(x[:, t: t + 1], state)
                steps.append(step)
            logits = steps[-1] if self.many_to_one else torch.cat(steps, 1)
        if carry is not None:
            carry.state = tuple(state) if len(state) > 1 else state[0]
        return logits

    def by_length(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """A right-padded batch read as RecurrentNet reads it: each sequence to its own end, never its
        padding. The graph runs once per distinct length, on those sequences cut to it (exact for every
        layout, bidirectional too, since no padding is ever fed)."""
        lengths = lengths.to(x.device).long()
        if len(lengths) != len(x) or bool(((lengths < 1) | (lengths > x.shape[1])).any()):
            raise ZooError(f"lengths {lengths.tolist()} do not fit a batch of {tuple(x.shape[:2])}")
        result = None
        for n in torch.unique(lengths).tolist():
            rows = (lengths == n).nonzero().flatten()
            part = self.forward(x[rows, :n])
            if result is None:
                shape = (len(x), *part.shape[1:]) if self.many_to_one else (len(x), x.shape[1], *part.shape[2:])
                result = part.new_zeros(shape)
            if self.many_to_one:
                result[rows] = part
            else:
                result[rows, :n] = part
        return result

    def run(self, x: torch.Tensor, state: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.graph({"x": x, **{name: s.float() for name, s in zip(self.names, state)}}, x.device)


def seq2seq_net(encoder: Graph, decoder: Graph, layout: dict, card: Any, spec: Any, budget: int) -> nn.Module:
    """The registered seq2seq network (its Python: generate, beam search), its encode and step run in
    onnxruntime. Its own weights are never used; it is built under a budget the graphs' sizes set."""
    from zoo.nn.budget import Budget, TooBig

    try:
        with torch.random.fork_rng(devices=[]), Budget(max_tensors=10_000, max_elements=budget):
            net = spec.build(card.model_config, card.problem).eval()
    except TooBig:
        raise ZooError(f"{encoder.path}: its metadata describes a {card.model} far bigger than its graphs: the file "
                       f"is damaged or forged") from None
    net.requires_grad_(False)
    net.zoo = card
    src = torch.tensor([[4, 5], [4, 0]])
    src_len = torch.tensor([2, 1])
    with torch.no_grad():  # the structure of the encoding and of the carry, which the graphs flatten
        enc_like = net.encode(src, src_len)
        carry_like = net.start(enc_like)
    if len(leaves(enc_like)) != len(layout["encoder_outputs"]) or len(leaves(carry_like)) != len(layout["carry"]):
        raise ZooError(f"{encoder.path}: its graphs do not match the {card.model} its metadata describes")

    def encode(src: torch.Tensor, lengths: torch.Tensor):
        outputs = encoder({"src": src.long(), "src_len": lengths.long()}, src.device)
        return rebuild(enc_like, outputs)

    def step(token: torch.Tensor, carry, enc):
        feeds = {"token": token.long(), **dict(zip(layout["carry"], leaves(carry))),
                 **{f"dec_{n}": t for n, t in zip(layout["encoder_outputs"], leaves(enc))}}
        logits, *carry = decoder(feeds, token.device)
        return logits, rebuild(carry_like, carry)

    def forward(src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (batch, target steps, vocabulary), one decoder step at a time."""
        enc = net.encode(src, src_len)
        carry, logits = net.start(enc), []
        for t in range(tgt_in.shape[1]):
            out, carry = net.step(tgt_in[:, t], carry, enc)
            logits.append(out)
        return torch.stack(logits, 1)

    net.encode, net.step, net.forward = encode, step, forward  # instance attributes: net's Python calls these
    return net


def load(path: Any, device: Any = "cpu", task_overrides: dict[str, str] | None = None) -> nn.Module:
    """The network of an ONNX export, run by onnxruntime, in eval mode; `.zoo` holds its Card."""
    from zoo.contract.registry import registry
    from zoo.store.checkpoint import card_of
    from zoo.store.onnx_file import describe

    require("onnxruntime")
    card = card_of(path, describe(path), task_overrides)  # the card checked as a safetensors export's
    model, metadata = read_model(path)
    layout = read_layout(path, metadata)
    if (layout["kind"] == "seq2seq") != (card.problem.shape == SEQ2SEQ):
        raise ZooError(f"{path} has damaged zoo metadata (a {layout['kind']} graph for a {card.problem.shape} problem)")
    graph = Graph(model, path)
    if layout["kind"] != "seq2seq":
        if graph.inputs != ["x", *layout["state"]]:
            raise ZooError(f"{path}: its graph's inputs ({', '.join(graph.inputs)}) are not x and its state")
        net = OnnxRecurrentNet(graph, layout, card)
    else:
        decoder = decoder_model(path, metadata)
        elements = sum(math.prod(t.dims) for m in (model, decoder) for t in m.graph.initializer)
        net = seq2seq_net(graph, Graph(decoder, path), layout, card, registry().get_model(card.model),
                          4 * elements + 10_000_000)
    return net.to(device).eval()


def in_memory(net: nn.Module, problem: Any) -> OnnxRecurrentNet:
    """A RecurrentNet exported and run back through onnxruntime without a file (the conformance kit's)."""
    from types import SimpleNamespace

    from zoo.store.onnx_export import recurrent_graph
    from zoo.store.onnx_file import parse

    graph, layout = recurrent_graph(net.cpu().eval(), problem)
    return OnnxRecurrentNet(Graph(parse("the exported graph", graph), "the exported graph"), layout,
                            SimpleNamespace(problem=problem))


def parity(net: nn.Module, exported: nn.Module, problem: Any, batches=(1, 3), lengths=(1, 7, 33),
           tolerance: float = 1e-5) -> list[str]:
    """What differs between a torch RecurrentNet and its export beyond `tolerance` (absolute, relative
    above magnitude 1: onnx_export.difference): outputs and final
    states from a random state, at each batch size and length, and (one direction: a backward one reads
    the end first) the sequence fed one step at a time."""
    from zoo.nn.layers import Carry
    from zoo.store.onnx_export import sample_input

    generator = torch.Generator().manual_seed(2)
    problems = []
    many_to_one = problem.shape != "many-to-many"
    for batch in batches:
        for length in lengths:
            x = sample_input(problem, batch, length, generator)
            expected_carry, got_carry, step_carry = Carry(), Carry(), Carry()
            with torch.no_grad():
                net(x[:, :1], expected_carry)  # a state that is not zeros, the same for all three
                start = expected_carry.state
                got_carry.state = step_carry.state = start
                expected = net(x, expected_carry)
                got = exported(x, got_carry)
                steps = [exported(x[:, t: t + 1], step_carry) for t in range(length)]
            stepped = steps[-1] if many_to_one else torch.cat(steps, 1)
            pairs = [("outputs", expected, got), ("final state", expected_carry.state, got_carry.state)]
            if getattr(net, "directions", 1) == 1:
                pairs += [("outputs fed one step at a time", expected, stepped),
                          ("final state fed one step at a time", expected_carry.state, step_carry.state)]
            for what, a, b in pairs:
                for e, g in zip(leaves(a), leaves(b)):
                    worst = difference(e, g)
                    if not worst <= tolerance:
                        problems.append(f"batch {batch}, length {length}: {what} differ by {worst:.2g}")
    return problems
