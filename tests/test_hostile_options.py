"""Options and signals: integers are bounded before use, two Ctrl-Cs close together end in one line and
130, and a SIGINT inherited as ignored (a shell script's background job) stays ignored."""

import os
import signal
import time

import pytest

from conftest import foreground_sigint, importing_torch, wait_for
from hostile_kit import one_line, run_cases, snapshot, zoo_process

HUGE = [
    ("hidden-2^63", ["-o", "hidden_size=9223372036854775808"], "hidden_size must be an integer between"),
    ("epochs-1e12-onecycle", ["--epochs", str(10**12), "--schedule", "onecycle"], "epochs must be an integer between"),
    ("epochs-1e20", ["--epochs", "99999999999999999999"], "epochs must be an integer between"),
    ("batch-minus-2^40", ["-b", str(-2**40)], "batch_size must be an integer between"),
]


def test_huge_integers_are_one_line_before_anything_starts(tmp_path):
    before = snapshot(tmp_path)
    results = run_cases([(name, ["train", "lstm", "hihello", *args, "--device", "cpu"], {}) for name, args, _ in HUGE],
                        tmp_path)
    for name, _, says in HUGE:
        one_line(results[name], says)
        assert results[name]["cpu"] < 60
    assert snapshot(tmp_path) == before  # no run folder was made


def start_training(tmp_path, long_text, **kwargs):
    return zoo_process(["train", "lstm", "charlm", "--text", long_text, "-e", "200", "--run-dir", "run", "--device",
                        "cpu", "-o", "patience=0"], tmp_path, **kwargs)


@pytest.mark.parametrize("when", ["setting-up", "training"])
@pytest.mark.parametrize("gap", [0.01, 0.2])
def test_two_ctrl_c_to_the_process_group_end_in_one_line_and_130(gap, when, tmp_path, long_text):
    # its own group, as a shell makes, with SIGINT as a foreground job has it
    process = start_training(tmp_path, long_text, start_new_session=True, preexec_fn=foreground_sigint)
    if when == "training":
        wait_for(lambda: (tmp_path / "run" / "state.safetensors").is_file(), process, "the first epoch's state")
    else:  # somewhere in importing torch or setting up: any moment must end the same way (main: -2 at 200 ms)
        wait_for(lambda: importing_torch(process), process, "torch was being imported")
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(gap)
    os.killpg(process.pid, signal.SIGINT)  # what `timeout -s INT` or an impatient user does
    out, err = process.communicate(timeout=600)  # a hang detector, not a deadline
    assert process.returncode == 130, (process.returncode, err)
    assert "Traceback" not in err and "Exception ignored" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted"), err


def test_an_inherited_ignored_sigint_stays_ignored(tmp_path, long_text):
    def ignore_sigint():
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a shell does for `zoo train ... &` in a script

    process = start_training(tmp_path, long_text, preexec_fn=ignore_sigint)
    metrics = tmp_path / "run" / "metrics.jsonl"
    wait_for(lambda: metrics.is_file() and metrics.read_text().count("\n") >= 1, process, "the first epoch")
    process.send_signal(signal.SIGINT)
    epochs = metrics.read_text().count("\n")
    wait_for(lambda: metrics.read_text().count("\n") >= epochs + 2, process, "two more epochs after the SIGINT")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 143, err
    assert "Traceback" not in err
