"""Short epochs do not each write a resumable state: one after the first epoch, then every
ZOO_STATE_SECONDS, and at the end or a stop; resuming a killed run still gives bit for bit the weights."""

import os
import signal
import subprocess
import sys

import pytest
from safetensors.torch import load_file

import zoo
from conftest import one_line_error, wait_for, write_course_prices, zoo_cli
from zoo.loop import training
from zoo.store.runs import Run


def counted_saves(monkeypatch):
    saves = []
    real = Run.save_state

    def save_state(self, tensors, info):
        saves.append((info["progress"]["epoch"], info["status"]))
        return real(self, tensors, info)

    monkeypatch.setattr(Run, "save_state", save_state)
    return saves


def test_the_default_interval_is_ten_seconds(monkeypatch):
    monkeypatch.delenv("ZOO_STATE_SECONDS")
    assert training.state_seconds() == training.STATE_SECONDS == 10.0


def test_a_run_of_short_epochs_writes_its_state_after_the_first_epoch_and_at_the_end(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_STATE_SECONDS", "3600")
    saves = counted_saves(monkeypatch)
    prices = write_course_prices(tmp_path / "p.csv", days=60)
    zoo.train("lstm", "stock", {"data": prices, "epochs": 40}, run_dir="run", log=lambda line: None)
    assert saves == [(2, "running"), (41, "finished")]
    assert len(Run(tmp_path / "run").history()) == 40  # every epoch still has its metrics line


def test_every_epoch_with_zero(monkeypatch, tmp_path):
    saves = counted_saves(monkeypatch)  # conftest sets ZOO_STATE_SECONDS=0
    zoo.train("rnn", "hihello", {"epochs": 5}, run_dir="run", log=lambda line: None)
    assert [epoch for epoch, _ in saves] == [2, 3, 4, 5, 6]


def test_a_bad_interval_is_one_line(runner, monkeypatch):
    monkeypatch.setenv("ZOO_STATE_SECONDS", "often")
    assert "ZOO_STATE_SECONDS must be a number of seconds, got 'often'" in one_line_error(
        zoo_cli(runner, "train", "rnn", "hihello"))


def test_a_killed_run_resumes_from_its_last_state_bit_for_bit(tmp_path):
    """Killed between two interval saves: the epochs after the last state are trained again, the log is
    cut back to it, and the weights are those of a run never interrupted."""
    prices = write_course_prices(tmp_path / "p.csv", days=200)
    env = {**os.environ, "ZOO_STATE_SECONDS": "0.3"}
    command = [sys.executable, "-m", "zoo", "train", "lstm", "stock", "--data", str(prices), "-e", "3000", "-q"]
    straight = subprocess.run(command + ["--run-dir", str(tmp_path / "straight")], env=env, timeout=900,
                              capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr
    run = tmp_path / "killed"
    process = subprocess.Popen(command + ["--run-dir", str(run)], env=env)
    state = run / "state.safetensors"
    wait_for(lambda: state.is_file() and Run(run).state_info()["progress"]["epoch"] > 50, process, "a later state")
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    if not state.is_file():
        pytest.fail("no state")
    saved_epoch = Run(run).state_info()["progress"]["epoch"] - 1
    done = subprocess.run([sys.executable, "-m", "zoo", "resume", str(run), "-q"], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert [row["epoch"] for row in Run(run).history()] == list(range(1, 3001)) and saved_epoch < 3000
    a, b = load_file(run / "model.safetensors"), load_file(tmp_path / "straight" / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].numpy().tobytes() == b[k].numpy().tobytes() for k in a)
