"""Running a network outside training: the device it runs on, and a task's evaluation of it.

`zoo eval` and `zoo predict` need these and nothing of the training loop.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from zoo.contract.specs import Task, TaskData, ZooError, plugin_failed


def pick_device(name: str = "auto") -> torch.device:
    """`auto` takes CUDA, then Apple's MPS, then the CPU; any other device must exist here and hold data."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ZooError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "meta":
        raise ZooError("device meta holds shapes, not numbers: nothing can be trained or run on it; use auto, cpu, "
                       "cuda or mps")
    if device.type == "cpu":
        return device
    if device.type == "mps":
        backend = getattr(torch.backends, "mps", None)
        available, count = bool(backend and backend.is_available()), 1
    else:  # cuda, and the accelerators torch names after their module: xpu, ...
        module = getattr(torch, device.type, None)
        available = bool(module and hasattr(module, "is_available") and module.is_available())
        count = module.device_count() if available and hasattr(module, "device_count") else 1
    if not available:
        raise ZooError(f"device {device.type} was asked for, but {device.type.upper()} is not available here"
                       if device.type in ("cuda", "mps", "xpu") else
                       f"torch cannot train on device {name!r} here; use auto, cpu, cuda, cuda:N or mps")
    if device.index is not None and device.index >= count:
        raise ZooError(f"device {name} was asked for, but there {'is' if count == 1 else 'are'} only {count} "
                       f"{device.type} device{'s' * (count != 1)} (numbered from 0)")
    return device


JSON_SCALARS = (str, int, float, bool, type(None))


def metrics_problem(value: Any, where: str = "") -> str:
    """What in a task's metrics cannot go into an export's JSON (a set, a tensor, a datetime), or ''."""
    if isinstance(value, JSON_SCALARS):
        return ""
    if isinstance(value, (list, tuple)):
        return next((p for i, v in enumerate(value) if (p := metrics_problem(v, f"{where}[{i}]"))), "")
    if isinstance(value, Mapping):
        for key, v in value.items():
            if not isinstance(key, str):
                return f"{where or 'the metrics'} has the key {key!r} ({type(key).__name__}), not a string"
            problem = metrics_problem(v, f"{where}.{key}" if where else key)
            if problem:
                return problem
        return ""
    kind = f"{type(value).__module__}.{type(value).__name__}".replace("builtins.", "")
    return f"{where or 'the metrics'} is a {kind} (metrics are numbers, strings, lists and maps)"


def evaluate(task: Task, model: torch.nn.Module, data: TaskData, split: str) -> dict:
    """The task's metrics on `split`, in eval mode (no dropout, whatever the task's code runs: greedy
    decoding too), checked as they are returned: a plugin's mistake is one line naming it."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            metrics = task.evaluate(model, data, split)
    except (ZooError, KeyboardInterrupt):
        raise
    except Exception as e:
        raise plugin_failed("task", task.name, task.plugin, "evaluate()", e) from None
    finally:
        model.train(was_training)
    if not isinstance(metrics, Mapping):
        raise ZooError(f"task {task.name!r} ({task.plugin or 'unregistered'}) returned {type(metrics).__name__} "
                       f"from evaluate(), not a map of metrics")
    problem = metrics_problem(dict(metrics))
    if problem:
        raise ZooError(f"task {task.name!r} ({task.plugin or 'unregistered'}) returned metrics that cannot be "
                       f"saved: {problem}")
    return dict(metrics)


def format_metrics(metrics: Mapping[str, Any]) -> str:
    """The scalar metrics on one line (tables such as a confusion matrix are for `zoo eval`)."""
    shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and k != "split"}
    return "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())
