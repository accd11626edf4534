"""Every registered model on every task it fits: forward, backward, export and load.

Parametrized over the registry, so a new model or task is tested the day it is registered. A task
needs an entry in TINY (settings that make small, offline data) to take part.
"""

import math

import pytest
import torch

import zoo
from zoo.loop.training import loss_function
from conftest import TINY, registry_with_example


def run(net, inputs):
    return net(*inputs) if isinstance(inputs, tuple) else net(inputs)


def pairs():
    reg = registry_with_example()
    return [(m, t) for t, task in reg.tasks.items() for m in reg.compatible_models(task)]


PAIRS = pairs()


def tiny(task_name, tmp_path):
    if task_name not in TINY:
        pytest.skip(f"no tiny data for task {task_name}: add it to TINY")
    return TINY[task_name](tmp_path)


def test_every_model_has_a_task_to_be_tested_on():
    reg = registry_with_example()
    assert {m for m, _ in PAIRS} == set(reg.models)
    assert set(TINY) >= set(reg.tasks)


@pytest.mark.parametrize("model_name,task_name", PAIRS)
def test_forward_and_backward(model_name, task_name, with_example, tmp_path):
    from zoo.loop.plan import plan

    p = plan(model_name, task_name, {"hidden_size": 6, **tiny(task_name, tmp_path)})
    data = p.task.data(p.task_config, None)
    torch.manual_seed(0)
    net = p.model.build(p.model_config, data.problem)
    inputs, targets = data.train.batch(torch.arange(min(3, len(data.train))))
    outputs = run(net, inputs)
    width = data.problem.output_size
    assert outputs.shape[-1] == width and outputs.shape[0] == len(targets)
    loss = loss_function(data.problem)(outputs, targets)
    loss.backward()
    assert math.isfinite(loss.item())
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(parameter.grad).all(), f"{name} has a non-finite gradient"


@pytest.mark.parametrize("model_name,task_name", PAIRS)
def test_export_then_load_reproduces_outputs_exactly(model_name, task_name, with_example, tmp_path):
    path = tmp_path / "weights.safetensors"
    net = zoo.train(model_name, task_name, {"hidden_size": 6, "epochs": 1, **tiny(task_name, tmp_path)}, out=path,
                    device="cpu", log=lambda line: None)
    loaded = zoo.load(path)
    assert not loaded.training
    assert loaded.zoo.model == model_name and loaded.zoo.task == task_name
    assert loaded.zoo.model_config == net.zoo.model_config
    data = zoo.get_task(task_name).data(net.zoo.task_config, loaded.zoo.meta)  # an export names no files it opens
    inputs, _ = data.train.batch(torch.arange(min(4, len(data.train))))
    with torch.no_grad():
        assert torch.equal(run(net, inputs), run(loaded, inputs))


@pytest.mark.parametrize("settings", [{"num_layers": 3, "dropout": 0.2}, {"embed_dim": 4}, {"hidden_size": 1}])
def test_hyperparameters_change_the_network(settings, tmp_path):
    path = tmp_path / "w.safetensors"
    zoo.train("gru", "hihello", {**settings, "epochs": 2}, out=path, log=lambda line: None)
    config = zoo.load(path).zoo.model_config
    for key, value in settings.items():
        assert getattr(config, key) == value
