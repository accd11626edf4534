"""Smaller silent wrongs and misleading lines: digit separators in a CSV, duplicated dates and columns, a run
folder replaced mid-run, a full disk before any state, a failed write masked by the lock, /dev/stdin, and
torch's "report a bug" text in a plugin's error."""

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import wait_for, write_course_prices, zoo_cli
from hostile_kit import ROOT, one_line, run_cases, snapshot, zoo_process


def error_line(result) -> str:
    """The one line on stderr of a command that failed (stdout may hold its progress lines)."""
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def yahoo(path: Path, rows: list[str], header: str = "Date,Open,High,Low,Close,Adj Close,Volume") -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def day(i: int, close: str | None = None) -> str:
    price = 100 + (i * 7919 % 13)
    date = f"2020-{1 + i // 28:02d}-{1 + i % 28:02d}"
    return f"{date},{price},{price + 1},{price - 1},{close or price},{price},{1000 + i}"


def test_price_files_that_would_be_read_wrong_are_one_line(tmp_path):
    good = [day(i) for i in range(40)]
    files = {
        "separator": (yahoo(tmp_path / "sep.csv", good[:5] + [day(5, "8_31")] + good[6:]),
                      "Close is '8_31', not a number"),
        "dates": (yahoo(tmp_path / "dates.csv", good + [good[3]]), "the date 2020-01-04 is on line 5 already"),
        "columns": (yahoo(tmp_path / "cols.csv", good, "Date,Open,High,Low,Close,close,Volume"),
                    "names the column 'close' twice (columns 5 and 6)"),
    }
    before = snapshot(tmp_path)
    results = run_cases([(name, ["train", "lstm", "stock", "--data", path, "-e", "1"], {})
                         for name, (path, _) in files.items()], tmp_path)
    for name, (_, says) in files.items():
        one_line(results[name], says)
    assert snapshot(tmp_path) == before


def test_a_run_folder_replaced_mid_run_is_said_not_saved(tmp_path, long_text):
    process = zoo_process(["train", "lstm", "charlm", "--text", long_text, "-e", "200", "--run-dir", "run", "-o",
                           "patience=0"], tmp_path)
    wait_for(lambda: (tmp_path / "run" / "state.safetensors").is_file(), process, "the first epoch's state")
    shutil.rmtree(tmp_path / "run")
    (tmp_path / "run").mkdir()  # someone else's folder now
    out, err = process.communicate(timeout=600)  # a hang detector, not a deadline
    assert process.returncode == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "was removed or replaced while the run trained" in lines[0], err
    assert "saved " not in out
    assert not any((tmp_path / "run").iterdir())  # nothing written into the new folder


def test_a_full_disk_before_any_state_does_not_claim_one_is_intact(runner, monkeypatch, tmp_path):
    import zoo.store.runs

    def full(path, data, fsync=False):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zoo.store.runs, "write_bytes_atomically", full)
    line = error_line(zoo_cli(runner, "train", "lstm", "hihello", "-e", "2", "--run-dir", "run"))
    assert "No space left on device" in line and "no state was saved before this one" in line, line
    assert "intact" not in line


def test_a_failed_write_is_named_not_the_lock(runner, monkeypatch, tmp_path):
    import zoo.store.runs

    def denied(path, data, fsync=False):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    real_unlink = Path.unlink

    def unlink(self, missing_ok=False):  # the folder turned read-only: the lock cannot be removed either
        if self.name == ".lock":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(zoo.store.runs, "write_bytes_atomically", denied)
    monkeypatch.setattr(Path, "unlink", unlink)
    line = error_line(zoo_cli(runner, "train", "lstm", "hihello", "-e", "2", "--run-dir", "run"))
    assert "state.safetensors" in line and "Permission denied" in line and ".lock" not in line, line
    assert "once the folder can be written, train again" in line


def test_dev_stdin_is_read_once_from_a_file_and_refused_from_a_pipe(tmp_path, long_text):
    env = {**os.environ, "ZOO_LOAD_PLUGINS": "", "ZOO_THREADS": "1", "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "zoo", "train", "lstm", "charlm", "--text", "/dev/stdin", "-e", "1", "-o",
            "window=5", "--out", "out.safetensors"]
    with open(long_text) as text:
        done = subprocess.run(args, stdin=text, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "0 characters" not in done.stdout + done.stderr
    piped = subprocess.run(args, input=Path(long_text).read_text(), cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=600)
    assert piped.returncode == 1
    lines = [line for line in piped.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "is a pipe (FIFO): zoo reads only regular files" in lines[0], piped.stderr


@pytest.mark.parametrize("message", ["index out of range\nplease report a bug to PyTorch.",
                                     "INTERNAL ASSERT FAILED at foo.cpp:12, please report a bug to PyTorch."])
def test_torch_asking_for_a_bug_report_is_not_passed_on(message):
    from zoo.contract.specs import plugin_failed

    line = str(plugin_failed("task", "stock", "rnn-zoo 0.1.0", "evaluate()", RuntimeError(message)))
    assert "report a bug to PyTorch" not in line and "\n" not in line
    assert line.startswith("task 'stock' (rnn-zoo 0.1.0) failed in evaluate(): RuntimeError")


def test_the_course_file_still_reads(tmp_path):  # the stricter number check keeps real files working
    path = write_course_prices(tmp_path / "course.csv", days=30)
    from zoo.contract.registry import registry

    task = registry().get_task("stock")
    from zoo.contract.config import make_config

    data = task.load_data(make_config(task.config, {"data": str(path)}, owner="stock"), None)
    assert len(data.train) > 0
