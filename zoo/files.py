"""Writing a file so that nobody ever finds half of it under its name."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

_UMASK = os.umask(0)
os.umask(_UMASK)


def replace_atomically(path: Path, write: Callable[[str], None], fsync: bool = False) -> None:
    """Call `write(temporary path)` beside `path`, then rename the result over `path`.

    On any failure, or Ctrl-C, nothing is left behind. The file gets the permissions a plain `open`
    would give it (mkstemp's are owner-only).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def made_dirs(path: Path) -> list[Path]:
    """Create `path` and its missing parents; returns those it created, deepest first (see `remove_empty`)."""
    path, created = Path(path), []
    while not path.exists():
        created.append(path)
        path = path.parent
    for folder in reversed(created):
        folder.mkdir(exist_ok=True)
    return created


def remove_empty(folders: list[Path]) -> None:
    """Remove folders `made_dirs` created, deepest first, as long as they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return
