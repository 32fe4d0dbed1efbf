"""PopRec: recommend what is most popular in the training data.

Score of item i = number of training interactions with i, identical for every user. The
usual floor every personalised model must beat. Not trained by gradient descent.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch

from auxrec.data.dataset import PreparedDataset
from auxrec.exceptions import ConfigError
from auxrec.models.contract import UserHistories


@dataclass(frozen=True)
class PopRecConfig:
    """PopRec has no hyperparameters."""


class PopRec:
    name: ClassVar[str] = "poprec"
    trainable: ClassVar[bool] = False
    uses_item_features: ClassVar[bool] = False
    required_features: ClassVar[tuple[str, ...]] = ()
    relative_cost: ClassVar[int] = 1
    training_defaults: ClassVar[dict[str, Any]] = {}  # not trained by the gradient loop
    scores_new_histories: ClassVar[bool] = True  # the same popularity for everyone
    history_length = 0
    revision: ClassVar[int] = 1

    @classmethod
    def revisions(cls, config: PopRecConfig, with_features: bool) -> dict[str, int]:
        return {"model": cls.revision}

    def __init__(self, config: PopRecConfig, *, n_users: int, n_items: int) -> None:
        self.config = config
        self.n_users = n_users
        self.n_items = n_items

    def fit(self, dataset: PreparedDataset) -> Self:
        """Count training interactions per item (no training loop: ``trainable`` is False)."""
        self.item_counts_ = torch.as_tensor(dataset.train_item_counts, dtype=torch.float32)
        return self

    def score(self, histories: UserHistories, candidates: np.ndarray | None = None) -> torch.Tensor:
        counts = self.item_counts_
        if candidates is None:
            return counts.expand(len(histories.users), -1)  # (B, n_items + 1)
        return counts[torch.as_tensor(candidates, dtype=torch.long)]  # (B, C)

    def add_items(self, feature_rows: dict[str, torch.Tensor], neighbours: torch.Tensor | None = None,
                  weights: torch.Tensor | None = None) -> None:
        raise ConfigError("poprec ranks items by their training interactions, so items added after training "
                          "would never be ranked; train sasrec or bert4rec with item features (--aux)")

    def feature_dims(self) -> dict[str, int] | None:
        return None

    def item_vectors(self) -> torch.Tensor | None:
        return None  # counts, not representations: no item similarity

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "model.json").write_text(
            json.dumps({"name": self.name, "config": asdict(self.config), "n_users": self.n_users,
                        "n_items": self.n_items}, indent=2)
        )
        np.save(directory / "item_counts.npy", self.item_counts_.numpy())

    @classmethod
    def load(cls, directory: Path) -> Self:
        meta = json.loads((directory / "model.json").read_text())
        model = cls(PopRecConfig(), n_users=meta["n_users"], n_items=meta["n_items"])
        model.item_counts_ = torch.from_numpy(np.load(directory / "item_counts.npy"))
        return model
