"""An export in either format, told by its name: safetensors (zoo.store.checkpoint, the primary artifact)
or ONNX (`zoo export --format onnx`: zoo.store.onnx_file reads it, zoo.store.onnx_net runs it). The
commands and `zoo.load` come through here; neither format's module knows the other's reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.store import checkpoint
from zoo.store.onnx_file import is_onnx  # noqa: F401 (part of this module's interface)


def read_header(path: str | Path) -> tuple[dict, dict] | None:
    """A safetensors export's header (read once, then handed on); None for an ONNX export."""
    return None if is_onnx(path) else checkpoint.read_header(path)


def read_metadata(path: str | Path, header: tuple[dict, dict] | None = None) -> dict[str, str]:
    """The metadata entries of an export, unchecked beyond their being strings."""
    if is_onnx(path):
        from zoo.store.onnx_file import read_model

        return read_model(path)[1]
    return (header or checkpoint.read_header(path))[0]


def describe(path: str | Path, header: tuple[dict, dict] | None = None) -> dict[str, Any]:
    """What an export says about itself (checkpoint.describe; for ONNX also its opset, inputs, outputs)."""
    if is_onnx(path):
        from zoo.store.onnx_file import describe as describe_onnx

        return describe_onnx(path)
    return checkpoint.describe(path, header)


def read_card(path: str | Path, task_overrides: dict[str, str] | None = None,
              header: tuple[dict, dict] | None = None):
    """The export's Card, its configs rebuilt through the installed plugins."""
    return checkpoint.card_of(path, describe(path, header), task_overrides)


def load(path: str | Path, device: Any = "cpu", task_overrides: dict[str, str] | None = None,
         header: tuple[dict, dict] | None = None, card: Any = None):
    """The network an export describes, in eval mode, `.zoo` its Card: torch's (checked against the
    file before anything is allocated), or onnxruntime running the ONNX graphs."""
    if is_onnx(path):
        from zoo.store.onnx_net import load as load_onnx

        return load_onnx(path, device, task_overrides)
    return checkpoint.load(path, device, task_overrides, header=header, card=card)
