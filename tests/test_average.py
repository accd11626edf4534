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


def test_the_average_is_validated_and_its_best_kept(tmp_path, long_text):
    run = tmp_path / "lm"
    net = zoo.train("gru", "charlm", {"text": str(long_text), "stride": 2, "val_fraction": 0.2, "hidden_size": 16,
                                      "epochs": 6, "lr": 0.02, "average": 0.95, "patience": 10},
                    run_dir=run, log=quiet)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    best = min(rows, key=lambda r: r["val"]["nats_per_char"])
    # the export, scored again, is the epoch the log calls best: the average's score, not the trained weights'
    assert net.zoo.metrics["nats_per_char"] == pytest.approx(best["val"]["nats_per_char"], abs=1e-5)
    state = load_file(run / "state.safetensors")
    average = {k[len("average/"):]: v for k, v in state.items() if k.startswith("average/")}
    assert average.keys() == {name for name, _ in net.named_parameters()}
    assert any(not state[f"model/{k}"].equal(v) for k, v in average.items())  # the trained weights go on apart


def test_a_state_whose_average_is_another_networks_is_refused(tmp_path):
    zoo.train("gru", "hihello", {"epochs": 2, "average": 0.9}, run_dir=tmp_path / "r", log=quiet)
    from zoo.store.runs import Run

    run = Run(tmp_path / "r")
    tensors, info = load_file(run.state_path), run.state_info()
    net = zoo.load(tmp_path / "r")
    optimizer = torch.optim.Adam(net.parameters())
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
