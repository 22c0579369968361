"""Multi-process training glue: process groups from ``torchrun``'s environment and a resumable sampler.

``torchrun --nproc_per_node=N -m diffpose train ...`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; we
join the process group (NCCL on CUDA, gloo on CPU, so 2 CPU processes work too) and wrap the model in
``DistributedDataParallel``. ``train.batch_size`` is the *global* batch: each of the N processes takes a
contiguous 1/N of every global batch, so N processes average exactly the gradients one process would
compute on the whole batch (with a per-sample mean loss and batch-independent layers).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from diffpose.checkpoint import resolve_device
from diffpose.errors import DiffPoseError


@dataclass
class DistContext:
    """Where this process sits: ``rank`` of ``world_size``, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_name: str = "auto") -> DistContext:
    """Join the process group if launched by ``torchrun`` (``WORLD_SIZE > 1``); otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world, local_rank=local, device=device)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_mean(value: float, ctx: DistContext) -> float:
    """Mean of a scalar over all processes (for logging)."""
    if not ctx.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return float(t.item()) / ctx.world_size


class EpochBatchSampler:
    """This process's share of each global batch of an epoch, reproducible from ``(seed, epoch)``.

    The epoch's order is ``default_rng([seed, epoch]).permutation(n)``; the last incomplete global batch is
    dropped. ``start_batch`` skips batches already consumed before a resume (without loading them).
    Yields lists of dataset indices of length ``global_batch // world_size``.
    """

    def __init__(self, num_samples: int, global_batch: int, ctx: DistContext, seed: int = 0):
        if global_batch % ctx.world_size:
            raise DiffPoseError(f"global batch {global_batch} is not divisible by {ctx.world_size} processes",
                                field="train.batch_size")
        if num_samples < global_batch:
            raise DiffPoseError(f"only {num_samples} training samples for a batch of {global_batch}",
                                field="train.batch_size")
        self.num_samples, self.global_batch, self.ctx, self.seed = num_samples, global_batch, ctx, seed
        self.epoch, self.start_batch = 0, 0

    def __len__(self) -> int:
        return self.num_samples // self.global_batch - self.start_batch

    @property
    def batches_per_epoch(self) -> int:
        return self.num_samples // self.global_batch

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __iter__(self) -> Iterator[list[int]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples)
        local = self.global_batch // self.ctx.world_size
        for b in range(self.start_batch, self.batches_per_epoch):
            batch = order[b * self.global_batch:(b + 1) * self.global_batch]
            yield batch[self.ctx.rank * local:(self.ctx.rank + 1) * local].tolist()
