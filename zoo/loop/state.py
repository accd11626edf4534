"""A run's resumable state: where it stands (`Progress`), captured as tensors and JSON, checked, restored.

A state file is input like an export (a run folder is copied, downloaded, shared): before anything is
restored, `check` compares it with the run and the network built here, so that a damaged or foreign
state is one line, never a TypeError deep in torch, and never trains something else than the run.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from zoo.contract.specs import ZooError
from zoo.store.runs import Progress, whole, finite_number  # noqa: F401 (Progress: re-exported)


OPTIMIZER_TENSORS = ("step", "exp_avg", "exp_avg_sq")  # Adam's, per parameter


def capture(model, optimizer, scheduler, shuffle_state: torch.Tensor, at: Progress, best: dict | None,
            identity: dict, status: str, average: dict | None = None, averaged: int = 0) -> tuple[dict, dict]:
    """Everything a resumed run needs, as safetensors tensors and JSON (the tensors may share memory
    with the model: write them out before the next step). `average`: --average's, by parameter name,
    `averaged` the steps folded into it."""
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"best/{k}": v.cpu().contiguous() for k, v in (best or {}).items()})
    tensors.update({f"average/{k}": v.detach().cpu().contiguous() for k, v in (average or {}).items()})
    optimizer_state = optimizer.state_dict()
    for index, values in optimizer_state["state"].items():
        tensors.update({f"optimizer/{index}/{name}": t.cpu().contiguous() for name, t in values.items()})
    numpy_state = np.random.get_state()
    tensors["rng/torch"], tensors["rng/shuffle"] = torch.get_rng_state(), shuffle_state
    tensors["rng/numpy"] = torch.from_numpy(numpy_state[1].astype(np.int64))
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors.update({f"rng/cuda/{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    python_state = random.getstate()
    info = {**identity, "status": status, "pid": os.getpid(), "progress": asdict(at),
            "optimizer_groups": optimizer_state["param_groups"],
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "numpy_rng": [numpy_state[0], *numpy_state[2:]],
            "python_rng": [python_state[0], list(python_state[1]), python_state[2]]}
    if average is not None:
        info["averaged"] = averaged
    return tensors, info


def part(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def restore_optimizer(tensors: dict, info: dict, optimizer) -> None:
    state: dict = {}
    for key, value in part(tensors, "optimizer/").items():
        index, name = key.split("/")
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": info["optimizer_groups"]})


def restore(tensors: dict, info: dict, model, shuffle: torch.Generator) -> dict | None:
    """Put back the weights and every random state of a captured state; returns the best weights or None."""
    model.load_state_dict(part(tensors, "model/"))
    torch.set_rng_state(tensors["rng/torch"])
    shuffle.set_state(tensors["rng/shuffle"])
    name, position, has_gauss, cached = info["numpy_rng"]
    np.random.set_state((name, tensors["rng/numpy"].numpy().astype(np.uint32), position, has_gauss, cached))
    version, internal, gauss = info["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda/")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    return part(tensors, "best/") or None


# -- checking a state before restoring it -----------------------------------------------------------

def _shapes(tensors: dict) -> dict[str, tuple]:
    return {k: (tuple(v.shape), str(v.dtype)) for k, v in tensors.items()}


def check(tensors: dict, info: dict, model: torch.nn.Module, optimizer, epochs: int, where: Any) -> None:
    """Refuse, in one line, a state that the network built here and its run could not take: the weights'
    names and shapes, Adam's moments, the random states and their sizes, the progress fields."""
    from zoo.store.checkpoint import tensor_differences

    def damaged(what: str) -> ZooError:
        return ZooError(f"{where} is damaged or not this run's state ({what}); nothing was changed")

    expected = _shapes(model.state_dict())
    different = tensor_differences(_shapes(part(tensors, "model/")), expected)
    if different:
        raise damaged(f"its weights are not this network's: {different}")
    best = part(tensors, "best/")
    if best and tensor_differences(_shapes(best), expected):
        raise damaged("its best weights are not this network's")
    train_config = info.get("train_config")
    average, averaging = part(tensors, "average/"), train_config.get("average") if isinstance(train_config, dict) else 0
    if average and tensor_differences(_shapes(average), _shapes(dict(model.named_parameters()))):
        raise damaged("its average weights are not this network's")
    if averaging and not (average and whole(info.get("averaged"))):
        raise damaged("--average is on and its moving average of the weights is missing")
    _check_optimizer(tensors, info, optimizer, damaged)
    _check_random_states(tensors, info, damaged)
    if info.get("scheduler") is not None and not isinstance(info["scheduler"], dict):
        raise damaged("its scheduler state is not a JSON object")


def _check_optimizer(tensors: dict, info: dict, optimizer, damaged) -> None:
    # a schedule adds its own keys (initial_lr, max_lr, ...) to the groups: Adam's must be there
    groups, fresh = info.get("optimizer_groups"), optimizer.state_dict()["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(fresh) or not all(
            isinstance(g, dict) and set(f) <= set(g) and g["params"] == f["params"] for g, f in zip(groups, fresh)):
        raise damaged("optimizer_groups is not this network's parameter groups")
    for group, made in zip(groups, fresh):
        for key, value in made.items():
            if isinstance(value, float) and not finite_number(group[key]):
                raise damaged(f"optimizer_groups' {key} is {group[key]!r}")
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    for key, value in part(tensors, "optimizer/").items():
        index, _, name = key.partition("/")
        if not index.isdigit() or int(index) >= len(parameters) or name not in OPTIMIZER_TENSORS:
            raise damaged(f"unexpected optimizer tensor {key!r}")
        shape = () if name == "step" else tuple(parameters[int(index)].shape)
        if tuple(value.shape) != shape or not value.is_floating_point():
            raise damaged(f"optimizer/{key} is {tuple(value.shape)} {value.dtype}, not {shape} floats")
    for index in {k.split("/")[1] for k in tensors if k.startswith("optimizer/")}:
        if not all(f"optimizer/{index}/{name}" in tensors for name in OPTIMIZER_TENSORS):
            raise damaged(f"the optimizer state of parameter {index} is incomplete")


def _check_random_states(tensors: dict, info: dict, damaged) -> None:
    for key, size in (("rng/torch", torch.get_rng_state().numel()), ("rng/shuffle", torch.get_rng_state().numel())):
        value = tensors.get(key)
        if value is None or value.dtype != torch.uint8 or tuple(value.shape) != (size,):
            raise damaged(f"{key} is missing or not {size} bytes")
    numpy_key = tensors.get("rng/numpy")
    if numpy_key is None or numpy_key.dtype != torch.int64 or tuple(numpy_key.shape) != (624,) or bool(
            ((numpy_key < 0) | (numpy_key >= 2 ** 32)).any()):
        raise damaged("rng/numpy is missing or not 624 32-bit words")
    numpy_rng = info.get("numpy_rng")
    if not (isinstance(numpy_rng, list) and len(numpy_rng) == 4 and numpy_rng[0] == "MT19937"
            and whole(numpy_rng[1]) and numpy_rng[1] <= 624
            and whole(numpy_rng[2]) and numpy_rng[2] <= 1
            and finite_number(numpy_rng[3])):
        raise damaged("numpy_rng is not MT19937's name, position, gauss flag and cached value")
    python_rng = info.get("python_rng")
    if not (isinstance(python_rng, list) and len(python_rng) == 3 and python_rng[0] == random.getstate()[0]
            and isinstance(python_rng[1], list) and len(python_rng[1]) == 625
            and all(whole(v) and v < 2 ** 32 for v in python_rng[1][:624])
            and whole(python_rng[1][624]) and python_rng[1][624] <= 624
            and (python_rng[2] is None or finite_number(python_rng[2]))):
        raise damaged("python_rng is not a Mersenne Twister state")
    for key, value in part(tensors, "rng/cuda/").items():
        if not key.isdigit() or value.dtype != torch.uint8 or value.dim() != 1:
            raise damaged(f"rng/cuda/{key} is not a CUDA generator's state")
    known = {"rng/torch", "rng/shuffle", "rng/numpy"}
    stray = [k for k in tensors if not k.startswith(("model/", "best/", "average/", "optimizer/", "rng/cuda/"))
             and k not in known]
    if stray:
        raise damaged(f"unexpected tensor {stray[0]!r}")
