"""SASRec and SASRec+: causal self-attention over a user's item sequence.

Kang & McAuley. "Self-Attentive Sequential Recommendation." ICDM 2018.
SASRec+ (auxiliary information): the input at position t is
``E_item[v_t] + E_pos[t] + W · k_{v_t}``, where ``k_v`` is the item's fused auxiliary
vector (`auxrec.models.fusion`); SASRec+ is this class constructed with `ItemFeatures`.

Architecture as in the paper: 2 blocks, 1 head, point-wise ReLU feed-forward, dropout,
LayerNorm, and one item embedding shared by input and output (score = <h_t, E_item[i]>).

Deviations, each deliberate:
- **Loss.** Default ``ce``: full-softmax cross-entropy over all items at every position.
  The paper's binary cross-entropy with one sampled negative per position is available
  as ``loss="bce"``. Reproductions (Klenitskiy & Vasilev, RecSys 2023; Petrov &
  Macdonald, RecSys 2023) report large accuracy gains from cross-entropy, and on our data
  it converges in fewer epochs; BCE negatives are drawn uniformly from all items (a
  collision with a positive has probability ~len/n_items and is not rejected). Either
  loss counts only positions whose input is a real item (as the reference SASRec does):
  a user with n training items trains min(n, max_length + 1) − 1 positions.
  ``loss="sampled"`` is the sampled softmax for large catalogues: the target against
  ``n_negatives`` items drawn per batch, with the logQ correction
  (`SequenceTransformer.sampled_softmax_loss`).
- **Pre-LayerNorm** blocks by default (``norm_first``; the paper is post-norm) — more
  stable with larger learning rates; ``norm_first=False`` gives the paper's layout.
- **Positions** are counted from the most recent item, so per-batch trimming of padding
  never changes an item's position id.
- Linear feed-forward layers instead of 1×1 convolutions (the same function).
- Optional ``aux_on_output``: candidate items are represented by ``E_item + W · k`` too,
  so items never seen in training still get meaningful scores (beyond the paper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from auxrec.data.dataset import PreparedDataset
from auxrec.data.ids import PADDING_ID
from auxrec.models.fusion import FusionSettings, check_fusion_config
from auxrec.models.sequence_transformer import SequenceTransformer, check_heads_divide_width
from auxrec.models.transformer import trim_padding


@dataclass(frozen=True)
class SASRecConfig(FusionSettings):
    """SASRec's architecture; ranges are checked when settings are resolved (before training)."""

    hidden_dim: Annotated[int, Field(ge=1, description="model width d (item, position and hidden vectors)")] = 64
    n_blocks: Annotated[int, Field(ge=1, description="self-attention blocks")] = 2
    n_heads: Annotated[int, Field(ge=1, description="attention heads; must divide hidden_dim")] = 1
    ffn_dim: Annotated[int, Field(ge=1, description="inner width of the point-wise feed-forward layer "
                                  "(the paper keeps the model width)")] = 64
    dropout: Annotated[float, Field(ge=0, lt=1, description="dropout rate of embeddings, attention and "
                                    "feed-forward")] = 0.2
    max_length: Annotated[int, Field(ge=1, description="most recent items read per user (200 suits MovieLens, "
                                     "~50 short sequences such as fashion)")] = 200
    loss: Annotated[Literal["ce", "bce", "sampled"], Field(
        description="ce: full-softmax cross-entropy over all items; bce: the paper's binary cross-entropy, "
                    "one sampled negative; sampled: sampled softmax against n_negatives items (large "
                    "catalogues)")] = "ce"
    n_negatives: Annotated[int, Field(ge=1, description="loss=sampled: distinct items drawn uniformly per "
                                      "batch (shared by its positions) that the target competes with")] = 1000
    norm_first: Annotated[bool, Field(description="pre-LayerNorm blocks (more stable); false = the paper's "
                                      "post-norm")] = True
    init_std: Annotated[float, Field(gt=0, allow_inf_nan=False, description="std of the normal initialisation "
                                     "of embeddings and linear layers")] = 0.02

    def __post_init__(self) -> None:
        check_heads_divide_width(self.hidden_dim, self.n_heads)
        check_fusion_config(self)


class SASRec(SequenceTransformer):
    name: ClassVar[str] = "sasrec"
    config_class: ClassVar[type] = SASRecConfig
    causal: ClassVar[bool] = True
    activation: ClassVar[str] = "relu"
    relative_cost: ClassVar[int] = 2
    revision: ClassVar[int] = 2  # 2: the position whose input is padding no longer trains

    # -- training ----------------------------------------------------------------
    def training_units(self, dataset: PreparedDataset) -> tuple[np.ndarray, np.ndarray | None]:
        """Users with at least two training items; lengths (capped) group similar sequences."""
        lengths = dataset.train_sequences.lengths
        users = np.flatnonzero(lengths >= 2)
        return users, np.minimum(lengths[users], self.config.max_length + 1)

    def make_batch(
        self, dataset: PreparedDataset, units: np.ndarray, rng: np.random.Generator
    ) -> dict[str, torch.Tensor]:
        """Whole training sequences, one row per user: inputs v_1..v_{n-1}, targets v_2..v_n.

        The window holds the last max_length + 1 items, left-padded; a user with n ≤
        max_length + 1 items gets n − 1 loss positions, a longer one max_length (see
        `loss_positions`).
        """
        window = trim_padding(torch.from_numpy(dataset.train_sequences.padded(units, self.config.max_length + 1)))
        batch = {"inputs": window[:, :-1], "targets": window[:, 1:]}
        if self.config.loss == "bce":
            batch["negatives"] = torch.from_numpy(
                self.pool_items(rng.integers(0, self.negative_pool(), size=tuple(window[:, 1:].shape))))
        elif self.config.loss == "sampled":
            batch["sampled_items"] = torch.from_numpy(self.draw_sampled_items(rng))
        return batch

    @staticmethod
    def loss_positions(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, L) True where the loss counts: a real input item with a real target.

        The position just before a user's first item has a padding input and the first
        item as target; predicting it from nothing would train a user-independent
        popularity prior through the padding state, so (as in the reference SASRec) it is
        left out.
        """
        return (batch["inputs"] != PADDING_ID) & (batch["targets"] != PADDING_ID)

    def loss_count(self, batch: dict[str, torch.Tensor]) -> int:
        return int(self.loss_positions(batch).sum())

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.config.loss == "sampled":
            return self.sampled_softmax_loss(batch["inputs"], batch["targets"], self.loss_positions(batch),
                                             batch["sampled_items"])
        counted = self.loss_positions(batch)  # (B, L)
        aligned = (batch["targets"],) if self.config.loss == "ce" else (batch["targets"], batch["negatives"])
        with self.fusion_batch():
            hidden, targets, *negatives = self.counted_states(batch["inputs"], counted, *aligned)  # (N, d), (N,)
            items = self.output_embeddings()
        if self.config.loss == "ce":
            return self.full_softmax_loss(hidden, items, targets)  # padding is never a target
        positive = (hidden * items[targets]).sum(-1)  # (N,)
        negative = (hidden * items[negatives[0]]).sum(-1)  # (N,)
        return F.binary_cross_entropy_with_logits(positive, torch.ones_like(positive)) + \
            F.binary_cross_entropy_with_logits(negative, torch.zeros_like(negative))

    # -- inference ---------------------------------------------------------------
    def user_states(self, sequences: torch.Tensor) -> torch.Tensor:
        """(B, L) histories → (B, d) state after the most recent item."""
        hidden, _ = self.encode(trim_padding(sequences))
        return hidden[:, -1]
