"""How one epoch is cut into batches.

An epoch is a set of *units* (users for sequence models, interactions for BPR). The plan
shuffles them with the run's generator, optionally groups units of similar length so
padded batches waste little work, cuts them into batches and shuffles the batch order.
In data-parallel training every process computes the same plan from the same seed and
keeps its rows of each batch (`auxrec.training.distributed`).
"""

from __future__ import annotations

import numpy as np


def plan_batches(
    n_units: int,
    batch_size: int,
    rng: np.random.Generator,
    lengths: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Indices of the units in each batch, in training order.

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
    return batches
