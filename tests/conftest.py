import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from zoo.contract import registry as registry_module

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "zoo-adding"
# Python's own caches, made by importing: not files a test left
CACHES = ("__pycache__/", ".pytest_cache/", ".egg-info/")


def checkout_files(root: Path) -> set[str] | None:
    """What `git status --porcelain --ignored` lists in the checkout at `root` (ignored files included),
    less Python's caches; None outside a git checkout (an unpacked sdist, say) or without git."""
    import subprocess

    try:
        done = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--ignored"], capture_output=True,
                              text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 or not (root / ".git").exists():
        return None
    return {line for line in done.stdout.splitlines() if not any(cache in line for cache in CACHES)}


def pytest_sessionstart(session):
    session.config.stash[_CHECKOUT] = checkout_files(ROOT)
    # the suite runs as a terminal's foreground job would, whatever started it: a background job of a
    # shell inherits SIGINT ignored, which zoo keeps (as it should) and every process the tests start
    # would inherit, so the tests that stop a run with Ctrl-C could not; the tests of an inherited
    # ignore set it themselves
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when the tests left files in the checkout: every test works in a temporary folder."""
    before = session.config.stash.get(_CHECKOUT, None)
    if before is None:
        return
    left = sorted((checkout_files(ROOT) or set()) - before)
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = (f"the tests left {len(left)} new entr{'y' if len(left) == 1 else 'ies'} in the checkout {ROOT} "
                   "(every test must work in a temporary folder):\n  " + "\n  ".join(left))
        if reporter is not None:
            reporter.write_sep("=", "the checkout is not clean", red=True)
            reporter.write_line(f"ERROR: {message}", red=True)
        else:
            print(f"ERROR: {message}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_CHECKOUT = pytest.StashKey()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Each test: its own working folder, only built-in plugins, a fresh registry, and one CPU thread
    (the tests' tensors are tiny, and a busy machine must not slow them down: see zoo.loop.threads).
    Runs write their state after every epoch (ZOO_STATE_SECONDS=0), so that a test can stop one at a
    known epoch; tests/test_state_interval.py checks the default interval."""
    import torch

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(registry_module.LOAD_ENV, "")
    monkeypatch.setenv("ZOO_THREADS", "1")
    monkeypatch.setenv("ZOO_STATE_SECONDS", "0")
    torch.set_num_threads(1)
    registry_module.reset()
    yield
    registry_module.reset()


@pytest.fixture
def runner():
    return CliRunner()


def zoo_cli(runner, *args):
    from zoo.front.cli import cli

    return runner.invoke(cli, [str(a) for a in args], prog_name="zoo")


def one_line_error(result) -> str:
    """Assert a failed command printed exactly one `Error:` line and no traceback; return it."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.fixture
def fake_distribution(tmp_path, monkeypatch):
    """Put a distribution with a `zoo` entry point on sys.path, as `pip install` would.

    Returns a function (module_source, module_name, entry_name) -> the site folder.
    """
    def make(source: str, module: str = "zoo_adding", entry: str = "adding", dist: str = "zoo_adding",
             version: str = "0.1.0") -> Path:
        site = tmp_path / "site"
        site.mkdir(exist_ok=True)
        (site / f"{module}.py").write_text(source)
        info = site / f"{dist}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[zoo]\n{entry} = {module}\n")
        monkeypatch.syspath_prepend(str(site))
        return site

    yield make
    for name in [m for m in sys.modules if m.startswith(("zoo_adding", "broken_plugin"))]:
        del sys.modules[name]


@pytest.fixture
def adding_source() -> str:
    return (EXAMPLE / "zoo_adding.py").read_text()


def load_example_module():
    """The README's example plugin (examples/zoo-adding), imported from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("zoo_adding_example", EXAMPLE / "zoo_adding.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def registry_with_example():
    """Built-ins plus the example's many-to-one task, so that every model has a task to be tested on."""
    reg = registry_module.Registry(entry_points=False)
    reg.add(load_example_module(), registry_module.Plugin("adding", "zoo-adding", "example", builtin=False))
    return reg


@pytest.fixture
def with_example(monkeypatch):
    reg = registry_with_example()
    monkeypatch.setattr(registry_module, "_registry", reg)
    return reg


IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def write_idx(path: Path, array) -> None:
    """An IDX file as MNIST's are: magic (0, 0, 8 = uint8, ndim), big-endian sizes, then the bytes."""
    import struct

    import numpy as np

    array = np.asarray(array, dtype=np.uint8)
    path.write_bytes(bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes())


def digit_like(labels):
    """28x28 images whose class shows as a bright band of rows, so that a tiny network can learn it."""
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.integers(0, 40, size=(len(labels), 28, 28))
    for image, label in zip(images, labels):
        image[2 * label + 4: 2 * label + 7, 4:24] = 230
    return images


def tiny_mnist(root: Path, folder: str = "MNIST", train: int = 60, test: int = 20) -> Path:
    """A few dozen images in torchvision's layout: ROOT/FOLDER/raw/*-ubyte."""
    import numpy as np

    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", train), ("t10k", test)):
        labels = np.arange(count) % 10
        write_idx(raw / f"{prefix}-images-idx3-ubyte", digit_like(labels))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def price_rows(days: int = 80, seed: int = 0):
    """(date, open, high, low, volume, close) of a random walk, oldest first."""
    import datetime

    import numpy as np

    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 1, days))
    first = datetime.date(2020, 1, 1)
    for day in range(days):
        c = close[day]
        yield ((first + datetime.timedelta(days=day)).isoformat(), c + rng.normal(0, 0.3), c + 1 + rng.random(),
               c - 1 - rng.random(), float(rng.integers(1_000_000, 2_000_000)), c)


def write_course_prices(path: Path, days: int = 80) -> Path:
    """The course's format: two # lines, no header, newest first, Open,High,Low,Volume,Close."""
    rows = [f"{o:.6f},{h:.6f},{low:.6f},{v:.0f},{c:.6f}" for _, o, h, low, v, c in price_rows(days)]
    path.write_text("# http://finance.yahoo.com/quote/GOOG/history?ltr=1\n# Open,High,Low,Volume,Close\n"
                    + "\n".join(reversed(rows)) + "\n")
    return path


def write_yahoo_prices(path: Path, days: int = 80, shuffle: bool = True) -> Path:
    """The common download format: a header, Date first, Adj Close, and (here) rows in no order."""
    import random

    rows = [f"{d},{o:.6f},{h:.6f},{low:.6f},{c:.6f},{c:.6f},{v:.0f}" for d, o, h, low, v, c in price_rows(days)]
    if shuffle:
        random.Random(1).shuffle(rows)
    path.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 over a folder; yields (folder, base url without a final slash)."""
    import http.server
    import threading

    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def write_ts(path: Path, n: int = 36, seed: int = 0, channels: int = 2, lengths=(4, 12)) -> str:
    """A .ts file of n sequences of 2 channels and unequal lengths, 3 classes told apart by their wave's
    frequency and level (a sequence task's tiny data)."""
    import math
    import random

    rng = random.Random(seed)
    lines = ["# tiny", "@problemName Tiny", "@timeStamps false", "@missing false", "@univariate false",
             f"@dimensions {channels}", "@equalLength false", "@classLabel true a b c", "@data"]
    for i in range(n):
        label = "abc"[i % 3]
        steps = rng.randint(*lengths)
        dims = [",".join(f"{math.sin(t * (i % 3 + 1) * 0.7) + rng.gauss(0, 0.1) + 0.5 * (i % 3) * d:.4f}"
                         for t in range(steps)) for d in range(channels)]
        lines.append(":".join(dims) + f":{label}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def write_texts(path: Path, n: int = 40, seed: int = 0) -> str:
    """label<TAB>text lines: 'pos' texts praise, 'neg' texts complain, with shared filler words."""
    import random

    rng = random.Random(seed)
    good, bad, filler = ["great", "good", "lovely"], ["bad", "awful", "poor"], ["the", "film", "was", "a", "plot"]
    lines = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        words = rng.choices(filler, k=rng.randint(2, 6)) + [rng.choice(good if i % 2 else bad)]
        rng.shuffle(words)
        lines.append(f"{label}\t{' '.join(words)}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


TINY = {  # task name -> (a temporary folder -> settings for small, offline data); every task needs one
    "hihello": lambda tmp: {},
    "charlm": lambda tmp: {"window": 5, "stride": 7},
    "adding": lambda tmp: {"length": 6, "samples": 24},
    "mnist": lambda tmp: {"root": tiny_mnist(tmp, "MNIST"), "val_size": 10, "download": False},
    "fashion-mnist": lambda tmp: {"root": tiny_mnist(tmp, "FashionMNIST"), "val_size": 10, "download": False},
    "stock": lambda tmp: {"data": write_course_prices(tmp / "prices.csv", days=30)},
    "translate": lambda tmp: {},
    "sequences": lambda tmp: {"train": write_ts(tmp / "tiny.ts"), "baseline": "euclidean"},
    "texts": lambda tmp: {"train": write_texts(tmp / "tiny.tsv")},
}


def wait_for(predicate, process, what: str, bound: float = 300) -> None:
    """Wait on progress, not on the clock: poll until `predicate()`, failing if `process` ends first or
    nothing happens within a generous bound (a busy machine is slow, not stuck)."""
    import time

    deadline = time.monotonic() + bound
    while time.monotonic() < deadline and process.poll() is None:
        if predicate():
            return
        time.sleep(0.01)
    pytest.fail(f"the process ended or stalled before {what}")


def importing_torch(process) -> bool:
    """The process has started importing torch (its library is mapped): zoo's own code is running, so a
    signal now lands in zoo's start-up, not in the interpreter's (which no program can catch)."""
    try:
        with open(f"/proc/{process.pid}/maps", encoding="utf-8", errors="replace") as maps:
            return "libtorch" in maps.read()
    except OSError:  # no /proc here: a moment later is as good as it gets
        return True


def foreground_sigint() -> None:
    """A child's SIGINT as a terminal's foreground job has it (a Popen `preexec_fn`), even when pytest
    itself runs as a background job, which inherits SIGINT ignored (zoo keeps an inherited ignore)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def long_text(tmp_path_factory):
    """Enough text that an epoch lasts a moment (about 0.4 s), so that a signal lands inside one."""
    import torch

    words = "the quick brown fox jumps over the lazy dog while zoo trains recurrent networks".split()
    generator = torch.Generator().manual_seed(0)
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text(" ".join(words[i] for i in torch.randint(len(words), (3_000,), generator=generator).tolist()))
    return path


@pytest.fixture
def mgu_installed(fake_distribution, monkeypatch):
    """examples/zoo-mgu installed as a real distribution (an entry point), loaded as the only plugin."""
    fake_distribution((ROOT / "examples" / "zoo-mgu" / "zoo_mgu.py").read_text(), module="zoo_mgu", entry="mgu",
                      dist="zoo_mgu")
    monkeypatch.setenv(registry_module.LOAD_ENV, "mgu")
    yield
    sys.modules.pop("zoo_mgu", None)


def rewrite(path, out, **meta_changes):
    """A copy of an export whose `meta` (or another metadata entry, as `entry__key`) is changed by hand."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    metadata = safe_open(path, "pt").metadata()
    meta = json.loads(metadata["meta"])
    for key, value in meta_changes.items():
        if "__" in key:
            entry, name = key.split("__")
            changed = json.loads(metadata[entry])
            changed[name] = value
            metadata[entry] = json.dumps(changed)
        else:
            meta[key] = value
    metadata["meta"] = json.dumps(meta)
    save_file(load_file(path), out, metadata=metadata)
    return out


class Plain(torch.nn.Module):
    """A correct plain cell (the cell contract: one GRU layer, one direction), which zoo stacks and reverses
    with Layers; the conformance tests' broken cells each break it in one way."""

    def __init__(self, config, input_size):
        super().__init__()
        self.gru = torch.nn.GRU(input_size, config.hidden_size, batch_first=True)

    def forward(self, x, h0=None):
        return self.gru(x, h0)
