"""Plugins that misbehave during a run: each fault is one line naming the plugin, the run's trained state is
kept where there is one, stdout stays the command's own, a slow plugin is named, and `zoo bench` survives
a NaN headline metric. The faulty plugin is a real distribution on the path, run in capped subprocesses."""

import json
import math
import time

import pytest

from hostile_kit import one_line, run_cases, snapshot, zoo_process

PLUGIN = '''
import os
import time

import zoo
from zoo_plugins import hihello

print("faulty plugin printing at import")
if os.environ.get("FAULT") == "slow-import":
    time.sleep(3)


def fault():
    return os.environ.get("FAULT", "")


def data(config, meta):
    if fault() == "data":
        raise ValueError("no data today")
    made = hihello.make_data(config, meta)
    if fault() == "batch":
        import dataclasses

        class Broken:
            def __init__(self, split):
                self.split = split

            def __len__(self):
                return len(self.split)

            def to(self, device):
                return self

            def batch(self, index):
                raise KeyError("no such batch")

        made = dataclasses.replace(made, train=Broken(made.train))
    return made


def evaluate(model, data, split):
    metrics = hihello.evaluate(model, data, split)
    if fault() == "evaluate":
        raise RuntimeError("cannot evaluate")
    if fault() == "set":
        metrics["tags"] = {1, 2}
    if fault() == "tensor":
        import torch
        metrics["score"] = torch.tensor(0.5)
    if fault() == "datetime":
        import datetime
        metrics["when"] = datetime.datetime(2020, 1, 1)
    if fault() == "nan":
        metrics["accuracy"] = float("nan")
    if fault() == "inf":
        metrics["accuracy"] = float("inf")
    return metrics


def make_cell(config, input_size):
    from torch import nn

    if fault() == "build":
        raise TypeError("cannot build")

    class Faulty(nn.LSTM):
        def forward(self, *args, **kwargs):
            if fault() == "forward":
                raise IndexError("index 9 is out of bounds")
            return super().forward(*args, **kwargs)

    return Faulty(input_size, config.hidden_size, **zoo.torch_rnn_kwargs(config))


@zoo.hookimpl
def register_models(register):
    if fault() == "slow-register":
        time.sleep(3)
    for model in zoo.cell_models("faultynet", "an LSTM that fails on request", make_cell, native_layers=True):
        register(model)


@zoo.hookimpl
def register_tasks(register):
    register(zoo.Task(name="faulty", description="hihello, failing on request", shape=zoo.MANY_TO_MANY,
                      data=data, evaluate=evaluate, config=hihello.HiHelloConfig,
                      train_defaults={"epochs": 2, "lr": 0.1, "batch_size": 1}, model_defaults={"hidden_size": 8}))
'''


@pytest.fixture
def site(fake_distribution):
    return fake_distribution(PLUGIN, module="faulty_plugin", entry="faulty", dist="faulty_plugin", version="6.6.6")


def env_for(site) -> dict:
    import os

    from hostile_kit import ROOT

    return {"ZOO_LOAD_PLUGINS": "faulty", "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


FAULTS = [  # (fault, model, task, what the line says)
    ("data", "lstm", "faulty", "task 'faulty' (faulty-plugin 6.6.6) failed in its data(): ValueError: no data today"),
    ("batch", "lstm", "faulty", "task 'faulty' (faulty-plugin 6.6.6) failed in its data's batch(): KeyError"),
    ("build", "faultynet", "hihello", "model 'faultynet' (faulty-plugin 6.6.6) failed in build(): TypeError"),
    ("forward", "faultynet", "hihello", "model 'faultynet' (faulty-plugin 6.6.6) failed in its forward pass"),
    ("evaluate", "lstm", "faulty", "task 'faulty' (faulty-plugin 6.6.6) failed in evaluate(): RuntimeError"),
    ("set", "lstm", "faulty", "returned metrics that cannot be saved: tags is a set"),
    ("tensor", "lstm", "faulty", "returned metrics that cannot be saved: score is a torch.Tensor"),
    ("datetime", "lstm", "faulty", "returned metrics that cannot be saved: when is a datetime.datetime"),
]


def test_a_plugin_failing_during_zoo_train_is_one_line_naming_it(site, tmp_path):
    # metrics are computed on the last of 3 epochs only: the state of epoch 2 is there to keep
    cases = [(fault, ["train", model, task, "-e", "3", "--log-every", "3", "--run-dir", f"runs/{fault}", "--device",
                      "cpu", "-q"], {"FAULT": fault}) for fault, model, task, _ in FAULTS]
    outside = snapshot(tmp_path, skip=(tmp_path / "runs",))
    results = run_cases(cases, tmp_path, env_for(site))
    for fault, _model, _task, says in FAULTS:
        line = one_line(results[fault], says, noise="printing at import")
        assert "faulty plugin printing at import" not in results[fault]["out"]
        assert results[fault]["cpu"] < 120
        if fault in ("evaluate", "set", "tensor", "datetime"):  # after two epochs: their state is kept, and said so
            assert f"the trained state after epoch 2 is kept: zoo resume runs/{fault} continues" in line, line
            assert (tmp_path / "runs" / fault / "state.safetensors").is_file()
        else:  # nothing worth keeping: no half-made run folder
            assert not (tmp_path / "runs" / fault / "config.json").exists()
    assert snapshot(tmp_path, skip=(tmp_path / "runs",)) == outside


def test_a_plugin_printing_at_import_leaves_json_output_alone(site, tmp_path):
    import zoo

    zoo.train("lstm", "hihello", {"epochs": 1}, out=tmp_path / "hi.safetensors", log=lambda line: None)
    commands = {"list": ["list", "--json"], "plugins": ["plugins", "--json"],
                "info": ["info", "hi.safetensors", "--json"], "eval": ["eval", "hi.safetensors", "--json"]}
    results = run_cases([(name, args, {}) for name, args in commands.items()], tmp_path, env_for(site))
    for name, result in results.items():
        assert result["code"] == 0, result
        json.loads(result["out"])  # nothing but the command's JSON on stdout
        assert "faulty plugin printing at import" in result["err"] or name != "list", result


@pytest.mark.parametrize("fault", ["slow-import", "slow-register"])
def test_a_slow_plugin_is_named_while_zoo_list_waits(fault, site, tmp_path):
    process = zoo_process(["list"], tmp_path, {**env_for(site), "FAULT": fault})
    started = time.monotonic()
    out, err = process.communicate(timeout=600)  # a hang detector, not a deadline
    assert process.returncode == 0, err
    assert time.monotonic() - started >= 3
    doing = "loading plugin 'faulty'" if fault == "slow-import" else "register_models of plugin 'faulty'"
    assert f"zoo: {doing}" in err and "has taken" in err, err
    assert "faultynet" in out


def test_a_nan_or_inf_headline_metric_does_not_crash_zoo_bench(site, tmp_path):
    env = env_for(site)
    args = ["bench", "lstm", "faulty", "--seeds", "0,1", "--workers", "1", "--out", "results"]
    first = run_cases([("nan", args, {"FAULT": "nan"})], tmp_path, env)["nan"]
    assert first["code"] == 0, first
    summary = (tmp_path / "results" / "summary.md").read_text()
    assert "2 of 2 seeds not finite" in summary, summary
    rows = [json.loads(line) for line in (tmp_path / "results" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(math.isnan(r["value"]) for r in rows)
    again = run_cases([("rerun", args, {"FAULT": "inf"}), ("merge", ["bench", "--merge", "results", "--out", "all"],
                                                            {})], tmp_path, env)
    for result in again.values():
        assert result["code"] == 0 and "Traceback" not in result["err"], result
    assert "2 of 2 seeds not finite" in (tmp_path / "all" / "summary.md").read_text()


def test_bench_summary_says_why_a_cell_has_no_number():
    from zoo.front.bench import markdown

    row = {"task": "t", "model": "m", "metric": "accuracy", "minimize": False, "parameters": 10,
           "train_seconds": 1.0, "samples_per_s": 1.0, "peak_mib": 1.0}
    rows = [{**row, "seed": 0, "value": 0.5}, {**row, "seed": 1, "value": "high"}, {**row, "seed": 2, "value": None},
            {**row, "seed": 3, "value": float("inf")}]
    text = markdown(rows)
    assert "**0.5000** (1 of 4 seeds not finite, 1 of 4 seeds missing, 1 of 4 seeds not a number)" in text, text
