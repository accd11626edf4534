"""Resume, extend, fine-tune: a run stopped by SIGKILL or Ctrl-C resumes to bit-for-bit the weights of
one never stopped; extending equals training longer; `--init-from` starts from an export; every
mistake is one line.
"""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import zoo
from conftest import foreground_sigint, one_line_error, wait_for, zoo_cli
from zoo.store.runs import Run


def quiet(line):
    pass


def command(text, run_dir, *extra):
    # two layers with dropout and weight drop: their masks (zoo's CPU dropout) must repeat after a resume too,
    # and the moving average of the weights (--average) go on from where it was
    return [sys.executable, "-m", "zoo", "train", "gru", "charlm", "--text", str(text), "--stride", "2", "-e", "4",
            "--hidden-size", "32", "-o", "num_layers=2", "-o", "dropout=0.3", "-o", "weight_drop=0.2", "--average",
            "0.9", "-q", "--run-dir", str(run_dir), *extra]


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
    process = subprocess.Popen(command(long_text, run), stderr=subprocess.PIPE, text=True, preexec_fn=foreground_sigint)
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


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def equal_tensors(a, b) -> bool:
    a, b = load_file(a), load_file(b)
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- continue, extend, fine-tune ----------------------------------------------------------------------
def test_extending_a_finished_run_equals_training_it_longer_in_one_go(runner, tmp_path):
    assert zoo_cli(runner, "train", "gru", "hihello", "-e", "10", "--run-dir", "short", "-q").exit_code == 0
    result = zoo_cli(runner, "resume", "short", "--epochs", "25")
    assert result.exit_code == 0, result.output
    assert "extending from 10 to 25 epochs" in result.output
    assert zoo_cli(runner, "train", "gru", "hihello", "-e", "25", "--run-dir", "long", "-q").exit_code == 0
    assert equal_tensors(tmp_path / "short" / "model.safetensors", tmp_path / "long" / "model.safetensors")
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
