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
from contextlib import AbstractContextManager, nullcontext
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from auxrec.data.dataset import PreparedDataset
from auxrec.data.ids import PADDING_ID
from auxrec.exceptions import ConfigError
from auxrec.features.item_features import ItemFeatures
from auxrec.models.base import NeuralRecommender, UserHistories
from auxrec.models.fusion import FUSION_REVISIONS, AuxiliaryFusion, FusionSettings, check_fusion_config, fusion_options
from auxrec.models.transformer import TransformerBlock, attention_mask, reverse_positions, trim_padding

SASREC_LOSSES = ("ce", "bce")


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
    loss: Annotated[Literal["ce", "bce"], Field(description="ce: full-softmax cross-entropy over all items; bce: "
                                           "the paper's binary cross-entropy, one sampled negative")] = "ce"
    norm_first: Annotated[bool, Field(description="pre-LayerNorm blocks (more stable); false = the paper's "
                                      "post-norm")] = True
    init_std: Annotated[float, Field(gt=0, allow_inf_nan=False, description="std of the normal initialisation "
                                     "of embeddings and linear layers")] = 0.02
    def __post_init__(self) -> None:
        check_heads_divide_width(self.hidden_dim, self.n_heads)
        check_fusion_config(self)


def check_heads_divide_width(hidden_dim: int, n_heads: int) -> None:
    """Multi-head attention splits the width into equal heads."""
    if n_heads >= 1 and hidden_dim % n_heads:
        raise ValueError(f"hidden_dim {hidden_dim} is not divisible by n_heads {n_heads}; choose a hidden_dim "
                         f"that is a multiple of {n_heads}")


class SASRec(NeuralRecommender):
    name: ClassVar[str] = "sasrec"
    config_class: ClassVar[type] = SASRecConfig
    causal: ClassVar[bool] = True
    activation: ClassVar[str] = "relu"
    uses_item_features: ClassVar[bool] = True  # SASRec+ is this class with item features
    relative_cost: ClassVar[int] = 2
    scores_new_histories: ClassVar[bool] = True  # the state comes from the history alone
    revision: ClassVar[int] = 2  # 2: the position whose input is padding no longer trains

    @classmethod
    def revisions(cls, config: SASRecConfig, with_features: bool) -> dict[str, int]:
        found = {"model": cls.revision}
        if with_features:
            found["fusion"] = FUSION_REVISIONS[config.aux_fusion]
        return found

    def __init__(
        self, config: SASRecConfig, *, n_users: int, n_items: int, item_features: ItemFeatures | None = None
    ) -> None:
        super().__init__(config, n_users=n_users, n_items=n_items)
        loss = getattr(config, "loss", "ce")  # BERT4Rec's config has no choice: masked-item CE
        if loss not in SASREC_LOSSES:
            raise ConfigError(f"unknown loss {loss!r}; choose one of {', '.join(SASREC_LOSSES)}")
        self.history_length = config.max_length
        width = config.hidden_dim
        self.item_embedding = nn.Embedding(self.n_embeddings, width, padding_idx=PADDING_ID)
        self.position_embedding = nn.Embedding(config.max_length, width)
        self.input_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(width, config.n_heads, config.ffn_dim, config.dropout, self.activation,
                             config.norm_first)
            for _ in range(config.n_blocks)
        )
        self.final_norm = nn.LayerNorm(width)
        self.apply(self._init_weights)
        # Built last, so SASRec and SASRec+ with the same seed start from identical id-side
        # weights and a paired comparison isolates the effect of the auxiliary information.
        self.fusion = (
            AuxiliaryFusion.from_features(item_features, config.aux_fusion, width, **fusion_options(config))
            if item_features else None
        )
        if self.fusion is not None:
            self.fusion.apply(self._init_weights)  # touches only Linear (and Embedding) layers
            if config.aux_init == "zero":
                self.fusion.start_at_zero()

    @property
    def n_embeddings(self) -> int:
        return self.n_items + 1

    def parameter_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW parameter groups: the fusion's with ``aux_weight_decay`` (when set), the rest ``weight_decay``.

        One group of every parameter, in `parameters()` order, when there is no fusion or
        no fusion-specific decay (the optimiser is then the one ``model.parameters()`` gives).
        Use: ``torch.optim.AdamW(model.parameter_groups(wd), lr=lr, weight_decay=wd)``.
        """
        decay = self.config.aux_weight_decay
        if self.fusion is None or decay is None:
            return [{"params": list(self.parameters()), "weight_decay": weight_decay}]
        fusion = list(self.fusion.parameters())
        in_fusion = {id(parameter) for parameter in fusion}
        rest = [parameter for parameter in self.parameters() if id(parameter) not in in_fusion]
        return [{"params": rest, "weight_decay": weight_decay}, {"params": fusion, "weight_decay": decay}]

    def fusion_batch(self) -> AbstractContextManager[None]:
        """Context of one training batch: one modality-dropout draw shared by input and output side."""
        return self.fusion.batch() if self.fusion is not None else nullcontext()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Embedding | nn.Linear):
            nn.init.normal_(module.weight, std=self.config.init_std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    # -- encoding ----------------------------------------------------------------
    def embed(self, sequences: torch.Tensor) -> torch.Tensor:
        """(B, L) ids → (B, L, d) input: item + position (+ projected auxiliary vector)."""
        x = self.item_embedding(sequences) + self.position_embedding(reverse_positions(sequences))
        if self.fusion is not None:
            x = x + self.fusion(sequences)
        return x

    def encode(self, sequences: torch.Tensor, return_weights: bool = False
               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, L) left-padded ids → (B, L, d) hidden states (and per-block attention weights)."""
        real = (sequences != PADDING_ID).unsqueeze(-1)  # (B, L, 1)
        mask = attention_mask(sequences, causal=self.causal)  # (B, 1, L, L)
        x = self.input_dropout(self.embed(sequences)) * real
        weights: list[torch.Tensor] = []
        for block in self.blocks:
            x, block_weights = block(x, mask, return_weights)
            x = x * real
            if block_weights is not None:
                weights.append(block_weights)
        return self.final_norm(x), weights

    def output_embeddings(self) -> torch.Tensor:
        """(n_items + 1, d) candidate representations (padding row included, never a [MASK] row)."""
        table = self.item_embedding.weight[: self.n_items + 1]
        if self.fusion is not None and self.config.aux_on_output:
            table = table + self.fusion.all_items()[: self.n_items + 1]
        return table

    @torch.no_grad()
    def add_items(self, feature_rows: dict[str, torch.Tensor], neighbours: torch.Tensor | None = None,
                  weights: torch.Tensor | None = None) -> None:
        """Append items known only by their content: ids n_items + 1 … n_items + m (see the base class).

        A new item's id embedding is the ``weights``-weighted mean of the id embeddings of
        ``neighbours`` (m, K) (zero without them); its content enters like every item's,
        on the input side and, with ``aux_on_output``, among the candidates.
        """
        if self.fusion is None:
            raise ConfigError(f"this {self.name} run was trained without item features, so it knows nothing of "
                              "items added after training; train it with --aux (and --set aux_on_output=true)")
        n_new = len(next(iter(feature_rows.values())))
        old = self.item_embedding.weight
        keep_last = old[self.n_items + 1:]  # BERT4Rec's [MASK] row stays the last one
        borrowed = old.new_zeros(n_new, old.shape[1])
        if neighbours is not None and weights is not None and neighbours.numel():
            borrowed = (weights.to(old).unsqueeze(-1) * old[neighbours.to(old.device)]).sum(1)
        table = torch.cat([old[: self.n_items + 1], borrowed, keep_last])
        self.item_embedding = nn.Embedding.from_pretrained(table, freeze=True, padding_idx=PADDING_ID)
        self.fusion.append_rows(feature_rows)
        self.n_items += n_new

    @torch.no_grad()
    def item_vectors(self) -> torch.Tensor:
        return self.output_embeddings()

    @torch.no_grad()
    def attention_weights(self, sequences: np.ndarray | torch.Tensor) -> list[torch.Tensor]:
        """Per block, (B, n_heads, L, L) attention weights for left-padded ``sequences``."""
        self.eval()
        sequences_t = torch.as_tensor(sequences, dtype=torch.long, device=self.device)
        _, weights = self.encode(sequences_t, return_weights=True)
        return weights

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
            batch["negatives"] = torch.from_numpy(rng.integers(1, self.n_items + 1, size=tuple(window[:, 1:].shape)))
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

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with self.fusion_batch():
            hidden, _ = self.encode(batch["inputs"])  # (B, L, d)
            items = self.output_embeddings()
        counted = self.loss_positions(batch)  # (B, L)
        targets = batch["targets"][counted]  # (N,)
        hidden = hidden[counted]  # (N, d)
        if self.config.loss == "ce":
            logits = hidden @ items[1:].T  # (N, n_items); padding is never a target
            return F.cross_entropy(logits.float(), targets - 1)
        positive = (hidden * items[targets]).sum(-1)  # (N,)
        negative = (hidden * items[batch["negatives"][counted]]).sum(-1)  # (N,)
        return F.binary_cross_entropy_with_logits(positive, torch.ones_like(positive)) + \
            F.binary_cross_entropy_with_logits(negative, torch.zeros_like(negative))

    # -- inference ---------------------------------------------------------------
    def user_states(self, sequences: torch.Tensor) -> torch.Tensor:
        """(B, L) histories → (B, d) state after the most recent item."""
        hidden, _ = self.encode(trim_padding(sequences))
        return hidden[:, -1]

    @torch.no_grad()
    def score(self, histories: UserHistories, candidates: np.ndarray | None = None) -> torch.Tensor:
        sequences = torch.as_tensor(histories.sequences, dtype=torch.long, device=self.device)
        states = self.user_states(sequences)  # (B, d)
        items = self.output_embeddings()
        if candidates is None:
            return states @ items.T  # (B, n_items + 1)
        candidate_ids = torch.as_tensor(candidates, dtype=torch.long, device=self.device)
        return torch.einsum("bd,bcd->bc", states, items[candidate_ids])  # (B, C)
