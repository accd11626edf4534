"""Work done once (issue 19, item 1): `zoo train` plans once and hands the plan to training, reads a user's
file once for its defaults and once for its data; `zoo eval` reads the card and the header once and
never imports the training module; one hook (`fit_defaults`) for defaults that depend on the config."""

import dataclasses
import os
import subprocess
import sys

import pytest

import zoo
from conftest import zoo_cli
from zoo.loop import plan as plan_module

COUNT_OPENS = """
import os, sys
target = os.path.realpath(sys.argv[1])
opened = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        if os.path.realpath(os.fsdecode(args[0])) == target:
            opened.append(1)
sys.addaudithook(hook)
from zoo.front.cli import cli
try:
    cli(sys.argv[2:], prog_name="zoo")
except SystemExit as e:
    assert not e.code, e.code
print("opens", len(opened), "training imported", "zoo.loop.training" in sys.modules)
"""


def run_counting(tmp_path, target, *argv):
    env = {**os.environ, "ZOO_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", COUNT_OPENS, str(target), *map(str, argv)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # a hang detector, not a deadline
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()[-5:]
    return int(words[1]), words[-1] == "True"


def test_zoo_train_reads_a_text_file_once_for_its_defaults_and_once_for_its_data(tmp_path):
    text = tmp_path / "book.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 200)
    opens, _ = run_counting(tmp_path, text, "train", "lstm", "charlm", "--text", text, "-e", "1", "-q",
                            "--hidden-size", "8")
    assert opens == 2


def test_zoo_eval_reads_the_export_once_and_does_not_import_training(tmp_path):
    zoo.train("rnn", "hihello", {"epochs": 1}, out=tmp_path / "w.safetensors", log=lambda line: None)
    opens, imported = run_counting(tmp_path, tmp_path / "w.safetensors", "eval", tmp_path / "w.safetensors")
    assert opens == 1  # the header, for the card and the architecture check (safetensors' own read is in Rust)
    assert not imported


def counting(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_zoo_train_plans_and_checks_once(runner, monkeypatch, tmp_path):
    import zoo.loop.threads
    import zoo.loop.training
    import zoo.store.checkpoint

    counts = {name: counting(monkeypatch, module, name) for module, name in (
        (plan_module, "plan"), (plan_module, "run_base"), (zoo.loop.threads, "prepare"),
        (zoo.store.checkpoint, "check_writable"), (zoo.loop.training, "autocast_dtype"))}
    result = zoo_cli(runner, "train", "rnn", "hihello", "-e", "2", "-q")
    assert result.exit_code == 0, result.output
    assert {name: len(calls) for name, calls in counts.items()} == dict.fromkeys(counts, 1)
    for calls in counts.values():
        calls.clear()
    result = zoo_cli(runner, "resume", "rnn-hihello", "-e", "3", "-q")
    assert result.exit_code == 0, result.output
    assert {name: len(calls) for name, calls in counts.items()} == dict.fromkeys(counts, 1)


def test_zoo_train_is_plan_run_then_run(monkeypatch, tmp_path):
    begun = zoo.loop.training.plan_run("rnn", "hihello", {"epochs": 2})
    assert begun.plan.train_config.epochs == 2 and not begun.resumed and begun.run is None
    assert "torch" not in plan_module.__dict__  # the plan is settled without torch
    net = zoo.loop.training.run(begun, log=lambda line: None)
    assert net.zoo.train_config.epochs == 2
    assert (tmp_path / "checkpoints" / "rnn-hihello" / "model.safetensors").is_file()


def test_a_callable_train_defaults_is_refused_fit_defaults_is_the_hook():
    hihello = zoo.get_task("hihello")
    with pytest.raises(ValueError, match="train_defaults is a mapping; defaults that depend on the task.s config"):
        dataclasses.replace(hihello, train_defaults=lambda config: {"epochs": 3})


@pytest.mark.parametrize("mode, decay", [("return", 0.1), ("level", 0.0)])
def test_stocks_weight_decay_follows_its_target_mode_through_fit_defaults(tmp_path, mode, decay):
    from conftest import write_course_prices

    prices = write_course_prices(tmp_path / "p.csv")
    p = plan_module.plan("lstm", "stock", {"data": str(prices), "target_mode": mode})
    assert (p.train_config.epochs, p.train_config.weight_decay, p.note) == (500, decay, "")
    settled = plan_module.plan("lstm", "stock", {}, {"model": {}, "task": {"data": str(prices), "target_mode": mode}})
    assert settled.train_config.weight_decay == decay  # --init-from settles model and task, not training
    resumed = plan_module.plan("lstm", "stock", {}, {"model": {}, "task": {}, "train": {"weight_decay": 0.5}})
    assert resumed.train_config.weight_decay == 0.5
