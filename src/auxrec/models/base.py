"""The shared torch plumbing of the neural models (the contract itself: `auxrec.models.contract`).

Evaluation calls nothing but `Recommender.score`; the training layer
(`auxrec.training.trainer`) drives ``training_units``, ``make_batch`` and ``loss``. A model
never imports the trainer: dependencies point from training to models, not back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from torch import nn

from auxrec.data.dataset import PreparedDataset
from auxrec.exceptions import ConfigError
from auxrec.features.item_features import ItemFeatures
from auxrec.models.contract import Recommender, UserHistories  # noqa: F401 (the contract, re-exported)
from auxrec.run_layout import WEIGHTS_NAME


class NeuralRecommender(nn.Module):
    """Base of the PyTorch models: config handling, save/load and the training hand-off.

    Subclasses define ``name``, ``config_class``, the network in ``__init__``,
    ``training_units`` and ``make_batch`` (what one epoch iterates over), ``loss`` and ``score``.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    trainable: ClassVar[bool] = True
    uses_item_features: ClassVar[bool] = False
    required_features: ClassVar[tuple[str, ...]] = ()
    relative_cost: ClassVar[int] = 1
    training_defaults: ClassVar[dict[str, Any]] = {}
    scores_new_histories: ClassVar[bool] = False
    history_length: int = 0
    # Bumped when a fix changes the numbers the same settings give, so that a run trained
    # before it is retrained rather than reused as if current (`revisions`, in config.json).
    revision: ClassVar[int] = 1

    @classmethod
    def revisions(cls, config: Any, with_features: bool) -> dict[str, int]:
        """The revisions a run of this model with ``config`` records (and must match to be reused)."""
        return {"model": cls.revision}

    def __init__(self, config: Any, *, n_users: int, n_items: int) -> None:
        super().__init__()
        self.config = config
        self.n_users = n_users
        self.n_items = n_items
        self.training_log: list[dict[str, Any]] = []
        self.training_finish: dict[str, Any] | None = None  # what finish_training did, when anything

    # -- training -----------------------------------------------------------------
    def training_units(self, dataset: PreparedDataset) -> tuple[np.ndarray, np.ndarray | None]:
        """What one epoch iterates over (e.g. user ids) and, optionally, their lengths for bucketing."""
        raise NotImplementedError

    def make_batch(
        self, dataset: PreparedDataset, units: np.ndarray, rng: np.random.Generator
    ) -> dict[str, torch.Tensor]:
        """Tensors of one batch built from ``units``."""
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def prepare_training(self, dataset: PreparedDataset) -> None:
        """Called by the trainer before the first epoch (and again on resume); nothing by default."""

    def finish_training(self, dataset: PreparedDataset,
                        validation_ndcg: Callable[[], np.ndarray] | None = None) -> dict[str, Any] | None:
        """Called by the trainer once the best weights are restored, before the model is saved; nothing by default.

        ``validation_ndcg()`` gives the model's per-user validation NDCG@10 as it stands, for a
        choice made on validation; what is returned goes into the run's training log.
        """
        return None

    # Batch entries every row shares (drawn once per batch): data-parallel processes keep
    # them whole while they split the rest by row (`auxrec.training.distributed`).
    shared_batch_keys: ClassVar[tuple[str, ...]] = ()

    def loss_count(self, batch: dict[str, torch.Tensor]) -> int:
        """How many terms ``loss`` averages over (one per row here), so that data-parallel
        processes can weight their slice of a batch by its share."""
        return int(next(iter(batch.values())).shape[0])

    def parameter_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW parameter groups; one group of every parameter unless a model decays some differently."""
        return [{"params": list(self.parameters()), "weight_decay": weight_decay}]

    def feature_dims(self) -> dict[str, int] | None:
        """Width of each auxiliary modality the model was built with (saved, to rebuild it), or None."""
        return None

    def item_vectors(self) -> torch.Tensor | None:
        """(n_items + 1, d) item representations; the models that have them override this."""
        return None

    def add_items(self, feature_rows: dict[str, torch.Tensor], neighbours: torch.Tensor | None = None,
                  weights: torch.Tensor | None = None) -> None:
        """Append items known only by their content (stored feature rows, one per new item).

        ``neighbours``/``weights`` (m, K): trained items whose id embeddings a new item's is
        borrowed from. Only models that read item content can take new items; the others
        refuse (`auxrec add-items`).
        """
        raise ConfigError(f"{self.name} represents items by learnt ids only, so it cannot score items added "
                          "after training; train sasrec or bert4rec with item features (--aux)")

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- persistence --------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"name": self.name, "config": asdict(self.config), "n_users": self.n_users, "n_items": self.n_items,
                "feature_dims": self.feature_dims()}
        (directory / "model.json").write_text(json.dumps(meta, indent=2))
        torch.save(self.state_dict(), directory / WEIGHTS_NAME)

    @classmethod
    def load(cls, directory: Path) -> Self:
        meta = json.loads((directory / "model.json").read_text())
        kwargs: dict[str, Any] = {"n_users": meta["n_users"], "n_items": meta["n_items"]}
        if meta.get("feature_dims"):
            # Placeholder features of the right shapes; the saved buffers overwrite them.

            rows = meta["n_items"] + 1
            kwargs["item_features"] = ItemFeatures(
                {name: np.zeros((rows, dim), np.float32) for name, dim in meta["feature_dims"].items()}
            )
        model = cls(cls.config_class(**meta["config"]), **kwargs)
        model.load_state_dict(torch.load(directory / WEIGHTS_NAME, map_location="cpu", weights_only=True))
        model.eval()
        return model
