"""Threads and signals on a busy machine: the thread policy and what the header says of it; Ctrl-C or
SIGTERM at any moment, during the export too; a closed pipe.
"""

import os
import signal
import subprocess
import sys

import pytest
import torch

import zoo
from conftest import foreground_sigint, importing_torch, one_line_error, wait_for, zoo_cli
from zoo.loop import threads
from zoo.store.runs import Run


ZOO = [sys.executable, "-m", "zoo"]


def quiet(line):
    pass


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
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=foreground_sigint)
    if point == "importing":  # the command has started, torch is still loading
        wait_for(lambda: importing_torch(process), process, "torch was being imported")
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


def test_openmp_thread_lists_are_honoured(monkeypatch):
    monkeypatch.delenv("ZOO_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "2,1")
    assert threads.prepare().fixed == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "many")  # OpenMP ignores it; so does zoo
    assert threads.prepare().source == "adaptive"


def test_a_closed_pipe_ends_quietly(tmp_path):
    listing = subprocess.run(f"{sys.executable} -m zoo list | head -n 1", shell=True, cwd=tmp_path,
                             capture_output=True, text=True)
    assert listing.stdout.startswith("MODEL") and listing.stderr == ""
