"""Negative sampling over the interaction data, shared by the pairwise models (BPR, TransRec).

Pure NumPy over internal ids: (user, item) pairs are encoded as one integer each so
membership tests are a sorted search.
"""

from __future__ import annotations

import numpy as np


def pair_keys(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Sorted unique (user, item) pairs encoded as one integer each, for fast membership tests."""
    return np.unique(users.astype(np.int64) * (n_items + 1) + items.astype(np.int64))


def sample_unseen_items(
    users: np.ndarray, positive_keys: np.ndarray, n_items: int, rng: np.random.Generator, max_rounds: int = 10
) -> np.ndarray:
    """One uniform item in 1..n_items per user, resampled while it is one of the user's positives.

    ``positive_keys`` comes from `pair_keys`. After ``max_rounds`` the few remaining
    clashes are kept (only possible for users who interacted with almost every item).
    """
    stride = n_items + 1
    negatives = rng.integers(1, n_items + 1, size=len(users))
    for _ in range(max_rounds):
        keys = users * stride + negatives
        found = np.searchsorted(positive_keys, keys)
        clash = positive_keys[np.minimum(found, len(positive_keys) - 1)] == keys
        if not clash.any():
            break
        negatives[clash] = rng.integers(1, n_items + 1, size=int(clash.sum()))
    return negatives
