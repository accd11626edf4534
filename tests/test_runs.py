"""Runs you can trust: resume after a kill or Ctrl-C bit for bit, logs, early stopping, several processes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

import zoo
from conftest import one_line_error, tiny_mnist, wait_for, write_course_prices, zoo_cli
from zoo.store.runs import Run


def quiet(line):
    pass


def command(text, run_dir, *extra):
    return [sys.executable, "-m", "zoo", "train", "gru", "charlm", "--text", str(text), "--stride", "2", "-e", "4",
            "--hidden-size", "32", "-q", "--run-dir", str(run_dir), *extra]


def wait_for_epochs(run_dir, epochs, process):
    log = run_dir / "metrics.jsonl"
    wait_for(lambda: log.is_file() and len(log.read_text().splitlines()) >= epochs, process, f"{epochs} epochs")


def same_weights(a, b) -> bool:
    a, b = load_file(a), load_file(b)
    return a.keys() == b.keys() and all(a[k].numpy().tobytes() == b[k].numpy().tobytes() for k in a)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, long_text):
    run = tmp_path_factory.mktemp("straight")
    subprocess.run(command(long_text, run), check=True, env={**os.environ, "ZOO_LOAD_PLUGINS": ""}, timeout=300)
    return run / "model.safetensors"


def test_sigkill_mid_epoch_then_resume_gives_the_same_weights(tmp_path, long_text, uninterrupted):
    run = tmp_path / "killed"
    process = subprocess.Popen(command(long_text, run))
    wait_for_epochs(run, 2, process)
    time.sleep(0.1)  # into the next epoch
    process.kill()
    assert process.wait() == -signal.SIGKILL
    assert not (run / "model.safetensors").exists()
    subprocess.run([sys.executable, "-m", "zoo", "resume", str(run), "-q"], check=True)
    assert same_weights(run / "model.safetensors", uninterrupted)
    assert [row["epoch"] for row in Run(run).history()] == [1, 2, 3, 4]


def test_ctrl_c_saves_the_state_between_two_steps_and_says_how_to_resume(tmp_path, long_text, uninterrupted):
    run = tmp_path / "stopped"
    process = subprocess.Popen(command(long_text, run), stderr=subprocess.PIPE, text=True)
    wait_for_epochs(run, 1, process)
    time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert f"the state is saved: zoo resume {run} continues it" in err and "Traceback" not in err
    info = Run(run).state_info()
    assert info["status"] == "interrupted" and info["progress"]["batch"] > 0  # mid-epoch
    result = subprocess.run(command(long_text, run, "--resume"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert same_weights(run / "model.safetensors", uninterrupted)


def test_same_seed_same_weights_bit_for_bit(tmp_path):
    for name in "ab":
        zoo.train("lstm", "hihello", {"epochs": 30}, run_dir=tmp_path / name, log=quiet)
    assert same_weights(tmp_path / "a" / "model.safetensors", tmp_path / "b" / "model.safetensors")


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


def test_patience_stops_early_and_keeps_the_best_weights(tmp_path):
    run = tmp_path / "run"
    lines = []
    net = zoo.train("lstm", "mnist", {"root": tiny_mnist(tmp_path), "download": False, "val_size": 20, "epochs": 60,
                                      "hidden_size": 16, "lr": 0.05, "patience": 3}, run_dir=run, log=lines.append)
    rows = Run(run).history()
    assert len(rows) < 60 and any(line.startswith("stopping early") for line in lines)
    best = max(r["val"]["accuracy"] for r in rows)
    best_epoch = next(r["epoch"] for r in rows if r["val"]["accuracy"] == best)
    assert rows[-1]["epoch"] == best_epoch + 3
    task = zoo.get_task("mnist")
    data = task.data(net.zoo.task_config, net.zoo.meta)
    assert task.evaluate(net, data, "val")["accuracy"] == best
    assert Run(run).state_info()["status"] == "finished"


def test_divergence_stops_with_a_clear_line_and_keeps_the_last_good_state(runner, tmp_path):
    prices = write_course_prices(tmp_path / "p.csv")
    line = one_line_error(zoo_cli(runner, "train", "rnn", "stock", "--data", prices, "--lr", "1e30", "-e", "5", "-q"))
    assert "training diverged in epoch 2 (loss inf); the state after epoch 1 is kept in checkpoints/rnn-stock" in line
    assert Run(tmp_path / "checkpoints" / "rnn-stock").state_info()["progress"]["epoch"] == 2


@pytest.fixture
def saved_run(tmp_path):
    """A run of gru on hihello stopped by Ctrl-C after 5 of its 30 epochs."""
    run = tmp_path / "checkpoints" / "gru-hihello"

    def log(line):
        if line.startswith("epoch  5/30"):
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(zoo.ZooError, match="interrupted after epoch 5"):
        zoo.train("gru", "hihello", {"epochs": 30}, log=log, log_every=1)
    return run, Run(run).state_info()


def test_resume_errors_are_one_line_and_touch_nothing(runner, tmp_path, saved_run):
    run, _ = saved_run
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    cases = [
        (["train", "gru", "charlm", "--resume", "--run-dir", run], "is of gru on hihello, not gru on charlm"),
        (["train", "gru", "hihello", "--resume", "--hidden-size", "12"], "hidden_size is 8 there, 12 here"),
        (["train", "gru", "hihello", "--resume", "--run-dir", tmp_path / "nowhere"], "no saved state in"),
        (["resume", tmp_path / "nowhere"], "no saved state in"),
    ]
    for args, message in cases:
        assert message in one_line_error(zoo_cli(runner, *args))
    (run / "state.safetensors").write_bytes((run / "state.safetensors").read_bytes()[:500])
    assert "is truncated" in one_line_error(zoo_cli(runner, "train", "gru", "hihello", "--resume"))
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.name != "state.safetensors"} == {
        k: v for k, v in before.items() if k != "state.safetensors"}


def test_resume_accepts_the_settings_it_started_with(runner, saved_run):
    run, info = saved_run
    assert info["status"] == "interrupted" and info["progress"]["epoch"] == 6
    result = zoo_cli(runner, "train", "gru", "hihello", "--resume", "--epochs", "30", "--hidden-size", "8", "-q")
    assert result.exit_code == 0, result.output
    assert Run(run).state_info()["status"] == "finished"
    assert "has finished its 30 epochs and exported" in one_line_error(zoo_cli(runner, "resume", run))


def test_two_processes_match_one(tmp_path):
    """2 CPU processes (gloo), each with half of every batch, against one process with whole batches."""
    # torchrun of this interpreter (`python -m torch.distributed.run`), not whichever is first on PATH
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    args = ["-m", "zoo", "train", "lstm", "charlm", "-e", "8", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*torchrun, "--standalone", "--nproc-per-node", "2", *args, "--run-dir", str(tmp_path / "two")],
                   check=True, env=env, cwd=tmp_path, capture_output=True, timeout=300)
    subprocess.run([sys.executable, *args, "--run-dir", str(tmp_path / "one")], check=True, env=env, cwd=tmp_path,
                   timeout=300)
    two, one = load_file(tmp_path / "two" / "model.safetensors"), load_file(tmp_path / "one" / "model.safetensors")
    assert max((two[k] - one[k]).abs().max().item() for k in one) < 1e-4  # the order of float sums differs
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert config["world_size"] == 2
    assert zoo.load(tmp_path / "two" / "model.safetensors").zoo.model == "lstm"
