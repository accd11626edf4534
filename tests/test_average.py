"""--average: a moving average of the weights is what a run validates, keeps and exports; the trained
weights go on training; a stopped run resumes its average bit for bit (tests/test_resume.py)."""

import json

import pytest
import torch
from safetensors.torch import load_file
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

import zoo
from conftest import one_line_error, zoo_cli
from zoo.loop.state import check


def quiet(line):
    pass


@pytest.fixture
def steps():
    """The parameters before the first optimizer step and after each one, of every Adam in this test."""
    seen = []

    def before(optimizer, args, kwargs):
        if not seen:
            after(optimizer, args, kwargs)

    def after(optimizer, args, kwargs):
        seen.append([p.detach().clone() for p in optimizer.param_groups[0]["params"]])

    pre, post = register_optimizer_step_pre_hook(before), register_optimizer_step_post_hook(after)
    yield seen
    pre.remove()
    post.remove()


def moving_average(snapshots, keep):
    mean = [p.clone() for p in snapshots[0]]
    for n, weights in enumerate(snapshots[1:], start=1):
        share = min(keep, (1 + n) / (10 + n))
        mean = [m * share + w * (1 - share) for m, w in zip(mean, weights)]
    return mean


def test_the_export_is_the_moving_average_of_the_weights_after_each_step(tmp_path, steps):
    net = zoo.train("gru", "hihello", {"epochs": 30, "average": 0.8, "patience": 0}, run_dir=tmp_path / "r", log=quiet)
    assert len(steps) == 31  # hihello: one batch an epoch
    expected = moving_average(steps, 0.8)
    trained = steps[-1]
    for (name, p), mean, last in zip(net.named_parameters(), expected, trained):
        assert torch.allclose(p, mean, atol=1e-6), name
        assert not torch.allclose(p, last, atol=1e-4), name  # not the weights as trained
    export = load_file(tmp_path / "r" / "model.safetensors")
    assert all(export[name].equal(p.detach()) for name, p in net.named_parameters())


def test_without_average_the_export_is_the_trained_weights(tmp_path, steps):
    net = zoo.train("gru", "hihello", {"epochs": 5, "patience": 0}, out=False, log=quiet)
    assert all(p.equal(last) for p, last in zip(net.parameters(), steps[-1]))


def test_the_average_is_validated_and_its_best_kept(tmp_path, long_text, steps):
    run = tmp_path / "lm"
    net = zoo.train("gru", "charlm", {"text": str(long_text), "stride": 2, "val_fraction": 0.2, "hidden_size": 16,
                                      "epochs": 6, "lr": 0.02, "average": 0.95, "patience": 10},
                    run_dir=run, log=quiet)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    best = min(rows, key=lambda r: r["val"]["nats_per_char"])
    # the export is the average of the weights after each step up to the best epoch's end
    per_epoch = (len(steps) - 1) // len(rows)
    expected = moving_average(steps[: best["epoch"] * per_epoch + 1], 0.95)
    assert all(torch.allclose(p, mean, atol=1e-6) for p, mean in zip(net.parameters(), expected))
    # the export, scored again, is the epoch the log calls best: the average's score, not the trained weights'
    assert net.zoo.metrics["nats_per_char"] == pytest.approx(best["val"]["nats_per_char"], abs=1e-5)
    state = load_file(run / "state.safetensors")
    average = {k[len("average/"):]: v for k, v in state.items() if k.startswith("average/")}
    assert average.keys() == {name for name, _ in net.named_parameters()}
    assert any(not state[f"model/{k}"].equal(v) for k, v in average.items())  # the trained weights go on apart


@pytest.fixture
def saved(tmp_path):
    """A 2-epoch hihello run's state with --average: its tensors, its JSON, the network and an Adam for it."""
    from zoo.store.runs import Run

    zoo.train("gru", "hihello", {"epochs": 2, "average": 0.9}, run_dir=tmp_path / "r", log=quiet)
    run = Run(tmp_path / "r")
    net = zoo.load(tmp_path / "r")
    return load_file(run.state_path), run.state_info(), net, torch.optim.Adam(net.parameters())


def test_a_state_whose_average_is_another_networks_is_refused(saved):
    tensors, info, net, optimizer = saved
    check(tensors, info, net, optimizer, 2, "the state")  # as saved: accepted
    name = next(k for k in tensors if k.startswith("average/"))
    tensors[name] = torch.zeros(3, 3)
    with pytest.raises(zoo.ZooError, match="its average weights are not this network's"):
        check(tensors, info, net, optimizer, 2, "the state")


@pytest.mark.parametrize("value", ["1", "-0.1", "1.5"])
def test_an_average_out_of_range_is_one_line(runner, tmp_path, value):
    result = zoo_cli(runner, "train", "gru", "hihello", "--average", value, "--run-dir", tmp_path / "r")
    assert "average must be in [0, 1)" in one_line_error(result)
    assert not (tmp_path / "r").exists()


def test_a_state_without_its_average_is_refused(saved):
    tensors, info, net, optimizer = saved
    assert info["averaged"] == 2  # hihello: one step an epoch
    plain = {k: v for k, v in tensors.items() if not k.startswith("average/")}
    with pytest.raises(zoo.ZooError, match="its moving average of the weights is missing"):
        check(plain, info, net, optimizer, 2, "the state")
    with pytest.raises(zoo.ZooError, match="its moving average of the weights is missing"):
        check(tensors, {k: v for k, v in info.items() if k != "averaged"}, net, optimizer, 2, "the state")


def test_a_run_saved_before_a_setting_existed_resumes_as_that_settings_default(runner, tmp_path):
    """A state whose configs lack a newer setting (average, charlm's cache) ran as its default: resumed."""
    import json as json_module

    from safetensors import safe_open
    from safetensors.torch import save_file

    run = tmp_path / "old"
    assert zoo_cli(runner, "train", "gru", "hihello", "-e", "2", "-q", "--run-dir", run).exit_code == 0
    path = run / "model.safetensors"
    path.unlink()  # an old run stopped before its export
    with safe_open(run / "state.safetensors", "pt") as f:
        metadata = f.metadata()
    info = json_module.loads(metadata["state"])
    del info["train_config"]["average"]
    info["status"] = "interrupted"
    metadata["state"] = json_module.dumps(info)
    save_file(load_file(run / "state.safetensors"), run / "state.safetensors", metadata=metadata)
    config = json_module.loads((run / "config.json").read_text())
    del config["train_config"]["average"]
    (run / "config.json").write_text(json_module.dumps(config))
    result = zoo_cli(runner, "resume", run, "-e", "3", "-q")
    assert result.exit_code == 0, result.output
    assert path.is_file()
    refused = zoo_cli(runner, "train", "gru", "hihello", "--run-dir", run, "--resume", "-e", "4", "--average", "0.9")
    assert "average is 0.0 there, 0.9 here" in one_line_error(refused)


def test_a_budget_without_a_held_out_split_exports_the_average_and_says_so():
    lines = []
    net = zoo.train("rnn", "hihello", {"epochs": 1_000_000, "average": 0.9}, out=False, log=lines.append,
                    max_time=0.5)
    assert any("exporting the moving average of the weights (--average)" in line for line in lines), lines
    assert net.zoo.metrics
