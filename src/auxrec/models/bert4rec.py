"""BERT4Rec and BERT4Rec+: bidirectional self-attention trained by masked-item prediction.

Sun, Liu, Wu, Pei, Lin, Ou, Jiang. "BERT4Rec: Sequential Recommendation with
Bidirectional Encoder Representations from Transformer." CIKM 2019.
BERT4Rec+ is this class constructed with `ItemFeatures` (input = item + position +
projected auxiliary vector), exactly as SASRec+.

It shares SASRec's base (`auxrec.models.sequence_transformer`) and differs where the paper
does: attention is bidirectional, 2 heads, GELU feed-forward 4× wide, and training masks
a random ``mask_probability`` share of the items of each sequence (a [MASK] token id
``n_items + 1``) and predicts them with cross-entropy over all items. At inference the
history is followed by one [MASK] and the state at that position scores the next item.

Deviations: masks are drawn afresh every epoch (dynamic masking) instead of the paper's
fixed, duplicated training instances; every masked item becomes [MASK] (no 10% random /
10% unchanged replacement); at least one item per sequence is masked; pre-LayerNorm by
default (``norm_first``). The [MASK] token has no auxiliary vector (zeros).
``loss="sampled"`` replaces the full softmax over all items by the sampled softmax with
the logQ correction, for large catalogues (`SequenceTransformer.sampled_softmax_loss`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from auxrec.data.dataset import PreparedDataset
from auxrec.data.ids import PADDING_ID
from auxrec.models.fusion import FusionSettings, check_fusion_config
from auxrec.models.sequence_transformer import SequenceTransformer, check_heads_divide_width
from auxrec.models.transformer import reverse_positions, trim_padding


@dataclass(frozen=True)
class BERT4RecConfig(FusionSettings):
    """BERT4Rec's architecture; ranges are checked when settings are resolved (before training)."""

    hidden_dim: Annotated[int, Field(ge=1, description="model width d (item, position and hidden vectors)")] = 64
    n_blocks: Annotated[int, Field(ge=1, description="self-attention blocks")] = 2
    n_heads: Annotated[int, Field(ge=1, description="attention heads; must divide hidden_dim")] = 2
    ffn_dim: Annotated[int, Field(ge=1, description="inner width of the feed-forward layer (GELU)")] = 256
    dropout: Annotated[float, Field(ge=0, lt=1, description="dropout rate of embeddings, attention and "
                                    "feed-forward")] = 0.2
    max_length: Annotated[int, Field(ge=1, description="positions read per user; at inference the history "
                                     "keeps max_length - 1 items beside the [MASK]")] = 200
    mask_probability: Annotated[float, Field(gt=0, le=1, description="share of training items replaced by "
                                             "[MASK] (at least one per sequence)")] = 0.2
    loss: Annotated[Literal["ce", "sampled"], Field(
        description="ce: full-softmax cross-entropy over all items; sampled: sampled softmax against "
                    "n_negatives items (large catalogues)")] = "ce"
    n_negatives: Annotated[int, Field(ge=1, description="loss=sampled: distinct items drawn uniformly per "
                                      "batch (shared by its positions) that the target competes with")] = 1000
    norm_first: Annotated[bool, Field(description="pre-LayerNorm blocks (more stable); false = post-norm")] = True
    init_std: Annotated[float, Field(gt=0, allow_inf_nan=False, description="std of the normal initialisation "
                                     "of embeddings and linear layers")] = 0.02

    def __post_init__(self) -> None:
        check_heads_divide_width(self.hidden_dim, self.n_heads)
        check_fusion_config(self)


class BERT4Rec(SequenceTransformer):
    name: ClassVar[str] = "bert4rec"
    config_class: ClassVar[type] = BERT4RecConfig
    causal: ClassVar[bool] = False
    activation: ClassVar[str] = "gelu"
    relative_cost: ClassVar[int] = 4
    revision: ClassVar[int] = 1  # its own loss: SASRec's padding-position fix does not apply

    @property
    def n_embeddings(self) -> int:
        return self.n_items + 2  # items, padding and [MASK]

    @property
    def mask_id(self) -> int:
        return self.n_items + 1

    def embed(self, sequences: torch.Tensor) -> torch.Tensor:
        x = self.id_rows(sequences) + self.position_embedding(reverse_positions(sequences))
        if self.fusion is not None:
            # [MASK] carries no side information: look up the padding row (zeros) instead.
            x = x + self.fusion(torch.where(sequences == self.mask_id, PADDING_ID, sequences))
        return x

    def training_units(self, dataset: PreparedDataset) -> tuple[np.ndarray, np.ndarray | None]:
        lengths = dataset.train_sequences.lengths
        users = np.flatnonzero(lengths >= 2)
        return users, np.minimum(lengths[users], self.config.max_length)

    def make_batch(
        self, dataset: PreparedDataset, units: np.ndarray, rng: np.random.Generator
    ) -> dict[str, torch.Tensor]:
        items = trim_padding(torch.from_numpy(dataset.train_sequences.padded(units, self.config.max_length)))
        real = (items != PADDING_ID).numpy()
        masked = (rng.random(items.shape) < self.config.mask_probability) & real
        # Guarantee one masked item per sequence: mask a random real position where none was.
        empty = np.flatnonzero(~masked.any(axis=1))
        if len(empty):
            counts = real[empty].sum(axis=1)
            offsets = (rng.random(len(empty)) * counts).astype(np.int64)
            masked[empty, items.shape[1] - counts + offsets] = True
        masked_t = torch.from_numpy(masked)
        batch = {
            "inputs": torch.where(masked_t, self.mask_id, items),
            "targets": torch.where(masked_t, items, PADDING_ID),
        }
        if self.config.loss == "sampled":
            batch["sampled_items"] = torch.from_numpy(self.draw_sampled_items(rng))
        return batch

    def loss_count(self, batch: dict[str, torch.Tensor]) -> int:
        return int((batch["targets"] != PADDING_ID).sum())  # the masked positions

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.config.loss == "sampled":
            targets = batch["targets"]
            return self.sampled_softmax_loss(batch["inputs"], targets, targets != PADDING_ID,
                                             batch["sampled_items"])
        has_target = batch["targets"] != PADDING_ID  # the masked positions
        with self.fusion_batch():
            hidden, targets = self.counted_states(batch["inputs"], has_target, batch["targets"])  # (N, d), (N,)
            items = self.output_embeddings()
        return self.full_softmax_loss(hidden, items, targets)

    def user_states(self, sequences: torch.Tensor) -> torch.Tensor:
        """Append [MASK] after the (last max_length − 1 items of the) history; its state scores."""
        mask_column = torch.full((sequences.shape[0], 1), self.mask_id, dtype=sequences.dtype,
                                 device=sequences.device)  # (B, 1)
        # The [MASK] takes one of the max_length positions. Slice from an explicit start:
        # ``[:, -0:]`` would keep everything when max_length is 1.
        start = max(sequences.shape[1] - (self.config.max_length - 1), 0)
        extended = torch.cat([sequences[:, start:], mask_column], dim=1)  # (B, ≤ max_length)
        hidden, _ = self.encode(trim_padding(extended))
        return hidden[:, -1]
