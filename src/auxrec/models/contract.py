"""The one contract every recommender follows: what evaluation, training and runs rely on.

This module depends on numpy and torch only, so the evaluator (and anything else that
only *uses* models) imports it without pulling in models, training or data code.
Orientation is fixed once: users are rows, items are columns, item ids are internal ids
with column 0 reserved for padding.

Capabilities are declared as class attributes, never sniffed from signatures or names:

- ``trainable``: trained by the gradient loop (`auxrec.training.trainer`), which calls the
  model's ``training_units``, ``make_batch`` and ``loss``; otherwise the model's own
  ``fit(dataset)`` computes it (PopRec);
- ``uses_item_features``: accepts auxiliary item information (``item_features=``), i.e.
  has a ``+`` variant; ``required_features``: modalities it cannot run without;
- ``relative_cost``: rough training time relative to BPR, for scheduling only;
- ``training_defaults`` (optional, none when absent): the model's own defaults for
  training settings, between the generic `TrainingConfig` defaults and anything the user
  sets (a sequence model wants batches of sequences where BPR wants batches of pairs);
- ``scores_new_histories``: scores a history alone (any sequence of known items, a user it
  never saw), i.e. reads nothing learnt per user; BPR and TransRec learn a vector per user
  and score known users only.

``item_vectors`` gives the learnt item representations (``similar_items``), or None for a
model without any (PopRec).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch


@dataclass(frozen=True)
class UserHistories:
    """A batch of users to score.

    ``users``: (B,) internal user ids. ``sequences``: (B, L) internal item ids of each
    user's visible history, left-padded with PADDING_ID, most recent item last; L = 0 for
    models that do not read sequences.
    """

    users: np.ndarray
    sequences: np.ndarray


@runtime_checkable
class Recommender(Protocol):
    """What evaluation and the run layer rely on."""

    name: ClassVar[str]
    trainable: ClassVar[bool]
    uses_item_features: ClassVar[bool]
    required_features: ClassVar[tuple[str, ...]]
    relative_cost: ClassVar[int]
    scores_new_histories: ClassVar[bool]
    history_length: int  # how many recent items `score` wants in UserHistories.sequences

    @classmethod
    def revisions(cls, config: Any, with_features: bool) -> dict[str, int]:
        """Bumped when a fix changes the numbers the same settings give (recorded with each run)."""
        ...

    def score(self, histories: UserHistories, candidates: np.ndarray | None = None) -> torch.Tensor:
        """Scores, higher = more likely next.

        With ``candidates`` (B, C) item ids: returns (B, C). Without: (B, n_items + 1),
        one column per internal item id (column 0 = padding, ignored by evaluation).
        """
        ...

    def feature_dims(self) -> dict[str, int] | None:
        """Width of each auxiliary modality the model reads, or None without item features."""
        ...

    def item_vectors(self) -> torch.Tensor | None:
        """(n_items + 1, d) the item representations scores are made of (row 0 = padding), or None."""
        ...

    def add_items(self, feature_rows: dict[str, torch.Tensor], neighbours: torch.Tensor | None = None,
                  weights: torch.Tensor | None = None) -> None:
        """Append items known only by their content (one stored feature row each), or raise ConfigError."""
        ...

    def save(self, directory: Path) -> None: ...
