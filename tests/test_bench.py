"""`zoo bench` end to end: a tiny grid through the real command, with real worker processes.

Two cells x hihello and a small charlm, one epoch each; where a run must last long enough to be
stopped or killed, charlm gets more epochs and the test waits for its first one (a bound on waiting,
never a deadline on the machine's speed).
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import foreground_sigint, one_line_error, wait_for, zoo_cli

GRID = ["rnn,gru", "hihello,charlm", "--seeds", "0", "--epochs", "1", "-o", "stride=7", "--workers", "2"]


def rows(folder) -> list[dict]:
    return [json.loads(line) for line in (Path(folder) / "results.jsonl").read_text().splitlines()]


def keyed(folder) -> dict:
    return keyed_text((Path(folder) / "results.jsonl").read_text())


def keyed_text(text: str) -> dict:
    """What rows say about the models, by cell: the parts a rerun on the same machine reproduces."""
    return {(r["model"], r["task"], r["seed"]): (r["value"], r["metrics"], r["parameters"], r["epochs"])
            for r in map(json.loads, text.splitlines())}


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns if p.is_file() else None for p in root.rglob("*")}


def test_grid_runs_end_to_end_and_a_rerun_skips_it(runner, tmp_path):
    result = zoo_cli(runner, "bench", *GRID)
    assert result.exit_code == 0, result.output
    assert "4 cells (4 model/task pairs x 1 seed; 0 pairs skipped" in result.output
    found = rows("results")
    assert sorted((r["task"], r["model"]) for r in found) == [("charlm", "gru"), ("charlm", "rnn"),
                                                              ("hihello", "gru"), ("hihello", "rnn")]
    for row in found:
        metric = {"hihello": "accuracy", "charlm": "nats_per_char"}[row["task"]]  # each task's headline
        assert row["metric"] == metric and row["value"] == row["metrics"][metric]
        assert row["parameters"] > 0 and row["epochs"] == 1 and row["train_seconds"] > 0
        assert row["samples_per_s"] > 0 and row["peak_mib"] > 10 and row["threads"] >= 1
        assert row["versions"]["torch"] and row["versions"]["zoo"] and row["cpu"]
        assert row["command"].startswith(f"zoo train {row['model']} {row['task']} --seed 0 --epochs 1")
        assert ("-o stride=7" in row["command"]) == (row["task"] == "charlm")  # only where the setting exists
        assert (Path("results") / row["run"] / "model.safetensors").is_file()
    summary = Path("results/summary.md").read_text()
    assert "| task | metric | model | mean ± std |" in summary and "**" in summary
    assert "| hihello | accuracy ↑ | rnn |" in result.output  # printed too

    before = Path("results/results.jsonl").read_text()
    again = zoo_cli(runner, "bench", *GRID, "--plot")
    assert again.exit_code == 0, again.output
    assert "4 done already, 0 to run;" in again.output
    assert Path("results/results.jsonl").read_text() == before  # nothing retrained, nothing rewritten
    assert Path("results/summary.png").stat().st_size > 0

    # a bench killed while writing a row leaves part of a line: that cell's finished run is collected again
    Path("results/results.jsonl").write_text(before[:-40])
    third = zoo_cli(runner, "bench", *GRID)
    assert third.exit_code == 0, third.output
    assert "3 done already, 1 to run" in third.output and ", collected" in third.output
    assert keyed("results") == keyed_text(before)


def test_shards_merge_to_the_unsharded_result(runner, tmp_path):
    assert zoo_cli(runner, "bench", *GRID, "--out", "full").exit_code == 0
    for i in (0, 1):
        result = zoo_cli(runner, "bench", *GRID, "--shard", f"{i}/2", "--out", f"shard-{i}")
        assert result.exit_code == 0, result.output
        assert f"shard {i}/2: 2" in result.output
    assert not set(keyed("shard-0")) & set(keyed("shard-1"))
    result = zoo_cli(runner, "bench", "--merge", "shard-0", "shard-1/results.jsonl", "--out", "merged")
    assert result.exit_code == 0, result.output
    assert "merged 4 rows from 2 folders" in result.output
    assert keyed("merged") == keyed("full")
    for row in rows("merged"):  # the rows point at the shards' run folders, from the merged folder
        assert (Path("merged") / row["run"] / "model.safetensors").is_file()
    assert Path("merged/summary.md").is_file()


def bench_process(*args, cwd) -> subprocess.Popen:
    """The bench in a process group of its own, as a shell starts a command (and pytest stays out of it)."""
    return subprocess.Popen([sys.executable, "-m", "zoo", "bench", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=foreground_sigint)


def wait_for_epoch(run: Path, process: subprocess.Popen) -> None:
    """Until the run has logged an epoch, so that a resumable state is saved."""
    log = run / "metrics.jsonl"
    wait_for(lambda: log.is_file() and log.read_text().strip(), process, f"{run} logged an epoch")


LONG = ["rnn", "hihello,charlm", "--seeds", "0", "--epochs", "hihello=1,charlm=300", "-o", "stride=7"]


@pytest.mark.parametrize("how", ["SIGTERM to the bench", "Ctrl-C in a terminal"])
def test_a_stopped_grid_resumes(runner, tmp_path, how):
    bench = bench_process(*LONG, "--workers", "1", cwd=tmp_path)
    run = tmp_path / "results/runs/rnn-charlm-s0"
    wait_for_epoch(run, bench)
    if how == "SIGTERM to the bench":
        bench.send_signal(signal.SIGTERM)  # the bench passes it on to its workers
        signum = signal.SIGTERM
    else:  # a terminal's Ctrl-C reaches the bench and its workers at once
        os.killpg(bench.pid, signal.SIGINT)
        signum = signal.SIGINT
    out, err = bench.communicate()
    assert bench.returncode == 128 + signum, (out, err)
    assert err.strip().splitlines()[-1].startswith("stopped: 0 of 2 cells finished"), err
    assert "Traceback" not in err
    state = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert state["epoch"] < 300  # the worker stopped mid-run and kept its state

    result = zoo_cli(runner, "bench", *LONG, "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "(resumed)" in result.output
    found = {r["task"]: r for r in rows("results")}
    assert found["charlm"]["resumed"] and found["charlm"]["epochs"] == 300
    assert not found["hihello"]["resumed"]


def test_a_killed_worker_is_run_again_and_the_other_rows_are_kept(runner, tmp_path):
    bench = bench_process(*LONG, "--seeds", "0,1", "--workers", "2", cwd=tmp_path)
    run = tmp_path / "results/runs/rnn-charlm-s0"
    wait_for_epoch(run, bench)
    os.kill(int((run / ".lock").read_text()), signal.SIGKILL)
    out, err = bench.communicate()
    assert bench.returncode == 1, (out, err)
    assert "rnn on charlm, seed 0: FAILED: killed by signal 9" in out
    assert len(err.strip().splitlines()) == 1 and err.startswith("Error: 1 of 4 cells failed"), err
    kept = (tmp_path / "results/results.jsonl").read_text()
    assert len(kept.splitlines()) == 3

    result = zoo_cli(runner, "bench", *LONG, "--seeds", "0,1", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "3 done already, 1 to run" in result.output
    text = Path("results/results.jsonl").read_text()
    assert text.startswith(kept)  # the three rows are untouched; the killed cell's row is added
    assert [r["seed"] for r in rows("results") if r["task"] == "charlm"] == [1, 0]


def fake_results(folder: Path, epochs: int) -> Path:
    folder.mkdir()
    (folder / "bench.json").write_text(json.dumps({"format": "zoo-bench/1",
                                                   "recipe": {"settings": [], "epochs": {"*": epochs}}}))
    (folder / "results.jsonl").write_text(json.dumps({"model": "rnn", "task": "hihello", "seed": 0, "value": 1.0,
                                                      "run": "runs/x"}) + "\n")
    return folder


@pytest.mark.parametrize("args, message", [
    (["nosuch", "hihello"], "no model matches 'nosuch'"),
    (["rnn", "hihelo"], "no task matches 'hihelo'"),
    (["rnn,lsmt*", "hihello"], "no model matches 'lsmt*'"),
    (["rnn-bi,gru-bi", "hihello"], "no model fits a task in this grid"),
    (["rnn", "hihello", "--shard", "3/2"], "--shard takes I/N with 0 <= I < N"),
    (["rnn", "hihello", "--seeds", "0", "--shard", "1/2"], "shard 1/2 of a grid of 1 cell is empty"),
    (["rnn", "hihello", "--workers", "0"], "--workers must be at least 1, got 0"),
    (["rnn", "hihello", "--seeds", "0,x"], "--seeds takes integers"),
    (["rnn", "hihello", "--epochs", "charlm=3"], "--epochs names task 'charlm'"),
    (["rnn", "hihello", "-o", "window=5"], "-o window=5: no model, task or training loop of this grid"),
    (["rnn", "hihello", "-o", "hidden_size=-1"], "rnn on hihello:"),
    (["rnn"], "zoo bench takes MODELS and TASKS"),
    (["rnn", "hihello", "--out", "a-file/results"], "cannot write results to --out a-file/results"),
    (["rnn", "hihello", "--out", "a-file"], "--out a-file is a file"),
    (["rnn", "hihello", "--out", "other"], "--out other holds the results of another recipe (epochs 7"),
    (["rnn", "hihello", "--out", "stuff"], "--out stuff holds other files and no bench.json"),
    (["--merge", "one", "two", "--out", "merged"], "two holds the results of another recipe (epochs 2"),
    (["--merge", "one", "stuff", "--out", "merged"], "stuff is not a zoo bench results folder"),
])
def test_bad_input_is_one_line_and_changes_nothing(runner, tmp_path, args, message):
    Path("a-file").write_text("not a folder")
    fake_results(tmp_path / "other", 7)
    fake_results(tmp_path / "one", 1)
    fake_results(tmp_path / "two", 2)
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    before = tree(tmp_path)
    line = one_line_error(zoo_cli(runner, "bench", *args))
    assert message in line, line
    assert tree(tmp_path) == before
