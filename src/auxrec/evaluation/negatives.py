"""Sampled negatives for the ``sampled`` and ``popularity`` protocols.

For each evaluated user and each of the ``valid`` and ``test`` splits, 100 distinct items
the user never interacted with (in any split) are drawn, without replacement:

- ``uniform``: every such item is equally likely (the paper's protocol);
- ``popularity``: probability proportional to the item's number of training
  interactions (items never seen in training cannot be drawn).

Negatives are drawn once per (dataset, strategy, seed), saved inside the prepared dataset
folder under ``negatives/`` and reused by every model evaluated with that seed, so the
comparisons between models are paired user by user.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from auxrec.data.dataset import PreparedDataset, UserSequences
from auxrec.exceptions import DataError
from auxrec.io import atomic_output

logger = logging.getLogger(__name__)

N_NEGATIVES = 100
STRATEGIES = ("uniform", "popularity")


@dataclass(frozen=True)
class SampledNegatives:
    users: np.ndarray  # (n_eval_users,) int64, sorted
    negatives: np.ndarray  # (n_eval_users, n_negatives) int64


def draw_negatives(
    excluded: UserSequences,
    users: np.ndarray,
    n_items: int,
    n_negatives: int,
    rng: np.random.Generator,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Draw ``n_negatives`` distinct items per user, avoiding the user's ``excluded`` items.

    ``weights`` (n_items + 1,) gives sampling weights (None = uniform over 1..n_items).
    Rejection sampling in rounds keeps this fast: a user's candidates are drawn in a
    batch, filtered against their (sorted) history, and topped up while short.
    """
    if weights is None:
        probabilities = None
        allowed_total = n_items
    else:
        weights = np.asarray(weights, dtype=np.float64).copy()
        weights[0] = 0.0
        probabilities = weights / weights.sum()
        cumulative = np.cumsum(probabilities)
        allowed_total = int((weights > 0).sum())
    out = np.empty((len(users), n_negatives), dtype=np.int64)
    for row, user in enumerate(users):
        history = np.unique(excluded.of(int(user)))
        available = allowed_total - (
            len(history) if probabilities is None else int((weights[history] > 0).sum())  # type: ignore[index]
        )
        if available < n_negatives:
            raise DataError(
                f"user {user} has only {available} items left to sample {n_negatives} negatives from; "
                "this catalogue is too small for sampled evaluation: use the 'full' protocol "
                "(`auxrec train ... --protocol full --validation-protocol full`)"
            )
        chosen: list[np.ndarray] = []
        have = 0
        seen = history
        while have < n_negatives:
            size = 2 * (n_negatives - have) + 8
            if probabilities is None:
                draw = rng.integers(1, n_items + 1, size=size)
            else:  # inverse-CDF sampling: O(size log n) instead of rebuilding a table per user
                draw = np.minimum(np.searchsorted(cumulative, rng.random(size), side="right"), n_items)
            # Keep first occurrences only, in draw order, so the result depends on the seed alone.
            _, first = np.unique(draw, return_index=True)
            draw = draw[np.sort(first)]
            draw = draw[~np.isin(draw, seen)]
            draw = draw[: n_negatives - have]
            chosen.append(draw)
            have += len(draw)
            seen = np.union1d(seen, draw)
        out[row] = np.concatenate(chosen)
    return out


def negatives_path(dataset: PreparedDataset, strategy: str, seed: int) -> Path:
    return dataset.path / "negatives" / f"{strategy}-seed{seed}.npz"


def load_or_draw_negatives(
    dataset: PreparedDataset, split: str, strategy: str, seed: int, n_negatives: int = N_NEGATIVES
) -> SampledNegatives:
    """The saved negatives of (dataset, strategy, seed); drawn and saved on first use."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown negative sampling strategy {strategy!r}")
    path = negatives_path(dataset, strategy, seed)
    if path.is_file():
        with np.load(path) as saved:
            stored_fingerprint = str(saved["fingerprint"])
            if stored_fingerprint == dataset.fingerprint and saved[f"{split}_negatives"].shape[1] == n_negatives:
                return SampledNegatives(saved[f"{split}_users"], saved[f"{split}_negatives"])
        logger.warning("negatives in %s belong to other data or settings; drawing them again", path)
    _draw_and_save(dataset, strategy, seed, n_negatives, path)
    with np.load(path) as saved:
        return SampledNegatives(saved[f"{split}_users"], saved[f"{split}_negatives"])


def _draw_and_save(dataset: PreparedDataset, strategy: str, seed: int, n_negatives: int, path: Path) -> None:
    # One generator per (strategy, seed), independent of everything else in the run.
    stream = int.from_bytes(hashlib.sha256(f"negatives/{strategy}".encode()).digest()[:4], "little")
    rng = np.random.default_rng([seed, stream])
    weights = dataset.train_item_counts if strategy == "popularity" else None
    arrays: dict[str, np.ndarray] = {"fingerprint": np.array(dataset.fingerprint)}
    for split in ("valid", "test"):
        users, _ = dataset.targets(split)
        arrays[f"{split}_users"] = users
        arrays[f"{split}_negatives"] = draw_negatives(
            dataset.all_sequences, users, dataset.n_items, n_negatives, rng, weights
        )
    with atomic_output(path, suffix=".npz") as temporary:
        np.savez(temporary, **arrays)
