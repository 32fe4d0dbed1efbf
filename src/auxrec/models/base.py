"""The one contract every recommender follows, and the shared torch plumbing.

Evaluation calls nothing but `Recommender.score`; training calls `fit`. Orientation is
fixed once: users are rows, items are columns, item ids are internal ids with column 0
reserved for padding.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np
import torch
from torch import nn

from auxrec.data.dataset import PreparedDataset
from auxrec.training.batching import Shard, plan_batches
from auxrec.training.config import TrainingConfig


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
    history_length: int  # how many recent items `score` wants in UserHistories.sequences

    def fit(
        self, dataset: PreparedDataset, training: TrainingConfig, seed: int,
        checkpoint_dir: Path | None = None, resume: bool = False,
    ) -> Self: ...

    def score(self, histories: UserHistories, candidates: np.ndarray | None = None) -> torch.Tensor:
        """Scores, higher = more likely next.

        With ``candidates`` (B, C) item ids: returns (B, C). Without: (B, n_items + 1),
        one column per internal item id (column 0 = padding, ignored by evaluation).
        """
        ...

    def save(self, directory: Path) -> None: ...


class NeuralRecommender(nn.Module):
    """Base of the PyTorch models: config handling, save/load and the training hand-off.

    Subclasses define ``name``, ``config_class``, the network in ``__init__``,
    ``training_batches`` (what one epoch iterates over), ``loss`` and ``score``.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    history_length: int = 0
    # Bumped when a fix changes the numbers the same settings give, so that a run trained
    # before it is retrained rather than reused as if current (`revisions`, in config.json).
    revision: ClassVar[int] = 1

    @classmethod
    def revisions(cls, config: Any, with_features: bool) -> dict[str, int]:
        """The revisions a run of this model with ``config`` records (and must match to be reused)."""
        return {"model": cls.revision}

    def __init__(self, config: Any, *, n_users: int, n_items: int) -> None:
        super().__init__()
        self.config = config
        self.n_users = n_users
        self.n_items = n_items
        self.training_log: list[dict[str, Any]] = []

    # -- training -----------------------------------------------------------------
    def training_units(self, dataset: PreparedDataset) -> tuple[np.ndarray, np.ndarray | None]:
        """What one epoch iterates over (e.g. user ids) and, optionally, their lengths for bucketing."""
        raise NotImplementedError

    def make_batch(
        self, dataset: PreparedDataset, units: np.ndarray, rng: np.random.Generator
    ) -> dict[str, torch.Tensor]:
        """Tensors of one batch built from ``units``."""
        raise NotImplementedError

    def training_batches(
        self, dataset: PreparedDataset, batch_size: int, rng: np.random.Generator, shard: Shard = Shard(),
        length_bucketing: bool = False,
    ) -> Iterator[dict[str, torch.Tensor]]:
        """One epoch of batches for this process (see `auxrec.training.batching`)."""
        units, lengths = self.training_units(dataset)
        for rows in plan_batches(len(units), batch_size, rng, lengths if length_bucketing else None, shard):
            yield self.make_batch(dataset, units[rows], rng)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def fit(
        self, dataset: PreparedDataset, training: TrainingConfig, seed: int,
        checkpoint_dir: Path | None = None, resume: bool = False,
    ) -> Self:
        from auxrec.training.trainer import train_neural_model

        self.training_log = train_neural_model(self, dataset, training, seed, checkpoint_dir, resume)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- persistence --------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fusion = getattr(self, "fusion", None)
        meta = {"name": self.name, "config": asdict(self.config), "n_users": self.n_users, "n_items": self.n_items,
                "feature_dims": fusion.dims() if fusion is not None else None}
        (directory / "model.json").write_text(json.dumps(meta, indent=2))
        torch.save(self.state_dict(), directory / "weights.pt")

    @classmethod
    def load(cls, directory: Path) -> Self:
        meta = json.loads((directory / "model.json").read_text())
        kwargs: dict[str, Any] = {"n_users": meta["n_users"], "n_items": meta["n_items"]}
        if meta.get("feature_dims"):
            # Placeholder features of the right shapes; the saved buffers overwrite them.
            from auxrec.features.item_features import ItemFeatures

            rows = meta["n_items"] + 1
            kwargs["item_features"] = ItemFeatures(
                {name: np.zeros((rows, dim), np.float32) for name, dim in meta["feature_dims"].items()}
            )
        model = cls(cls.config_class(**meta["config"]), **kwargs)
        model.load_state_dict(torch.load(directory / "weights.pt", map_location="cpu", weights_only=True))
        model.eval()
        return model
