"""A first-order Markov chain recommender, written the way docs/extending.md shows.

Score of item j for a user whose last item is i: how often j followed i in the training
sequences (plus a small popularity prior so that unseen transitions still rank). Not
trained by gradient descent (``trainable = False``): ``fit`` counts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Self

import numpy as np
import torch
from pydantic import Field

from auxrec.data.dataset import PreparedDataset
from auxrec.exceptions import ConfigError
from auxrec.models.contract import UserHistories


@dataclass(frozen=True)
class MarkovChainConfig:
    prior: Annotated[float, Field(ge=0, description="weight of the popularity prior")] = 0.01


class MarkovChain:
    name: ClassVar[str] = "markov"
    trainable: ClassVar[bool] = False
    uses_item_features: ClassVar[bool] = False
    required_features: ClassVar[tuple[str, ...]] = ()
    relative_cost: ClassVar[int] = 1
    scores_new_histories: ClassVar[bool] = True
    history_length = 1  # score() sees each user's last item

    @classmethod
    def revisions(cls, config: MarkovChainConfig, with_features: bool) -> dict[str, int]:
        return {"model": 1}

    def __init__(self, config: MarkovChainConfig, *, n_users: int, n_items: int) -> None:
        self.config, self.n_users, self.n_items = config, n_users, n_items

    def fit(self, dataset: PreparedDataset) -> Self:
        sequences = dataset.train_sequences
        owners = sequences.owners
        same_user = owners[1:] == owners[:-1]  # consecutive entries of one user
        previous, following = sequences.items[:-1][same_user], sequences.items[1:][same_user]
        counts = np.zeros((self.n_items + 1, self.n_items + 1), np.float32)
        np.add.at(counts, (previous, following), 1.0)
        popularity = dataset.train_item_counts / max(dataset.train_item_counts.max(), 1)
        self.transitions_ = torch.from_numpy(counts + self.config.prior * popularity[None, :].astype(np.float32))
        return self

    def score(self, histories: UserHistories, candidates: np.ndarray | None = None) -> torch.Tensor:
        rows = self.transitions_[torch.as_tensor(histories.sequences[:, -1], dtype=torch.long)]  # (B, n_items + 1)
        if candidates is None:
            return rows
        return torch.gather(rows, 1, torch.as_tensor(candidates, dtype=torch.long))

    def feature_dims(self) -> dict[str, int] | None:
        return None

    def item_vectors(self) -> torch.Tensor | None:
        return None

    def add_items(self, feature_rows: dict[str, torch.Tensor], neighbours: torch.Tensor | None = None,
                  weights: torch.Tensor | None = None) -> None:
        raise ConfigError("markov knows items by their transitions only")

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "model.json").write_text(json.dumps({"name": self.name, "config": asdict(self.config),
                                                          "n_users": self.n_users, "n_items": self.n_items}))
        torch.save(self.transitions_, directory / "transitions.pt")

    @classmethod
    def load(cls, directory: Path) -> Self:
        meta = json.loads((directory / "model.json").read_text())
        model = cls(MarkovChainConfig(**meta["config"]), n_users=meta["n_users"], n_items=meta["n_items"])
        model.transitions_ = torch.load(directory / "transitions.pt", weights_only=True)
        return model
