"""Run folders: a folder per run, named the same everywhere, what it holds, `zoo runs` and `zoo plot`.

Resuming, extending and fine-tuning a run: test_resume.py; what cannot break a run folder (copies,
two writers, kills, torn logs, a full disk): test_run_safety.py.
"""

import json
import sys

import pytest
from safetensors.torch import load_file

import zoo
from conftest import one_line_error, tiny_mnist, write_course_prices, zoo_cli
from zoo.store.runs import Run


ZOO = [sys.executable, "-m", "zoo"]


def quiet(line):
    pass


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


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


def test_the_run_folder_holds_config_log_state_and_export(tmp_path):
    run = tmp_path / "run"
    zoo.train("gru", "hihello", {"epochs": 12}, run_dir=run, log=quiet)
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "metrics.jsonl", "model.safetensors",
                                                      "state.safetensors"]
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "gru" and config["train_config"]["epochs"] == 12 and config["monitor"] == "train"
    rows = Run(run).history()
    assert [r["epoch"] for r in rows] == list(range(1, 13))
    assert {"loss", "lr", "seconds", "samples_per_s"} <= set(rows[0]) and "accuracy" in rows[-1]["train"]
    state = load_file(run / "state.safetensors")
    assert {"rng/torch", "rng/shuffle", "rng/numpy", "model/head.weight", "optimizer/0/exp_avg"} <= set(state)
    info = Run(run).state_info()
    assert info["status"] == "finished" and info["train_config"]["epochs"] == 12 and info["progress"]["done"]


def test_validation_metrics_are_logged_every_epoch(tmp_path):
    run = tmp_path / "run"
    zoo.train("gru", "mnist", {"root": tiny_mnist(tmp_path), "download": False, "val_size": 10, "epochs": 3,
                               "hidden_size": 8}, run_dir=run, log=quiet)
    assert all("accuracy" in row["val"] for row in Run(run).history())


def test_runs_and_plot(runner, tmp_path):
    zoo_cli(runner, "train", "rnn", "hihello", "-q")
    zoo_cli(runner, "train", "lstm", "stock", "--data", write_course_prices(tmp_path / "p.csv"), "-e", "40", "-q")
    result = zoo_cli(runner, "runs")
    assert result.exit_code == 0, result.output
    assert "checkpoints/rnn-hihello" in result.output and "finished" in result.output
    rows = {r["task"]: r for r in json.loads(zoo_cli(runner, "runs", "--json").output)}
    assert rows["hihello"]["best"] == 1.0 and rows["hihello"]["metric"] == "train accuracy"
    stock = Run(tmp_path / "checkpoints" / "lstm-stock").history()
    assert rows["stock"]["best"] == min(r["train"]["rmse"] for r in stock if "train" in r)  # lower is better
    result = zoo_cli(runner, "plot", "checkpoints/lstm-stock", "--out", tmp_path / "curves.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_runs_lists_zoo_runs_and_not_another_programs_config_json(runner, tmp_path):
    assert zoo_cli(runner, "train", "rnn", "hihello", "-e", "2", "-q").exit_code == 0
    project = tmp_path / "checkpoints" / "my-project"  # a user's folder with its own config.json
    project.mkdir()
    (project / "config.json").write_text('{"name": "my project", "version": 2}')
    listed = json.loads(zoo_cli(runner, "runs", "--json").output)
    assert [r["run"] for r in listed] == ["checkpoints/rnn-hihello"]
    assert "no runs in" in one_line_error(zoo_cli(runner, "runs", str(project)))
