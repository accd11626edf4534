"""Runs on a real, busy machine: a second run never destroys the first, Ctrl-C or SIGTERM at any
moment, extending and fine-tuning, the thread policy, and output a person reads."""

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import zoo
from conftest import one_line_error, wait_for, zoo_cli
from zoo.loop import threads
from zoo.store.runs import Run

ZOO = [sys.executable, "-m", "zoo"]


def quiet(line):
    pass


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def same_weights(a, b) -> bool:
    a, b = load_file(a), load_file(b)
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- a new run never destroys an old one -----------------------------------------------------------
def test_a_second_run_gets_a_folder_of_its_own_and_leaves_the_first_intact(runner, tmp_path):
    first = zoo_cli(runner, "train", "rnn", "hihello", "-e", "20")
    assert first.exit_code == 0, first.output
    assert "run in checkpoints/rnn-hihello" in first.output
    before = snapshot(tmp_path / "checkpoints" / "rnn-hihello")
    second = zoo_cli(runner, "train", "rnn", "hihello", "-e", "20", "--seed", "1")
    assert second.exit_code == 0, second.output
    assert "run in checkpoints/rnn-hihello-2" in second.output
    assert "saved checkpoints/rnn-hihello-2/model.safetensors" in second.output
    assert snapshot(tmp_path / "checkpoints" / "rnn-hihello") == before
    # a run's name finds the newest run of the pair, its folder that very run
    assert zoo.load("rnn-hihello").zoo.train_config.seed == 1
    assert zoo.load(tmp_path / "checkpoints" / "rnn-hihello").zoo.train_config.seed == 0
    listed = json.loads(zoo_cli(runner, "runs", "--json").output)
    assert [r["run"] for r in listed] == ["checkpoints/rnn-hihello", "checkpoints/rnn-hihello-2"]


def test_an_explicit_run_dir_that_holds_a_run_needs_resume_or_overwrite(runner, tmp_path):
    run = tmp_path / "mine"
    assert zoo_cli(runner, "train", "rnn", "hihello", "-e", "5", "--run-dir", run, "-q").exit_code == 0
    before = snapshot(run)
    line = one_line_error(zoo_cli(runner, "train", "rnn", "hihello", "-e", "5", "--run-dir", run))
    assert "holds a run already: --resume continues it, --overwrite replaces it" in line
    line = one_line_error(zoo_cli(runner, "train", "rnn", "hihello", "--run-dir", run, "--resume", "--overwrite"))
    assert "give one of them" in line
    assert snapshot(run) == before
    result = zoo_cli(runner, "train", "rnn", "hihello", "-e", "7", "--run-dir", run, "--overwrite", "-q")
    assert result.exit_code == 0, result.output
    assert [r["epoch"] for r in Run(run).history()] == list(range(1, 8))


@pytest.mark.parametrize("args", [["charlm", "--text", "missing.txt"], ["stock", "--data", "missing.csv"]])
def test_a_run_that_fails_before_training_leaves_no_folder(runner, tmp_path, args):
    one_line_error(zoo_cli(runner, "train", "lstm", *args))
    one_line_error(zoo_cli(runner, "train", "lstm", *args, "--run-dir", tmp_path / "a" / "b"))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# -- Ctrl-C and SIGTERM at any moment ------------------------------------------------------------------
def started_run(cwd):
    runs = list((cwd / "checkpoints").glob("*")) if (cwd / "checkpoints").is_dir() else []
    return runs[0] if runs else None


@pytest.mark.parametrize("sig,point", [
    (signal.SIGINT, "importing"), (signal.SIGTERM, "importing"),
    (signal.SIGINT, "first epoch"), (signal.SIGTERM, "first epoch"),
    (signal.SIGINT, "later epoch"),
])
def test_a_signal_at_any_moment_ends_in_one_line_and_a_consistent_folder(tmp_path, long_text, sig, point):
    command = [*ZOO, "train", "gru", "charlm", "--text", str(long_text), "--stride", "2", "-e", "30",
               "--hidden-size", "32", "--threads", "1"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if point == "importing":  # the command has started, torch is still loading
        time.sleep(0.3)
    elif point == "first epoch":  # the run folder exists, no epoch has ended
        wait_for(lambda: started_run(tmp_path) is not None, process, "its folder was made")
    else:
        wait_for(lambda: started_run(tmp_path) and len(Run(started_run(tmp_path)).history()) >= 2, process,
                 "two epochs were logged")
    process.send_signal(sig)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 128 + sig, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted" in lines[0], err
    assert "Traceback" not in err and "Aborted" not in err
    run = started_run(tmp_path)
    if run is None:  # stopped before training: nothing was kept, not even an empty folder
        assert "nothing was" in lines[0] and not (tmp_path / "checkpoints").exists()
        return
    assert not list(run.glob(".*.tmp")) and not (run / "model.safetensors").exists()
    if (run / "state.safetensors").exists():  # stopped in training: resumable, and it says how
        assert f"zoo resume {run.relative_to(tmp_path)}" in lines[0]
        assert Run(run).state_info()["status"] == "interrupted"
        done = subprocess.run([*ZOO, "resume", str(run), "-q", "--threads", "1"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        assert (run / "model.safetensors").is_file() and not (run / ".lock").exists()
    else:  # stopped before the first step finished: nothing kept
        pytest.fail(f"a run folder without a state was left behind: {sorted(p.name for p in run.iterdir())}")


def test_ctrl_c_during_the_final_export_keeps_a_complete_export(tmp_path, monkeypatch):
    """The export is written whole, then the stop is honoured: exit code and one line say so."""
    from zoo.loop.training import Interrupted

    real_fsync = os.fsync

    def fsync_then_ctrl_c(fd):
        real_fsync(fd)
        os.kill(os.getpid(), signal.SIGINT)  # arrives while the export is being written

    monkeypatch.setattr(os, "fsync", fsync_then_ctrl_c)
    with pytest.raises(Interrupted, match="its export checkpoints/rnn-hihello/model.safetensors is complete"):
        zoo.train("rnn", "hihello", {"epochs": 3}, log=quiet)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert zoo.load("checkpoints/rnn-hihello").zoo.model == "rnn"


# -- continue, extend, fine-tune ----------------------------------------------------------------------
def test_extending_a_finished_run_equals_training_it_longer_in_one_go(runner, tmp_path):
    assert zoo_cli(runner, "train", "gru", "hihello", "-e", "10", "--run-dir", "short", "-q").exit_code == 0
    result = zoo_cli(runner, "resume", "short", "--epochs", "25")
    assert result.exit_code == 0, result.output
    assert "extending from 10 to 25 epochs" in result.output
    assert zoo_cli(runner, "train", "gru", "hihello", "-e", "25", "--run-dir", "long", "-q").exit_code == 0
    assert same_weights(tmp_path / "short" / "model.safetensors", tmp_path / "long" / "model.safetensors")
    assert [r["epoch"] for r in Run(tmp_path / "short").history()] == list(range(1, 26))
    assert zoo.load("short").zoo.train_config.epochs == 25
    assert "not shortened" in one_line_error(zoo_cli(runner, "resume", "short", "--epochs", "5"))


def test_extending_a_scheduled_run_restarts_its_schedule_over_the_added_epochs(tmp_path):
    zoo.train("rnn", "hihello", {"epochs": 6, "schedule": "cosine", "lr": 0.1}, run_dir="run", log=quiet)
    zoo.train("rnn", "hihello", {"epochs": 12}, run_dir="run", resume=True, log=quiet)
    rates = [row["lr"] for row in Run(tmp_path / "run").history()]
    assert rates[0] == rates[6] == pytest.approx(0.1)  # each schedule starts at lr
    assert rates[5] < 0.02 and rates[11] < 0.02 and rates[1:6] == pytest.approx(rates[7:12])


def test_init_from_an_export_continues_from_its_weights(runner, tmp_path):
    assert zoo_cli(runner, "train", "lstm", "charlm", "-e", "40", "--run-dir", "ship", "-q").exit_code == 0
    source = load_file(tmp_path / "ship" / "model.safetensors")
    text = tmp_path / "more.txt"
    text.write_text("if you want to build a ship, teach them to long for the sea. " * 3)
    result = zoo_cli(runner, "train", "lstm", "charlm", "--text", text, "--init-from", "ship", "-e", "1",
                     "--lr", "1e-12", "--run-dir", "tuned")
    assert result.exit_code == 0, result.output
    assert "from ship/model.safetensors" in result.output
    tuned = load_file(tmp_path / "tuned" / "model.safetensors")
    assert all(torch.allclose(tuned[k], source[k], atol=1e-6) for k in source)
    assert zoo.load("tuned").zoo.meta["vocab"] == zoo.load("ship").zoo.meta["vocab"]  # the export's vocabulary


def test_init_from_mistakes_are_one_line_and_write_nothing(runner, tmp_path):
    assert zoo_cli(runner, "train", "lstm", "charlm", "-e", "2", "--run-dir", "ship", "-q").exit_code == 0
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes((tmp_path / "ship" / "model.safetensors").read_bytes()[:300])
    other = tmp_path / "other.txt"
    other.write_text("Zebras quickly vex jumping XYZ.")
    before = snapshot(tmp_path)
    cases = [
        (["gru", "charlm", "--init-from", "ship"], "is lstm on charlm"),
        (["lstm", "hihello", "--init-from", "ship"], "is lstm on charlm"),
        (["lstm", "charlm", "--init-from", damaged], f"--init-from {damaged} is truncated"),
        (["lstm", "charlm", "--init-from", "nowhere"], "--init-from nowhere: no such file, and no run named"),
        (["lstm", "charlm", "--init-from", "ship", "--hidden-size", "16"], "does not fit the network"),
        (["lstm", "charlm", "--init-from", "ship", "--text", other], "characters the model never saw"),
        (["lstm", "charlm", "--init-from", "nowhere.safetensors"], "no such file"),
    ]
    for args, message in cases:
        assert message in one_line_error(zoo_cli(runner, "train", *args, "-e", "1"))
    assert snapshot(tmp_path) == before


# -- threads -------------------------------------------------------------------------------------------
def header(result) -> str:
    return next(line for line in result.output.splitlines() if line.startswith("training "))


@pytest.mark.parametrize("option,env,shown", [
    ([], {}, "threads (adapting to the load; --threads fixes it)"),
    (["--threads", "1"], {}, "1 thread (--threads)"),
    ([], {"ZOO_THREADS": "1"}, "1 thread (ZOO_THREADS)"),
    (["--threads", "2"], {"ZOO_THREADS": "1"}, "2 threads (--threads)"),
    ([], {"OMP_NUM_THREADS": "1"}, "1 thread (OMP_NUM_THREADS)"),
])
def test_the_header_says_which_threads_it_uses(runner, monkeypatch, option, env, shown):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("ZOO_THREADS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    previous = torch.get_num_threads()
    try:
        result = zoo_cli(runner, "train", "rnn", "hihello", "-e", "2", *option)
        assert result.exit_code == 0, result.output
        assert shown in header(result)
        if option or env:
            assert torch.get_num_threads() == int((option or [None, next(iter(env.values()))])[1])
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("args,env,message", [
    (["--threads", "0"], {}, "--threads must be a positive integer or auto, got '0'"),
    (["--threads", "abc"], {}, "--threads must be a positive integer or auto, got 'abc'"),
    ([], {"ZOO_THREADS": "-1"}, "ZOO_THREADS must be a positive integer or auto, got '-1'"),
])
def test_bad_thread_counts_are_one_line(runner, monkeypatch, tmp_path, args, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert message in one_line_error(zoo_cli(runner, "train", "rnn", "hihello", *args))
    assert not list(tmp_path.iterdir())


def test_the_users_openmp_settings_are_left_alone(monkeypatch):
    monkeypatch.delenv("ZOO_THREADS")
    for key in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(key, raising=False)
    before = dict(os.environ)
    assert threads.prepare().source == "adaptive" and dict(os.environ) == before
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    policy = threads.prepare()
    assert (policy.fixed, policy.source) == (3, "OMP_NUM_THREADS") and os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


@pytest.mark.parametrize("others,expected", [(0.0, 4), (1.0, 3), (2.6, 1), (3.9, 1), (1.8, 2)])
def test_adaptive_threads_take_the_cores_other_processes_leave(monkeypatch, others, expected):
    """Simulated /proc: 4 CPUs; this process uses 1 core-second per second, the others `others`."""
    clock = {"t": 100.0}
    ticks = os.sysconf("SC_CLK_TCK")
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["t"])
    monkeypatch.setattr(threads, "machine_busy_jiffies", lambda: int(clock["t"] * (1 + others) * ticks))
    monkeypatch.setattr(threads, "runnable_elsewhere", lambda: round(others))  # the instant's count at the start
    monkeypatch.setattr(threads.os, "times", lambda: os.times_result((clock["t"], 0, 0, 0, 0)))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(threads, "usable_cpus", lambda: 4)
    control = threads.Threads(threads.Policy(None, "adaptive"), ceiling=4)
    assert control.idle_cores(first=True) == max(1, min(4, int(4 - round(others) + 0.3)))
    clock["t"] += 5  # later looks measure the CPU time between two samples
    assert control.idle_cores() == expected


# -- output a person reads ------------------------------------------------------------------------------
def test_a_default_run_on_a_terminal_prints_few_lines(tmp_path):
    """One bar drawn in place on a terminal; the metric lines and the export line stay."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([*ZOO, "train", "rnn", "hihello"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                               stdout=follower, stderr=follower)
    os.close(follower)
    shown = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 300)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert process.wait(timeout=300) == 0
    text = shown.decode()
    assert "saved checkpoints/rnn-hihello/model.safetensors" in text
    assert text.count("\n") <= 25, text


def test_a_closed_pipe_ends_quietly(tmp_path):
    listing = subprocess.run(f"{sys.executable} -m zoo list | head -n 1", shell=True, cwd=tmp_path,
                             capture_output=True, text=True)
    assert listing.stdout.startswith("MODEL") and listing.stderr == ""


def test_mistyped_options_suggest_the_right_one_as_typed(runner):
    assert "did you mean '--hidden-size'?" in one_line_error(zoo_cli(runner, "train", "rnn", "hihello",
                                                                     "--hiden-size", "4"))
    assert "did you mean '--hidden_size'?" in one_line_error(zoo_cli(runner, "train", "rnn", "hihello",
                                                                     "--hiden_size", "4"))
    assert "Did you mean '--epochs'?" in one_line_error(zoo_cli(runner, "resume", "somewhere", "--epoch", "3"))
    line = one_line_error(zoo_cli(runner, "resume", "somewhere", "--fast"))
    assert "zoo resume takes --epochs, --device, --threads, --quiet" in line
    assert "--overwrite replaces the run in --run-dir" in one_line_error(zoo_cli(runner, "train", "rnn", "hihello",
                                                                                "--overwrite"))


def test_a_run_name_works_where_a_run_folder_does(runner, tmp_path):
    assert zoo_cli(runner, "train", "rnn", "hihello", "-e", "3", "-q").exit_code == 0
    assert zoo_cli(runner, "train", "rnn", "hihello", "-e", "3", "-q").exit_code == 0
    result = zoo_cli(runner, "resume", "rnn-hihello-2", "--epochs", "5", "-q")
    assert result.exit_code == 0, result.output
    assert [r["epoch"] for r in Run(tmp_path / "checkpoints" / "rnn-hihello-2").history()] == [1, 2, 3, 4, 5]
    assert zoo_cli(runner, "plot", "rnn-hihello", "--out", "c.png").exit_code == 0
    # the pair's name is its newest run for every command (issue 19): the first run is addressed by its folder
    line = one_line_error(zoo_cli(runner, "resume", "checkpoints/rnn-hihello", "--epochs", "3"))
    assert "has finished its 3 epochs" in line and "N above 3" in line


def test_openmp_thread_lists_are_honoured(monkeypatch):
    monkeypatch.delenv("ZOO_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "2,1")
    assert threads.prepare().fixed == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "many")  # OpenMP ignores it; so does zoo
    assert threads.prepare().source == "adaptive"
