"""The training loop shared by every PyTorch model.

A model supplies ``training_batches`` (one epoch of tensors) and ``loss``; this loop owns
the optimiser (AdamW), the device, validation, early stopping and the progress bar, so
every model is trained and selected the same way.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from auxrec.data.dataset import PreparedDataset
from auxrec.training.config import TrainingConfig

if TYPE_CHECKING:
    from auxrec.models.base import NeuralRecommender

logger = logging.getLogger(__name__)
SELECTION_METRIC = "NDCG@10"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


def train_neural_model(
    model: NeuralRecommender, dataset: PreparedDataset, config: TrainingConfig, seed: int
) -> list[dict[str, Any]]:
    """Train ``model`` in place; return one log record per epoch.

    The best weights by validation NDCG@10 are restored at the end. ``seed`` drives the
    batch order and negative sampling (a NumPy generator owned by this call).
    """
    from auxrec.evaluation.evaluator import evaluate

    device = resolve_device(config.device)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    rng = np.random.default_rng([seed, 1])  # stream 1: training; evaluation negatives use their own
    best_value = -math.inf
    best_state: dict[str, torch.Tensor] | None = None
    rounds_without_improvement = 0
    log: list[dict[str, Any]] = []
    # disable=None lets tqdm switch itself off when stderr is not a terminal (CI logs).
    show = None if config.progress else True
    epochs_bar = tqdm(range(1, config.epochs + 1), desc=f"{model.name}", unit="epoch", disable=show)
    for epoch in epochs_bar:
        model.train()
        started = time.perf_counter()
        total_loss, n_batches = 0.0, 0
        batches = model.training_batches(dataset, config.batch_size, rng)
        bar = tqdm(batches, desc=f"epoch {epoch}", leave=False, disable=show, unit="batch", mininterval=0.5)
        for batch in bar:
            optimizer.zero_grad(set_to_none=True)
            loss = model.loss(_to_device(batch, device))
            loss.backward()
            optimizer.step()
            total_loss += float(loss.detach())
            n_batches += 1
            if n_batches % 10 == 0:
                bar.set_postfix(loss=f"{total_loss / n_batches:.4f}", refresh=False)
        record: dict[str, Any] = {
            "epoch": epoch,
            "loss": total_loss / max(n_batches, 1),
            "train_seconds": round(time.perf_counter() - started, 3),
        }
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            result = evaluate(model, dataset, "valid", config.validation_protocol, seed)
            value = result.metrics[SELECTION_METRIC]
            record[f"valid_{SELECTION_METRIC}"] = value
            if value > best_value:
                best_value, rounds_without_improvement = value, 0
                best_state = copy.deepcopy(model.state_dict())
                record["best"] = True
            else:
                rounds_without_improvement += 1
        log.append(record)
        epochs_bar.set_postfix(loss=f"{record['loss']:.4f}", best_valid_ndcg10=f"{max(best_value, 0):.4f}")
        logger.info("%s", record)
        if rounds_without_improvement >= config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return log
