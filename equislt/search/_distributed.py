"""Data parallel search with PyTorch's own engine: ``DistributedDataParallel`` launched by ``torchrun``.

``torchrun --nproc_per_node N -m equislt.cli search ...`` sets ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``; the same
command without ``torchrun`` runs in one process. Every process holds the whole (small) network; DDP averages
the score gradients, so every process applies the same update and ends with the same scores and masks.

Batches: one global permutation per epoch (seeded by the run seed and the epoch), cut into global batches of
``batch_size``; process ``r`` of ``N`` takes the ``r``-th slice of ``batch_size / N`` samples of each global
batch. The union over processes of step ``i`` is exactly the single-process batch ``i``, so N processes compute
the single-process gradient (up to float rounding and batch-norm statistics, which are per process).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, List

import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "GlobalBatchSampler"]


@dataclass
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    initialised_here: bool = False
    device: torch.device = torch.device("cpu")  # where collectives put their tensors (the GPU under NCCL)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_environment(cls, device: torch.device = torch.device("cpu")) -> "DistributedContext":
        """Join the process group ``torchrun`` describes in the environment, or run alone: NCCL when the search
        runs on CUDA (each process on its own GPU), gloo otherwise; ``EQUISLT_BACKEND`` overrides the choice.

        A process group that is already initialised (by the caller) is used as it is."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        backend = os.environ.get("EQUISLT_BACKEND", "nccl" if device.type == "cuda" else "gloo")
        collective = device if backend == "nccl" else torch.device("cpu")
        if collective.type == "cuda":
            torch.cuda.set_device(collective)
        if dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(), False, collective)
        dist.init_process_group(backend=backend)
        return cls(dist.get_rank(), dist.get_world_size(), True, collective)

    def close(self) -> None:
        if self.initialised_here and dist.is_initialized():
            dist.destroy_process_group()

    def sum(self, values: List[float]) -> List[float]:
        """Element-wise sum over processes (float64)."""
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.distributed:
            dist.all_reduce(tensor)
        return tensor.cpu().tolist()

    def gather_objects(self, value) -> list:
        if not self.distributed:
            return [value]
        out = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


class GlobalBatchSampler(torch.utils.data.Sampler):
    """This process's slice of each global batch of a seeded per-epoch permutation (last partial batch dropped).

    Fully determined by ``(seed, epoch, start)``: a resumed run regenerates the same order and skips the
    ``start`` batches already done (no sampler state to save besides these three integers).
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} must be divisible by the number of processes {world_size}")
        if n < batch_size:
            raise ValueError(f"the training set has {n} samples, fewer than one batch of {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.n // self.batch_size - self.start

    def __iter__(self) -> Iterator[List[int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=generator)
        local = self.batch_size // self.world_size
        for b in range(self.start, self.n // self.batch_size):
            lo = b * self.batch_size + self.rank * local
            yield order[lo:lo + local].tolist()
