"""One thread policy for every command that computes: train, eval, predict, a backtest's refits, bench's workers."""

import json
import os

import pytest
import torch

from conftest import one_line_error, write_yahoo_prices, zoo_cli
from zoo.front import bench
from zoo.loop import threads


@pytest.fixture
def adaptive(monkeypatch):
    for key in ("ZOO_THREADS", "OMP_NUM_THREADS", threads.MAX_THREADS_ENV):
        monkeypatch.delenv(key, raising=False)
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def export(runner, tmp_path):
    out = tmp_path / "hi.safetensors"
    assert zoo_cli(runner, "train", "rnn", "hihello", "-e", "2", "-q", "--out", out).exit_code == 0
    return out


@pytest.mark.parametrize("command", [["train", "rnn", "hihello"], ["eval", "EXPORT"], ["predict", "EXPORT", "hihell"],
                                     ["bench", "rnn", "hihello", "--seeds", "0"]])
def test_more_threads_than_cpus_are_refused_in_one_line(runner, tmp_path, export, command):
    args = [export if a == "EXPORT" else a for a in command]
    line = one_line_error(zoo_cli(runner, *args, "--threads", "10000"))
    cpus = threads.usable_cpus()
    assert f"--threads 10000 is more than the {cpus} CPU" in line and f"give at most {cpus}" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "hi.safetensors"]  # nothing new


def test_zoo_threads_above_the_cpus_is_refused_too(runner, monkeypatch):
    monkeypatch.setenv("ZOO_THREADS", "10000")
    assert "ZOO_THREADS 10000 is more than the" in one_line_error(zoo_cli(runner, "train", "rnn", "hihello"))


def test_force_allows_more_threads_than_cpus(runner, adaptive):
    count = threads.usable_cpus() + 1
    result = zoo_cli(runner, "train", "rnn", "hihello", "-e", "1", "--threads", count, "--force")
    assert result.exit_code == 0, result.output
    assert f"{count} threads (--threads)" in result.output


@pytest.mark.parametrize("command", [["eval", "EXPORT"], ["predict", "EXPORT", "hihell"]])
def test_eval_and_predict_take_threads(runner, export, adaptive, command):
    torch.set_num_threads(2)
    result = zoo_cli(runner, *[export if a == "EXPORT" else a for a in command], "--threads", "1")
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 1
    assert threads.current().policy.source == "--threads"


def test_eval_adapts_by_default(runner, export, adaptive):
    assert zoo_cli(runner, "eval", export).exit_code == 0
    assert threads.current().policy.source == "adaptive"


def test_a_backtests_refits_follow_the_commands_policy(runner, tmp_path, monkeypatch, adaptive):
    prices = write_yahoo_prices(tmp_path / "p.csv", days=100, shuffle=False)
    out = tmp_path / "s.safetensors"
    assert zoo_cli(runner, "train", "lstm", "stock", "--data", prices, "-e", "3", "-q", "--out", out).exit_code == 0
    looks = []
    monkeypatch.setattr(threads.Threads, "adjust", lambda self: looks.append(self))
    result = zoo_cli(runner, "eval", out, "--data", prices, "--backtest", "2", "--json")
    assert result.exit_code == 0, result.output
    assert looks and all(c is threads.current() and c.policy.source == "adaptive" for c in looks)
    assert len(json.loads(result.stdout)["folds"]) == 2
    assert [line.split("] ", 1)[1].split(":")[0] for line in result.stderr.splitlines()] == [
        "backtest fold 1 of 2", "backtest fold 2 of 2"]


def fake_proc(monkeypatch, cpus: int):
    """Simulated /proc on `cpus` CPUs: the test moves the clock and says how busy the others were."""
    clock = {"t": 100.0, "busy": 0.0}
    ticks = os.sysconf("SC_CLK_TCK")
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["t"])
    monkeypatch.setattr(threads, "machine_busy_jiffies", lambda: int(clock["busy"] * ticks))
    monkeypatch.setattr(threads.os, "times", lambda: os.times_result((0, 0, 0, 0, 0)))  # this process: idle
    monkeypatch.setattr(threads.os, "cpu_count", lambda: cpus)
    monkeypatch.setattr(threads, "usable_cpus", lambda: cpus)

    def advance(seconds, other_cores):
        clock["t"] += seconds
        clock["busy"] += seconds * other_cores

    return advance


def test_the_first_choice_measures_the_load_since_the_policy_was_prepared(monkeypatch, adaptive):
    """Two busy processes that happen not to be runnable at the instant of the first look (loadavg says
    0) are seen in the CPU time they used while torch and the data loaded."""
    advance = fake_proc(monkeypatch, cpus=2)
    monkeypatch.setattr(threads, "runnable_elsewhere", lambda: 0)
    policy = threads.prepare()
    advance(1.5, other_cores=2.0)
    assert threads.Threads(policy, ceiling=2).idle_cores(first=True) == 1
    quiet = threads.prepare()
    advance(1.5, other_cores=0.0)
    assert threads.Threads(quiet, ceiling=2).idle_cores(first=True) == 2


def test_a_moment_too_short_to_measure_falls_back_on_the_instant(monkeypatch, adaptive):
    advance = fake_proc(monkeypatch, cpus=4)
    monkeypatch.setattr(threads, "runnable_elsewhere", lambda: 1)
    policy = threads.prepare()
    advance(0.01, other_cores=4.0)  # 0.01 s says little: the instant's count decides
    assert threads.Threads(policy, ceiling=4).idle_cores(first=True) == 3


def test_the_first_look_again_comes_within_a_second(monkeypatch, adaptive):
    advance = fake_proc(monkeypatch, cpus=2)
    monkeypatch.setattr(threads, "runnable_elsewhere", lambda: 0)
    control = threads.Threads(threads.prepare(), ceiling=2)
    applied = []
    monkeypatch.setattr(control, "apply", lambda count: applied.append(count))
    control.idle_cores(first=True)
    advance(threads.FIRST_RESAMPLE_SECONDS, other_cores=2.0)
    control.adjust()
    assert applied == [1]


def test_zoo_max_threads_caps_the_adaptive_count(monkeypatch, adaptive):
    monkeypatch.setenv(threads.MAX_THREADS_ENV, "1")
    policy = threads.prepare()
    assert policy.fixed is None and policy.cap == 1
    assert policy.start().ceiling == 1 and torch.get_num_threads() == 1


def test_bench_workers_adapt_below_their_share_unless_threads_are_fixed(runner, tmp_path, adaptive):
    share = bench.Share(2, fixed=False)
    assert share.options() == [] and share.env() == {threads.MAX_THREADS_ENV: "2"}
    assert share.quoted(["train", "rnn", "hihello"]) == "ZOO_MAX_THREADS=2 zoo train rnn hihello"
    assert bench.Share(3, fixed=True).options() == ["--threads", "3"]
    result = zoo_cli(runner, "bench", "rnn", "hihello", "--seeds", "0", "-e", "1", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "(adaptive)" in result.output
    row = json.loads((tmp_path / "results" / "results.jsonl").read_text().splitlines()[0])
    assert row["threads_policy"] == "adaptive" and row["command"].startswith("ZOO_MAX_THREADS=")
