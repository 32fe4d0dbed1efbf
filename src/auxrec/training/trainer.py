"""The training loop shared by every PyTorch model.

A model supplies its batches (`NeuralRecommender.training_batches`) and ``loss``; this
loop owns the optimiser (AdamW), the device and bf16 autocast on CUDA, validation, early
stopping, per-epoch checkpoints and resumption, and the progress bar, so every model is
trained and selected the same way.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from auxrec.data.dataset import PreparedDataset
from auxrec.data.ids import PADDING_ID
from auxrec.exceptions import CheckpointError, ConfigError, DamagedFile, TrainingDiverged
from auxrec.training.batching import Shard
from auxrec.training.config import TrainingConfig

if TYPE_CHECKING:
    from auxrec.models.base import NeuralRecommender

logger = logging.getLogger(__name__)
SELECTION_METRIC = "NDCG@10"
CHECKPOINT_NAME = "checkpoint.pt"


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
    temporary = path.with_name(f".{path.name}.partial")
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


def _should_stop(rounds_without_improvement: int, epochs_done: int, config: TrainingConfig) -> bool:
    return rounds_without_improvement >= config.patience and epochs_done >= config.min_epochs


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
    from auxrec.evaluation.evaluator import evaluate

    device = resolve_device(config.device)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    rng = np.random.default_rng([seed, 1])  # stream 1: training; evaluation negatives use their own
    shard = Shard.current()
    best_value = -math.inf
    best_state: dict[str, torch.Tensor] | None = None
    rounds_without_improvement = 0
    log: list[dict[str, Any]] = []
    first_epoch = 1
    checkpoint = checkpoint_dir / CHECKPOINT_NAME if checkpoint_dir is not None else None
    if resume and checkpoint is not None and checkpoint.is_file():
        state = load_checkpoint(checkpoint, device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        best_value, best_state = state["best_value"], state["best_state"]
        rounds_without_improvement, log = state["rounds_without_improvement"], state["log"]
        first_epoch = state["epoch"] + 1
        logger.info("resuming %s from epoch %d", model.name, first_epoch)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    # disable=None lets tqdm switch itself off when stderr is not a terminal (CI logs).
    show = None if config.progress else True
    stopped = _should_stop(rounds_without_improvement, first_epoch - 1, config)
    epochs_bar = tqdm(range(first_epoch, config.epochs + 1), desc=model.name, unit="epoch", disable=show,
                      initial=first_epoch - 1, total=config.epochs)
    for epoch in epochs_bar:
        if stopped:
            break
        model.train()
        started = time.perf_counter()
        total_loss, n_batches, n_rows, n_positions = 0.0, 0, 0, 0
        bar = tqdm(model.training_batches(dataset, config.batch_size, rng, shard,
                                          config.length_bucketing), desc=f"epoch {epoch}",
                   leave=False, disable=show, unit="batch", mininterval=0.5)
        for batch in bar:
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                loss = model.loss(_to_device(batch, device))
            batch_loss = float(loss.detach())  # the one host sync per step, read before the update
            if not math.isfinite(batch_loss):
                # A non-finite loss would train NaN weights into a run that looks finished
                # (every metric 0); stop while the previous epoch's checkpoint is intact.
                raise TrainingDiverged(
                    f"{model.name} diverged: the training loss became {batch_loss} in epoch {epoch} "
                    f"(batch {n_batches + 1}); lower --lr (now {config.learning_rate:g}) or check the item "
                    "features; no finished run was written"
                )
            loss.backward()
            optimizer.step()
            rows, positions = _batch_counts(batch)
            total_loss += batch_loss
            n_batches, n_rows, n_positions = n_batches + 1, n_rows + rows, n_positions + positions
            if n_batches % 10 == 0:
                elapsed = time.perf_counter() - started
                bar.set_postfix(loss=f"{total_loss / n_batches:.4f}", seq_per_s=f"{n_rows / elapsed:.0f}",
                                refresh=False)
        seconds = time.perf_counter() - started
        record: dict[str, Any] = {
            "epoch": epoch,
            "loss": total_loss / max(n_batches, 1),
            "train_seconds": round(seconds, 3),
            "sequences_per_second": round(n_rows / seconds, 1) if seconds else None,
            "positions_per_second": round(n_positions / seconds, 1) if seconds else None,
        }
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            evaluated = time.perf_counter()
            result = evaluate(model, dataset, "valid", config.validation_protocol, seed)
            value = result.metrics[SELECTION_METRIC]
            record[f"valid_{SELECTION_METRIC}"] = value
            record["valid_seconds"] = round(time.perf_counter() - evaluated, 3)
            if value > best_value:
                best_value, rounds_without_improvement = value, 0
                best_state = copy.deepcopy(model.state_dict())
                record["best"] = True
            else:
                rounds_without_improvement += 1
        log.append(record)
        logger.info("%s", record)
        epochs_bar.set_postfix(loss=f"{record['loss']:.4f}", best_valid_ndcg10=f"{max(best_value, 0):.4f}")
        stopped = _should_stop(rounds_without_improvement, epoch, config)
        if checkpoint is not None:
            _save_checkpoint(checkpoint, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(), "best_value": best_value, "best_state": best_state,
                "rounds_without_improvement": rounds_without_improvement, "log": log, "epoch": epoch,
            })
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return log
