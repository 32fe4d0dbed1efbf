"""The training loop shared by every PyTorch model.

A model supplies what an epoch iterates over (``training_units``), how a batch is built
(``make_batch``) and its ``loss``; this loop owns batching, the optimiser (AdamW), the
device and bf16 autocast on CUDA, validation, early stopping, per-epoch checkpoints and
resumption, and the progress bar, so every model is trained and selected the same way.
`fit` is the one entry point the run layer calls, for every registered model.

The loop is small named steps: `train_one_epoch`, `validate`, and a `TrainingState` that
alone knows a checkpoint's keys (`to_checkpoint` / `from_checkpoint`).

Checkpoints hold everything the next epoch depends on — weights, optimiser moments, the
batch generator's state, torch's RNG state (dropout), the best weights so far and the
early-stopping counters — so an interrupted and resumed run gives exactly the numbers of
an uninterrupted one on CPU.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import pickle
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from auxrec.data.dataset import PreparedDataset
from auxrec.data.ids import PADDING_ID
from auxrec.evaluation.evaluator import evaluate
from auxrec.evaluation.metrics import ndcg_at_k
from auxrec.exceptions import CheckpointError, ConfigError, DamagedFile, TrainingDiverged
from auxrec.run_layout import CHECKPOINT_NAME, PARTIAL_SUFFIX
from auxrec.training.allocator import keep_freed_memory
from auxrec.training.batching import plan_batches
from auxrec.training.config import TrainingConfig
from auxrec.training.distributed import (
    Shard,
    broadcast_model,
    rows_of,
    sum_gradients,
    training_device,
)

if TYPE_CHECKING:
    from auxrec.models.base import NeuralRecommender

logger = logging.getLogger(__name__)
SELECTION_METRIC = "NDCG@10"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was requested but no CUDA device is available")
    return torch.device(name)


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


def _batch_counts(batch: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(rows, positions with a loss) of a batch."""
    first = next(iter(batch.values()))
    if "targets" in batch:
        return int(first.shape[0]), int((batch["targets"] != PADDING_ID).sum())
    return int(first.shape[0]), int(first.shape[0])


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}{PARTIAL_SUFFIX}")
    try:
        torch.save(state, temporary)
    except (OSError, RuntimeError) as error:  # torch reports a full disk as a RuntimeError of its writer
        temporary.unlink(missing_ok=True)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(
            f"could not write the checkpoint {path} ({reason}); the previous checkpoint is kept, so free some "
            "space and continue with --resume"
        ) from None
    os.replace(temporary, path)  # atomic: a crash leaves the previous checkpoint intact


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint written by `_save_checkpoint`; a damaged one is one `DamagedFile` line naming it."""
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise DamagedFile(f"{path} is damaged ({str(error).splitlines()[0] if str(error) else type(error).__name__}); "
                          "delete it to train that run from the start") from None
    if not isinstance(state, dict) or "epoch" not in state:
        raise DamagedFile(f"{path} is not an auxrec checkpoint; delete it to train that run from the start")
    return state


@dataclass
class TrainingState:
    """What the training loop carries from one epoch to the next, besides the model and optimiser.

    `to_checkpoint` and `from_checkpoint` are the only places that know a checkpoint's keys.
    """

    epoch: int = 0  # the last finished epoch
    best_value: float = -math.inf  # best validation NDCG@10 so far
    best_state: dict[str, torch.Tensor] | None = None  # the weights that reached it
    rounds_without_improvement: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    def should_stop(self, config: TrainingConfig) -> bool:
        return self.rounds_without_improvement >= config.patience and self.epoch >= config.min_epochs

    def record_validation(self, value: float, model: NeuralRecommender) -> bool:
        """Count one validation; keep the weights when ``value`` is a new best. Returns whether it was."""
        if value > self.best_value:
            self.best_value, self.rounds_without_improvement = value, 0
            self.best_state = copy.deepcopy(model.state_dict())
            return True
        self.rounds_without_improvement += 1
        return False

    def to_checkpoint(self, model: NeuralRecommender, optimizer: torch.optim.Optimizer,
                      rng: np.random.Generator) -> dict[str, Any]:
        """Everything the next epoch depends on, torch's RNG (dropout) included."""
        return {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(), "best_value": self.best_value, "best_state": self.best_state,
            "rounds_without_improvement": self.rounds_without_improvement, "log": self.log, "epoch": self.epoch,
        }

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any], model: NeuralRecommender,
                        optimizer: torch.optim.Optimizer, rng: np.random.Generator) -> TrainingState:
        """Restore model, optimiser and both RNGs from ``checkpoint``; return the loop's state."""
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        rng.bit_generator.state = checkpoint["rng"]
        torch.set_rng_state(checkpoint["torch_rng"])
        return cls(epoch=checkpoint["epoch"], best_value=checkpoint["best_value"],
                   best_state=checkpoint["best_state"],
                   rounds_without_improvement=checkpoint["rounds_without_improvement"], log=checkpoint["log"])


def epoch_batches(model: NeuralRecommender, dataset: PreparedDataset, batch_size: int, rng: np.random.Generator,
                  length_bucketing: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch of the model's (global) batches (`auxrec.training.batching`)."""
    units, lengths = model.training_units(dataset)
    for rows in plan_batches(len(units), batch_size, rng, lengths if length_bucketing else None):
        yield model.make_batch(dataset, units[rows], rng)


def _backward(model: NeuralRecommender, batch: dict[str, torch.Tensor], device: torch.device,
              autocast: torch.autocast, shard: Shard) -> float:
    """Gradients of one global batch's loss in every parameter; returns that loss.

    With several processes each computes its rows' loss weighted by their share of the
    batch's loss terms, and the gradients are summed (`auxrec.training.distributed`).
    """
    if shard.world_size == 1:
        with autocast:
            loss = model.loss(_to_device(batch, device))
        loss.backward()
        return float(loss.detach())
    total = model.loss_count(batch)
    mine = rows_of(batch, shard, model.shared_batch_keys)
    share = model.loss_count(mine) / total if total else 0.0
    local_loss = 0.0
    if share:  # a process can be left without rows (the epoch's last, short batch)
        with autocast:
            loss = model.loss(_to_device(mine, device)) * share
        loss.backward()
        local_loss = float(loss.detach())
    return sum_gradients(model, local_loss)


def train_one_epoch(
    model: NeuralRecommender, dataset: PreparedDataset, config: TrainingConfig, epoch: int,
    optimizer: torch.optim.Optimizer, rng: np.random.Generator, device: torch.device,
) -> dict[str, Any]:
    """One pass over the training data; returns the epoch's log record (loss and speed)."""
    model.train()
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    started = time.perf_counter()
    total_loss, n_batches, n_rows, n_positions = 0.0, 0, 0, 0
    shard = Shard.current()
    batches = epoch_batches(model, dataset, config.batch_size, rng, config.length_bucketing)
    bar = tqdm(batches, desc=f"epoch {epoch}", leave=False, disable=_hide_progress(config, shard), unit="batch",
               mininterval=0.5)
    for batch in bar:
        optimizer.zero_grad(set_to_none=True)
        batch_loss = _backward(model, batch, device, autocast, shard)  # the one host sync per step
        if not math.isfinite(batch_loss):
            # A non-finite loss would train NaN weights into a run that looks finished
            # (every metric 0); stop while the previous epoch's checkpoint is intact.
            raise TrainingDiverged(
                f"{model.name} diverged: the training loss became {batch_loss} in epoch {epoch} "
                f"(batch {n_batches + 1}); lower --lr (now {config.learning_rate:g}) or check the item "
                "features; no finished run was written"
            )
        optimizer.step()
        rows, positions = _batch_counts(batch)
        total_loss += batch_loss
        n_batches, n_rows, n_positions = n_batches + 1, n_rows + rows, n_positions + positions
        if n_batches % 10 == 0:
            elapsed = time.perf_counter() - started
            bar.set_postfix(loss=f"{total_loss / n_batches:.4f}", seq_per_s=f"{n_rows / elapsed:.0f}", refresh=False)
    seconds = time.perf_counter() - started
    return {
        "epoch": epoch,
        "loss": total_loss / max(n_batches, 1),
        "train_seconds": round(seconds, 3),
        "sequences_per_second": round(n_rows / seconds, 1) if seconds else None,
        "positions_per_second": round(n_positions / seconds, 1) if seconds else None,
    }


def validate(model: NeuralRecommender, dataset: PreparedDataset, config: TrainingConfig, seed: int
             ) -> tuple[float, float]:
    """(validation NDCG@10 under the configured protocol, seconds it took).

    Under torchrun the processes share the users and all get the same value, so early
    stopping agrees everywhere.
    """
    started = time.perf_counter()
    result = evaluate(model, dataset, "valid", config.validation_protocol, seed, sharded=True)
    return result.metrics[SELECTION_METRIC], round(time.perf_counter() - started, 3)


def _hide_progress(config: TrainingConfig, shard: Shard | None = None) -> bool | None:
    # tqdm's disable=None switches bars off by itself when stderr is not a terminal (CI logs);
    # under torchrun only the main process draws bars.
    if not config.progress or not (shard or Shard.current()).is_main:
        return True
    return None


def train_neural_model(
    model: NeuralRecommender,
    dataset: PreparedDataset,
    config: TrainingConfig,
    seed: int,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
) -> list[dict[str, Any]]:
    """Train ``model`` in place; return one log record per epoch.

    The best weights by validation NDCG@10 are restored at the end. ``seed`` drives the
    batch order and negative sampling (a NumPy generator owned by this call). With
    ``checkpoint_dir`` a checkpoint is written after every epoch; with ``resume`` an
    existing one is continued from.
    """
    device = training_device(resolve_device(config.device))
    if device.type == "cpu":
        keep_freed_memory()  # same arithmetic, fewer page faults per step (training/allocator.py)
    model.to(device)
    model.prepare_training(dataset)
    broadcast_model(model)
    shard = Shard.current()
    optimizer = torch.optim.AdamW(model.parameter_groups(config.weight_decay), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    rng = np.random.default_rng([seed, 1])  # stream 1: training; evaluation negatives use their own
    state = TrainingState()
    checkpoint = checkpoint_dir / CHECKPOINT_NAME if checkpoint_dir is not None else None
    if resume and checkpoint is not None and checkpoint.is_file():
        state = TrainingState.from_checkpoint(load_checkpoint(checkpoint, device), model, optimizer, rng)
        logger.info("resuming %s from epoch %d", model.name, state.epoch + 1)
    epochs_bar = tqdm(range(state.epoch + 1, config.epochs + 1), desc=model.name, unit="epoch",
                      disable=_hide_progress(config), initial=state.epoch, total=config.epochs)
    for epoch in epochs_bar:
        if state.should_stop(config):
            break
        record = train_one_epoch(model, dataset, config, epoch, optimizer, rng, device)
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            value, seconds = validate(model, dataset, config, seed)
            record[f"valid_{SELECTION_METRIC}"], record["valid_seconds"] = value, seconds
            if state.record_validation(value, model):
                record["best"] = True
        state.log.append(record)
        state.epoch = epoch
        logger.info("%s", record)
        epochs_bar.set_postfix(loss=f"{record['loss']:.4f}", best_valid_ndcg10=f"{max(state.best_value, 0):.4f}")
        if checkpoint is not None and shard.is_main:
            _save_checkpoint(checkpoint, state.to_checkpoint(model, optimizer, rng))
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    model.eval()
    model.training_finish = model.finish_training(dataset, lambda: validation_ndcg_per_user(model, dataset, seed))
    if model.training_finish:
        logger.info("%s finish: %s", model.name, model.training_finish)
    return state.log


def validation_ndcg_per_user(model: NeuralRecommender, dataset: PreparedDataset, seed: int) -> np.ndarray:
    """Per-user validation NDCG@10 ranking the whole catalogue, for choices made after training.

    Always `full`: what such a choice changes (for example never-trained items' id rows) is how
    items compete with the whole catalogue, and full ranking measures that without the noise
    of drawn negatives.
    """
    ranks = evaluate(model, dataset, "valid", "full", seed, sharded=True).ranks
    return ndcg_at_k(ranks, 10)


def fit(model: Any, dataset: PreparedDataset, training: TrainingConfig, seed: int,
        checkpoint_dir: Path | None = None, resume: bool = False) -> Any:
    """Fit any registered model: the gradient loop when it is ``trainable``, its own ``fit`` otherwise.

    Returns the model; a trained one carries its per-epoch log in ``training_log``.
    """
    if model.trainable:
        model.training_log = train_neural_model(model, dataset, training, seed, checkpoint_dir, resume)
    else:
        model.fit(dataset)
    return model
