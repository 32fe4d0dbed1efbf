"""`ItemFeatures`: the auxiliary vectors of every item, one matrix per modality.

Each modality is a float32 matrix ``[n_items + 1, dim]`` aligned to internal item ids
(row 0 = padding, all zeros) plus a boolean ``present`` vector saying which items really
have that modality; absent items have an all-zero row. This is the only form in which
models see side information: a model never reads a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from auxrec.data.ids import PADDING_ID
from auxrec.exceptions import DataError

MODALITIES = ("text", "image", "tabular")


@dataclass
class ItemFeatures:
    matrices: dict[str, np.ndarray] = field(default_factory=dict)  # name → (n_items + 1, dim) float32
    present: dict[str, np.ndarray] = field(default_factory=dict)  # name → (n_items + 1,) bool
    descriptions: dict[str, str] = field(default_factory=dict)  # name → which encoder made it

    def __post_init__(self) -> None:
        for name, matrix in self.matrices.items():
            matrix = np.asarray(matrix, dtype=np.float32)
            present = np.asarray(self.present.get(name, np.abs(matrix).sum(1) > 0), dtype=bool)
            if matrix.ndim != 2 or present.shape != (matrix.shape[0],):
                raise DataError(f"feature matrix {name!r} must be 2-D with one present flag per row")
            present[PADDING_ID] = False
            matrix = matrix.copy()
            matrix[~present] = 0.0  # absent → zeros, padding included
            self.matrices[name] = matrix
            self.present[name] = present

    @property
    def names(self) -> list[str]:
        return list(self.matrices)

    @property
    def n_rows(self) -> int:
        return next(iter(self.matrices.values())).shape[0] if self.matrices else 0

    def dims(self) -> dict[str, int]:
        return {name: int(matrix.shape[1]) for name, matrix in self.matrices.items()}

    def select(self, names: list[str] | tuple[str, ...]) -> ItemFeatures:
        missing = [n for n in names if n not in self.matrices]
        if missing:
            raise DataError(
                f"no {', '.join(missing)} features for this dataset; available: {', '.join(self.names) or 'none'}"
            )
        return ItemFeatures({n: self.matrices[n] for n in names}, {n: self.present[n] for n in names},
                            {n: self.descriptions.get(n, "") for n in names})

    def coverage(self) -> dict[str, tuple[int, int]]:
        """name → (items with the modality, items), padding excluded."""
        return {name: (int(p[1:].sum()), len(p) - 1) for name, p in self.present.items()}

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {}
        for name in self.matrices:
            arrays[f"{name}__matrix"] = self.matrices[name]
            arrays[f"{name}__present"] = self.present[name]
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> ItemFeatures:
        with np.load(path) as saved:
            names = sorted({key.split("__")[0] for key in saved.files})
            return cls({n: saved[f"{n}__matrix"] for n in names}, {n: saved[f"{n}__present"] for n in names})


def align_to_items(vectors: np.ndarray, original_ids: list[str], items: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Place rows keyed by original item id into the internal-id layout of a prepared dataset.

    ``items`` is the prepared ``items.parquet`` (``item``, ``original_id``). Returns the
    ``[n_items + 1, dim]`` matrix and its present mask; ids not in the dataset are ignored.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(original_ids):
        raise DataError(f"got {len(original_ids)} ids for a matrix of shape {vectors.shape}")
    n_rows = int(items["item"].max()) + 1
    lookup = pd.Series(np.arange(len(original_ids)), index=pd.Index([str(i) for i in original_ids]))
    lookup = lookup[~lookup.index.duplicated()]
    positions = lookup.reindex(items["original_id"].astype(str)).to_numpy()
    found = ~np.isnan(positions)
    matrix = np.zeros((n_rows, vectors.shape[1]), dtype=np.float32)
    present = np.zeros(n_rows, dtype=bool)
    rows = items["item"].to_numpy()[found]
    matrix[rows] = vectors[positions[found].astype(np.int64)]
    present[rows] = True
    return matrix, present


def load_feature_file(path: Path, items: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A user-supplied embedding file, aligned to the dataset's items.

    Accepted: ``.npz`` with arrays ``ids`` (original item ids) and ``vectors`` (n, dim);
    or ``.npy`` (n, dim) with a sidecar text file ``<path>.ids`` (one original id per line,
    row k ↔ line k). Items the file does not cover get zeros and present = False.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"feature file {path} not found")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as saved:
                if "ids" not in saved.files or "vectors" not in saved.files:
                    raise DataError(f"{path} must hold arrays 'ids' and 'vectors' (it has {', '.join(saved.files)})")
                ids = [str(i) for i in saved["ids"].tolist()]
                vectors = saved["vectors"]
        else:
            vectors = np.load(path, allow_pickle=False)
            sidecar = Path(f"{path}.ids")
            if not sidecar.is_file():
                raise DataError(f"{path} needs {sidecar} (one original item id per line, row k ↔ line k)")
            ids = [line.strip() for line in sidecar.read_text().splitlines() if line.strip()]
    except (ValueError, OSError) as error:
        raise DataError(f"cannot read feature file {path}: {error}") from None
    return align_to_items(vectors, ids, items)
