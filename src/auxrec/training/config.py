"""Training settings, separate from model architecture (a model config holds only that)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field


@dataclass(frozen=True)
class TrainingConfig:
    """How a neural model is optimised and when training stops.

    Early stopping watches validation NDCG@10 under ``validation_protocol`` (the saved
    sampled negatives by default: paired across models and cheap), evaluated every
    ``eval_every`` epochs; training stops after ``patience`` evaluations without
    improvement and the best weights are restored.

    Ranges are checked when settings are resolved (`auxrec.config.resolve_config`), before
    any data is read, so a bad value fails at once instead of after training.
    """

    # epochs ≥ 1: 0 would write an untrained run that looks trained
    epochs: Annotated[int, Field(ge=1, description="maximum training epochs")] = 200
    batch_size: Annotated[int, Field(ge=1, description="training units per step (sequences for SASRec/BERT4Rec, "
                                     "(user, item) pairs for BPR/TransRec)")] = 1024
    learning_rate: Annotated[float, Field(gt=0, allow_inf_nan=False, description="AdamW learning rate")] = 1e-3
    weight_decay: Annotated[float, Field(ge=0, allow_inf_nan=False, description="AdamW's decoupled weight "
                                         "decay")] = 0.0
    patience: Annotated[int, Field(ge=1, description="validations without improvement before stopping")] = 5
    # Early stopping cannot end training before this epoch. BERT4Rec's masked training
    # often sits on a popularity plateau for its first 10-20 epochs (validation flat or
    # falling), which a small patience mistakes for convergence.
    min_epochs: Annotated[int, Field(ge=0, description="early stopping never ends training before this epoch")] = 0
    eval_every: Annotated[int, Field(ge=1, description="validate every N epochs")] = 1
    # "sampled" needs 100 unseen items per user; tiny catalogues validate under "full".
    validation_protocol: Annotated[Literal["sampled", "popularity", "full", "full-with-history"], Field(
        description="protocol of the validation NDCG@10 that early stopping watches")] = "sampled"
    # Group sequences of similar length into batches: less padding, about 1.5x faster
    # epochs, but on ML-100K (SASRec, seeds 0 and 1) it lowered validation NDCG@10 from .505/.510
    # to .484/.490 (docs/results.md), so it is off by default. (CPU training's length groups,
    # `auxrec.models.transformer`, cut the padding work inside each batch instead, without
    # changing which users share a batch.)
    length_bucketing: Annotated[bool, Field(description="batch sequences of similar length (faster, less "
                                            "accurate on ML-100K)")] = False
    device: Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$", description="auto (CUDA when present), "
                                 "cpu, cuda, cuda:N or mps")] = "auto"
    progress: Annotated[bool, Field(description="show progress bars (never changes results)")] = True


DISPLAY_ONLY = ("progress",)  # training settings that never change a run's numbers


def same_training(saved: dict[str, Any], wanted: dict[str, Any], epochs_trained: int) -> bool:
    """Whether a run trained with ``saved`` settings is the run ``wanted`` would give.

    Display settings aside they must be equal, with two exceptions that leave the run's
    trajectory exactly as the new value gives it (the learning rate has no schedule that
    depends on either):

    * a *higher* ``min_epochs`` when the run trained at least that many epochs anyway:
      ``min_epochs`` only delays early stopping (this keeps runs trained before the option
      existed valid);
    * another ``epochs`` cap when early stopping ended the run before its cap and the new
      cap still allows every epoch it trained: a cap never reached changed nothing.
    """
    saved = {k: v for k, v in saved.items() if k not in DISPLAY_ONLY}
    wanted = {k: v for k, v in wanted.items() if k not in DISPLAY_ONLY}
    saved_min, wanted_min = saved.pop("min_epochs", 0), wanted.pop("min_epochs", 0)
    saved_cap, wanted_cap = saved.pop("epochs", None), wanted.pop("epochs", None)
    same_min = saved_min == wanted_min or (wanted_min > saved_min and epochs_trained >= wanted_min)
    same_cap = saved_cap == wanted_cap or (
        saved_cap is not None and wanted_cap is not None and epochs_trained < saved_cap
        and wanted_cap >= epochs_trained)
    return saved == wanted and same_min and same_cap

