"""Ranks of held-out targets from model scores, with pessimistic tie-breaking.

The target ranks below every candidate whose score is greater than **or equal to** its
own: ``r = 1 + #{candidates c != target : score(c) >= score(target)}``. A model that
gives every item the same score therefore gets the worst possible rank, never a lucky
one. A NaN target score also ranks last; NaN candidate scores never beat the target.
"""

from __future__ import annotations

import numpy as np
import torch


def rank_first_column(scores: np.ndarray | torch.Tensor) -> np.ndarray:
    """Ranks of column 0 (the target) within each row of (batch, 1 + n_negatives) scores."""
    scores_t = torch.as_tensor(scores)
    target = scores_t[:, :1]
    beaten_or_tied = (scores_t[:, 1:] >= target).sum(dim=1)
    ranks = 1 + beaten_or_tied
    ranks = torch.where(torch.isnan(target[:, 0]), scores_t.shape[1], ranks)
    return ranks.cpu().numpy().astype(np.int64)


def rank_among_all(
    scores: np.ndarray | torch.Tensor,
    targets: np.ndarray,
    excluded: torch.Tensor | None = None,
) -> np.ndarray:
    """Ranks of ``targets`` among all items in (batch, n_items + 1) scores.

    Column 0 (padding) never counts. ``excluded`` is an optional boolean (batch,
    n_items + 1) mask of items that do not compete (the user's history); the target
    itself is never excluded.
    """
    scores_t = torch.as_tensor(scores).float()
    rows = torch.arange(scores_t.shape[0])
    targets_t = torch.as_tensor(targets, dtype=torch.long)
    target_scores = scores_t[rows, targets_t]
    # Competitors: every real item except the target itself and the excluded ones.
    competes = torch.ones_like(scores_t, dtype=torch.bool)
    competes[:, 0] = False
    if excluded is not None:
        competes &= ~excluded
    competes[rows, targets_t] = False
    ranks = 1 + ((scores_t >= target_scores[:, None]) & competes).sum(dim=1)
    ranks = torch.where(torch.isnan(target_scores), 1 + competes.sum(dim=1), ranks)
    return ranks.cpu().numpy().astype(np.int64)
