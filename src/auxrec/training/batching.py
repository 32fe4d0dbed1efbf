"""How one epoch is cut into batches, and how batches are shared between processes.

An epoch is a set of *units* (users for sequence models, interactions for BPR). The plan
shuffles them with the run's generator, optionally groups units of similar length so
padded batches waste little work, cuts them into batches and shuffles the batch order.
Under DistributedDataParallel every process computes the same plan from the same seed
and takes every ``world_size``-th batch starting at its ``rank``: no communication, no
overlap, and nothing assumes a single process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch.distributed as dist


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world_size: int = 1

    @classmethod
    def current(cls) -> Shard:

        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()


def plan_batches(
    n_units: int,
    batch_size: int,
    rng: np.random.Generator,
    lengths: np.ndarray | None = None,
    shard: Shard = Shard(),
) -> list[np.ndarray]:
    """Indices of the units in each batch this process trains on, in training order.

    With ``lengths`` (e.g. sequence lengths capped at the model's maximum), units are
    sorted by length after a random shuffle (random order among equal lengths), so each
    batch holds sequences of similar length; the batch order is then shuffled.
    """
    order = rng.permutation(n_units)
    if lengths is not None:
        order = order[np.argsort(np.asarray(lengths)[order], kind="stable")]
    batches = [order[start : start + batch_size] for start in range(0, n_units, batch_size)]
    if lengths is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches[shard.rank :: shard.world_size]
