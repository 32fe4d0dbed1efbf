"""Metrics broken down by the kind of target: where item content should matter.

`breakdown` takes a prepared dataset, a split and per-user ranks (an `EvaluationResult`,
or a saved ``RUN/ranks/SPLIT-PROTOCOL.parquet`` through `breakdown_of_ranks_file`) and
returns NDCG@10, HR@10 and the number of users for each value of each grouping:

- ``all``: every evaluated user (the numbers of ``metrics.json``);
- ``target``: ``cold`` when the target item has no training interaction
  (`PreparedDataset.train_item_counts` is 0), else ``warm``. This needs no preparation
  option: some items only ever occur as targets; with ``prepare --cold-start-fraction``
  every held-out item is cold by construction;
- ``popularity``: terciles of the targets' training counts over all of the split's
  targets (the dataset's, not only the users passed in, so groups never depend on which
  ranks are given). With the counts sorted, ``q1`` is the ⌈n/3⌉-th and ``q2`` the
  ⌈2n/3⌉-th value; ``tail``: count <= q1, ``mid``: q1 < count <= q2, ``head``: count > q2.
  Ties at a boundary join the lower group, so targets of one item always share a group and
  the groups are thirds only up to ties (cold targets, count 0, are ``tail``);
- ``history``: ``repeated`` when the target already occurs in the history the model saw
  for this split (`PreparedDataset.history`), else ``novel``;
- ``novel_target``: ``warm`` / ``cold`` as in ``target``, over the novel targets only
  (repeated ones are left out). A repeated target is far easier (it competes with novel
  items only under ``full``) and is warm almost by construction, so ``target``'s warm
  group is inflated wherever people buy again (on H&M, 33 of 384 warm test targets of the
  cold-start split repeat and hold 42% of SASRec+'s warm NDCG@10 under ``full``); cold against warm
  is compared fairly here;
- ``valid_test_time``: ``same`` for users whose validation and test interactions have the
  same timestamp (their order comes from the source file's row order), else ``different``:
  comparing ``all`` with ``different`` shows the results without them.

Empty groups are reported with ``users`` 0 and the metrics NaN (``null`` in JSON).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auxrec.data.dataset import PreparedDataset
from auxrec.evaluation.metrics import hit_at_k, ndcg_at_k
from auxrec.exceptions import DamagedFile, RunError

BREAKDOWN_METRICS = ("NDCG@10", "HR@10")
GROUPS: dict[str, tuple[str, ...]] = {
    "all": ("all",),
    "target": ("warm", "cold"),
    "popularity": ("head", "mid", "tail"),
    "history": ("novel", "repeated"),
    "novel_target": ("warm", "cold"),
    "valid_test_time": ("different", "same"),
}
EVALUATED_SPLITS = ("valid", "test")
_RANKS_FILE = re.compile(r"^(valid|test)-(.+)\.parquet$")


def popularity_terciles(counts: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """'head'/'mid'/'tail' of each value of ``counts``, cut at the terciles of ``reference``.

    ``q1``/``q2`` are the ⌈n/3⌉-th and ⌈2n/3⌉-th smallest of ``reference`` (n of them);
    tail: <= q1, mid: (q1, q2], head: > q2. Ties at a cut join the lower group.
    """
    counts = np.asarray(counts)
    ordered = np.sort(np.asarray(reference))
    labels = np.full(len(counts), "head", dtype=object)
    if len(ordered) == 0:
        return labels
    n = len(ordered)
    q1, q2 = ordered[math.ceil(n / 3) - 1], ordered[math.ceil(2 * n / 3) - 1]
    labels[counts <= q2] = "mid"
    labels[counts <= q1] = "tail"
    return labels


def _same_valid_test_time(dataset: PreparedDataset, users: np.ndarray) -> np.ndarray:
    """True for users whose validation and test rows share a timestamp."""
    frame = dataset.interactions
    if "timestamp" not in frame.columns:
        raise RunError(f"{dataset.path}: the interactions have no timestamp column; prepare the dataset again")
    codes = frame["split"].cat.codes.to_numpy()
    categories = list(frame["split"].cat.categories)
    stamps = frame["timestamp"].to_numpy()
    by_user: dict[str, pd.Series] = {}
    for split in EVALUATED_SPLITS:
        rows = codes == categories.index(split)
        by_user[split] = pd.Series(stamps[rows], index=frame["user"].to_numpy()[rows])
    same = by_user["valid"].reindex(users).to_numpy() == by_user["test"].reindex(users).to_numpy()
    return np.asarray(same, dtype=bool)


def target_groups(dataset: PreparedDataset, split: str, users: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """The group value of each (user, target) for every grouping of `GROUPS`."""
    counts = dataset.train_item_counts
    _, all_targets = dataset.targets(split)
    history = dataset.history(split)
    width = dataset.n_items + 1  # (user, item) pairs as one integer key
    seen = history.owners * width + history.items.astype(np.int64)
    repeated = np.isin(np.asarray(users, np.int64) * width + np.asarray(targets, np.int64), seen)
    cold_or_warm = np.where(counts[targets] == 0, "cold", "warm").astype(object)
    return {
        "all": np.full(len(users), "all", dtype=object),
        "target": cold_or_warm,
        "popularity": popularity_terciles(counts[targets], counts[all_targets]),
        "history": np.where(repeated, "repeated", "novel").astype(object),
        "novel_target": np.where(repeated, "(repeated)", cold_or_warm).astype(object),  # "(repeated)": no group
        "valid_test_time": np.where(_same_valid_test_time(dataset, users), "same", "different").astype(object),
    }


def breakdown(
    dataset: PreparedDataset, split: str, users: np.ndarray, targets: np.ndarray, ranks: np.ndarray
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{group: {value: {"NDCG@10": x, "HR@10": y, "users": n}}}`` for one split's ranks.

    ``users``, ``targets`` and ``ranks`` (1-based) are aligned per evaluated user; each
    target must be that user's ``split`` target in ``dataset`` (else `RunError`).
    """
    if split not in EVALUATED_SPLITS:
        raise ValueError(f"no targets for split {split!r}")
    users = np.asarray(users, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    ranks = np.asarray(ranks, dtype=np.int64)
    if not len(users) == len(targets) == len(ranks):
        raise ValueError("users, targets and ranks must be equally long")
    expected_users, expected_targets = dataset.targets(split)
    position = np.searchsorted(expected_users, users)
    inside = position < len(expected_users)
    matches = inside.copy()
    matches[inside] = (expected_users[position[inside]] == users[inside]) & (
        expected_targets[position[inside]] == targets[inside])
    if not matches.all():
        raise RunError(f"the ranks do not belong to {dataset.path}: user {int(users[~matches][0])}'s {split} target "
                       "differs from the dataset's; evaluate the run again against the data it was trained on")
    per_user = {"NDCG@10": ndcg_at_k(ranks, 10), "HR@10": hit_at_k(ranks, 10)}
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for group, labels in target_groups(dataset, split, users, targets).items():
        result[group] = {}
        for value in GROUPS[group]:
            chosen = labels == value
            n = int(chosen.sum())
            result[group][value] = {
                **{name: float(values[chosen].mean()) if n else math.nan for name, values in per_user.items()},
                "users": n,
            }
    return result


def breakdown_of_result(dataset: PreparedDataset, result: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """`breakdown` of an `auxrec.evaluation.evaluator.EvaluationResult`."""
    return breakdown(dataset, result.split, result.users, result.targets, result.ranks)


def breakdown_of_ranks_file(dataset: PreparedDataset, path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """`breakdown` of a saved ``SPLIT-PROTOCOL.parquet`` (columns user, target, rank)."""
    path = Path(path)
    match = _RANKS_FILE.match(path.name)
    if match is None:
        raise RunError(f"{path} is not a ranks file (expected SPLIT-PROTOCOL.parquet with SPLIT valid or test)")
    try:
        frame = pd.read_parquet(path, columns=["user", "target", "rank"])
    except Exception as error:  # pyarrow raises many types for truncated or foreign files
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise DamagedFile(f"{path} cannot be read ({reason}); evaluate the run again (`auxrec evaluate`)") from None
    return breakdown(dataset, match.group(1), frame["user"].to_numpy(), frame["target"].to_numpy(),
                     frame["rank"].to_numpy())


def complete_from_ranks(
    dataset: PreparedDataset, ranks_dir: Path, breakdowns: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """``breakdowns`` ({split: {protocol: ...}}) plus any saved ranks file it lacks, in place."""
    for path in sorted(Path(ranks_dir).glob("*.parquet")):
        match = _RANKS_FILE.match(path.name)
        if match and match.group(2) not in breakdowns.get(match.group(1), {}):
            breakdowns.setdefault(match.group(1), {})[match.group(2)] = breakdown_of_ranks_file(dataset, path)
    return breakdowns
