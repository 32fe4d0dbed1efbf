"""Fusion of auxiliary item vectors into the model width (the paper's ``W · k_v``).

- ``concat``: concatenate the chosen modalities' vectors, one learned linear map to width d.
- ``sum`` (the paper's "point-wise addition of vector items"): bring every modality into
  one common width with a **fixed** alignment, add the aligned vectors point-wise, then one
  shared learned linear map to width d.

Why the alignment is fixed: one *learned* linear map per modality followed by addition,
``Σ_m W_m x_m``, equals ``[W_1 … W_M] · concat(x_1 … x_M)`` — one linear map of the
concatenation, i.e. the same function family as ``concat`` with a different
parameterisation. A summation model must lose something concatenation keeps: here the
fused input depends on the modalities only through ``Σ_m A_m x_m`` with fixed ``A_m``, so
two items whose aligned vectors have the same sum are indistinguishable. Nothing makes
coordinate k mean the same thing in two modalities, so the sum can merge items that
concatenation keeps apart (two modalities stating one attribute in unrelated coordinates
may add up to nearly parallel vectors for different values); that loss is what the
paper's concat-vs-sum ablation measures.

The alignment ``A_m`` of a modality is a PCA fitted on the items that have it (numpy SVD
of the centred rows, float64): its vectors are projected on their top ``common`` principal
components, where ``common`` = the smallest modality width, so that coordinate k of every
modality is its k-th direction of largest variance. Each component's sign is fixed (its
largest-|value| loading is positive) so the result does not depend on the SVD routine's
sign convention, and the aligned vectors are scaled to mean norm 1 per modality.
Centring means an item without a modality contributes the zero vector = that modality's
average item, i.e. no information. Components beyond the data's rank (e.g. fewer present
items than ``common``) are zero columns.

The feature matrices are frozen buffers (encoders are not fine-tuned) and travel with the
model's weights, so a saved SASRec+ reloads without its feature files: for ``concat`` the
rescaled encoder vectors ``(n_rows, dim_m)``, for ``sum`` the already aligned vectors
``(n_rows, common)`` (computed once in `from_features`; the model never needs the raw
ones). `dims` reports the encoders' widths in both modes, which is what `save`/`load`
need to rebuild placeholder features of the right shapes; the alignment is
deterministic, so rebuilding the ``sum`` buffers from the same features (as
``tools/remote_gpu/restore.py`` does) gives them back (bit for bit with the same
numpy/LAPACK build, up to rounding otherwise). For ``concat`` each modality is
rescaled once so that its mean item-vector norm is 1: encoders differ in scale by orders
of magnitude (a 1280-d CNN vector vs a unit-norm sentence vector), and without this the
largest modality would dominate the first updates. Missing modalities are zero rows in
both modes.

**Starting as the ID-only model (issue 13).** With the paper's form (``init="paper"``) the
projection W is random, so from the first step W · k perturbs the id embeddings, and on
small data it overfits. The options below make the auxiliary term start at exactly zero
(so SASRec+ at initialisation computes SASRec's function, given the same seed, since the
fusion is built after every id-side weight) and regularise it:

- ``init="zero"``: the fusion's last scaling starts at zero: W and its bias, or, with
  ``norm``, the LayerNorm's scale and shift (W stays random so that the normalised vector
  has a direction to learn from). With a gate the gate is that zero factor already, and
  ``init`` changes nothing: zeroing two factors of one product would leave both without a
  gradient.
- ``gate="scalar"``: ``tanh(g) · (W k + b)``, one learned g initialised at 0.
  ``gate="modality"``: one g_m per modality, applied to each modality's vector before the
  map, ``W · concat(tanh(g_m) k_m) + b`` or ``W · Σ_m tanh(g_m) A_m k_m + b`` (summation keeps
  depending on the modalities through one sum). The bias starts at zero, so the output does.
- ``norm``: LayerNorm of the projected vector (before a scalar gate). Not with the
  per-modality gate: a LayerNorm after the map would cancel the gates' common scale.
- ``modality_dropout`` p: in training, each modality's vector of each item is zeroed
  with probability p, one draw per item and modality per batch (`batch`), survivors
  scaled by 1/(1 − p); never at inference. Zero is what a missing modality gives, so a
  dropped modality looks absent.

Options left at their defaults create no parameter, buffer or random draw, so the paper's
form keeps its parameters, state dict and numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Self

import numpy as np
import torch
from pydantic import Field, PlainValidator
from torch import nn

from auxrec.exceptions import ConfigError
from auxrec.features.item_features import ItemFeatures

FUSION_MODES = ("concat", "sum")
FUSION_INITS = ("paper", "zero")
FUSION_GATES = ("none", "scalar", "modality")
# 2: "sum" became the paper's summation (fixed alignment, one shared map); before, it was
# one learned map per modality, the same function family as "concat".
FUSION_REVISIONS = {"concat": 1, "sum": 2}


def pca_alignment(matrix: np.ndarray, present: np.ndarray, width: int) -> np.ndarray:
    """(n_rows, dim) vectors → (n_rows, width) PCA coordinates of the present rows, mean norm 1.

    Deterministic: float64 SVD of the centred present rows, each component's sign fixed
    so that its largest-|value| loading is positive. Absent rows stay zero.
    """
    return PCAAlignment.fit(matrix, present, width).apply(matrix, present)


@dataclass(frozen=True)
class PCAAlignment:
    """`pca_alignment` as a fitted map, so rows added later (new items) land in the same space."""

    mean: np.ndarray  # (dim,) float64
    components: np.ndarray  # (k, dim) float64, k = min(rank, width)
    scale: float  # mean norm of the fitted rows' coordinates (1.0 when 0)
    width: int

    @classmethod
    def fit(cls, matrix: np.ndarray, present: np.ndarray, width: int) -> PCAAlignment:
        rows = matrix[present].astype(np.float64)  # (P, dim)
        if len(rows) == 0:
            return cls(np.zeros(matrix.shape[1]), np.zeros((0, matrix.shape[1])), 1.0, width)
        mean = rows.mean(axis=0)
        centred = rows - mean
        _, singular, components = np.linalg.svd(centred, full_matrices=False)  # (min(P, dim), dim)
        # Directions beyond the data's rank are arbitrary (routine-dependent): leave them zero.
        rank = int((singular > singular[0] * max(centred.shape) * np.finfo(np.float64).eps).sum())
        components = components[: min(width, rank)]
        largest = np.abs(components).argmax(axis=1)
        components *= np.sign(components[np.arange(len(components)), largest])[:, None]
        projected = centred @ components.T
        scale = float(np.linalg.norm(projected, axis=1).mean()) if len(projected) else 0.0
        return cls(mean, components, scale if scale > 0 else 1.0, width)

    def apply(self, matrix: np.ndarray, present: np.ndarray) -> np.ndarray:
        """(n_rows, width) coordinates of the present rows of ``matrix``; absent rows stay zero."""
        aligned = np.zeros((matrix.shape[0], self.width), dtype=np.float32)
        if len(self.components):
            projected = (matrix[present].astype(np.float64) - self.mean) @ self.components.T
            aligned[present, : projected.shape[1]] = projected / self.scale
        return aligned


def stored_feature_rows(mode: str, common_width: int, matrix: np.ndarray, present: np.ndarray,
                        rows: np.ndarray | None = None, rows_present: np.ndarray | None = None) -> np.ndarray:
    """What `AuxiliaryFusion` stores for one modality: ``matrix`` scaled (concat) or aligned (sum).

    The scaling or alignment is fitted on ``matrix``; with ``rows`` (vectors of items added
    after training) it is applied to those instead, so they land where the model expects.
    """
    target, target_present = (matrix, present) if rows is None else (rows, rows_present)
    if mode == "concat":
        norms = np.linalg.norm(matrix[present], axis=1) if present.any() else np.ones(1)
        return (target / (float(norms.mean()) or 1.0)).astype(np.float32)
    return PCAAlignment.fit(matrix, present, common_width).apply(target, target_present)


class AuxiliaryFusion(nn.Module):
    def __init__(self, dims: dict[str, int], n_rows: int, mode: str, width: int, *, gate: str = "none",
                 norm: bool = False, modality_dropout: float = 0.0) -> None:
        super().__init__()
        if mode not in FUSION_MODES:
            raise ConfigError(f"unknown fusion {mode!r}; choose one of {', '.join(FUSION_MODES)}")
        if not dims:
            raise ConfigError("fusion needs at least one modality")
        problem = fusion_option_problem(gate, norm, modality_dropout)
        if problem:
            raise ConfigError(problem)
        self.mode = mode
        self.names = list(dims)
        self.input_dims = dict(dims)
        # sum: every modality is stored already aligned to the common width.
        self.common_width = min(dims.values())
        for name, dim in dims.items():
            stored = dim if mode == "concat" else self.common_width
            self.register_buffer(f"features_{name}", torch.zeros(n_rows, stored))
        in_width = sum(dims.values()) if mode == "concat" else self.common_width
        self.projection = nn.Linear(in_width, width)
        # Registered only when asked for: the paper's form keeps its state dict.
        self.norm = nn.LayerNorm(width) if norm else None
        self.gate_kind = gate
        gates = 1 if gate == "scalar" else len(dims)
        self.gate = nn.Parameter(torch.zeros(gates)) if gate != "none" else None  # tanh(0) = 0: starts closed
        self.modality_dropout = modality_dropout
        self.generator: torch.Generator | None = None  # modality dropout's draws; None = torch's global RNG
        self._keep: torch.Tensor | None = None  # (n_rows, M) the current batch's dropout factors
        # Inference: every item's projected vector, computed once (see `_inference_table`); False
        # recomputes the same table on every call (for checking that the memo changes nothing).
        self.memoise_inference_table = True
        self._inference_memo: tuple[tuple[Any, ...], torch.Tensor] | None = None  # (its sources, the table)

    def start_at_zero(self) -> None:
        """Zero the last scaling, so that the fusion outputs exactly 0 (see the module notes)."""
        if self.gate is not None:
            return
        final = self.norm if self.norm is not None else self.projection
        with torch.no_grad():
            final.weight.zero_()
            final.bias.zero_()

    @classmethod
    def from_features(cls, features: ItemFeatures, mode: str, width: int, **options: Any) -> AuxiliaryFusion:
        """The fusion of ``features``; ``options`` are the constructor's (gate, norm, modality_dropout)."""
        module = cls(features.dims(), features.n_rows, mode, width, **options)
        with torch.no_grad():
            for name, matrix in features.matrices.items():
                stored = stored_feature_rows(mode, module.common_width, matrix, features.present[name])
                getattr(module, f"features_{name}").copy_(torch.from_numpy(stored))
        return module

    def append_rows(self, rows: dict[str, torch.Tensor]) -> None:
        """Add stored rows (`stored_feature_rows` of new items) after the existing ones, every modality."""
        if sorted(rows) != sorted(self.names) or len({len(r) for r in rows.values()}) != 1:
            raise ValueError(f"append_rows needs the same number of rows for each of {self.names}")
        for name in self.names:
            current = getattr(self, f"features_{name}")
            setattr(self, f"features_{name}", torch.cat([current, rows[name].to(current)]))
        self.clear_inference_table()  # the new rows need their projected vectors too

    def dims(self) -> dict[str, int]:
        """The encoders' widths per modality (not the stored, aligned widths of ``sum``)."""
        return dict(self.input_dims)

    def fused_input(self, item_ids: torch.Tensor) -> torch.Tensor:
        """(...,) item ids → (..., in_width) what the learned map sees: concatenation or aligned sum."""
        vectors = [getattr(self, f"features_{name}")[item_ids] for name in self.names]
        factors = self._modality_factors(item_ids)  # (..., M) or None
        if factors is not None:
            vectors = [vector * factors[..., m, None] for m, vector in enumerate(vectors)]
        if self.mode == "concat":
            return torch.cat(vectors, dim=-1)
        return torch.stack(vectors).sum(0)  # (..., common) point-wise addition

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        """(...,) item ids → (..., width) projected auxiliary vectors."""
        if self._inference_table_applies():
            return self._inference_table()[item_ids]
        return self._project(self.fused_input(item_ids))

    def _project(self, fused: torch.Tensor) -> torch.Tensor:
        """(..., in_width) fused content → (..., width): the learned map, LayerNorm and scalar gate."""
        projected = self.projection(fused)
        if self.norm is not None:
            projected = self.norm(projected)
        if self.gate_kind == "scalar":
            projected = torch.tanh(self.gate) * projected
        return projected

    # -- gates and modality dropout ---------------------------------------------
    def _modality_factors(self, item_ids: torch.Tensor) -> torch.Tensor | None:
        """(..., M) per-modality factors (per-modality gate × dropout), or None when there are none."""
        factors = None
        if self.training and self.modality_dropout > 0:
            keep = self._keep if self._keep is not None else self.draw_keep()
            factors = keep[item_ids]
        if self.gate_kind == "modality":
            gates = torch.tanh(self.gate)  # (M,)
            factors = gates if factors is None else factors * gates
        return factors

    def draw_uniform(self, rows: int, columns: int, device: torch.device) -> torch.Tensor:
        """(rows, columns) U[0, 1) draws from the dropout generator (torch's global one when unset), on ``device``."""
        draw_on = self.generator.device if self.generator is not None else device
        return torch.rand(rows, columns, generator=self.generator, device=draw_on).to(device)

    def draw_keep(self) -> torch.Tensor:
        """(n_rows, M) modality-dropout factors: 0 (dropped) or 1/(1 − p), one per item and modality."""
        rows = getattr(self, f"features_{self.names[0]}").shape[0]
        uniform = self.draw_uniform(rows, len(self.names), self.projection_device())
        return (uniform >= self.modality_dropout).float() / (1 - self.modality_dropout)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One training batch: every lookup inside (input and output side) shares one dropout draw."""
        if self.training and self.modality_dropout > 0:
            self._keep = self.draw_keep()
        try:
            yield
        finally:
            self._keep = None

    def all_items(self) -> torch.Tensor:
        """(n_items + 1, width) projected vectors of every item."""
        rows = getattr(self, f"features_{self.names[0]}").shape[0]
        return self.forward(torch.arange(rows, device=self.projection_device()))

    # -- the inference table ------------------------------------------------------
    # At inference an item's projected vector depends on the item alone, so one table of every
    # item replaces, per batch, the gather of its (positions x in_width) content and the learned
    # map: on the ML-1M subset at length 200 that was most of a SASRec+ pass (benchmarks/README.md).
    # It is used only in eval mode without autograd; training, gradients and exported graphs
    # keep computing per position.
    def _inference_table_applies(self) -> bool:
        return (not self.training and not torch.is_grad_enabled()
                and not torch.compiler.is_compiling() and not torch.compiler.is_exporting())

    def _inference_table(self) -> torch.Tensor:
        """(n_rows, width) every item's projected vector; only where `_inference_table_applies`.

        Memoised until the module returns to training or anything it is computed from
        changes (parameters or feature rows: replaced, moved, or modified in place). `forward`
        returns a gather of it, never the memo itself, so no caller can modify it.
        """
        sources = self._table_sources()
        memo = self._inference_memo  # read once: a serving thread may replace it meanwhile
        if memo is not None and _same_sources(memo[0], sources):
            return memo[1]
        rows = getattr(self, f"features_{self.names[0]}").shape[0]
        table = self._project(self.fused_input(torch.arange(rows, device=self.projection_device())))
        self._inference_memo = (sources, table) if self.memoise_inference_table else None
        return table

    def clear_inference_table(self) -> None:
        """Forget the memoised inference table (it is recomputed on next use)."""
        self._inference_memo = None

    def train(self, mode: bool = True) -> Self:
        if mode:
            self.clear_inference_table()  # training changes the parameters; no stale table survives it
        return super().train(mode)

    def _table_sources(self) -> tuple[Any, ...]:
        """What the table is computed from: each tensor with its in-place version, storage and device."""
        tensors = [*(getattr(self, f"features_{name}") for name in self.names), *self.parameters()]
        return tuple((t, t._version, t.data_ptr(), t.device, t.dtype, t.shape) for t in tensors)

    def projection_device(self) -> torch.device:
        return getattr(self, f"features_{self.names[0]}").device


def _same_sources(memoised: tuple[Any, ...], current: tuple[Any, ...]) -> bool:
    """The same tensor objects, unmodified (``is``: the memo holds them, so an id cannot be reused)."""
    return len(memoised) == len(current) and all(
        old[0] is new[0] and old[1:] == new[1:] for old, new in zip(memoised, current))


def fusion_option_problem(gate: str, norm: bool, modality_dropout: float) -> str | None:
    """Why these fusion options cannot be honoured, or None (one message for configs and the module)."""
    if gate not in FUSION_GATES:
        return f"unknown aux_gate {gate!r}; choose one of {', '.join(FUSION_GATES)}"
    if gate == "modality" and norm:
        return ("aux_gate='modality' cannot be combined with aux_norm: the LayerNorm after the map would "
                "cancel the gates' common scale; use aux_gate='scalar' with aux_norm")
    if not 0 <= modality_dropout < 1:
        return f"aux_dropout must be in [0, 1), got {modality_dropout}"
    return None


def _count_or_auto(value: Any) -> int | str:
    """A whole number >= 0 or "auto" (one message for both, where a union would give one per branch)."""
    if value == "auto":
        return "auto"
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError("expected a whole number >= 0 or 'auto'")


@dataclass(frozen=True)
class FusionSettings:
    """How a transformer's ``+`` variant fuses item content: the ``aux_*`` settings SASRec's and
    BERT4Rec's configs share (both inherit them; they act only when item features are given)."""

    aux_fusion: Annotated[Literal["concat", "sum"], Field(description="how modalities are fused: concat (one map "
                                                      "of the concatenation) or sum (PCA-aligned, added point-wise)")] = "concat"
    # On by default since issue 13: chosen on validation NDCG@10 (H&M SASRec+ .210 against .126
    # input side only, ML-100K .511 against SASRec's .506; docs/results.md), and what lets an
    # item without training interactions, or one added later, be recommended at all.
    aux_on_output: Annotated[bool, Field(description="represent candidate items by id + projected content too "
                                         "(ranks items never or rarely seen in training; needed by add-items)")] = True
    # Start of the auxiliary term: "paper" = W random like every linear layer (W·k perturbs the
    # ids from step 0); "zero" = the fusion's last scaling (W and bias, or the LayerNorm's scale
    # and shift with aux_norm) starts at 0, so SASRec+ starts as SASRec exactly.
    aux_init: Annotated[Literal["paper", "zero"], Field(description="paper: the fusion's map starts random; zero: "
                                                    "its last scaling starts at 0 (starts as the id-only model)")] = "paper"
    # Learned gate tanh(g), g = 0 at start (the term starts at 0 whatever aux_init): "scalar" scales
    # the projected vector, "modality" each modality's vector before the map; "none" = no gate.
    aux_gate: Annotated[Literal["none", "scalar", "modality"], Field(description="learned tanh(g) gate from 0: "
                                                                 "scalar on the projected vector, or one per modality")] = "none"
    aux_norm: Annotated[bool, Field(description="LayerNorm of the projected content vector (not with "
                                    "aux_gate=modality)")] = False
    # Modality dropout: in training, each modality's vector of each item is zeroed with this
    # probability (one draw per item and modality per batch, survivors scaled by 1/(1-p)).
    aux_dropout: Annotated[float, Field(ge=0, lt=1, description="in training, zero each item's modality vector "
                                        "with this probability")] = 0.0
    # Id dropout (DropoutNet, Volkovs et al. 2017): in training, each item is represented by its
    # content alone (its id embedding zeroed, not rescaled) with this probability, one draw per
    # item per batch shared by the input and the output side. It trains the model to score
    # content-only items on the same scale as items with a trained id, which is what a cold item
    # is at inference (`aux_unseen_items="content"`): without it, content alone ranks a cold item
    # well among random items but rarely above the whole warm catalogue.
    aux_id_dropout: Annotated[float, Field(ge=0, lt=1, description="in training, represent each item by its "
                                           "content alone (id embedding zeroed) with this probability; "
                                           "calibrates cold-start items against the catalogue")] = 0.0
    # AdamW weight decay of the fusion's parameters only (None = the training weight_decay, as for
    # every parameter); honoured through the model's `parameter_groups`.
    aux_weight_decay: Annotated[float | None, Field(ge=0, allow_inf_nan=False, description="AdamW weight decay of "
                                                    "the fusion's parameters only (null: the training weight_decay)")] = None
    # An item without training interactions has an id embedding that training never pulls up
    # and, under the full softmax, pushes down at every step (it is a negative everywhere), so
    # it buries the item whatever its content says. "content" holds those id rows at zero: such
    # items are represented, as input and as candidates, by their content alone, as add-items
    # represents new items.
    aux_unseen_items: Annotated[Literal["id", "content"], Field(description="items without training interactions: "
                                                                "content = by their content alone (id embedding held "
                                                                "at zero); id = by their untrained id embedding too")] = "content"
    # Those items as negatives of the training loss. No training target ever pulls them up, while
    # every full-softmax step pushes each of them down; with content on the output side the model
    # learns to push down their *content*, i.e. to recognise and bury exactly the items that will
    # be cold (ML-1M subset, cold split: their content part ended 0.6 below that of their nearest
    # warm neighbours, and cold test targets ranked below random items, sampled NDCG@10 .004).
    # False leaves them out of the training softmax (and of sampled negatives), as items added
    # after training (`auxrec add-items`) are: the model learns only from items it has seen.
    aux_unseen_negatives: Annotated[bool, Field(description="items without training interactions are negatives "
                                                "in the training loss (false: they are left out of it, as "
                                                "items added after training are)")] = False

    # With `aux_unseen_items="content"` those items end training with a zero id embedding, so
    # as candidates they carry content alone while every trained item also carries its id part,
    # the part that holds what content does not say (how much an item is bought, by whom). At
    # the end of training each of them can borrow the similarity-weighted mean id embedding of
    # the K trained items closest in content (`auxrec.models.content_neighbours`), as
    # `auxrec add-items --neighbours K` does for items added later. Whether that helps depends
    # on model and data (docs/results.md: SASRec+ on H&M gains a quarter under `full` with
    # K = 1, BERT4Rec+ on H&M loses under `sampled` with K = 3, the ML-1M subset barely moves),
    # so "auto", the default, tries K = 1, 3, 10 on validation and keeps one only where its
    # per-user gain over the zero rows is significant (`choose_neighbour_count`); an integer
    # fixes K, 0 keeps the zero rows.
    aux_unseen_id_neighbours: Annotated[int | Literal["auto"], PlainValidator(_count_or_auto), Field(
        description="at the end of training, items without training interactions borrow the mean id "
                    "embedding of this many trained items closest in content (0: none; auto: 0, 1, 3 or 10, "
                    "chosen on validation; with aux_unseen_items=content)")] = "auto"

    # What a run saved before a setting existed had, where that differs from the setting's
    # default now (`auxrec.experiments.run_folder.with_later_defaults`).
    earlier_defaults: ClassVar[dict[str, Any]] = {"aux_unseen_items": "id", "aux_on_output": False,
                                                  "aux_unseen_negatives": True, "aux_unseen_id_neighbours": 0}
    feature_only_settings: ClassVar[tuple[str, ...]] = ()  # every field above, set below the class


# Settings that change nothing without item features: an id-only run is compared without them
# (`auxrec.experiments.run_folder.comparable_settings`).
FusionSettings.feature_only_settings = tuple(field.name for field in dataclasses.fields(FusionSettings))


def check_fusion_config(config: Any) -> None:
    """A model config's fusion options (``aux_*`` fields), checked in its ``__post_init__`` (ValueError)."""
    problem = fusion_option_problem(config.aux_gate, config.aux_norm, config.aux_dropout)
    if problem:
        raise ValueError(problem)


def fusion_options(config: Any) -> dict[str, Any]:
    """`AuxiliaryFusion` keyword options from a model config's ``aux_*`` fields."""
    return {"gate": config.aux_gate, "norm": config.aux_norm, "modality_dropout": config.aux_dropout}
