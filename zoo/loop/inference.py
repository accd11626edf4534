"""Running a network outside training: the device it runs on, and a task's evaluation of it.

`zoo eval` and `zoo predict` need these and nothing of the training loop.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from zoo.contract.specs import Task, TaskData, ZooError


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


def evaluate(task: Task, model: torch.nn.Module, data: TaskData, split: str) -> dict:
    with torch.no_grad():
        return dict(task.evaluate(model, data, split))


def format_metrics(metrics: Mapping[str, Any]) -> str:
    """The scalar metrics on one line (tables such as a confusion matrix are for `zoo eval`)."""
    shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and k != "split"}
    return "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())
