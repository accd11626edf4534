"""Files: an export never chooses where zoo reads or writes; run folders survive copies, moves, two
writers, kills, torn logs and a full disk."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import zoo
from conftest import foreground_sigint, one_line_error, tiny_mnist, wait_for, write_course_prices, zoo_cli
from zoo.store.runs import Run

ZOO = [sys.executable, "-m", "zoo"]


def quiet(line):
    pass


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def rewrite_task_config(source, target, **changes):
    with safe_open(str(source), "pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    metadata["task_config"] = json.dumps({**json.loads(metadata["task_config"]), **changes})
    save_file(tensors, str(target), metadata=metadata)
    return target


# -- an export names no files zoo opens ------------------------------------------------------------------
@pytest.fixture
def sentinel(tmp_path):
    """A folder outside the working one that must stay exactly as it is."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "secret.csv").write_text("Date,Open,High,Low,Close,Adj Close,Volume\nprivate line\n")
    return folder


def test_a_recorded_data_file_is_never_opened(runner, tmp_path, sentinel):
    prices = write_course_prices(tmp_path / "p.csv")
    zoo.train("lstm", "stock", {"data": prices, "epochs": 2}, out=tmp_path / "s.safetensors", log=quiet)
    crafted = rewrite_task_config(tmp_path / "s.safetensors", tmp_path / "crafted.safetensors",
                                  data=str(sentinel / "secret.csv"))
    for command in (["eval", crafted], ["predict", crafted]):
        line = one_line_error(zoo_cli(runner, *command))
        assert "--data" in line and "private line" not in line
    info = zoo_cli(runner, "info", crafted)
    assert info.exit_code == 0 and "secret.csv" in info.output  # shown as provenance only
    ok = zoo_cli(runner, "eval", crafted, "--data", prices)
    assert ok.exit_code == 0, ok.output
    assert snapshot(sentinel) == {"secret.csv": (sentinel / "secret.csv").read_bytes()}


def test_a_recorded_data_folder_is_never_written(runner, tmp_path, sentinel):
    root = tiny_mnist(tmp_path / "data")
    zoo.train("rnn", "mnist", {"root": root, "download": False, "val_size": 10, "epochs": 1, "hidden_size": 4},
              out=tmp_path / "m.safetensors", log=quiet)
    crafted = rewrite_task_config(tmp_path / "m.safetensors", tmp_path / "crafted.safetensors", root=str(sentinel),
                                  download=True)
    before = snapshot(sentinel)
    # the user's own data folder is used (here: none, and no download from an eval), never the file's
    assert "MNIST is not in datasets/MNIST/raw" in one_line_error(zoo_cli(runner, "eval", crafted))
    assert zoo_cli(runner, "eval", crafted, "--root", root).exit_code == 0
    assert snapshot(sentinel) == before


# -- run folders are self-contained ----------------------------------------------------------------------
@pytest.fixture
def stopped_run(tmp_path):
    """A gru/hihello run in tmp/work/checkpoints/gru-hihello, stopped by Ctrl-C after 5 of 30 epochs."""
    work = tmp_path / "work"
    work.mkdir()
    os.chdir(work)

    def log(line):
        if line.startswith("epoch  5/30"):
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(zoo.ZooError, match="interrupted after epoch 5"):
        zoo.train("gru", "hihello", {"epochs": 30}, log=log, log_every=1)
    return work / "checkpoints" / "gru-hihello"


def test_a_copied_run_resumes_and_exports_into_itself_from_any_folder(runner, tmp_path, stopped_run):
    copy = tmp_path / "copy"
    shutil.copytree(stopped_run, copy)
    original = snapshot(stopped_run)
    os.chdir(tmp_path)  # another working folder
    result = zoo_cli(runner, "resume", copy)
    assert result.exit_code == 0, result.output
    assert (copy / "model.safetensors").is_file()
    assert snapshot(stopped_run) == original and not (tmp_path / "checkpoints").exists()
    assert json.loads((copy / "config.json").read_text())["export"] == "model.safetensors"
    info = zoo_cli(runner, "info", copy)
    assert info.exit_code == 0 and "gru" in info.output
    moved = tmp_path / "moved"
    shutil.move(copy, moved)
    assert zoo.load(moved).zoo.model == "gru"


def test_predict_on_an_unfinished_run_says_how_to_resume(runner, stopped_run):
    line = one_line_error(zoo_cli(runner, "predict", stopped_run, "hihell"))
    assert "has no export yet" in line and f"zoo resume {stopped_run}" in line


def test_a_run_name_without_an_export_or_no_run_at_all_is_one_line(runner, stopped_run):
    for command in ("info", "eval"):  # cwd is the stopped run's work folder
        line = one_line_error(zoo_cli(runner, command, "gru-hihello"))
        assert "has no export yet" in line and "zoo resume" in line
        line = one_line_error(zoo_cli(runner, command, "lstm-hihello"))
        assert "no run named lstm-hihello under checkpoints/" in line
        assert "checkpoints/nowhere: no such file or run folder" in one_line_error(
            zoo_cli(runner, command, "checkpoints/nowhere"))


def test_two_writers_never_share_a_run_folder(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog " * 400)
    command = [*ZOO, "train", "gru", "charlm", "--text", str(text), "-e", "200", "--hidden-size", "16", "--threads",
               "1", "--run-dir", str(tmp_path / "same"), "-q"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=foreground_sigint)
    wait_for(lambda: (tmp_path / "same" / "metrics.jsonl").is_file(), first, "the first run started")
    runs = subprocess.run([*ZOO, "runs", str(tmp_path)], capture_output=True, text=True)
    assert "running" in runs.stdout, runs.stdout
    for extra in (["--overwrite"], ["--resume"]):
        second = subprocess.run(command + extra, capture_output=True, text=True, timeout=300)
        assert second.returncode == 1 and "is in use by another zoo process (pid" in second.stderr, second.stderr
        assert len(second.stderr.splitlines()) == 1
    # the refusals come before torch loads (a fraction of a second), and a first bf16 step can take longer
    wait_for(lambda: (tmp_path / "same" / "state.safetensors").is_file(), first, "the first state saved")
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 130 and "zoo resume" in err
    assert not (tmp_path / "same" / ".lock").exists()  # a stopped run leaves no lock behind


def test_a_kill_during_the_export_is_cleaned_up_by_the_next_writer(tmp_path):
    """SIGKILL right after the export's bytes are on disk, before the rename: the temporary stays
    behind until the next process that writes the run folder removes it."""
    code = ("import os, zoo, zoo.store.files\n"
            "os.fsync = lambda fd: os.kill(os.getpid(), 9)\n"
            "zoo.train('rnn', 'hihello', {'epochs': 3}, run_dir='run', log=lambda line: None)\n")
    killed = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "ZOO_LOAD_PLUGINS": ""})
    assert killed.returncode == -signal.SIGKILL
    run = tmp_path / "run"
    left = [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert left and all(name.startswith(".model.safetensors.") for name in left)
    assert not (run / "model.safetensors").exists() and Run(run).state_info()["status"] == "finished"
    done = subprocess.run([*ZOO, "resume", "run", "-q"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "metrics.jsonl", "model.safetensors",
                                                      "state.safetensors"]


# -- torn logs, damaged configs, a full disk ---------------------------------------------------------------
def test_a_torn_last_log_line_is_ignored_and_repaired_on_resume(runner, tmp_path, stopped_run):
    with open(stopped_run / "metrics.jsonl", "a") as log:
        log.write('{"epoch": 6, "loss": 0.12')  # a kill in the middle of a line
    listed = zoo_cli(runner, "runs")
    assert listed.exit_code == 0 and "5/30" in listed.output, listed.output
    assert zoo_cli(runner, "plot", stopped_run, "--out", tmp_path / "c.png").exit_code == 0
    assert zoo_cli(runner, "resume", stopped_run, "-q").exit_code == 0
    assert [r["epoch"] for r in Run(stopped_run).history()] == list(range(1, 31))
    assert all(json.loads(line) for line in (stopped_run / "metrics.jsonl").read_text().splitlines())


@pytest.mark.parametrize("content", ["[1, 2]", "", '{"model": 3, "task": "hihello"}', "{not json"])
def test_a_damaged_run_config_is_one_line(runner, stopped_run, content):
    (stopped_run / "config.json").write_text(content)
    for command in (["resume", stopped_run], ["predict", stopped_run, "hihell"], ["plot", stopped_run]):
        assert "config.json is damaged" in one_line_error(zoo_cli(runner, *command))
    listed = zoo_cli(runner, "runs")
    assert listed.exit_code == 0 and "damaged" in listed.output


def no_space(calls):
    """An `open` for zoo.store.files that fails with ENOSPC from its `calls`-th write of a state on."""
    real = open
    count = {"n": 0}

    def fake(path, mode="r", *args, **kwargs):
        if "w" in mode and ".state.safetensors." in str(path):
            count["n"] += 1
            if count["n"] >= calls:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, mode, *args, **kwargs)

    return fake


def test_a_full_disk_keeps_the_previous_state_and_resumes_once_there_is_room(tmp_path, monkeypatch):
    import builtins

    import zoo.store.files

    monkeypatch.setattr(zoo.store.files, "open", no_space(4), raising=False)
    with pytest.raises(zoo.ZooError, match="could not write .*state.safetensors \\(No space left on device\\); "
                                           "the state saved before is intact"):
        zoo.train("gru", "hihello", {"epochs": 8}, run_dir="run", log=quiet)
    monkeypatch.setattr(zoo.store.files, "open", builtins.open, raising=False)
    run = Run(tmp_path / "run")
    assert run.state_info()["progress"]["epoch"] == 4 and not list(run.dir.glob(".*.tmp"))
    zoo.train("gru", "hihello", {}, run_dir="run", resume=True, log=quiet)
    straight = zoo.train("gru", "hihello", {"epochs": 8}, run_dir="straight", log=quiet)
    resumed = load_file(tmp_path / "run" / "model.safetensors")
    assert all((resumed[k] == v).all() for k, v in straight.state_dict().items())


def test_a_full_disk_during_the_export_is_one_line(runner, tmp_path, monkeypatch):
    import zoo.store.files

    real = open

    def fake(path, mode="r", *args, **kwargs):
        if "w" in mode and ".model.safetensors." in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(zoo.store.files, "open", fake, raising=False)
    line = one_line_error(zoo_cli(runner, "train", "rnn", "hihello", "-e", "3", "-q"))
    assert "could not write the export checkpoints/rnn-hihello/model.safetensors (No space left on device)" in line
    assert "the trained state is saved: zoo resume checkpoints/rnn-hihello writes the export" in line
    assert not list((tmp_path / "checkpoints" / "rnn-hihello").glob(".*.tmp"))


@pytest.mark.parametrize("target", ["config.json", "state.safetensors", "metrics.jsonl"])
def test_out_never_lands_on_a_runs_own_files(runner, tmp_path, target):
    assert zoo_cli(runner, "train", "rnn", "hihello", "-e", "2", "--run-dir", "run", "-q").exit_code == 0
    before = snapshot(tmp_path)
    line = one_line_error(zoo_cli(runner, "train", "rnn", "hihello", "-e", "2", "--out", f"run/{target}"))
    assert f"would overwrite a run's own {target}" in line
    line = one_line_error(zoo_cli(runner, "train", "rnn", "hihello", "--run-dir", "run", "--overwrite",
                                  "--out", f"run/{target}"))
    assert f"would overwrite a run's own {target}" in line
    assert snapshot(tmp_path) == before


def test_out_never_lands_on_the_input_data(runner, tmp_path):
    text = tmp_path / "book.txt"
    text.write_text("a small book of words. " * 20)
    line = one_line_error(zoo_cli(runner, "train", "rnn", "charlm", "--text", text, "--out", text))
    assert "is the task's input (text)" in line
    assert text.read_text() == "a small book of words. " * 20 and not (tmp_path / "checkpoints").exists()
