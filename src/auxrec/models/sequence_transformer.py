"""The sequence-transformer base SASRec and BERT4Rec share: embeddings, encoder, fusion, scoring.

Both models read a user's item sequence with the same stack (`auxrec.models.transformer`):
input = item embedding + position embedding (+ the projected auxiliary vector of
`auxrec.models.fusion` for the ``+`` variants), dropout, ``n_blocks`` self-attention
blocks, a final LayerNorm; candidates are scored by the dot product of the user state
with the (shared) item embeddings. What differs lives in the subclasses: the attention
mask (``causal``), the feed-forward activation, how training batches are built and the
loss, and which position's state scores the next item (``user_states``).

Both offer the sampled softmax here (``loss="sampled"``, `sampled_softmax_loss`) for
catalogues whose positions × items logits do not fit, and score the catalogue a range of
items at a time (`item_range_scorer`) so that evaluation's memory is bounded by a setting.

Why a common base and not a component the models hold: the parameters keep the names
they always had (``item_embedding.weight``, ``blocks.0...``), so every run saved before
this split loads unchanged; neither model inherits the other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from auxrec.data.dataset import PreparedDataset
from auxrec.data.ids import PADDING_ID
from auxrec.exceptions import ConfigError
from auxrec.features.item_features import ItemFeatures
from auxrec.models.base import NeuralRecommender, UserHistories
from auxrec.models.content_neighbours import (
    NEIGHBOUR_COUNTS_TRIED,
    choose_neighbour_count,
    content_neighbours,
    nearest_of,
)
from auxrec.models.dropout_noise import DropoutReplay, NoisePrefetcher, SequenceDropout, replaying_dropout
from auxrec.models.fusion import FUSION_REVISIONS, AuxiliaryFusion, fusion_options
from auxrec.models.output_loss import chunked_cross_entropy
from auxrec.models.transformer import (
    TransformerBlock,
    attention_mask,
    length_groups,
    reverse_positions,
    trim_padding,
)


def check_heads_divide_width(hidden_dim: int, n_heads: int) -> None:
    """Multi-head attention splits the width into equal heads."""
    if n_heads >= 1 and hidden_dim % n_heads:
        raise ValueError(f"hidden_dim {hidden_dim} is not divisible by n_heads {n_heads}; choose a hidden_dim "
                         f"that is a multiple of {n_heads}")



class SequenceTransformer(NeuralRecommender):
    """Base of SASRec and BERT4Rec (see the module docstring); subclasses set ``causal``,
    ``activation`` and define ``training_units``, ``make_batch``, ``loss`` and ``user_states``."""

    causal: ClassVar[bool]
    activation: ClassVar[str]
    uses_item_features: ClassVar[bool] = True  # the + variant is the same class with item features
    scores_new_histories: ClassVar[bool] = True  # the state comes from the history alone
    # A training unit is a whole sequence here, so the generic batch of 1024 (made for BPR's
    # pairs) is one or two optimiser steps per epoch on a few thousand users: with it ML-100K's
    # SASRec ended 13% below the reproduction's (issue 13). Measured values: docs/results.md.
    # Patience 10 (validations, one per epoch): at lr 1e-3 validation NDCG@10 plateaus for a few
    # epochs on ML-100K, and patience 5 stopped seed 1 at epoch 29 (valid .448) where seed 0
    # went on to .506 at epoch 64.
    training_defaults: ClassVar[dict[str, Any]] = {"batch_size": 128, "patience": 10}
    shared_batch_keys: ClassVar[tuple[str, ...]] = ("sampled_items",)  # one draw per batch (loss="sampled")
    # CPU training encodes a batch as this many groups of rows of similar length (`counted_states`);
    # 1 encodes it whole. 4 was fastest of 1, 2, 4, 8 for SASRec on ML-100K (benchmarks/README.md).
    training_length_groups: ClassVar[int] = 4

    @classmethod
    def revisions(cls, config: Any, with_features: bool) -> dict[str, int]:
        found = {"model": cls.revision}
        if with_features:
            found["fusion"] = FUSION_REVISIONS[config.aux_fusion]
        return found

    def __init__(
        self, config: Any, *, n_users: int, n_items: int, item_features: ItemFeatures | None = None
    ) -> None:
        super().__init__(config, n_users=n_users, n_items=n_items)
        self.history_length = config.max_length
        width = config.hidden_dim
        self.item_embedding = nn.Embedding(self.n_embeddings, width, padding_idx=PADDING_ID)
        self.position_embedding = nn.Embedding(config.max_length, width)
        self.input_dropout = SequenceDropout(config.dropout)
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
        self._id_keep: torch.Tensor | None = None  # (n_embeddings, 1) the current batch's id-dropout factors
        # The items the training loss ranks a target against (sorted ids), or None for every item;
        # set by `prepare_training` (see `aux_unseen_negatives`). Training only: never saved. A NumPy
        # array for the negative draws, which run on the CPU, and the same ids on the model's device
        # for the loss, so that no training step copies them between the two.
        self.loss_classes: np.ndarray | None = None
        self._loss_classes_on_device: torch.Tensor | None = None
        # CPU training draws the next batch's dropout noise while this one computes (exact: see
        # `auxrec.models.dropout_noise`); a plain attribute, not state: copies start afresh.
        self.noise_prefetcher = NoisePrefetcher()


    def prepare_training(self, dataset: PreparedDataset) -> None:
        """With item features: unless ``aux_unseen_negatives``, train the loss on the items with
        training interactions only (`loss_classes`); with ``aux_unseen_items="content"``, hold the
        id embeddings of the items without training interactions at zero (see the settings): zero
        rows get zero gradients, and Adam then leaves them at zero (its moments stay zero, and
        decoupled weight decay scales zero). Saved weights keep the zeros, so inference needs
        nothing more."""
        self.loss_classes = self._loss_classes_on_device = None
        if self.fusion is None:
            return
        unseen = self._never_trained(dataset)
        if not self.config.aux_unseen_negatives and unseen.any():
            self.loss_classes = np.flatnonzero(~unseen[1:]) + 1
            self._loss_classes_on_device = torch.as_tensor(self.loss_classes, device=self.item_embedding.weight.device)
        if self.config.aux_unseen_items != "content":
            return
        weight = self.item_embedding.weight
        keep = torch.ones(weight.shape[0], 1, device=weight.device, dtype=weight.dtype)
        # BERT4Rec's [MASK] row, after the items, trains as ever
        keep[: self.n_items + 1][torch.as_tensor(unseen, device=weight.device)] = 0.0
        with torch.no_grad():
            weight.mul_(keep)
        weight.register_hook(lambda gradient: gradient * keep)

    @torch.no_grad()
    def finish_training(self, dataset: PreparedDataset,
                        validation_ndcg: Callable[[], np.ndarray] | None = None) -> dict[str, Any] | None:
        """With ``aux_unseen_items="content"``: each item without training interactions borrows the
        similarity-weighted mean id embedding of its ``aux_unseen_id_neighbours`` trained items
        closest in content (`auxrec.models.content_neighbours`), in place of its zero row.

        ``"auto"`` chooses the count, 0 included, by ``validation_ndcg()`` (per-user validation
        NDCG@10 of the model as it stands; without it the rows stay zero). Returns what was
        done, for the run's training log, or None when the setting does not apply.
        """
        setting = self.config.aux_unseen_id_neighbours
        if self.fusion is None or self.config.aux_unseen_items != "content" or setting == 0:
            return None
        unseen = np.flatnonzero(self._never_trained(dataset))
        if not len(unseen):
            return None
        rows = {name: getattr(self.fusion, f"features_{name}")[torch.as_tensor(unseen)].cpu().numpy()
                for name in self.fusion.names}
        # one search for the largest count tried; smaller counts take its first neighbours
        largest = setting if setting != "auto" else max(NEIGHBOUR_COUNTS_TRIED)
        found = content_neighbours(self.fusion, dataset.train_item_counts, rows, largest)

        def borrow(count: int) -> None:
            weight = self.item_embedding.weight
            ids, weights = nearest_of(*found, count)
            # lenders are trained items, whose rows no count changes, so counts can be tried in turn
            borrowed = (torch.as_tensor(weights, device=weight.device, dtype=weight.dtype).unsqueeze(-1)
                        * weight[torch.as_tensor(ids, device=weight.device)]).sum(1)
            weight[torch.as_tensor(unseen, device=weight.device)] = borrowed

        if setting != "auto":
            borrow(setting)
            return {"aux_unseen_id_neighbours": setting, "items": len(unseen)}
        if validation_ndcg is None:
            return {"aux_unseen_id_neighbours": 0, "items": len(unseen), "validation": None}

        def tried(count: int) -> np.ndarray:
            borrow(count)
            return validation_ndcg()

        chosen, measured = choose_neighbour_count(tried)
        borrow(chosen)
        return {"aux_unseen_id_neighbours": chosen, "items": len(unseen), "validation": measured}

    def _never_trained(self, dataset: PreparedDataset) -> np.ndarray:
        """(n_items + 1,) bool: the items without training interactions (padding excluded)."""
        unseen = dataset.train_item_counts[: self.n_items + 1] == 0
        unseen[PADDING_ID] = False
        return unseen

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
        """Context of one training batch: one modality- and id-dropout draw shared by input and output side."""
        return self._fusion_batch() if self.fusion is not None else nullcontext()

    @contextmanager
    def _fusion_batch(self) -> Iterator[None]:
        assert self.fusion is not None
        with self.fusion.batch():
            if self.training and self.config.aux_id_dropout > 0:
                self._id_keep = self.draw_id_keep()
            try:
                yield
            finally:
                self._id_keep = None

    def draw_id_keep(self) -> torch.Tensor:
        """(n_embeddings, 1) id-dropout factors: 0 (the item is its content alone) or 1 (not rescaled:
        a dropped item must look exactly like a cold one). Rows past the items ([MASK]) are kept."""
        assert self.fusion is not None  # drawn only inside `fusion_batch`, with item features
        weight = self.item_embedding.weight
        uniform = self.fusion.draw_uniform(weight.shape[0], 1, weight.device)  # modality dropout's generator
        keep = (uniform >= self.config.aux_id_dropout).to(weight.dtype)
        keep[self.n_items + 1:] = 1.0
        return keep

    def id_rows(self, item_ids: torch.Tensor) -> torch.Tensor:
        """(...,) ids → (..., d) id embeddings, zero where this batch's id dropout drops the item."""
        rows = self.item_embedding(item_ids)
        if self._id_keep is not None:
            rows = rows * self._id_keep[item_ids]
        return rows

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
        x = self.id_rows(sequences) + self.position_embedding(reverse_positions(sequences))
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

    def counted_states(self, inputs: torch.Tensor, counted: torch.Tensor, *aligned: torch.Tensor
                       ) -> tuple[torch.Tensor, ...]:
        """Training: (N, d) final states where ``counted`` (B, L) is True, then each ``aligned`` (B, L) there.

        Equal to ``encode(inputs)[0][counted]`` and ``a[counted]``, up to the order of the N
        rows (the same for every returned tensor) and float rounding. In CPU training the batch
        is encoded in `length_groups`, each trimmed to its longest history, with the whole
        batch's dropout noise replayed (`auxrec.models.transformer`, "Length groups"): the
        same positions, inputs and dropout, less padding. ``counted`` must lie on real input
        positions (a left-padded row's padding never carries a loss).
        """
        groups = self.training_length_groups if self.training and inputs.device.type == "cpu" else 1
        if groups <= 1:
            hidden, _ = self.encode(inputs)
            return (hidden[counted], *(tensor[counted] for tensor in aligned))
        replay = DropoutReplay(*inputs.shape, prefetcher=self.noise_prefetcher)
        parts: list[list[torch.Tensor]] = [[] for _ in range(1 + len(aligned))]
        with replaying_dropout(replay):
            for rows in length_groups(inputs, groups):
                group = trim_padding(inputs[rows])
                width = group.shape[1]
                replay.start_group(rows, width)
                hidden, _ = self.encode(group)
                group_counted = counted[rows][:, -width:]
                for part, tensor in zip(parts, (hidden, *(t[rows][:, -width:] for t in aligned)), strict=True):
                    part.append(tensor[group_counted])
        replay.finish()
        return tuple(torch.cat(part) for part in parts)

    def output_embeddings(self) -> torch.Tensor:
        """(n_items + 1, d) candidate representations (padding row included, never a [MASK] row)."""
        table = self.item_embedding.weight[: self.n_items + 1]
        if self._id_keep is not None:
            table = table * self._id_keep[: self.n_items + 1]
        if self.fusion is not None and self.config.aux_on_output:
            table = table + self.fusion.all_items()[: self.n_items + 1]
        return table

    def output_rows(self, item_ids: torch.Tensor) -> torch.Tensor:
        """(...,) item ids → (..., d) their rows of `output_embeddings`, without building the whole table."""
        rows = self.id_rows(item_ids)
        if self.fusion is not None and self.config.aux_on_output:
            rows = rows + self.fusion(item_ids)
        return rows

    def full_softmax_loss(self, hidden: torch.Tensor, items: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of ``hidden`` (N, d) against the `loss_classes` rows of ``items`` (the
        `output_embeddings`); ``targets`` (N,) are item ids, never padding."""
        if self.loss_classes is None:
            # = F.cross_entropy(hidden @ items[1:].T, targets - 1) without (N, n_items) tensors
            return chunked_cross_entropy(hidden, items[1:], targets - 1)
        classes = self._loss_classes_on_device  # a target always has training interactions: one of them
        return chunked_cross_entropy(hidden, items[classes], torch.searchsorted(classes, targets))

    def negative_pool(self) -> int:
        """How many items training draws negatives from (every item, or the `loss_classes`)."""
        return self.n_items if self.loss_classes is None else len(self.loss_classes)

    def pool_items(self, positions: np.ndarray) -> np.ndarray:
        """Positions 0..negative_pool()-1 → item ids."""
        if self.loss_classes is None:
            return positions + 1
        return self.loss_classes[positions]

    # -- the sampled softmax (loss="sampled") --------------------------------------
    def draw_sampled_items(self, rng: np.random.Generator) -> np.ndarray:
        """(K,) one batch's negatives: K = min(n_negatives, pool) distinct items, uniformly from
        `negative_pool` (every item, or those with training interactions; see `prepare_training`).

        Distinct, because repeats of an item add no information and, with K near the
        catalogue's size, leave far fewer items sampled (ML-100K, K = 1,000 of 1,682 items:
        ~750 distinct with replacement); the full catalogue makes the loss exactly full softmax.
        """
        pool = self.negative_pool()
        size = min(self.config.n_negatives, pool)
        return self.pool_items(rng.choice(pool, size=size, replace=False))

    def log_expected_draws(self, sampled: torch.Tensor) -> torch.Tensor:
        """(K,) log Q(j): the log of how often each sampled item is expected in a batch's sample.

        Uniform distinct draws include every item with probability K / n_items, one constant.
        A popularity proposal (drawn with replacement, Q(j) = K · q(j)) would change
        `draw_sampled_items` and this, and nothing else.
        """
        return torch.full(sampled.shape, math.log(len(sampled) / self.negative_pool()), device=sampled.device)

    def sampled_softmax_loss(self, inputs: torch.Tensor, targets: torch.Tensor, counted: torch.Tensor,
                             sampled: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of each counted position's target against the batch's ``sampled`` items.

        ``inputs``, ``targets``, ``counted``: (B, L); ``sampled``: (K,) item ids shared by every
        position, so the logits are (positions, 1 + K), never (positions, n_items). Each
        sampled logit is lowered by log Q(j) (the logQ correction): the sampled terms then
        estimate the full softmax's sum over the catalogue, so the loss and its gradient
        approach full-softmax cross-entropy as K grows instead of favouring rarely drawn
        items. A draw of a position's own target (an accidental hit) is masked out there:
        the target would otherwise also count as its own negative.
        """
        with self.fusion_batch():
            hidden, positives = self.counted_states(inputs, counted, targets)  # (N, d), (N,)
            positive_logits = (hidden * self.output_rows(positives)).sum(-1, keepdim=True)  # (N, 1)
            sampled_logits = hidden @ self.output_rows(sampled).T  # (N, K)
        sampled_logits = sampled_logits.float() - self.log_expected_draws(sampled)
        sampled_logits = sampled_logits.masked_fill(sampled[None, :] == positives[:, None], -torch.inf)
        logits = torch.cat([positive_logits.float(), sampled_logits], dim=1)  # (N, 1 + K); column 0 is right
        return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))

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
                              "items added after training; train it with --aux (content on the output side is the default)")
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

    def feature_dims(self) -> dict[str, int] | None:
        return self.fusion.dims() if self.fusion is not None else None

    # -- inference ---------------------------------------------------------------
    def user_states(self, sequences: torch.Tensor) -> torch.Tensor:
        """(B, L) left-padded histories → (B, d) the state that scores the next item."""
        raise NotImplementedError

    @torch.no_grad()
    def item_range_scorer(self, histories: UserHistories) -> Callable[[int, int], torch.Tensor]:
        """``scores(start, stop)``: the (B, stop − start) columns start…stop − 1 of ``score(histories)``.

        The states and the item table are computed once, so scoring the catalogue a range at
        a time costs one pass over the items, and memory holds B × (stop − start) scores.
        The whole range gives exactly ``score(histories)``.
        """
        sequences = torch.as_tensor(histories.sequences, dtype=torch.long, device=self.device)
        states = self.user_states(sequences)  # (B, d)
        items = self.output_embeddings()

        @torch.no_grad()
        def scores(start: int, stop: int) -> torch.Tensor:
            return states @ items[start:stop].T  # (B, stop - start)

        return scores

    @torch.no_grad()
    def score(self, histories: UserHistories, candidates: np.ndarray | None = None) -> torch.Tensor:
        sequences = torch.as_tensor(histories.sequences, dtype=torch.long, device=self.device)
        states = self.user_states(sequences)  # (B, d)
        items = self.output_embeddings()
        if candidates is None:
            return states @ items.T  # (B, n_items + 1)
        candidate_ids = torch.as_tensor(candidates, dtype=torch.long, device=self.device)
        return torch.einsum("bd,bcd->bc", states, items[candidate_ids])  # (B, C)
