"""Export a loaded zoo network to ONNX, with the recurrent state in and out of the graph.

Three layouts (docs/onnx.md), written in the file's metadata as `onnx_layout`:

- `sequence`: the whole network over a (batch, time) input, both axes dynamic, the state explicit:
  `x, state_h[, state_c] -> logits, state_h_out[, state_c_out]`. What torch's own cells give.
- `step`: the same graph for one step (time axis 1), which the caller loops, feeding the state back.
  A cell stepped in a Python loop (a plugin's) is unrolled by tracing, so its time axis would be frozen
  at the export's length: a unidirectional network is exported as a step graph instead (exact, since
  step t of every layer needs only step t of the layer below and its own state). A bidirectional one
  is refused, since its backward direction needs the whole sequence.
- `seq2seq`: the file's graph is the encoder, `src, src_len -> memory, [keys], mask, state...`; the
  decoder's one-step graph `token, state..., [feed], memory, [keys], mask -> logits, state..., [feed]`
  travels inside the same file, base64 in the metadata entry `decoder_onnx`, so that one file is the
  whole model.

Every graph is checked before it is written: onnxruntime runs it at lengths other than the one it was
traced at and must agree with PyTorch to 1e-5, else the export is refused in one line.
"""

from __future__ import annotations

import base64
import io
import json
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.contract.specs import SEQ2SEQ, ZooError
from zoo.nn.layers import Carry

OPSET = 17
TRACE_LENGTH = 5  # the length graphs are traced at; the check runs others
CHECK_LENGTHS = (1, 3, 9)
TOLERANCE = 1e-5


def leaves(tree: Any) -> list[torch.Tensor]:
    """The tensors of a nest of tuples (NamedTuples included) and Nones, in order."""
    if tree is None:
        return []
    if isinstance(tree, torch.Tensor):
        return [tree]
    return [leaf for part in tree for leaf in leaves(part)]


def state_names(state: Any) -> list[str]:
    """`state_h` for a tensor state, `state_h`, `state_c` (and on) for a tuple (an LSTM's)."""
    count = len(leaves(state))
    return ["state_h", "state_c", *[f"state_{i}" for i in range(2, count)]][:count]


class SequenceGraph(nn.Module):
    """A RecurrentNet with its state as plain inputs and outputs, for tracing."""

    def __init__(self, net: nn.Module, tuple_state: bool):
        super().__init__()
        self.net, self.tuple_state = net, tuple_state

    def forward(self, x, *state):
        carry = Carry()
        carry.state = tuple(state) if self.tuple_state else state[0]
        logits = self.net(x, carry)
        return (logits, *leaves(carry.state))


class EncoderGraph(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, src, src_len):
        return tuple(leaves(self.net.encode(src, src_len)))


class DecoderGraph(nn.Module):
    """`net.step(token, carry, enc)` with the carry's and the encoding's tensors as plain inputs."""

    def __init__(self, net: nn.Module, carry: Any, enc: Any):
        super().__init__()
        self.net, self.carry, self.enc = net, carry, enc

    def forward(self, token, *tensors):
        carry_count = len(leaves(self.carry))
        carry = rebuild(self.carry, list(tensors[:carry_count]))
        enc = rebuild(self.enc, list(tensors[carry_count:]))
        logits, carry = self.net.step(token, carry, enc)
        return (logits, *leaves(carry))


def rebuild(like: Any, tensors: list) -> Any:
    """A nest shaped like `like` whose tensors are taken from `tensors`, in order (consumed)."""
    if like is None:
        return None
    if isinstance(like, torch.Tensor):
        return tensors.pop(0)
    parts = [rebuild(part, tensors) for part in like]
    return type(like)(*parts) if hasattr(like, "_fields") else type(like)(parts)


@contextmanager
def known_native_warnings_hidden():
    """The TorchScript exporter writes C++ warnings straight to file descriptor 2; the one it always gives
    for packed sequences ("The shape inference of prim::PackPadded type is missing") is about shape
    inference, which the parity check covers. Any other line is passed on."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode(errors="replace").splitlines(keepends=True):
                if "shape inference of prim::Pack" not in line and "shape inference of prim::PadPacked" not in line:
                    os.write(2, line.encode())


def trace(module: nn.Module, args: tuple, inputs: list[str], outputs: list[str], axes: dict) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad(), known_native_warnings_hidden():
        # a tracer warning says Python control flow was frozen into the graph: whether that froze the
        # time axis is judged by running the graph at other lengths (check_recurrent, check_encoder)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, chosen: docs/onnx.md
        # "batch_size other than 1 ... define the initial states as inputs": they are inputs, and the
        # graph is run at batches 1 and 3 before it is written
        warnings.filterwarnings("ignore", "Exporting a model to ONNX with a batch_size other than 1")
        torch.onnx.export(module, args, buffer, input_names=inputs, output_names=outputs, dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
    return buffer.getvalue()


def session(graph: bytes):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # a frozen graph's failure is expected here
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def difference(expected: torch.Tensor, got: torch.Tensor) -> float:
    """How far `got` is from `expected`: absolute where |expected| <= 1, relative above (an LSTM's cell
    state of 10 holds float32 digits to about 1e-6, and 33 steps add their roundings); inf on a mismatch."""
    if expected.shape != got.shape or expected.dtype != got.dtype:
        return float("inf")
    if not expected.numel():
        return 0.0
    e, g = expected.double(), got.double()
    return float(((e - g).abs() / e.abs().clamp(min=1)).max())


def differs(expected: list[torch.Tensor], got: list) -> float:
    """The largest difference between torch's outputs and onnxruntime's (arrays)."""
    if len(expected) != len(got):
        return float("inf")
    return max((difference(e.detach().cpu(), torch.from_numpy(g)) for e, g in zip(expected, got)), default=0.0)


def sample_input(problem, batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
    if problem.vocab_size:
        return torch.randint(0, problem.vocab_size, (batch, length), generator=generator)
    return torch.randn(batch, length, problem.input_size, generator=generator)


def recurrent_graph(net: nn.Module, problem) -> tuple[bytes, dict]:
    """(graph, layout) of a many-to-one or many-to-many network: a sequence graph, else a step graph."""
    generator = torch.Generator().manual_seed(0)
    probe = Carry()
    with torch.no_grad():
        net(sample_input(problem, 2, 2, generator), probe)
    state = probe.state
    if state is None or not all(isinstance(s, torch.Tensor) for s in leaves(state)):
        raise ZooError(f"{type(net).__name__} does not leave its recurrent state in a zoo.Carry: zoo exports "
                       f"networks built by zoo.cell_models (a RecurrentNet) and seq2seq encoder-decoders")
    names = state_names(state)
    tuple_state = isinstance(state, tuple)
    module = SequenceGraph(net, tuple_state).eval()
    inputs, outputs = ["x", *names], ["logits", *[f"{n}_out" for n in names]]
    batch_axes = {name: {1: "batch"} for name in names + outputs[1:]}
    layout = {"kind": "sequence", "inputs": "tokens" if problem.vocab_size else "features",
              "state": names, "state_shapes": [list(s.shape[::2]) for s in leaves(state)],
              "many_to_one": problem.shape != "many-to-many", "tolerance": TOLERANCE}

    def export(length: int, axes: dict) -> bytes:
        x = sample_input(problem, 2, length, generator)
        zeros = [torch.zeros_like(s[:, :1].expand(-1, 2, -1)).contiguous() for s in leaves(state)]
        return trace(module, (x, *zeros), inputs, outputs, {**axes, **batch_axes})

    time_axis = {"x": {0: "batch", 1: "time"}, "logits": {0: "batch"} if layout["many_to_one"] else
                 {0: "batch", 1: "time"}}
    graph = export(TRACE_LENGTH, time_axis)
    worst = check_recurrent(graph, module, problem, state, CHECK_LENGTHS)
    if worst <= TOLERANCE:
        return graph, layout
    if getattr(net, "directions", 1) != 1:
        raise ZooError(f"this bidirectional network's cell is stepped in Python, so its traced graph is frozen at "
                       f"one sequence length (at other lengths it is off by {worst:.2g}), and a backward direction "
                       f"cannot be exported as a step graph: not exported")
    graph = export(1, {"x": {0: "batch"}, "logits": {0: "batch"}})
    worst = check_recurrent(graph, module, problem, state, (1,))
    if worst > TOLERANCE:
        raise ZooError(f"the exported step graph differs from PyTorch by {worst:.2g} (more than {TOLERANCE}): "
                       f"not exported")
    return graph, {**layout, "kind": "step"}


def check_recurrent(graph: bytes, module: nn.Module, problem, state: Any, lengths) -> float:
    """The worst difference between onnxruntime and torch over batches 1 and 3 and `lengths`."""
    ort = session(graph)
    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for batch in (1, 3):
        for length in lengths:
            x = sample_input(problem, batch, length, generator)
            start = [torch.randn(s.shape[0], batch, s.shape[2], generator=generator) for s in leaves(state)]
            with torch.no_grad():
                expected = list(module(x, *start))
            feeds = {i.name: t.numpy() for i, t in zip(ort.get_inputs(), [x, *start])}
            try:
                got = ort.run(None, feeds)
            except Exception:  # onnxruntime refuses the shape: the graph is frozen at its traced length
                return float("inf")
            worst = max(worst, differs(expected, got))
    return worst


def seq2seq_graphs(net: nn.Module, problem) -> tuple[bytes, bytes, dict]:
    """(encoder graph, decoder step graph, layout) of an encoder-decoder with `encode`, `start`, `step`."""
    if not all(callable(getattr(net, name, None)) for name in ("encode", "start", "step")):
        raise ZooError(f"{type(net).__name__} has no encode, start and step methods: zoo exports seq2seq networks "
                       f"through them")
    src, src_len = example_source(problem, 3, TRACE_LENGTH, torch.Generator().manual_seed(0))
    with torch.no_grad():
        enc = net.encode(src, src_len)
        carry = net.start(enc)
    enc_names = [f"enc_{i}" for i in range(len(leaves(enc)))]
    carry_names = [f"carry_{i}" for i in range(len(leaves(carry)))]
    enc_axes = {"src": {0: "batch", 1: "time"}, "src_len": {0: "batch"}}
    for name, tensor in zip(enc_names, leaves(enc)):
        # memory, keys, mask are (batch 3, time 5, ...); states (layers, batch 3, hidden)
        enc_axes[name] = {0: "batch", 1: "time"} if tuple(tensor.shape[:2]) == (3, TRACE_LENGTH) else {1: "batch"}
    encoder = trace(EncoderGraph(net).eval(), (src, src_len), ["src", "src_len"], enc_names, enc_axes)
    worst = check_encoder(encoder, net, problem)
    if worst > TOLERANCE:
        raise ZooError(f"this encoder's cell is stepped in Python, so its traced graph is frozen at one source "
                       f"length (at other lengths it is off by {worst:.2g}): not exported (docs/onnx.md)")
    token = torch.full((3,), 1, dtype=torch.long)
    dec_axes = {"token": {0: "batch"}, "logits": {0: "batch"}}
    carry_axes = {}
    for name, tensor in zip(carry_names, leaves(carry)):
        carry_axes[name] = {1: "batch"} if tensor.dim() == 3 else {0: "batch"}
        carry_axes[f"{name}_out"] = carry_axes[name]
    step_enc = {f"dec_{n}": enc_axes[n] for n in enc_names}
    decoder = trace(DecoderGraph(net, carry, enc).eval(), (token, *leaves(carry), *leaves(enc)),
                    ["token", *carry_names, *step_enc], ["logits", *[f"{n}_out" for n in carry_names]],
                    {**dec_axes, **carry_axes, **step_enc})
    layout = {"kind": "seq2seq", "encoder_outputs": enc_names, "carry": carry_names, "tolerance": TOLERANCE}
    return encoder, decoder, layout


def example_source(problem, batch: int, length: int, generator: torch.Generator):
    src = torch.randint(4, max(problem.vocab_size, 5), (batch, length), generator=generator)
    src_len = torch.randint(1, length + 1, (batch,), generator=generator)
    src_len[0] = length
    src = torch.where(torch.arange(length)[None] < src_len[:, None], src, 0)
    return src, src_len


def check_encoder(graph: bytes, net: nn.Module, problem) -> float:
    ort = session(graph)
    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for batch in (1, 3):
        for length in CHECK_LENGTHS:
            src, src_len = example_source(problem, batch, length, generator)
            with torch.no_grad():
                expected = leaves(net.encode(src, src_len))
            try:
                got = ort.run(None, {"src": src.numpy(), "src_len": src_len.numpy()})
            except Exception:
                return float("inf")
            worst = max(worst, differs(expected, got))
    return worst


def to_onnx(net: nn.Module, metadata: dict[str, str]) -> bytes:
    """The ONNX file of a loaded network (`zoo.load`), its card in the metadata: checked, not yet written."""
    import onnx

    card = net.zoo
    net = net.cpu().eval()
    try:
        if card.problem.shape == SEQ2SEQ:
            encoder, decoder, layout = seq2seq_graphs(net, card.problem)
            graph, extra = encoder, {"decoder_onnx": base64.b64encode(decoder).decode("ascii")}
        else:
            graph, layout = recurrent_graph(net, card.problem)
            extra = {}
    except ZooError:
        raise
    except Exception as e:  # an operation torch.onnx cannot export, a network of another interface
        if os.environ.get("ZOO_DEBUG"):
            raise
        first = str(e).strip().splitlines()[:1] or [""]
        raise ZooError(f"{card.model} could not be exported to ONNX ({type(e).__name__}: {first[0][:200]}); set "
                       f"ZOO_DEBUG=1 for the traceback") from None
    model = onnx.load_from_string(graph)
    entries = {**metadata, "onnx_layout": json.dumps(layout), **extra}
    del model.metadata_props[:]
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "zoo"
    model.doc_string = f"{card.model} on {card.task}, exported by zoo (docs/onnx.md)"
    return model.SerializeToString()


FORMATS = ("safetensors", "onnx")


def export(source: str, fmt: str = "safetensors", out: str | None = None) -> Path:
    """`zoo export RUN|FILE --format FORMAT [--out PATH]`: the ONNX file of an export; the path written."""
    from zoo.store.checkpoint import load, read_header
    from zoo.store.files import write_bytes_atomically
    from zoo.store.onnx_file import is_onnx, require

    if fmt not in FORMATS:
        raise ZooError(f"unknown --format {fmt!r}; zoo exports {' or '.join(FORMATS)}")
    from zoo.store.runs import export_of

    weights = export_of(source).path  # the one run locator (zoo export prints which run a name chose)
    if fmt == "safetensors":
        return safetensors_export(weights, out)
    if is_onnx(weights):
        raise ZooError(f"{weights} is an ONNX export already; give the run or its .safetensors export")
    require("onnx"), require("onnxruntime")
    target = Path(out) if out else weights.with_suffix(".onnx")
    if target.suffix.lower() != ".onnx":
        raise ZooError(f"--out {target}: an ONNX export's name ends in .onnx (zoo tells the formats apart by it)")
    if target.exists() or target.is_symlink():
        raise ZooError(f"{target} exists; nothing was overwritten: give another --out, or remove it first")
    metadata, _ = read_header(weights)  # the card, copied as it is
    data = to_onnx(load(weights), metadata)
    if not target.parent.is_dir():
        raise ZooError(f"cannot write {target}: {target.parent} is not a folder")
    try:
        write_bytes_atomically(target, data, fsync=True)
    except OSError as e:
        raise ZooError(f"could not write {target} ({e.strerror or e}); nothing was written there") from None
    return target


def safetensors_export(weights: Path, out: str | None) -> Path:
    """A safetensors export is made from a run's state, by training (zoo export RUN: a zero time budget)."""
    raise ZooError(f"{weights} is a file, not a run: zoo export RUN exports a stopped run (its folder or name) as "
                   f"it stands, and --format onnx converts an export")
