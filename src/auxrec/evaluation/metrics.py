"""Ranking metrics as pure functions of the target's 1-based rank.

Every protocol ends in one number per evaluated user: the rank ``r`` (1 = best) of the
held-out target among the candidates. With exactly one relevant item:

- ``HR@k   = 1[r <= k]``                         (hit rate, equals recall@k)
- ``NDCG@k = 1[r <= k] / log2(r + 1)``          (the ideal DCG is 1)
- ``MAP    = 1 / r``                              (average precision with one relevant item,
                                                  i.e. the reciprocal rank, uncut)

Each function returns per-user values; `summarize` averages them into the report.
"""

from __future__ import annotations

import numpy as np

METRIC_NAMES = ("HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MAP")


def _check(ranks: np.ndarray) -> np.ndarray:
    ranks = np.asarray(ranks)
    if ranks.size and ranks.min() < 1:
        raise ValueError("ranks are 1-based; got a rank below 1")
    return ranks


def hit_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per-user HR@k = 1 if r <= k else 0."""
    return (_check(ranks) <= k).astype(np.float64)


def ndcg_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per-user NDCG@k = 1 / log2(r + 1) if r <= k else 0."""
    ranks = _check(ranks).astype(np.float64)
    return np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)


def average_precision(ranks: np.ndarray) -> np.ndarray:
    """Per-user AP with one relevant item = 1 / r; its mean is MAP (= MRR)."""
    return 1.0 / _check(ranks).astype(np.float64)


def per_user_metrics(ranks: np.ndarray) -> dict[str, np.ndarray]:
    """Every reported metric, per user, keyed by its report name."""
    return {
        "HR@1": hit_at_k(ranks, 1),
        "HR@5": hit_at_k(ranks, 5),
        "HR@10": hit_at_k(ranks, 10),
        "NDCG@5": ndcg_at_k(ranks, 5),
        "NDCG@10": ndcg_at_k(ranks, 10),
        "MAP": average_precision(ranks),
    }


def summarize(ranks: np.ndarray) -> dict[str, float]:
    """Mean of each metric over users, names exactly as in `METRIC_NAMES`."""
    if len(ranks) == 0:
        raise ValueError("no ranks to summarize")
    return {name: float(values.mean()) for name, values in per_user_metrics(ranks).items()}
