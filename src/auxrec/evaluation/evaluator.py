"""Score held-out targets under a named protocol and turn them into ranks and metrics.

Protocols (saved with every result):

- ``sampled``: the target + 100 negatives drawn uniformly from items the user never
  interacted with (the paper's protocol), shared by all models for the same seed;
- ``popularity``: the same with negatives drawn in proportion to training popularity;
- ``full``: the target against every item. By default (``exclude_history=True``) the
  items already in the user's visible history do not compete, the usual convention for
  next-novel-item prediction; the target itself always competes even if it was seen.
- ``full-with-history``: ``full`` with ``exclude_history=False`` (history items compete
  too, as in RecBole's sequential models), for datasets where repeats are the point.

Ranks are pessimistic on ties (`auxrec.evaluation.ranking`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from auxrec.data.dataset import PreparedDataset, UserSequences
from auxrec.evaluation.metrics import summarize
from auxrec.evaluation.negatives import load_or_draw_negatives
from auxrec.evaluation.ranking import rank_among_all, rank_first_column
from auxrec.exceptions import ConfigError
from auxrec.models.contract import Recommender, UserHistories

PROTOCOLS = ("sampled", "popularity", "full", "full-with-history")
NEGATIVE_STRATEGY = {"sampled": "uniform", "popularity": "popularity"}


@dataclass(frozen=True)
class EvaluationResult:
    split: str
    protocol: str
    users: np.ndarray  # (n,) internal user ids
    targets: np.ndarray  # (n,) internal item ids
    ranks: np.ndarray  # (n,) 1-based ranks
    metrics: dict[str, float]


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    return protocol


def user_histories(model: Recommender, history: UserSequences, users: np.ndarray) -> UserHistories:
    """The batch ``model.score`` reads: each user's most recent ``model.history_length`` items."""
    length = int(model.history_length)
    sequences = history.padded(users, length) if length > 0 else np.zeros((len(users), 0), np.int64)
    return UserHistories(users=users, sequences=sequences)


def history_mask(history: UserSequences, users: np.ndarray, n_columns: int) -> torch.Tensor:
    """(B, n_columns) True at the items in each user's visible history."""
    lengths = history.lengths[users]
    rows = np.repeat(np.arange(len(users)), lengths)
    columns = np.concatenate([history.of(int(u)) for u in users]) if len(users) else np.empty(0, np.int64)
    mask = torch.zeros((len(users), n_columns), dtype=torch.bool)
    mask[torch.from_numpy(rows), torch.from_numpy(columns.astype(np.int64))] = True
    return mask


@torch.no_grad()
def evaluate(
    model: Recommender,
    dataset: PreparedDataset,
    split: str,
    protocol: str,
    seed: int,
    exclude_history: bool = True,
    batch_size: int = 256,
) -> EvaluationResult:
    """Rank every evaluated user's ``split`` target ('valid' or 'test') under ``protocol``."""
    check_protocol(protocol)
    if protocol == "full-with-history":
        exclude_history = False
    users, targets = dataset.targets(split)
    history = dataset.history(split)
    negatives = None
    if protocol in NEGATIVE_STRATEGY:
        sampled = load_or_draw_negatives(dataset, split, NEGATIVE_STRATEGY[protocol], seed)
        if not np.array_equal(sampled.users, users):
            raise RuntimeError("saved negatives do not match the dataset's evaluated users")
        negatives = sampled.negatives
    was_training = getattr(model, "training", False)
    if isinstance(model, torch.nn.Module):
        model.eval()
    ranks = np.empty(len(users), dtype=np.int64)
    for start in range(0, len(users), batch_size):
        stop = min(start + batch_size, len(users))
        batch_users = users[start:stop]
        histories = user_histories(model, history, batch_users)
        if negatives is not None:
            candidates = np.concatenate([targets[start:stop, None], negatives[start:stop]], axis=1)
            scores = model.score(histories, candidates).float().cpu()
            ranks[start:stop] = rank_first_column(scores)
        else:
            scores = model.score(histories).float().cpu()
            excluded = history_mask(history, batch_users, scores.shape[1]) if exclude_history else None
            ranks[start:stop] = rank_among_all(scores, targets[start:stop], excluded)
    if was_training and isinstance(model, torch.nn.Module):
        model.train()
    return EvaluationResult(split, protocol, users, targets, ranks, summarize(ranks))
