"""A trained run as a recommender you can call: top-k for users or new histories, similar items.

``auxrec.load_run(RUN)`` returns a `TrainedModel`. Everything it takes and returns uses
the dataset's *original* ids (as text, the form prepared datasets store them in), never
the internal integer ids models work with::

    model = auxrec.load_run("runs/sasrec-plus")
    model.recommend(users="42", k=10)                 # one known user -> Recommendations
    model.recommend(users=["42", "7"], k=10)          # a batch -> list[Recommendations]
    model.recommend(histories=[["1", "50", "181"]])   # a new user's recent items, oldest first
    model.similar_items("50", k=5)

A known user's history is everything the dataset holds for them (training, validation
and test items): recommendations continue after the last thing they did. With
``exclude_seen`` the items of the history are never recommended. History items the run
does not know are reported in `Recommendations.unknown_items`, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from auxrec.data.dataset import PreparedDataset
from auxrec.data.ids import FIRST_ID, PADDING_ID
from auxrec.exceptions import AuxrecError
from auxrec.experiments.runs import load_run as load_run_parts
from auxrec.models.contract import Recommender, UserHistories
from auxrec.serving.new_items import AddedItems

MAX_K = 1000  # more than anyone reads; bounds the response and the top-k work
MAX_HISTORY = 10_000  # longer histories are refused (models read their last max_length items anyway)
# Items per model pass when scoring on the CPU (rows x their longest history): a chunk is scored
# in passes of histories of similar length, so short ones are not padded to the longest of the
# chunk and the attention and feature tensors stay in cache. On 2 cores with SASRec+ at length
# 200 (ML-1M subset, benchmarks/serve_load.py) passes of 4,096 items scored chunks of 1,024 users
# ~3.5x faster than one pass (and with 4x less CPU time); 2,048-8,192 were within noise.
CPU_ITEMS_PER_PASS = 4096
DEVICE_ITEMS_PER_PASS = 65_536  # GPUs want big passes; sorting by length still trims the padding


class RecommendError(AuxrecError):
    """A recommendation request that cannot be answered (unknown user, no known item, bad k)."""


@dataclass(frozen=True)
class Recommendations:
    """The top-k of one user or history, best first, in original ids."""

    items: list[str]
    scores: list[float]
    user: str | None = None  # the known user asked for; None for a history
    unknown_items: list[str] = field(default_factory=list)  # history items the run does not know (skipped)

    def to_frame(self) -> pd.DataFrame:
        # From ready-made arrays without a copy: half the time of letting pandas convert the
        # lists and broadcast the user (a batch export builds one frame per user).
        n = len(self.items)
        return pd.DataFrame({"user": np.full(n, self.user, dtype=object), "rank": np.arange(1, n + 1),
                             "item": np.array(self.items, dtype=object),
                             "score": np.array(self.scores, dtype=np.float64)}, copy=False)


@dataclass(frozen=True)
class TopK:
    """The top-k of a chunk of known users as flat arrays, best first (a batch export: no object per user)."""

    users: np.ndarray  # (B,) original user ids (object array of str)
    items: np.ndarray  # (B, k) original item ids (object array of str)
    scores: np.ndarray  # (B, k) float64, rounded to 6 decimals like `Recommendations.scores`


def as_id(value: Any) -> str:
    """An original id as prepared datasets store it: text (``42`` and ``"42"`` are the same id)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


class TrainedModel:
    """A finished run loaded for recommendation (see the module docstring)."""

    def __init__(self, run_dir: Path, config: dict[str, Any], model: Recommender, dataset: PreparedDataset,
                 chunk_size: int = 1024) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.model = model
        self.dataset = dataset
        self.chunk_size = chunk_size
        known = dataset.items.sort_values("item")["original_id"].astype(str).to_numpy()
        self.added = AddedItems.load(self.run_dir)  # items added after training (`auxrec add-items`)
        if self.added is not None:
            self.added.apply_to(model)
            known = np.concatenate([known, self.added.items["original_id"].astype(str).to_numpy()])
        self.item_ids = pd.Index(known)
        self.user_ids = pd.Index(dataset.users.sort_values("user")["original_id"].astype(str).to_numpy())
        self._histories = dataset.all_sequences
        self._names: np.ndarray = np.empty(0, dtype=object)
        self._names_of: pd.Index | None = None  # the item_ids that _names was made from

    # -- description --------------------------------------------------------------
    @property
    def name(self) -> str:
        """The model and its auxiliary modalities, e.g. ``sasrec+text,image``."""
        modalities = list(self.config.get("item_features") or {})
        return self.config["model"] + (f"+{','.join(modalities)}" if modalities else "")

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def item(self, item: Any) -> dict[str, Any]:
        """The item table's row of ``item`` (title, text, image path, attributes) as plain values."""
        internal = self._item_index(as_id(item))
        if internal > self.dataset.n_items:
            row = self.added.items.iloc[internal - self.dataset.n_items - FIRST_ID]  # type: ignore[union-attr]
            return {"id": as_id(item), "added_after_training": True,
                    **{str(k): _plain(v) for k, v in row.items() if k != "original_id"}}
        row = self.dataset.items.set_index("item").loc[internal]
        return {"id": as_id(item), **{str(k): _plain(v) for k, v in row.items() if k != "original_id"}}

    def history(self, user: Any) -> list[str]:
        """A known user's items, oldest first (everything the dataset holds for them)."""
        internal = self._user_index(as_id(user))
        return [self.item_ids[i - FIRST_ID] for i in self._histories.of(internal)]

    # -- recommendation -------------------------------------------------------------
    def recommend(
        self,
        users: Any | Sequence[Any] | None = None,
        histories: Sequence[Sequence[Any]] | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        candidates: Iterable[Any] | None = None,
    ) -> Recommendations | list[Recommendations]:
        """Top-``k`` items for known ``users`` or for new ``histories`` (original item ids, oldest first).

        One user id gives one `Recommendations`; a list of ids or ``histories`` gives a
        list. With neither, every user of the dataset. ``candidates`` restricts the
        ranking to those items.
        """
        if users is not None and histories is not None:
            raise RecommendError("give users or histories, not both")
        single = users is not None and (isinstance(users, str | int | np.integer) or not _is_sequence(users))
        if histories is not None:
            batches = self._history_batches(histories)
            names: list[str | None] = [None] * len(histories)
        else:
            user_ids = [as_id(users)] if single else (list(map(as_id, users)) if users is not None
                                                      else list(self.user_ids))
            batches = self._user_batches(user_ids)
            names = list(user_ids)
        results = [r for batch in self._scored(batches, k, exclude_seen, candidates) for r in batch]
        results = [Recommendations(r.items, r.scores, name, r.unknown_items) for r, name in zip(results, names)]
        return results[0] if single else results

    def iter_recommend(self, users: Sequence[Any] | None = None, k: int = 10, exclude_seen: bool = True,
                       candidates: Iterable[Any] | None = None) -> Iterator[list[Recommendations]]:
        """`recommend` for many users in chunks of ``chunk_size`` (flat memory for a batch export)."""
        user_ids = list(map(as_id, users)) if users is not None else list(self.user_ids)
        for start in range(0, len(user_ids), self.chunk_size):
            chunk = user_ids[start:start + self.chunk_size]
            scored = next(self._scored(self._user_batches(chunk, whole=True), k, exclude_seen, candidates))
            yield [Recommendations(r.items, r.scores, user, []) for r, user in zip(scored, chunk)]

    def iter_top_k(self, users: Sequence[Any] | None = None, k: int = 10,
                   exclude_seen: bool = True) -> Iterator[TopK]:
        """`iter_recommend` as flat arrays per chunk (the same ranking), for writing many users fast."""
        k = _check_k(k)
        user_ids = list(map(as_id, users)) if users is not None else list(self.user_ids)
        for start in range(0, len(user_ids), self.chunk_size):
            chunk = user_ids[start:start + self.chunk_size]
            batch = next(self._user_batches(chunk, whole=True))
            names, scores = self._top_k(batch, k, exclude_seen, allowed=None)
            yield TopK(np.array(chunk, dtype=object), names, np.round(scores.numpy().astype(np.float64), 6))

    def similar_items(self, item: Any, k: int = 10) -> Recommendations:
        """The ``k`` items whose learnt representations are closest (cosine) to ``item``'s."""
        k = _check_k(k)
        vectors = self.model.item_vectors()
        if vectors is None:
            raise RecommendError(f"{self.config['model']} learns no item representations, so it has no similar "
                                 "items; use a run of bpr, transrec, sasrec or bert4rec")
        internal = self._item_index(as_id(item))
        with torch.no_grad():
            table = torch.nn.functional.normalize(vectors[: self.n_items + 1].float(), dim=-1)
            similarity = table @ table[internal]
            similarity[[PADDING_ID, internal]] = -torch.inf
            top = torch.topk(similarity, min(k, self.n_items - 1))
        return Recommendations([self.item_ids[i - FIRST_ID] for i in top.indices.tolist()],
                               [round(float(s), 6) for s in top.values.tolist()])

    # -- internals ------------------------------------------------------------------
    def _item_index(self, item: str) -> int:
        position = self.item_ids.get_indexer([item])[0]
        if position < 0:
            raise RecommendError(f"unknown item {item!r}: this run's dataset has no such item id")
        return int(position) + FIRST_ID

    def _user_index(self, user: str) -> int:
        position = self.user_ids.get_indexer([user])[0]
        if position < 0:
            raise RecommendError(f"unknown user {user!r}: this run's dataset has no such user id "
                                 "(for a new user, pass their recent items as a history)")
        return int(position) + FIRST_ID

    def check_users(self, users: Sequence[Any]) -> np.ndarray:
        """Internal ids of known ``users``; `RecommendError` naming the unknown ones otherwise."""
        user_ids = [as_id(u) for u in users]
        positions = self.user_ids.get_indexer(user_ids)
        if (positions < 0).any():
            missing = [u for u, p in zip(user_ids, positions) if p < 0]
            raise RecommendError(f"unknown user{'s' if len(missing) > 1 else ''} "
                                 f"{', '.join(map(repr, missing[:5]))}{' ...' if len(missing) > 5 else ''}: "
                                 "this run's dataset has no such user id (for a new user, pass their recent "
                                 "items as a history)")
        return positions.astype(np.int64) + FIRST_ID

    def _user_batches(self, user_ids: list[str], whole: bool = False) -> Iterator[_Batch]:
        internal = self.check_users(user_ids)
        step = len(internal) if whole else self.chunk_size
        for start in range(0, max(len(internal), 1), step):
            users = internal[start:start + step]
            length = int(self.model.history_length)
            sequences = self._histories.padded(users, length) if length else np.zeros((len(users), 0), np.int64)
            seen = [self._histories.of(int(u)) for u in users]
            yield _Batch(users, sequences, seen, [[] for _ in users])

    def _history_batches(self, histories: Sequence[Sequence[Any]]) -> Iterator[_Batch]:
        if not type(self.model).scores_new_histories:
            raise RecommendError(f"{self.config['model']} learns a vector per user and scores only the users it "
                                 "was trained on; recommend for a history with sasrec, bert4rec or poprec")
        if isinstance(histories, str) or not _is_sequence(histories) or any(
                isinstance(h, str) or not _is_sequence(h) for h in histories):
            raise RecommendError("histories must be a list of lists of item ids, e.g. [['1', '50']]")
        length = int(self.model.history_length)
        for start in range(0, len(histories), self.chunk_size):
            chunk = histories[start:start + self.chunk_size]
            sequences = np.zeros((len(chunk), length), np.int64)
            seen, unknown = [], []
            for row, history in enumerate(chunk):
                if len(history) > MAX_HISTORY:
                    raise RecommendError(f"a history of {len(history):,} items is longer than the "
                                         f"{MAX_HISTORY:,} accepted; send the most recent items")
                ids = [as_id(item) for item in history]
                positions = self.item_ids.get_indexer(ids)
                unknown.append([i for i, p in zip(ids, positions) if p < 0])
                known = positions[positions >= 0].astype(np.int64) + FIRST_ID
                if not len(known) and length:
                    raise RecommendError("no item of the history is known to this run"
                                         + (f" (unknown: {', '.join(map(repr, unknown[-1][:5]))})"
                                            if unknown[-1] else " (the history is empty)"))
                if length:
                    kept = known[-length:]
                    sequences[row, length - len(kept):] = kept
                seen.append(known)
            yield _Batch(np.full(len(chunk), PADDING_ID, np.int64), sequences, seen, unknown)

    def _candidate_mask(self, candidates: Iterable[Any] | None) -> torch.Tensor | None:
        if candidates is None:
            return None
        ids = [as_id(c) for c in candidates]
        positions = self.item_ids.get_indexer(ids)
        if (positions < 0).any():
            missing = [i for i, p in zip(ids, positions) if p < 0]
            raise RecommendError(f"unknown candidate item(s) {', '.join(map(repr, missing[:5]))}")
        allowed = torch.zeros(self.n_items + 1, dtype=torch.bool)
        allowed[torch.from_numpy(positions.astype(np.int64) + FIRST_ID)] = True
        return allowed

    def _scored(self, batches: Iterator[_Batch], k: int, exclude_seen: bool,
                candidates: Iterable[Any] | None) -> Iterator[list[Recommendations]]:
        k = _check_k(k)
        allowed = self._candidate_mask(candidates)
        for batch in batches:
            if not len(batch.users):
                yield []
                continue
            names, scores = self._top_k(batch, k, exclude_seen, allowed)
            yield [Recommendations(row, [round(float(s), 6) for s in values], None, unknown)
                   for row, values, unknown in zip(names.tolist(), scores.tolist(), batch.unknown)]

    def _top_k(self, batch: _Batch, k: int, exclude_seen: bool,
               allowed: torch.Tensor | None) -> tuple[np.ndarray, torch.Tensor]:
        """(B, k) original item ids (object array) and their scores, best first, of a non-empty batch."""
        scores = self._score_rows(batch.users, batch.sequences)
        scores[:, PADDING_ID] = -torch.inf
        if allowed is not None:
            scores[:, ~allowed] = -torch.inf
        if exclude_seen:
            rows = np.repeat(np.arange(len(batch.seen)), [len(s) for s in batch.seen])
            columns = np.concatenate(batch.seen).astype(np.int64) if rows.size else np.empty(0, np.int64)
            scores[torch.from_numpy(rows), torch.from_numpy(columns)] = -torch.inf
        available = int(torch.isfinite(scores).sum(1).min())
        top = torch.topk(scores, min(k, max(available, 0)), dim=1)
        return self._item_names()[top.indices.numpy() - FIRST_ID], top.values

    def _item_names(self) -> np.ndarray:
        """``item_ids`` as an object array: one vectorised lookup per batch instead of an Index lookup per item."""
        if self._names_of is not self.item_ids:
            self._names, self._names_of = self.item_ids.to_numpy(dtype=object), self.item_ids
        return self._names

    def _score_rows(self, users: np.ndarray, sequences: np.ndarray) -> torch.Tensor:
        """``model.score`` of a batch as a (B, items) float CPU tensor, in passes of similar-length histories.

        Rows are independent, so a long batch is sorted by history length (longest first)
        and cut into passes of about ``CPU_ITEMS_PER_PASS`` items; the models trim the
        columns that are padding in every row of a pass. A batch that fits one pass (a
        small serving micro-batch, a model without histories) is scored as it is.
        """
        device = getattr(self.model, "device", None)
        on_cpu = device is None or torch.device(device).type == "cpu"
        budget = CPU_ITEMS_PER_PASS if on_cpu else DEVICE_ITEMS_PER_PASS
        width = sequences.shape[1] if sequences.ndim == 2 else 0
        with torch.no_grad():
            if width == 0 or len(users) * width <= budget:
                return self.model.score(UserHistories(users, sequences)).float().cpu().clone()
            lengths = (sequences != PADDING_ID).sum(1)
            order = np.argsort(-lengths, kind="stable")
            scores: torch.Tensor | None = None
            start = 0
            while start < len(order):
                rows = order[start:start + max(1, budget // max(int(lengths[order[start]]), 1))]
                start += len(rows)
                part = self.model.score(UserHistories(users[rows], sequences[rows])).float().cpu()
                if scores is None:
                    scores = torch.empty((len(users), part.shape[1]), dtype=torch.float32)
                scores[torch.from_numpy(rows)] = part
        assert scores is not None
        return scores


@dataclass(frozen=True)
class _Batch:
    users: np.ndarray  # internal user ids (PADDING_ID for a history)
    sequences: np.ndarray  # what the model reads
    seen: list[np.ndarray]  # internal item ids excluded with exclude_seen
    unknown: list[list[str]]


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= MAX_K:
        raise RecommendError(f"k must be a whole number from 1 to {MAX_K:,}, not {k!r}")
    return int(k)


def _is_sequence(value: Any) -> bool:
    return isinstance(value, list | tuple | np.ndarray | pd.Series | pd.Index)


def _plain(value: Any) -> Any:
    """JSON-friendly: numpy scalars and arrays become Python values, NaN becomes None."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def load_run(run_dir: Path | str, chunk_size: int = 1024) -> TrainedModel:
    """A finished run (``auxrec train``'s output folder) ready to recommend."""
    config, model, dataset = load_run_parts(Path(run_dir))
    return TrainedModel(Path(run_dir), config, model, dataset, chunk_size=chunk_size)
