"""Where tasks keep their data, and fetching a file so that a bad download never lands under its name."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from zoo.store.files import made_dirs, remove_empty, replace_atomically
from zoo.contract.specs import ZooError

DATA_ENV = "ZOO_DATA"  # overrides ./datasets for every task


def data_root(root: str = "") -> Path:
    """`root` when given, else $ZOO_DATA, else ./datasets."""
    return Path(root or os.environ.get(DATA_ENV) or "datasets")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class DownloadError(ZooError):
    def __init__(self, url: str, reason: str):
        super().__init__(f"could not download {url} ({reason})")
        self.url, self.reason = url, reason


def fetch(url: str, path: Path, sha256: str | None, timeout: float = 30,
          check: Callable[[Path], None] | None = None) -> Path:
    """`path`, downloading `url` there first unless a file with the right sha256 is already there.

    The bytes go to a temporary file beside `path` and are renamed only once their sha256 matches
    and `check(temporary path)` accepts them (it raises a ZooError otherwise), so an interrupted or
    wrong download leaves nothing behind, not even the folders made for it. `sha256=None` skips the
    digest, for files nobody published one of: then `check` is the only guard, and a file already at
    `path` is taken as it is.
    """
    if path.is_file() and (sha256 is None or sha256_of(path) == sha256):
        return path

    def download(tmp: str) -> None:
        digest = hashlib.sha256()
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(1 << 16), b""):
                digest.update(chunk)
                out.write(chunk)
        if sha256 is not None and digest.hexdigest() != sha256:
            raise DownloadError(url, f"its sha256 is {digest.hexdigest()}, not the expected {sha256}; "
                                     f"nothing was saved")
        if check is not None:
            check(Path(tmp))

    created = made_dirs(path.parent)
    try:
        replace_atomically(path, download)
    except ZooError:  # a DownloadError, or what `check` found
        remove_empty(created)
        raise
    except (urllib.error.URLError, OSError) as e:
        remove_empty(created)
        raise DownloadError(url, str(getattr(e, "reason", None) or e.strerror or e)) from None
    return path
