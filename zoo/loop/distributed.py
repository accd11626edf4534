"""Several training processes, as torchrun starts them: `torchrun --nproc-per-node N -m zoo train ...`.

Every process loads the data and takes its share of every global batch; DistributedDataParallel
averages the gradients (gloo on CPUs, NCCL on GPUs); only rank 0 evaluates, logs and writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This process's part of a global batch: contiguous, sizes differing by at most one."""
        return index.tensor_split(self.size)[self.rank] if self.size > 1 else index

    def total(self, *values: float) -> list[float]:
        """Each value summed over the processes (for the epoch's loss in the log)."""
        if self.size == 1:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device())
        torch.distributed.all_reduce(tensor)
        return tensor.tolist()

    def agree(self, flag: bool) -> bool:
        """Rank 0's decision (stop early, say), the same in every process."""
        if self.size == 1:
            return flag
        value = torch.tensor([int(flag)], device=_collective_device())
        torch.distributed.broadcast(value, src=0)
        return bool(value.item())


def _collective_device() -> torch.device:
    backend = torch.distributed.get_backend()
    return torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")


def join(device_name: str) -> tuple[World, str]:
    """Join the process group torchrun described in the environment; returns the world and the device
    name this process should use (its own GPU under CUDA)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), device_name
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device_name = f"cuda:{local_rank}"
    elif device_name == "auto":
        device_name = "cpu"
    return World(torch.distributed.get_rank(), size), device_name


def leave() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
