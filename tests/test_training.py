"""The one training loop: the same seed gives the same weights, early stopping keeps the best epoch,
divergence stops cleanly, and two torchrun processes match one.
"""

import json
import os
import subprocess
import sys

from safetensors.torch import load_file

import zoo
from conftest import one_line_error, tiny_mnist, write_course_prices, zoo_cli
from zoo.store.runs import Run


def quiet(line):
    pass


def same_weights(a, b) -> bool:
    a, b = load_file(a), load_file(b)
    return a.keys() == b.keys() and all(a[k].numpy().tobytes() == b[k].numpy().tobytes() for k in a)


def test_same_seed_same_weights_bit_for_bit(tmp_path):
    for name in "ab":
        zoo.train("lstm", "hihello", {"epochs": 30}, run_dir=tmp_path / name, log=quiet)
    assert same_weights(tmp_path / "a" / "model.safetensors", tmp_path / "b" / "model.safetensors")


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


def test_the_same_seed_gives_the_same_weights(runner, tmp_path):
    for name in ("a", "b"):
        assert zoo_cli(runner, "train", "lstm", "charlm", "-e", "3", "--out", tmp_path / f"{name}.safetensors",
                       "-q").exit_code == 0
    from safetensors import safe_open

    a, b = (safe_open(tmp_path / f"{name}.safetensors", "pt") for name in "ab")
    assert a.metadata() == b.metadata()
    assert a.keys() == b.keys()
    for key in a.keys():  # bit for bit (the header's key order is safetensors' own business)
        assert a.get_tensor(key).numpy().tobytes() == b.get_tensor(key).numpy().tobytes(), key


def test_a_tasks_evaluate_runs_in_eval_mode_and_training_goes_on_in_training_mode():
    """Whatever a task's evaluate() runs (charlm's greedy generation, translate's decoding), dropout is
    off; the network is handed back in the mode it came in."""
    import dataclasses

    from zoo.loop.inference import evaluate

    task = zoo.get_task("hihello")
    seen = []
    spy = dataclasses.replace(task, evaluate=lambda model, data, split: seen.append(model.training) or {"n": 1.0})
    net = zoo.get_model("lstm").build(zoo.RecurrentConfig(hidden_size=4, dropout=0.5),
                                      zoo.Problem(zoo.MANY_TO_MANY, output_size=3, vocab_size=3))
    assert net.training
    assert evaluate(spy, net, None, "train") == {"n": 1.0} and seen == [False] and net.training
    net.eval()
    evaluate(spy, net, None, "train")
    assert seen == [False, False] and not net.training
