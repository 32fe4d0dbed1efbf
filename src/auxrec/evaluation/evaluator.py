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

Ranks are pessimistic on ties (`auxrec.evaluation.ranking`). Under the full protocols the
catalogue is scored ``item_chunk`` items at a time, so memory holds ``batch_size`` ×
``item_chunk`` scores however large the catalogue; the ranks do not depend on the chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.distributed as dist

from auxrec.data.dataset import PreparedDataset, UserSequences
from auxrec.evaluation.metrics import summarize
from auxrec.evaluation.negatives import load_or_draw_negatives
from auxrec.evaluation.ranking import (
    ItemRangeMask,
    ItemRangeScores,
    rank_among_item_ranges,
    rank_first_column,
)
from auxrec.exceptions import ConfigError
from auxrec.models.contract import Recommender, UserHistories

PROTOCOLS = ("sampled", "popularity", "full", "full-with-history")
NEGATIVE_STRATEGY = {"sampled": "uniform", "popularity": "popularity"}
# Items scored at once under the full protocols: with 256 users a batch that is 64 MiB of
# float32 scores plus boolean masks of the same shape. Every catalogue up to this size
# (all of MovieLens) is one chunk, scored by one call as before chunks existed.
ITEM_CHUNK = 65_536


@runtime_checkable
class ScoresItemRanges(Protocol):
    """A model that scores a range of items without recomputing its user states for each range."""

    def item_range_scorer(self, histories: UserHistories) -> Callable[[int, int], torch.Tensor]: ...


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


def history_mask(history: UserSequences, users: np.ndarray, n_columns: int,
                 first_column: int = 0) -> torch.Tensor:
    """(B, n_columns) True at the items in each user's visible history; column j is item first_column + j."""
    lengths = history.lengths[users]
    rows = np.repeat(np.arange(len(users)), lengths)
    columns = np.concatenate([history.of(int(u)) for u in users]) if len(users) else np.empty(0, np.int64)
    inside = (columns >= first_column) & (columns < first_column + n_columns)
    mask = torch.zeros((len(users), n_columns), dtype=torch.bool)
    columns = columns[inside].astype(np.int64) - first_column
    mask[torch.from_numpy(rows[inside]), torch.from_numpy(columns)] = True
    return mask


def history_range_mask(history: UserSequences, users: np.ndarray) -> ItemRangeMask:
    """``excluded(start, stop)``: `history_mask` of the items start … stop − 1."""
    return lambda start, stop: history_mask(history, users, stop - start, first_column=start)


def item_range_scores(model: Recommender, histories: UserHistories, n_columns: int,
                      item_chunk: int) -> ItemRangeScores:
    """``scores(start, stop)``: columns start … stop − 1 of ``model.score(histories)``, as float on the CPU.

    A model with `ScoresItemRanges` computes its user states once; any other scores a
    catalogue within one chunk by one full ``score`` call (as before chunks existed) and a
    larger one through ``score``'s candidates, one range at a time.
    """
    if isinstance(model, ScoresItemRanges):
        scorer = model.item_range_scorer(histories)
        return lambda start, stop: scorer(start, stop).float().cpu()
    if n_columns <= item_chunk:
        whole = model.score(histories).float().cpu()
        return lambda start, stop: whole[:, start:stop]

    def through_candidates(start: int, stop: int) -> torch.Tensor:
        candidates = np.tile(np.arange(start, stop), (len(histories.users), 1))  # (B, stop - start)
        return model.score(histories, candidates).float().cpu()

    return through_candidates


@torch.no_grad()
def evaluate(
    model: Recommender,
    dataset: PreparedDataset,
    split: str,
    protocol: str,
    seed: int,
    exclude_history: bool = True,
    batch_size: int = 256,
    item_chunk: int = ITEM_CHUNK,
    sharded: bool = False,
) -> EvaluationResult:
    """Rank every evaluated user's ``split`` target ('valid' or 'test') under ``protocol``.

    ``batch_size`` users are scored at a time, under the full protocols against at most
    ``item_chunk`` items at a time (it bounds memory, never the ranks). ``sharded``, in a
    torch.distributed process group (torchrun), has every process score every N-th batch of
    users and combines the ranks in one all-reduce: every process must call it, and every
    one gets the whole result.
    """
    check_protocol(protocol)
    if item_chunk < 1:
        raise ConfigError(f"item_chunk must be at least 1, got {item_chunk}")
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
    rank, world_size = _process_group_place() if sharded else (0, 1)
    ranks = np.zeros(len(users), dtype=np.int64)
    for batch_index, start in enumerate(range(0, len(users), batch_size)):
        if batch_index % world_size != rank:
            continue
        stop = min(start + batch_size, len(users))
        batch_users = users[start:stop]
        histories = user_histories(model, history, batch_users)
        if negatives is not None:
            candidates = np.concatenate([targets[start:stop, None], negatives[start:stop]], axis=1)
            scores = model.score(histories, candidates).float().cpu()
            ranks[start:stop] = rank_first_column(scores)
        else:
            n_columns = dataset.n_items + 1
            score_range = item_range_scores(model, histories, n_columns, item_chunk)
            excluded = history_range_mask(history, batch_users) if exclude_history else None
            ranks[start:stop] = rank_among_item_ranges(score_range, n_columns, item_chunk,
                                                       targets[start:stop], excluded)
    if world_size > 1:
        ranks = _sum_over_processes(ranks, model)
    if was_training and isinstance(model, torch.nn.Module):
        model.train()
    return EvaluationResult(split, protocol, users, targets, ranks, summarize(ranks))


def _process_group_place() -> tuple[int, int]:
    """(rank, world size) in the torch.distributed process group, or (0, 1) outside one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _sum_over_processes(ranks: np.ndarray, model: Recommender) -> np.ndarray:
    """Each process filled its users' ranks and left zeros elsewhere: the sum is every rank."""
    parameter = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    device = parameter.device if parameter is not None else torch.device("cpu")  # NCCL reduces CUDA tensors
    combined = torch.from_numpy(ranks).to(device)
    dist.all_reduce(combined, op=dist.ReduceOp.SUM)
    return combined.cpu().numpy()
