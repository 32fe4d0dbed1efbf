"""The trained items closest to other items in content, and how much each one counts.

An item without training interactions has no learnt id embedding. It can borrow one: the
similarity-weighted mean of the id embeddings of the trained items whose stored content
(the fusion's rows, every modality concatenated) is closest to its own by cosine. Items in
the catalogue that training never saw do so at the end of training
(`aux_unseen_id_neighbours`); items added after training do so with
`auxrec add-items --neighbours N`. With `aux_unseen_id_neighbours="auto"` (the default) the
count is chosen on validation (`choose_neighbour_count`), 0 included.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def content_neighbours(fusion: Any, train_item_counts: np.ndarray, rows: dict[str, np.ndarray], count: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """For each item given by ``rows``, the ``count`` trained items closest in stored content, and weights.

    ``fusion``: the model's `AuxiliaryFusion` (its ``features_<modality>`` rows are the
    candidates' content); ``train_item_counts``: training interactions per item id; only items
    with some may lend (the others have no learnt id embedding; padding's count is 0);
    ``rows``: modality → (m, stored width), the items' rows as the fusion stores them. Returns
    ids (m, K) and weights (m, K): the positive similarities, normalised to sum to 1 (all 0
    when no candidate is similar at all, or ``count`` is 0).
    """
    n_items = len(next(iter(rows.values())))
    candidates = np.flatnonzero(train_item_counts > 0)
    count = min(count, len(candidates))
    if count == 0:
        return np.zeros((n_items, 0), np.int64), np.zeros((n_items, 0), np.float32)
    stored = np.concatenate([getattr(fusion, f"features_{name}")[candidates].cpu().numpy()
                             for name in fusion.names], axis=1)
    queries = np.concatenate([rows[name] for name in fusion.names], axis=1)
    similarity = _unit(queries) @ _unit(stored).T  # (m, n_candidates)
    nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :count]
    weights = np.clip(np.take_along_axis(similarity, nearest, axis=1), 0, None)
    totals = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)
    return candidates[nearest].astype(np.int64), weights.astype(np.float32)


def nearest_of(ids: np.ndarray, weights: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` of neighbours found for a larger count, reweighted to sum to 1.

    Equal to `content_neighbours` with ``count`` (the order is stable and the weights are the
    positive similarities, normalised), without searching the candidates again.
    """
    ids, weights = ids[:, :count], weights[:, :count]
    totals = weights.sum(axis=1, keepdims=True)
    return ids, np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)


# `aux_unseen_id_neighbours="auto"`: the neighbour counts tried, and how sure validation must be.
NEIGHBOUR_COUNTS_TRIED = (1, 3, 10)
SIGNIFICANT_Z = 1.96


def choose_neighbour_count(validation_ndcg: Callable[[int], np.ndarray],
                           counts: tuple[int, ...] = NEIGHBOUR_COUNTS_TRIED, z: float = SIGNIFICANT_Z
                           ) -> tuple[int, dict[int, dict[str, float | None]]]:
    """The neighbour count to borrow id rows with, chosen on validation, and what each count measured.

    ``validation_ndcg(K)``: per-user validation NDCG@10 with the never-trained items' id rows
    borrowed from K neighbours (K = 0: zero rows, the model as trained). A count is eligible
    when its mean per-user gain over K = 0 exceeds ``z`` standard errors of the paired
    differences, so the trained model is changed only where validation shows a real gain;
    the eligible count with the largest gain wins, 0 when none is. Returns (count,
    {K: {"gain": mean difference, "standard_error": its standard error}}; None where fewer than
    two validation users give nothing to judge by).
    """
    baseline = np.asarray(validation_ndcg(0), dtype=np.float64)
    measured: dict[int, dict[str, float | None]] = {}
    chosen, best_gain = 0, 0.0
    for count in counts:
        difference = np.asarray(validation_ndcg(count), dtype=np.float64) - baseline
        if len(difference) < 2:  # no spread to judge a gain by: keep the model as trained
            measured[count] = {"gain": float(difference.mean()) if len(difference) else None, "standard_error": None}
            continue
        gain = float(difference.mean())
        error = float(difference.std(ddof=1) / math.sqrt(len(difference)))
        measured[count] = {"gain": round(gain, 6), "standard_error": round(error, 6)}
        if gain > z * error and gain > best_gain:
            chosen, best_gain = count, gain
    return chosen, measured


def describe_choice(finish: dict[str, Any]) -> str:
    """One line for the user on what `finish_training` did with the never-trained items' id rows."""
    count, items = finish.get("aux_unseen_id_neighbours", 0), finish.get("items", 0)
    what = f"{items:,} item{'s' if items != 1 else ''} without training interactions"
    measured = finish.get("validation")
    if measured is None:
        if "validation" in finish:  # "auto" without validation users to judge by
            return f"{what}: id rows kept at zero (no validation to choose a neighbour count on)"
        return f"{what}: id rows borrowed from {count} content neighbour{'s' if count != 1 else ''}"

    def gain(k: Any) -> str:
        cell = measured.get(k) or measured.get(str(k)) or {}
        if cell.get("gain") is None or cell.get("standard_error") is None:
            return f"K={k}: –"
        return f"K={k}: {cell['gain']:+.4f} ± {cell['standard_error']:.4f}"

    tried = ", ".join(gain(k) for k in sorted({int(k) for k in measured}))
    if count:
        return (f"{what}: id rows borrowed from {count} content neighbour{'s' if count != 1 else ''}, "
                f"chosen on validation (full NDCG@10 gain ± standard error: {tried})")
    return (f"{what}: id rows kept at zero, no neighbour count gained significantly on validation "
            f"(full NDCG@10 gain ± standard error: {tried})")
