"""Fusion of auxiliary item vectors into the model width (the paper's ``W · k_v``).

- ``concat``: concatenate the chosen modalities' vectors, one linear map to width d;
- ``sum``: one linear map per modality to width d, then add.

The feature matrices are frozen buffers (encoders are not fine-tuned) and travel with the
model's weights, so a saved SASRec+ reloads without its feature files. Each modality is
rescaled once so that its mean item-vector norm is 1: encoders differ in scale by orders
of magnitude (a 1280-d CNN vector vs a unit-norm sentence vector), and without this the
largest modality would dominate the first updates. Missing modalities are zero rows.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from auxrec.exceptions import ConfigError
from auxrec.features.item_features import ItemFeatures

FUSION_MODES = ("concat", "sum")


class AuxiliaryFusion(nn.Module):
    def __init__(self, dims: dict[str, int], n_rows: int, mode: str, width: int) -> None:
        super().__init__()
        if mode not in FUSION_MODES:
            raise ConfigError(f"unknown fusion {mode!r}; choose one of {', '.join(FUSION_MODES)}")
        if not dims:
            raise ConfigError("fusion needs at least one modality")
        self.mode = mode
        self.names = list(dims)
        for name, dim in dims.items():
            self.register_buffer(f"features_{name}", torch.zeros(n_rows, dim))
        if mode == "concat":
            self.projection = nn.Linear(sum(dims.values()), width)
        else:
            self.projections = nn.ModuleDict({name: nn.Linear(dim, width) for name, dim in dims.items()})

    @classmethod
    def from_features(cls, features: ItemFeatures, mode: str, width: int) -> AuxiliaryFusion:
        module = cls(features.dims(), features.n_rows, mode, width)
        with torch.no_grad():
            for name, matrix in features.matrices.items():
                present = features.present[name]
                norms = np.linalg.norm(matrix[present], axis=1) if present.any() else np.ones(1)
                scale = float(norms.mean()) or 1.0
                getattr(module, f"features_{name}").copy_(torch.from_numpy(matrix / scale))
        return module

    def dims(self) -> dict[str, int]:
        return {name: int(getattr(self, f"features_{name}").shape[1]) for name in self.names}

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        """(...,) item ids → (..., width) projected auxiliary vectors."""
        vectors = [getattr(self, f"features_{name}")[item_ids] for name in self.names]
        if self.mode == "concat":
            return self.projection(torch.cat(vectors, dim=-1))
        return torch.stack([self.projections[n](v) for n, v in zip(self.names, vectors)]).sum(0)

    def all_items(self) -> torch.Tensor:
        """(n_items + 1, width) projected vectors of every item."""
        rows = getattr(self, f"features_{self.names[0]}").shape[0]
        return self.forward(torch.arange(rows, device=self.projection_device()))

    def projection_device(self) -> torch.device:
        return getattr(self, f"features_{self.names[0]}").device
