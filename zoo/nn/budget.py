"""How much a model costs before it exists: tensors are counted while it is built on torch's meta device.

Two users: `zoo.store.checkpoint` refuses an export whose metadata describes a model bigger than its tensors
(a 2 KB file claiming `hidden_size` 1e9), and `zoo train` refuses settings whose weights, gradients and
Adam's moments would not fit in the memory at hand (`-o hidden_size=100000`) unless `--force`.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from zoo.contract.specs import SEQ2SEQ, SPECIAL_TOKENS, Problem, ZooError, plugin_failed

FP32 = 4
# fp32 weights, their gradients and Adam's two moments: the floor of training memory per parameter
TRAINING_BYTES_PER_PARAMETER = 4 * FP32
MAX_TENSORS = 100_000  # no zoo model comes near; num_layers=1e6 would take minutes to build even on meta


class TooBig(Exception):
    """Raised while building under a Budget, as soon as the model outgrows it."""


class Budget(TorchFunctionMode):
    """Count the tensors made from sizes (torch.empty, zeros, ...) while a model is built; raise TooBig
    past `max_tensors` or `max_elements`. Used with `torch.device("meta")`, nothing is allocated; on a
    real device, a request given as sizes is refused before it is allocated."""

    def __init__(self, max_tensors: int = MAX_TENSORS, max_elements: float = math.inf):
        super().__init__()
        self.max_tensors, self.max_elements = max_tensors, max_elements
        self.tensors = self.elements = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if self.elements + requested(func, args) > self.max_elements:
            raise TooBig
        result = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", "")
        made = isinstance(result, torch.Tensor) and (
            name.endswith("_like") or not any(isinstance(a, torch.Tensor) for a in args))  # not a view or an op
        if made:
            self.tensors += 1
            self.elements += result.numel()
            if self.tensors > self.max_tensors or self.elements > self.max_elements:
                raise TooBig
        return result


SIZED = {"empty", "zeros", "ones", "rand", "randn", "full"}  # factories whose first arguments are the sizes


def requested(func: Any, args: tuple) -> int:
    """The elements a factory call such as torch.empty(4, 5) or torch.zeros((4, 5)) asks for; 0 otherwise."""
    name = getattr(func, "__name__", "")
    if name not in SIZED or not args:
        return 0
    sizes = args[0] if isinstance(args[0], (tuple, list, torch.Size)) else args
    if name == "full" and sizes is args:
        sizes = args[:1]
    if sizes and all(type(n) is int for n in sizes):
        return math.prod(sizes)
    return 0


def parameters_on_meta(model_spec: Any, config: Any, problem: Problem, budget: Budget,
                       device: str = "meta") -> torch.nn.Module:
    """The model built under `budget` without touching the random state: on the meta device (no memory)
    unless a build that needs real numbers asks for the CPU."""
    with torch.random.fork_rng(devices=[]), torch.device(device), budget:
        return model_spec.build(config, problem)


def available_bytes(device: torch.device) -> int | None:
    """Memory the run can still take on `device`; None when unknown (MPS, other systems)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    free = None
    try:
        with open("/proc/meminfo") as f:
            free = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            pass
    try:
        import resource
    except ImportError:  # not on Windows
        return free
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit != resource.RLIM_INFINITY:  # an address-space limit (ulimit -v) binds before the RAM does
        try:
            with open("/proc/self/statm") as f:
                used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            used = 0
        free = limit - used if free is None else min(free, limit - used)
    return free


def gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"


def check_training_memory(plan: Any, device: torch.device) -> None:
    """Refuse, before any data or weights exist, settings whose training needs more memory than `device`
    has: weights, gradients and Adam's moments, plus the activations of one step of a batch.

    The task's sizes (vocabulary, classes) are not known before its data is read, so the model is built
    for a problem of one input and one output: the estimate is a floor, driven by the model's own
    settings (hidden_size, num_layers, embed_dim) and the batch size.
    """
    available = available_bytes(device)
    if available is None:
        return
    if plan.task.shape == SEQ2SEQ:
        problem = Problem(SEQ2SEQ, output_size=len(SPECIAL_TOKENS) + 1, vocab_size=len(SPECIAL_TOKENS) + 1)
    else:
        problem = Problem(plan.task.shape, output_size=1, input_size=1)
    name = plan.model.name
    try:  # meta tensors cost nothing, whatever their size: only their number is bounded
        model = parameters_on_meta(plan.model, plan.model_config, problem, Budget(MAX_TENSORS))
    except TooBig:
        raise ZooError(f"{name} with these settings is made of more than {MAX_TENSORS:,} tensors; "
                       f"--force builds it anyway") from None
    except (NotImplementedError, RuntimeError):  # a build that needs real numbers: no estimate, as with MPS
        return
    except ZooError:
        raise
    except Exception as e:  # the plugin's build itself fails: said now, naming it
        raise plugin_failed("model", name, plan.model.plugin, "build()", e) from None
    parameters = [p for p in model.parameters()]
    count = sum(p.numel() for p in parameters)
    # one step of a batch: each weight matrix's outputs, kept for the backward pass, and their gradients
    step = plan.train_config.batch_size * sum(p.shape[0] for p in parameters if p.dim() >= 2) * 2 * FP32
    needed = count * TRAINING_BYTES_PER_PARAMETER + step
    if needed > available:
        raise ZooError(f"{name} with these settings needs at least {gib(needed)} to train ({count:,} parameters: "
                       f"weights, gradients and Adam's moments, and one step of a batch of "
                       f"{plan.train_config.batch_size:,}), and {gib(available)} is available on {device}; "
                       f"--force tries anyway")


def costliest_batch(split: Any, batch_size: int, device: torch.device) -> tuple:
    """The (inputs, targets) of the batch a split's examples make at their longest (a split that knows
    its longest examples says so; others are taken as equally long, their first batch standing for all).
    The batch is drawn from a copy (`split.to(device)`, on the device it is on already: no data is
    copied), so that a split with state across batches (Streams' carry) is left as it was."""
    probe = split.to(device)
    n = min(len(probe), batch_size)
    longest = getattr(probe, "longest", None)
    index = longest(n) if callable(longest) else torch.arange(n, device=device)
    return probe.batch(index)


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def check_step_memory(net: torch.nn.Module, data: Any, plan: Any, device: torch.device) -> None:
    """Refuse, once the data is read and before the first step, a run whose longest batch cannot fit:
    what `check_training_memory` counts, now with the real sizes (vocabulary, classes) and the
    sequence length. A step keeps, for each time step, every weight matrix's outputs and their
    gradients; seq2seq attention adds a target-by-source score matrix per example."""
    available = available_bytes(device)
    if available is None or len(data.train) == 0:
        return
    batch = min(len(data.train), plan.train_config.batch_size)
    try:
        inputs, targets = costliest_batch(data.train, batch, device)
    except Exception:  # a split of a plugin's own making that cannot be probed: the first step will tell
        return
    lengths = [t.shape[1] for t in _tensors(inputs) + _tensors(targets) if t.dim() >= 2]
    steps = max(lengths, default=1)
    rows = 0
    for module in net.modules():
        if isinstance(module, torch.nn.Embedding):
            rows += module.embedding_dim
        else:
            rows += sum(p.shape[0] for p in module.parameters(recurse=False) if p.dim() >= 2)
    count = sum(p.numel() for p in net.parameters())
    activations = batch * steps * rows * 2 * FP32
    attention = batch * math.prod(sorted(lengths)[-2:]) * 3 * FP32 if plan.task.shape == SEQ2SEQ and len(
        lengths) > 1 else 0
    needed = count * TRAINING_BYTES_PER_PARAMETER + activations + attention
    if needed > available:
        raise ZooError(f"{plan.model.name} on {plan.task.name} needs at least {gib(needed)} to train and "
                       f"{gib(available)} is available on {device}: its longest batch of {batch:,} has {steps:,} "
                       f"time steps ({count:,} parameters); shorten the sequences (a max length) or the batch "
                       f"size, or --force tries anyway")
