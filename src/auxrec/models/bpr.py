"""BPR-MF: matrix factorisation trained with Bayesian Personalized Ranking.

Rendle, Freudenthaler, Gantner, Schmidt-Thieme. "BPR: Bayesian Personalized Ranking
from Implicit Feedback." UAI 2009.

Score x_ui = <p_u, q_i> + b_i. For each training pair (u, i) one negative j is drawn
uniformly from the items u has not interacted with in training, and the loss is
-log sigma(x_ui - x_uj) plus an L2 penalty on the embeddings used in the batch.
Deviations from the paper: mini-batch AdamW instead of per-sample SGD (much faster on
vectorised hardware); an item bias, as in most public implementations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from auxrec.data.dataset import PreparedDataset
from auxrec.data.sampling import pair_keys, sample_unseen_items
from auxrec.models.base import NeuralRecommender, UserHistories


@dataclass(frozen=True)
class BPRConfig:
    embedding_dim: Annotated[int, Field(ge=1, description="width of the user and item vectors")] = 64
    l2_regularization: Annotated[float, Field(ge=0, allow_inf_nan=False, description="weight of "
                                              "||p_u||² + ||q_i||² + ||q_j||² per training pair")] = 1e-5
    init_std: Annotated[float, Field(gt=0, allow_inf_nan=False, description="std of the normal initialisation "
                                     "of the vectors")] = 0.01


class BPR(NeuralRecommender):
    name: ClassVar[str] = "bpr"
    config_class: ClassVar[type] = BPRConfig
    history_length = 0

    def __init__(self, config: BPRConfig, *, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users=n_users, n_items=n_items)
        self.user_embedding = nn.Embedding(n_users + 1, config.embedding_dim)
        self.item_embedding = nn.Embedding(n_items + 1, config.embedding_dim)
        self.item_bias = nn.Embedding(n_items + 1, 1)
        nn.init.normal_(self.user_embedding.weight, std=config.init_std)
        nn.init.normal_(self.item_embedding.weight, std=config.init_std)
        nn.init.zeros_(self.item_bias.weight)

    def training_units(self, dataset: PreparedDataset) -> tuple[np.ndarray, np.ndarray | None]:
        sequences = dataset.train_sequences
        # Cache the flat (user, item) arrays and the sorted positive keys once per dataset.
        if getattr(self, "_pairs_for", None) is not sequences:
            users = sequences.owners
            items = sequences.items.astype(np.int64)
            self._pairs = (users, items, pair_keys(users, items, self.n_items))
            self._pairs_for = sequences
        return np.arange(len(self._pairs[0])), None

    def make_batch(
        self, dataset: PreparedDataset, units: np.ndarray, rng: np.random.Generator
    ) -> dict[str, torch.Tensor]:
        users, items, positive_keys = self._pairs
        batch_users, batch_items = users[units], items[units]
        negatives = sample_unseen_items(batch_users, positive_keys, self.n_items, rng)
        return {
            "users": torch.from_numpy(batch_users),
            "positives": torch.from_numpy(batch_items),
            "negatives": torch.from_numpy(negatives),
        }

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        user_vectors = self.user_embedding(batch["users"])  # (B, d)
        positive_vectors = self.item_embedding(batch["positives"])  # (B, d)
        negative_vectors = self.item_embedding(batch["negatives"])  # (B, d)
        positive_scores = (user_vectors * positive_vectors).sum(-1) + self.item_bias(batch["positives"]).squeeze(-1)
        negative_scores = (user_vectors * negative_vectors).sum(-1) + self.item_bias(batch["negatives"]).squeeze(-1)
        ranking_loss = -F.logsigmoid(positive_scores - negative_scores).mean()
        penalty = (user_vectors.pow(2) + positive_vectors.pow(2) + negative_vectors.pow(2)).sum(-1).mean()
        return ranking_loss + self.config.l2_regularization * penalty

    @torch.no_grad()
    def item_vectors(self) -> torch.Tensor:
        return self.item_embedding.weight

    @torch.no_grad()
    def score(self, histories: UserHistories, candidates: np.ndarray | None = None) -> torch.Tensor:
        users = torch.as_tensor(histories.users, dtype=torch.long, device=self.device)
        user_vectors = self.user_embedding(users)  # (B, d)
        if candidates is None:
            return user_vectors @ self.item_embedding.weight.T + self.item_bias.weight.T  # (B, n_items + 1)
        candidate_ids = torch.as_tensor(candidates, dtype=torch.long, device=self.device)
        candidate_vectors = self.item_embedding(candidate_ids)  # (B, C, d)
        return torch.einsum("bd,bcd->bc", user_vectors, candidate_vectors) + self.item_bias(candidate_ids).squeeze(-1)
