"""One run locator (issue 19, item 3): a name or a path means the same run for eval, predict, info,
resume, plot, runs and zoo.load; a name that chose among several runs says which folder on stderr.
And no import cycles among zoo's modules (bench/code_shape.py draws the graph from the AST)."""

import json
import os
import signal
import sys
from pathlib import Path

import pytest

import zoo
import zoo.store.runs
from conftest import ROOT, one_line_error, zoo_cli
from zoo.store.runs import Run


@pytest.fixture
def finished_then_interrupted(tmp_path):
    """rnn-hihello: a finished run (3 epochs, exported), then a newer one stopped after epoch 2 of 4."""
    zoo.train("rnn", "hihello", {"epochs": 3}, log=lambda line: None)

    def log(line):
        if line.startswith("epoch 2/4"):
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(zoo.ZooError, match="interrupted after epoch 2"):
        zoo.train("rnn", "hihello", {"epochs": 4, "seed": 1}, log=log, log_every=1)
    return tmp_path / "checkpoints" / "rnn-hihello", tmp_path / "checkpoints" / "rnn-hihello-2"


def test_a_name_means_the_newest_run_for_every_command(runner, finished_then_interrupted):
    first, newest = finished_then_interrupted
    said = "using checkpoints/rnn-hihello-2, the newest of 2 runs named rnn-hihello"
    for command in (["eval", "rnn-hihello"], ["predict", "rnn-hihello", "hihell"], ["info", "rnn-hihello"]):
        line = one_line_error(zoo_cli(runner, *command))  # the newest has no export: said, with the older one's
        assert "the run in checkpoints/rnn-hihello-2 has no export yet: it stopped in epoch 3" in line, command
        assert "(checkpoints/rnn-hihello has an export: give that folder)" in line
    with pytest.raises(zoo.ZooError, match="rnn-hihello-2 has no export yet"):
        zoo.load("rnn-hihello")
    plotted = zoo_cli(runner, "plot", "rnn-hihello")
    assert plotted.exit_code == 0 and said in plotted.output
    assert (newest / "curves.png").is_file() and not (first / "curves.png").exists()
    resumed = zoo_cli(runner, "resume", "rnn-hihello", "-q")
    assert resumed.exit_code == 0, resumed.output
    assert said in resumed.output and "saved checkpoints/rnn-hihello-2/model.safetensors" in resumed.output
    assert Run(newest).state_info()["train_config"]["epochs"] == 4
    assert Run(first).state_info()["train_config"]["epochs"] == 3  # the older run is left as it was
    # now the newest has an export: every command reads that one
    assert zoo.load("rnn-hihello").zoo.train_config.seed == 1
    evaluated = zoo_cli(runner, "eval", "rnn-hihello", "--json")
    assert evaluated.exit_code == 0 and said in evaluated.output
    info = zoo_cli(runner, "info", "rnn-hihello", "--json")
    assert json.loads(info.output[info.output.index("{"):])["train_config"]["seed"] == 1
    listed = json.loads(zoo_cli(runner, "runs", "--json").output)
    assert [(r["run"], r["status"]) for r in listed] == [("checkpoints/rnn-hihello", "finished"),
                                                        ("checkpoints/rnn-hihello-2", "finished")]


def test_a_folder_or_a_numbered_name_is_that_run_and_says_nothing(runner, finished_then_interrupted):
    first, newest = finished_then_interrupted
    for target in (first, "checkpoints/rnn-hihello"):
        result = zoo_cli(runner, "eval", target)
        assert result.exit_code == 0 and "using" not in result.output
    assert zoo.load(first).zoo.train_config.seed == 0
    assert "has no export yet" in one_line_error(zoo_cli(runner, "eval", "rnn-hihello-2"))
    assert zoo_cli(runner, "plot", "rnn-hihello-2").exit_code == 0 and (newest / "curves.png").is_file()


def test_zoo_runs_lists_the_runs_root(runner, monkeypatch, tmp_path, finished_then_interrupted):
    import zoo.store.runs

    (tmp_path / "elsewhere").mkdir()
    os.rename(tmp_path / "checkpoints", tmp_path / "elsewhere" / "runs")
    monkeypatch.setattr(zoo.store.runs, "RUNS_ROOT", str(tmp_path / "elsewhere" / "runs"))
    listed = json.loads(zoo_cli(runner, "runs", "--json").output)
    assert [Path(r["run"]).name for r in listed] == ["rnn-hihello", "rnn-hihello-2"]


def test_resume_and_plot_of_a_file_or_nothing_is_one_line(runner, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert "is a file" in one_line_error(zoo_cli(runner, "resume", "notes.txt"))  # click says so first
    with pytest.raises(zoo.ZooError, match="notes.txt is not a run folder: zoo can resume only a run's folder"):
        zoo.store.runs.resumable("notes.txt")
    assert "no run named nothing under checkpoints/" in one_line_error(zoo_cli(runner, "plot", "nothing"))


def test_zoos_modules_import_no_cycle():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import code_shape
    finally:
        sys.path.remove(str(ROOT / "bench"))
    graph = code_shape.import_graph(ROOT)
    assert "zoo.store.runs" in graph and "zoo.store.header" in graph["zoo.store.runs"]
    assert code_shape.cycles(graph) == []
    assert code_shape.cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]  # the finder finds one
