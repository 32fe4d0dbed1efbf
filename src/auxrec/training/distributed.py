"""Data-parallel training over ``torch.distributed``, as launched by ``torchrun``.

``torchrun --nproc-per-node N -m auxrec train ...`` starts N copies of the command; each
finds ``WORLD_SIZE``/``RANK`` in its environment and joins one process group (NCCL on
GPUs, gloo on CPU). Every process then builds the *same* global batch (one shared NumPy
generator, so negatives and masks are the single-process ones), keeps its slice of the
rows, and weights its loss by its share of the batch's loss terms. The gradients are
summed across processes in one all-reduce, so every step is the single-process step on
the same global batch, up to float rounding (dropout draws differ per process; with
dropout 0 the loss curves match to float tolerance: ``tests/training/test_distributed.py``).

Why by hand instead of ``DistributedDataParallel``: the models train through
``model.loss(batch)``, not ``forward``, so DDP's hooks would need a wrapper module, and
DDP averages per-process *means*, which is not the global mean when processes hold
different numbers of loss positions (sequences differ in length). One flat all-reduce per
step is what DDP's bucketing would do for models of this size anyway.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Shard:
    """This process's place in the process group (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1

    @classmethod
    def current(cls) -> Shard:
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def is_main(self) -> bool:
        """The one process that writes files (run folder, checkpoints) and prints."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join_process_group(device: torch.device) -> Shard:
    """Join the process group torchrun described in the environment (once); NCCL on CUDA, gloo otherwise."""
    if launched_by_torchrun() and dist.is_available() and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Shard.current()


def wait_for_all(shard: Shard) -> None:
    """A barrier: what the main process wrote before it is there for the others after it."""
    if shard.world_size > 1:
        dist.barrier()


def training_device(device: torch.device) -> torch.device:
    """One GPU per process: torchrun's LOCAL_RANK picks it."""
    if device.type == "cuda" and launched_by_torchrun():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def rows_of(batch: dict[str, torch.Tensor], shard: Shard, shared_keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """This process's rows of a global batch (every ``world_size``-th, from ``rank``); shared entries whole."""
    return {key: value if key in shared_keys else value[shard.rank :: shard.world_size]
            for key, value in batch.items()}


def broadcast_model(model: nn.Module) -> None:
    """Start every process from rank 0's weights (they are built from one seed, so this is a safeguard)."""
    if Shard.current().world_size > 1:
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)


def sum_gradients(model: nn.Module, local_loss: float) -> float:
    """Sum every parameter's gradient over the processes in one all-reduce; return the summed loss.

    Each process's loss was already weighted by its share, so the sums are the global
    batch's. A gradient that is None in every process stays None (AdamW then leaves that
    parameter alone, as in a single process); one that is None in some gets zeros there.
    """
    parameters = [p for p in model.parameters() if p.requires_grad]
    device = parameters[0].device
    present = torch.tensor([p.grad is not None for p in parameters], dtype=torch.float32, device=device)
    flat = torch.cat([
        torch.tensor([local_loss], dtype=torch.float32, device=device), present,
        *[(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float() for p in parameters],
    ])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    summed_present = flat[1 : 1 + len(parameters)]
    offset = 1 + len(parameters)
    for parameter, was_present in zip(parameters, summed_present.tolist(), strict=True):
        size = parameter.numel()
        if was_present:
            parameter.grad = flat[offset : offset + size].view_as(parameter).to(parameter.dtype).clone()
        else:
            parameter.grad = None
        offset += size
    return float(flat[0])
