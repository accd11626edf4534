"""Writing a file so that nobody ever finds half of it under its name, and cleaning up after a kill.

A temporary file is named `.NAME.PID.RANDOM.tmp` beside its target: unique to the writing process,
and recognisable afterwards as left by a process that is gone.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Callable

from zoo.contract.specs import ZooError

try:
    import fcntl
except ImportError:  # Windows: a lock file created exclusively, stale once its process is gone
    fcntl = None

_UMASK = os.umask(0)
os.umask(_UMASK)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # Windows has no symbolic-link trap to avoid here
TEMPORARY = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")


def replace_atomically(path: Path, write: Callable[[str], None], fsync: bool = False) -> None:
    """Call `write(temporary path)` beside `path`, then rename the result over `path`.

    On any failure, or Ctrl-C, nothing is left behind. The file gets the permissions a plain `open`
    would give it (mkstemp's are owner-only).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
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


def write_bytes_atomically(path: Path, data: bytes, fsync: bool = False) -> None:
    """`data` under `path`, all of it or (on a full disk, a kill) none of it."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()

    replace_atomically(path, write, fsync=fsync)


def remove_stale_temporaries(folder: Path, name: str | None = None) -> list[Path]:
    """Remove temporary files in `folder` (of `name` only, if given) whose writing process is gone."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = TEMPORARY.match(entry.name)
        if not match or (name is not None and not entry.name.startswith(f".{name}.")):
            continue
        if int(match.group(1)) != os.getpid() and not process_alive(int(match.group(1))):
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed


READ_ENV = "ZOO_MAX_READ_MB"  # the largest file zoo reads whole, in MB
DEFAULT_MAX_READ_MB = 64  # a text or price file this big is already hours of training; a run's logs are far smaller


KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
         (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"))


def file_kind(mode: int) -> str:
    """What a file of this mode is, in words ("a named pipe (FIFO)"), or "" for a regular file."""
    return next((kind for test, kind in KINDS if test(mode)), "" if stat.S_ISREG(mode) else "not a regular file")


def check_replaceable(path: str | Path, what: str = "") -> None:
    """Refuse, in one line, to write `path` unless it is a regular file or nothing yet: zoo never writes
    through a symbolic link, nor replaces a device, a FIFO or a folder by a file. `what` names the option."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise ZooError(f"{what}{' ' if what else ''}{path}: {e.strerror or e}") from None
    kind = file_kind(mode)
    if kind:
        advice = "zoo does not write through links" if stat.S_ISLNK(mode) else "zoo replaces only regular files"
        raise ZooError(f"{what}{' ' if what else ''}{path} is {kind}: {advice}; give another file")


def max_read_bytes() -> int:
    """The size bound on any file zoo reads whole: $ZOO_MAX_READ_MB megabytes, else 64."""
    value = os.environ.get(READ_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_READ_MB * 2**20
    try:
        megabytes = float(value)
    except ValueError:
        megabytes = float("nan")
    if not (0 < megabytes <= 2**20):
        raise ZooError(f"${READ_ENV} must be a size in MB between 0 and 1048576, got {value!r}")
    return int(megabytes * 2**20)


def read_bytes(path: str | Path, what: str, label: str | None = None, limit: int | None = None) -> bytes:
    """The bytes of a regular file no bigger than `limit` (default: $ZOO_MAX_READ_MB), or one line saying
    why not: a FIFO, a device (/dev/zero, /dev/stdin on a pipe) or a folder is refused before anything is
    read, so no file can make zoo wait or read forever."""
    where = label or str(path)
    limit = max_read_bytes() if limit is None else limit
    try:  # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ZooError(f"{what} {where} not found") from None
    except OSError as e:
        raise ZooError(f"cannot read {what} {where}: {e.strerror or e}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = ("a folder" if stat.S_ISDIR(info.st_mode) else "a pipe (FIFO)" if stat.S_ISFIFO(info.st_mode)
                    else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else
                    "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file")
            raise ZooError(f"{what} {where} is {kind}: zoo reads only regular files (save the data to a file first)")
        if info.st_size > limit:
            raise ZooError(f"{what} {where} is {info.st_size / 2**20:,.1f} MB, over zoo's bound of "
                           f"{limit / 2**20:,.0f} MB for a file it reads whole (${READ_ENV} raises it)")
        chunks, size = [], 0
        while size <= limit:  # a file that grows while read is cut at the bound all the same
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise ZooError(f"cannot read {what} {where}: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise ZooError(f"{what} {where} grew over zoo's bound of {limit / 2**20:,.0f} MB while it was read "
                       f"(${READ_ENV} raises it)")
    return b"".join(chunks)


def read_text(path: str | Path, what: str, label: str | None = None, limit: int | None = None) -> str:
    """A UTF-8 text file (a leading byte-order mark dropped), or one line saying what is wrong with it.

    `what` names the file's role ("text file", "price file"); `label` names it (default: its path).
    Only a regular file no bigger than `limit` (default: $ZOO_MAX_READ_MB, 64 MB) is read."""
    where = label or str(path)
    raw = read_bytes(path, what, label, limit)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ZooError(f"{where} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})") from None


def read_json(path: str | Path, what: str, missing_ok: bool = False):
    """The JSON document in a regular file (bounded like `read_bytes`); damage is one line. None when
    the file is missing and `missing_ok`."""
    import json

    if missing_ok and not os.path.lexists(path):
        return None
    text = read_bytes(path, what).decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise ZooError(f"{what} {path} is damaged (not JSON)") from None


def read_jsonl(path: Path, valid: Callable[[dict], bool], what: str) -> list[dict]:
    """The records of a JSON-lines log that a process appends to. A last line cut short by a kill is
    left out (the writer's saved state does not count it either); damage elsewhere is one line."""
    import json

    if not os.path.lexists(path):
        return []
    text = read_bytes(path, "log").decode("utf-8", errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            record = None
        if not isinstance(record, dict) or not valid(record):
            if number == len(lines):
                break
            raise ZooError(f"{path} is damaged (line {number} is not {what})")
        records.append(record)
    return records


class FolderLock:
    """One writing process per folder: a lock file held with flock, the holder's pid inside.

    flock's lock goes with the process, so a killed holder leaves no stale lock behind; the file is
    removed on release."""

    def __init__(self, folder: Path, name: str = ".lock"):
        self.path = Path(folder) / name
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock (the folder must exist); False when another live process holds it.

        The lock file is never followed or reused unless it is a plain file of ours: a symbolic link,
        a hard link to another file, a FIFO or a device in its place is one line, and nothing it
        points to is opened for writing."""
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | os.O_NONBLOCK
                             | (0 if fcntl else os.O_EXCL), 0o644)
            except FileExistsError:  # no fcntl: an existing lock file is stale only if its process is gone
                if process_alive(self.holder()):
                    return False
                self.path.unlink(missing_ok=True)
                continue
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.EMLINK) or os.path.islink(self.path):
                    raise ZooError(self._foreign()) from None
                raise
            problem = self._not_ours(os.fstat(fd))
            if problem:
                os.close(fd)
                raise ZooError(self._foreign(problem))
            if fcntl is None:
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EAGAIN, errno.EACCES):
                    return False
                raise
            try:  # the holder before us may have removed the file after we opened it: lock the current one
                if os.lstat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    @staticmethod
    def _not_ours(status: os.stat_result) -> str:
        """Why an opened lock file is not one a zoo process made here, or ''."""
        if not stat.S_ISREG(status.st_mode):
            return "not a regular file"
        if status.st_nlink != 1:
            return "a hard link to another file"
        if hasattr(os, "geteuid") and status.st_uid != os.geteuid():
            return "owned by another user"
        return ""

    def _foreign(self, problem: str = "a symbolic link or not a regular file") -> str:
        return (f"{self.path} is {problem}, not a lock zoo made: zoo does not write through it; remove it "
                f"if no zoo process is running there")

    def release(self) -> None:
        fd, self._fd = self._fd, None  # first: a Ctrl-C landing in here must not make a second release close
        if fd is not None:  # the descriptor again (EBADF, or worse, someone else's file)
            try:  # only the file we hold: whatever was put in its place since stays
                if os.lstat(self.path).st_ino == os.fstat(fd).st_ino:
                    self.path.unlink()
            except OSError:  # gone, or a folder turned read-only: the lock goes with the descriptor all the
                pass  # same, and the error worth saying is the write that failed, not this
            finally:
                os.close(fd)

    def holder(self) -> int | None:
        """The pid written in the lock file, or None."""
        try:
            fd = os.open(self.path, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return int(os.read(fd, 32).decode().strip() or 0) or None
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)

    def in_use(self) -> bool:
        """Whether another process holds the lock now."""
        if not self.path.is_file() or self.path.is_symlink():
            return False
        if fcntl is None:
            return process_alive(self.holder())
        try:
            fd = os.open(self.path, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # closing drops a lock taken just to look
        return False


def process_alive(pid: int | None) -> bool:
    if not pid or pid < 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


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
