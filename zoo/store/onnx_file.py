"""Reading a zoo ONNX export as input from strangers: bounded, self-contained, zoo's card checked.

What `zoo info model.onnx` shows and what `zoo eval`/`zoo predict` load through (zoo.store.onnx_net).
Needs the onnx package, not torch. The rules are the safetensors export's: the file is a regular file
of bounded size, read in one piece; a graph that points at external data files is refused, so no path
written in the file is ever followed; the card entries are checked as checkpoint.card_fields checks
them; every failure is one line.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

from zoo.contract.specs import ZooError

MAX_FILE = 2 * 1024**3 - 1  # protobuf's own limit on one message
LAYOUTS = ("sequence", "step", "seq2seq")
INSTALL = "pip install 'rnn-zoo[onnx]' (or: pip install onnx onnxruntime)"


def is_onnx(path: str | Path) -> bool:
    """An ONNX export rather than safetensors: told by its name, as it is written."""
    return Path(path).suffix.lower() == ".onnx"


def require(module: str = "onnx"):
    """Import `onnx` or `onnxruntime`, or say in one line what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ZooError(f"ONNX files need the {module} package, which is not installed: {INSTALL}") from None


def parse(path: Any, data: bytes, what: str = "") -> Any:
    """A ModelProto from bytes, checked: a parsable, self-contained ONNX model."""
    onnx = require("onnx")
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_from_string(data)  # never reads external data: that needs a path
    except (DecodeError, ValueError, RuntimeError, RecursionError) as e:
        raise ZooError(f"{path}{what} is not an ONNX file, or is damaged or truncated ({type(e).__name__})") from None
    if not model.graph.node or not model.graph.output or not model.opset_import:
        raise ZooError(f"{path}{what} is not an ONNX model (no graph, outputs or opset)")
    from onnx.external_data_helper import _get_all_tensors

    if any(t.data_location == onnx.TensorProto.EXTERNAL or t.external_data for t in _get_all_tensors(model)):
        raise ZooError(f"{path}{what} keeps tensors in external data files; zoo reads one self-contained file and "
                       f"follows no path written in it")
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[:1] or [type(e).__name__]
        raise ZooError(f"{path}{what} is a damaged ONNX model ({first[0][:200]})") from None
    return model


def read_model(path: str | Path) -> tuple[Any, dict[str, str]]:
    """(ModelProto, metadata) of an .onnx file, refused in one line unless it is a sound ONNX model."""
    from zoo.store.header import check_regular_file

    path = Path(path)
    size = check_regular_file(path)
    if size > MAX_FILE:
        raise ZooError(f"{path} is {size:,} bytes, more than one ONNX file can hold ({MAX_FILE:,})")
    with open(path, "rb") as f:
        data = f.read(MAX_FILE + 1)
    model = parse(path, data)
    metadata: dict[str, str] = {}
    for entry in model.metadata_props:
        if entry.key in metadata:
            raise ZooError(f"{path} has damaged zoo metadata ({entry.key!r} twice)")
        metadata[entry.key] = entry.value
    return model, metadata


def describe(path: str | Path) -> dict[str, Any]:
    """The card of an ONNX export (as checkpoint.describe's), with `onnx`: opset, layout, inputs, outputs."""
    from zoo.store.checkpoint import FORMAT, card_fields

    model, metadata = read_model(path)
    if metadata.get("format") != FORMAT:
        raise ZooError(f"{path} is an ONNX file, but not one zoo exported (no '{FORMAT}' format tag in its metadata)")
    fields = card_fields(path, metadata)
    layout = read_layout(path, metadata)
    onnx_fields = {"opset": opset(model), "layout": layout["kind"], **signature(model.graph)}
    if layout["kind"] == "seq2seq":
        decoder = decoder_model(path, metadata)
        onnx_fields["decoder"] = {"opset": opset(decoder), **signature(decoder.graph)}
    fields["onnx"] = onnx_fields
    return fields


def opset(model: Any) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def read_layout(path: Any, metadata: dict[str, str]) -> dict[str, Any]:
    """The `onnx_layout` entry (zoo.store.onnx_export says what each kind means), checked."""
    try:
        layout = json.loads(metadata.get("onnx_layout", ""))
    except (json.JSONDecodeError, RecursionError):
        raise ZooError(f"{path} has damaged zoo metadata (onnx_layout is missing or not JSON)") from None
    if not isinstance(layout, dict) or layout.get("kind") not in LAYOUTS:
        raise ZooError(f"{path} has damaged zoo metadata (onnx_layout's kind is not one of {', '.join(LAYOUTS)})")
    names = ["state"] if layout["kind"] != "seq2seq" else ["encoder_outputs", "carry"]
    for key in names:
        value = layout.get(key)
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value) and len(value) <= 64):
            raise ZooError(f"{path} has damaged zoo metadata (onnx_layout's {key} is not a list of names)")
    return layout


def decoder_model(path: Any, metadata: dict[str, str]) -> Any:
    """The decoder's step graph of a seq2seq export, which travels base64 in the metadata."""
    try:
        data = base64.b64decode(metadata.get("decoder_onnx", ""), validate=True)
    except (binascii.Error, ValueError):
        raise ZooError(f"{path} has damaged zoo metadata (decoder_onnx is not base64)") from None
    if not data:
        raise ZooError(f"{path} has damaged zoo metadata (no decoder_onnx: a seq2seq export carries its decoder)")
    return parse(path, data, " (its decoder graph)")


def signature(graph: Any) -> dict[str, list[str]]:
    """Inputs and outputs of a graph as 'name type [dims]' lines (a dynamic axis by its name)."""
    onnx = require("onnx")

    def line(value):
        tensor = value.type.tensor_type
        kind = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "?"
        dims = [d.dim_param or str(d.dim_value) for d in tensor.shape.dim]
        return f"{value.name} {kind} [{', '.join(dims)}]"

    initializers = {i.name for i in graph.initializer}
    return {"inputs": [line(v) for v in graph.input if v.name not in initializers],
            "outputs": [line(v) for v in graph.output]}
