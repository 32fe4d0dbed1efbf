"""TransRec: items as points, users as translation vectors between consecutive items.

He, Kang, McAuley. "Translation-based Recommendation." RecSys 2017.

Every item j is a point γ_j in R^d with a bias β_j; every user u has a translation t_u
added to a global translation t. After previous item i, the score of next item j is

    score(j | u, i) = β_j − d(γ_i + t + t_u, γ_j)

with d the **squared** Euclidean distance. The paper allows any distance (it names L1
and L2); we use L2, squared, because the square is differentiable everywhere (plain L2
is not where a = γ_j) and expands into ``||a||² − 2 a·γ_j + ||γ_j||²``, so full ranking
is one matmul and never builds a (B, n_items, d) tensor. (RecBole's TransRec uses the
plain, unsquared distance.) The previous item is the last history item
(``history_length = 1``); a user with no history starts from the origin (γ_0 = 0), i.e.
``a = t + t_u``.

Training is S-BPR over consecutive training pairs (i → j) of each user: one negative j'
per pair drawn uniformly from the items the user has not interacted with in training,
loss ``−log σ(score(j) − score(j'))`` plus an L2 penalty on the parameters the pair uses
(γ_i, γ_j, γ_j', t_u, β_j, β_j', and the global t).

Deviations from the paper, each deliberate:
- **Unit ball.** The paper projects item vectors back into the unit ball after each SGD
  step. Here the trainer is generic (AdamW, no post-step hook), so the projection is in
  the forward computation instead: every looked-up item vector is scaled by
  ``1 / max(1, ||γ||)`` (what ``torch.renorm(..., maxnorm=1)`` does, without its 1e-7
  fudge), in training and scoring alike. The stored parameters may leave the ball; the
  vectors the model *uses* never do, and the gradient flows through the scaling.
- Mini-batch AdamW instead of per-sample SGD, as for every neural model here.
- The first item of a sequence (which has no predecessor) is not a training target,
  as in the paper; at scoring time an empty history falls back to the origin.
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
from auxrec.data.ids import PADDING_ID
from auxrec.data.sampling import pair_keys, sample_unseen_items
from auxrec.models.base import NeuralRecommender, UserHistories


@dataclass(frozen=True)
class TransRecConfig:
    embedding_dim: Annotated[int, Field(ge=1, description="width of the item points and user translations")] = 64
    l2_regularization: Annotated[float, Field(ge=0, allow_inf_nan=False, description="weight of the squared "
                                              "norms of the parameters a training pair uses")] = 1e-5
    init_std: Annotated[float, Field(gt=0, allow_inf_nan=False, description="std of the item points' "
                                     "initialisation (translations and biases start at zero)")] = 0.1


def unit_ball(vectors: torch.Tensor) -> torch.Tensor:
    """Scale every row (last dimension) with norm above 1 back onto the unit sphere."""
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp(min=1.0)


class TransRec(NeuralRecommender):
    name: ClassVar[str] = "transrec"
    config_class: ClassVar[type] = TransRecConfig
    history_length = 1

    def __init__(self, config: TransRecConfig, *, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users=n_users, n_items=n_items)
        width = config.embedding_dim
        # Row 0 is the padding "item": kept at the origin, so an empty history means a = t + t_u.
        self.item_embedding = nn.Embedding(n_items + 1, width, padding_idx=PADDING_ID)
        self.item_bias = nn.Embedding(n_items + 1, 1, padding_idx=PADDING_ID)
        self.user_translation = nn.Embedding(n_users + 1, width)
        self.global_translation = nn.Parameter(torch.zeros(width))
        nn.init.normal_(self.item_embedding.weight, std=config.init_std)
        with torch.no_grad():
            self.item_embedding.weight[PADDING_ID].zero_()
        nn.init.zeros_(self.item_bias.weight)
        nn.init.zeros_(self.user_translation.weight)

    # -- training -----------------------------------------------------------------
    def training_units(self, dataset: PreparedDataset) -> tuple[np.ndarray, np.ndarray | None]:
        """One unit per consecutive training pair (i -> j) of a user."""
        sequences = dataset.train_sequences
        # Cache the pair arrays and the sorted positive keys once per dataset.
        if getattr(self, "_pairs_for", None) is not sequences:
            users = sequences.owners
            items = sequences.items.astype(np.int64)
            # Event k and event k + 1 of the flat CSR array form a pair when one user owns both.
            same_user = users[:-1] == users[1:]
            self._pairs = (
                users[:-1][same_user],
                items[:-1][same_user],
                items[1:][same_user],
                pair_keys(users, items, self.n_items),
            )
            self._pairs_for = sequences
        return np.arange(len(self._pairs[0])), None

    def make_batch(
        self, dataset: PreparedDataset, units: np.ndarray, rng: np.random.Generator
    ) -> dict[str, torch.Tensor]:
        pair_users, previous, following, positive_keys = self._pairs
        batch_users = pair_users[units]
        negatives = sample_unseen_items(batch_users, positive_keys, self.n_items, rng)
        return {
            "users": torch.from_numpy(batch_users),
            "previous": torch.from_numpy(previous[units]),
            "positives": torch.from_numpy(following[units]),
            "negatives": torch.from_numpy(negatives),
        }

    def _translated(self, users: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """a = unit(γ_i) + t + t_u for a batch of (user, previous item): (B, d)."""
        point = unit_ball(self.item_embedding(previous))
        return point + self.global_translation + self.user_translation(users)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raw_previous = self.item_embedding(batch["previous"])
        raw_positive = self.item_embedding(batch["positives"])
        raw_negative = self.item_embedding(batch["negatives"])
        user_vectors = self.user_translation(batch["users"])
        anchor = unit_ball(raw_previous) + self.global_translation + user_vectors  # (B, d)
        positive_bias = self.item_bias(batch["positives"]).squeeze(-1)
        negative_bias = self.item_bias(batch["negatives"]).squeeze(-1)
        positive_scores = positive_bias - (anchor - unit_ball(raw_positive)).pow(2).sum(-1)
        negative_scores = negative_bias - (anchor - unit_ball(raw_negative)).pow(2).sum(-1)
        ranking_loss = -F.logsigmoid(positive_scores - negative_scores).mean()
        penalty = (
            (raw_previous.pow(2) + raw_positive.pow(2) + raw_negative.pow(2) + user_vectors.pow(2)).sum(-1)
            + positive_bias.pow(2)
            + negative_bias.pow(2)
        ).mean() + self.global_translation.pow(2).sum()
        return ranking_loss + self.config.l2_regularization * penalty

    # -- scoring ------------------------------------------------------------------
    @torch.no_grad()
    def item_vectors(self) -> torch.Tensor:
        return self.item_embedding.weight

    @torch.no_grad()
    def score(self, histories: UserHistories, candidates: np.ndarray | None = None) -> torch.Tensor:
        users = torch.as_tensor(histories.users, dtype=torch.long, device=self.device)
        sequences = np.asarray(histories.sequences)
        if sequences.ndim == 2 and sequences.shape[1] > 0:
            previous_ids = sequences[:, -1]
        else:  # no history given: start from the origin
            previous_ids = np.full(len(users), PADDING_ID)
        previous = torch.as_tensor(previous_ids, dtype=torch.long, device=self.device)
        anchor = self._translated(users, previous)  # (B, d)
        anchor_norms = anchor.pow(2).sum(-1, keepdim=True)  # (B, 1)
        # ||a − γ_j||² = ||a||² − 2 a·γ_j + ||γ_j||²: a matmul, no (B, n_items, d) tensor.
        if candidates is None:
            points = unit_ball(self.item_embedding.weight)  # (n_items + 1, d)
            distances = anchor_norms - 2 * anchor @ points.T + points.pow(2).sum(-1)
            return self.item_bias.weight.T - distances  # (B, n_items + 1)
        candidate_ids = torch.as_tensor(candidates, dtype=torch.long, device=self.device)
        points = unit_ball(self.item_embedding(candidate_ids))  # (B, C, d)
        cross = torch.bmm(points, anchor.unsqueeze(-1)).squeeze(-1)  # (B, C)
        distances = anchor_norms - 2 * cross + points.pow(2).sum(-1)
        return self.item_bias(candidate_ids).squeeze(-1) - distances  # (B, C)
