"""A safetensors file's header, read and checked without torch: its metadata and its tensor entries.

Files are input from strangers: the header's length, its JSON, every entry's dtype, shape and offsets
are checked against the file's size before anything trusts them. Exports and run states both use it.
"""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path
from typing import Any

from zoo.contract.specs import ZooError
from zoo.store.files import file_kind

MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
# bytes per element of each safetensors dtype, and the torch dtypes of those torch has
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
TORCH_DTYPES = {"BOOL": "torch.bool", "U8": "torch.uint8", "I8": "torch.int8", "I16": "torch.int16",
                "F16": "torch.float16", "BF16": "torch.bfloat16", "I32": "torch.int32", "F32": "torch.float32",
                "I64": "torch.int64", "F64": "torch.float64"}

def check_regular_file(path: Path) -> int:
    """The size of `path`, or one line saying why it is not a file weights can be read from.

    Checked before opening: a FIFO would block the open, /dev/zero would never end.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        kind = "a broken symbolic link" if path.is_symlink() else "no such file"
        raise ZooError(f"{path}: {kind}") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ZooError(f"{path} is a symbolic link loop, not a file") from None
        raise ZooError(f"{path}: {e.strerror}") from None
    kind = file_kind(mode)
    if kind:
        raise ZooError(f"{path} is {kind}, not a weights file" if kind[0] == "a" else f"{path} is {kind}")
    if not os.access(path, os.R_OK):
        raise ZooError(f"{path}: permission denied")
    return path.stat().st_size


def read_header(path: str | Path) -> tuple[dict[str, str], dict[str, Any]]:
    """(metadata, tensor entries) of a safetensors file, checked for truncation and for entries that
    contradict themselves (a shape whose bytes are not the bytes given); torch is not needed."""
    path = Path(path)
    size = check_regular_file(path)
    with open(path, "rb") as f:
        prefix = f.read(9)
        length = int.from_bytes(prefix[:8], "little")
        if len(prefix) < 9 or prefix[8:9] != b"{" or length > MAX_HEADER:
            raise ZooError(f"{path} is not a safetensors file")
        if 8 + length > size:
            raise ZooError(f"{path} is truncated: its header alone needs {8 + length} bytes, the file has {size}")
        try:
            header = json.loads(prefix[8:] + f.read(length - 1))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ZooError(f"{path} is not a safetensors file (its header is not JSON)") from None
        except RecursionError:
            raise ZooError(f"{path} is not a safetensors file (its header nests too deeply)") from None
    if not isinstance(header, dict):
        raise ZooError(f"{path} is not a safetensors file (its header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ZooError(f"{path} is not a safetensors file (its metadata is not a map of strings)")
    end = 0
    for name, entry in header.items():
        problem = entry_problem(entry)
        if problem:
            raise ZooError(f"{path} is not a safetensors file (tensor {name!r}: {problem})")
        end = max(end, entry["data_offsets"][1])
    if 8 + length + end > size:
        raise ZooError(f"{path} is truncated: it should hold {8 + length + end} bytes, it has {size}")
    return metadata, header


def entry_problem(entry: Any) -> str:
    """What is wrong with one tensor entry of a safetensors header, or ''."""
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        return "not a dtype, shape and data_offsets"
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPE_BYTES:
        return f"unknown dtype {str(dtype)!r}"
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        return "its shape is not a list of sizes"
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(n) is int for n in offsets)
            and 0 <= offsets[0] <= offsets[1]):
        return "malformed data_offsets"
    if offsets[1] - offsets[0] != math.prod(shape) * DTYPE_BYTES[dtype]:
        return f"a {dtype} tensor of shape {tuple(shape)} cannot fill bytes {offsets[0]}-{offsets[1]}"
    return ""
