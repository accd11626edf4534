"""Time budgets (--max-time) for train, resume and bench, and `zoo export RUN` of a stopped run."""

import json
import math
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from conftest import one_line_error, wait_for, zoo_cli
from zoo.loop.clock import Budget, format_duration, parse_duration
from zoo.store.runs import Run


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("20m", 1200), ("1h30m", 5400), ("1h", 3600), ("2d", 172800),
                                          ("45", 45), ("1.5m", 90), ("1h 5m 3s", 3903), ("0.5s", 0.5)])
def test_durations_read_as_people_write_them(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("seconds,text", [(90, "1m30s"), (1200, "20m"), (5400, "1h30m"), (3600, "1h"), (45, "45s"),
                                          (2.5, "2.5s"), (86400, "1d"), (90000, "1d1h"), (3, "3s")])
def test_durations_are_shown_the_way_they_are_read(seconds, text):
    assert format_duration(seconds) == text and parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["soon", "20 minutes", "1h30", "-5m", "0", "m", "", "inf"])
def test_a_bad_duration_is_one_line(runner, tmp_path, bad):
    line = one_line_error(zoo_cli(runner, "train", "rnn", "hihello", "--max-time", bad))
    assert "--max-time must be a duration" in line and "90s, 20m or 1h30m" in line
    assert not list(tmp_path.iterdir())


def budget_run(runner, tmp_path, *extra):
    run = tmp_path / "run"
    result = zoo_cli(runner, "train", "rnn", "hihello", "-e", "1000000", "--max-time", "1s", "--run-dir", run, *extra)
    assert result.exit_code == 0, result.output
    return run, result.output


def test_train_stops_at_the_budget_and_exports(runner, tmp_path):
    started = time.monotonic()
    run, output = budget_run(runner, tmp_path)
    assert time.monotonic() - started < 300  # a generous bound: it stops, it does not train a million epochs
    lines = output.splitlines()
    assert lines[1] == "time budget 1s: stops at the first safe point after it and exports"
    assert any(line.startswith("time budget of 1s reached ") and "exporting the weights as they stand" in line
               and f"zoo resume {run} trains further" in line for line in lines), output
    assert lines[-1].startswith(f"saved {run / 'model.safetensors'}")
    assert Run(run).status() == "out of time"
    progress = Run(run).state_info()["progress"]
    assert not progress["done"] and progress["epoch"] < 1_000_000 and len(Run(run).history()) == progress["epoch"] - 1


@pytest.mark.parametrize("spent,steps,expected", [(0.5, 0, 0.5), (0.0, 50, 0.5), (0.25, 50, 0.5), (0.75, 50, 0.1464),
                                                    (2.0, 10, 0.0)])
def test_a_cosine_rate_is_the_further_on_of_steps_and_budget(spent, steps, expected):
    """The rate at whichever is further on: the share of the schedule's 100 steps done or of the budget spent."""
    import torch

    from zoo.contract.specs import TrainConfig
    from zoo.loop.training import cosine_rate, make_scheduler

    config = TrainConfig(lr=1.0, schedule="cosine")
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make_scheduler(optimizer, config, 100)
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
    cosine_rate(optimizer, scheduler, config, spent)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, abs=0.002)


class Spent(Budget):
    """A budget as the clock would leave it, without the clock: `share` of it spent from the start, and
    over once the loop has asked `checks` times (at safe points), however fast or slow the machine."""

    def __init__(self, share: float, checks: int):
        super().__init__(1000.0)
        self.share, self.left = share, checks

    def elapsed(self) -> float:
        return self.share * self.seconds

    def over(self) -> bool:
        self.left -= 1
        return self.left < 0


def rates(run) -> list[float]:
    return [row["lr"] for row in Run(run).history()]


def test_a_cosine_schedule_ends_with_the_budget_and_a_resumed_run_goes_on_at_its_steps_rate(tmp_path):
    """200 planned one-step epochs, a budget 99% spent from the start that stops the run early:
    the rate follows the budget down to about 0 (by its steps it would still be near its start). Resumed
    without a budget, the run goes on at its steps' rate, not at the budget's annealed one."""
    import zoo

    run, settings = tmp_path / "run", {"epochs": 200, "schedule": "cosine", "lr": 0.01}
    zoo.train("rnn", "hihello", settings, run_dir=run, max_time=Spent(0.99, checks=50), log=lambda line: None)
    stopped = rates(run)
    assert 10 <= len(stopped) <= 50 and stopped[0] == 0.01
    assert all(rate < 1e-5 for rate in stopped[1:]), stopped[:5]  # by steps alone: above 0.0085 throughout
    zoo.train("rnn", "hihello", settings, run_dir=run, resume=True, log=lambda line: None)
    done, resumed = len(stopped), rates(run)[len(stopped):]
    assert len(resumed) == 200 - done
    assert resumed[0] == pytest.approx(0.01 * (1 + math.cos(math.pi * done / 200)) / 2, rel=1e-6)
    assert resumed == sorted(resumed, reverse=True) and resumed[-1] < 1e-5  # on down the cosine to its end


def test_a_constant_rate_stays_constant_under_a_budget(runner, tmp_path):
    run = tmp_path / "run"
    result = zoo_cli(runner, "train", "rnn", "hihello", "-e", "5", "--lr", "0.01", "--max-time", "1h",
                     "--run-dir", run)
    assert result.exit_code == 0, result.output
    assert rates(run) == [0.01] * 5


def test_resume_takes_a_budget_too_and_goes_on_from_where_it_stopped(runner, tmp_path):
    run, _ = budget_run(runner, tmp_path)
    before = Run(run).state_info()["progress"]
    result = zoo_cli(runner, "resume", run, "--max-time", "1s")
    assert result.exit_code == 0, result.output
    assert "time budget of 1s reached" in result.output
    after = Run(run).state_info()["progress"]
    assert (after["epoch"], after["batch"]) > (before["epoch"], before["batch"])


def test_with_a_validation_split_the_export_holds_the_best_weights(runner, tmp_path, long_text):
    run = tmp_path / "lm"
    result = zoo_cli(runner, "train", "gru", "charlm", "--text", long_text, "--val-fraction", "0.2", "--hidden-size",
                     "16", "-e", "1000000", "--max-time", "3s", "--run-dir", run, "--lr", "0.05", "--patience", "0")
    assert result.exit_code == 0, result.output
    state = load_file(run / "state.safetensors")
    best = {k[len("best/"):]: v for k, v in state.items() if k.startswith("best/")}
    export = load_file(run / "model.safetensors")
    assert best and best.keys() == export.keys() and all(export[k].equal(best[k]) for k in best)
    progress = Run(run).state_info()["progress"]
    assert f"exporting the best weights (val nats_per_char {progress['best']:.4f}, epoch {progress['best_epoch']})" \
        in result.output


def test_a_budget_without_a_run_folder_works(tmp_path):
    import zoo

    lines = []
    net = zoo.train("rnn", "hihello", {"epochs": 1_000_000}, out=False, log=lines.append, max_time=0.5)
    assert net.zoo.metrics and any("time budget of 0.5s reached" in line for line in lines)
    assert not list(tmp_path.iterdir())


def test_a_run_stopped_by_ctrl_c_is_exported_as_it_stands(runner, tmp_path, long_text):
    run = tmp_path / "stopped"
    command = [sys.executable, "-m", "zoo", "train", "gru", "charlm", "--text", str(long_text), "--stride", "2",
               "--val-fraction", "0.2", "-e", "1000", "--hidden-size", "32", "-q", "--run-dir", str(run)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    log = run / "metrics.jsonl"
    wait_for(lambda: log.is_file() and len(log.read_text().splitlines()) >= 2, process, "2 epochs")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130, err
    assert not (run / "model.safetensors").exists()
    before, history = Run(run).state_info(), Run(run).history()
    result = zoo_cli(runner, "export", run)
    assert result.exit_code == 0, result.output
    assert "no further training (exporting as it stands)" in result.output
    assert (run / "model.safetensors").is_file()
    after = Run(run).state_info()
    assert Run(run).history() == history  # not a step more
    assert {k: v for k, v in after["progress"].items() if k != "seconds"} == {
        k: v for k, v in before["progress"].items() if k != "seconds"}
    state = load_file(run / "state.safetensors")
    export = load_file(run / "model.safetensors")
    assert all(export[k].equal(state[f"best/{k}"]) for k in export)  # the best weights so far
    card = json.loads(zoo_cli(runner, "info", run, "--json").stdout)
    assert card["model"] == "gru" and card["task"] == "charlm"
    assert Run(run).status() == "interrupted"  # as it was: zoo resume continues it


def test_export_of_a_finished_run_says_it_is_exported_already(runner, tmp_path):
    assert zoo_cli(runner, "train", "rnn", "hihello", "-e", "2", "-q", "--run-dir", tmp_path / "r").exit_code == 0
    assert "has finished and exported" in one_line_error(zoo_cli(runner, "export", tmp_path / "r"))
    assert "nothing to resume" in one_line_error(zoo_cli(runner, "export", tmp_path / "nowhere"))


def test_bench_gives_every_cell_the_same_budget(runner, tmp_path):
    result = zoo_cli(runner, "bench", "rnn,gru", "hihello", "--seeds", "0", "-e", "1000000", "--max-time", "2s",
                     "--workers", "1")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "results" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["out_of_time"] and "--max-time 2s" in r["command"] for r in rows)
    again = zoo_cli(runner, "bench", "rnn,gru", "hihello", "--seeds", "0", "-e", "1000000")
    assert "another recipe" in one_line_error(again) and "--max-time 2s" in again.output


def test_budget_starts_from_when_it_is_given():
    budget = Budget(60)
    assert not budget.over() and 0 <= budget.elapsed() < 60
    assert Budget(0).over()
