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


# Largest |value| accepted in a user's feature file. Embeddings are O(1)-O(100); 1e6 leaves
# room for unnormalised scores or counts, while values near float32's limit (3.4e38) would
# overflow later (the squared norms the fusion layer scales by become inf, and the
# modality silently turns to zeros) with nothing but a RuntimeWarning.
MAX_FEATURE_MAGNITUDE = 1e6
_CHECK_ROWS = 65_536  # rows checked at a time (bounds the temporary masks of big files)


def _check_ids(ids: list[str], source: str) -> None:
    for row, item in enumerate(ids):
        if "\x00" in item:
            raise DataError(f"{source}: ids[{row}] = {item!r} contains a NUL byte; ids must be plain text")
    index = pd.Index(ids)
    duplicated = index.duplicated()
    if duplicated.any():
        second = int(np.flatnonzero(duplicated)[0])
        first = ids.index(ids[second])
        raise DataError(f"{source}: id {ids[second]!r} appears more than once (ids[{first}] and "
                        f"ids[{second}]); give each item exactly one vector")


def _check_values(vectors: np.ndarray, ids: list[str], source: str) -> None:
    if vectors.dtype.kind not in "biuf":
        raise DataError(f"{source}: vectors must be real numbers, not {vectors.dtype}")
    for start in range(0, len(vectors), _CHECK_ROWS):
        block = np.asarray(vectors[start : start + _CHECK_ROWS], dtype=np.float64)
        bad = ~np.isfinite(block) | (np.abs(block) > MAX_FEATURE_MAGNITUDE)
        if bad.any():
            row, column = (int(k) for k in np.argwhere(bad)[0])
            value = block[row, column]
            what = "is not a number" if np.isnan(value) else "is infinite" if np.isinf(value) else \
                f"is larger in magnitude than the {MAX_FEATURE_MAGNITUDE:g} accepted"
            raise DataError(f"{source}: vectors[{start + row}, {column}] (id {ids[start + row]!r}) is "
                            f"{value:g}, which {what}; fix or drop that row")


def align_to_items(vectors: np.ndarray, original_ids: list[str], items: pd.DataFrame,
                   source: str = "feature file") -> tuple[np.ndarray, np.ndarray]:
    """Place rows keyed by original item id into the internal-id layout of a prepared dataset.

    ``items`` is the prepared ``items.parquet`` (``item``, ``original_id``). Returns the
    ``[n_items + 1, dim]`` matrix and its present mask; ids not in the dataset are ignored.

    Raises `DataError` (``source`` names the file) when a value is NaN, infinite or larger
    in magnitude than `MAX_FEATURE_MAGNITUDE` (any row, used or not: the file is broken),
    an id contains a NUL byte or appears twice, or the ids cover none of the dataset's items.
    """
    vectors = np.asarray(vectors)
    original_ids = [str(i) for i in original_ids]
    if vectors.ndim != 2 or len(vectors) != len(original_ids):
        raise DataError(f"{source}: got {len(original_ids)} ids for a matrix of shape {vectors.shape}")
    if vectors.shape[1] == 0:
        raise DataError(f"{source}: the vectors have no columns (shape {vectors.shape})")
    _check_ids(original_ids, source)
    _check_values(vectors, original_ids, source)
    vectors = vectors.astype(np.float32, copy=False)
    n_rows = int(items["item"].max()) + 1
    lookup = pd.Series(np.arange(len(original_ids)), index=pd.Index(original_ids))
    dataset_ids = items["original_id"].astype(str)
    positions = lookup.reindex(dataset_ids).to_numpy()
    found = ~np.isnan(positions)
    if not found.any():
        theirs = ", ".join(repr(i) for i in original_ids[:3]) or "none"
        ours = ", ".join(repr(i) for i in dataset_ids.iloc[:3])
        raise DataError(f"{source}: its {len(original_ids):,} ids match none of the dataset's {len(items):,} "
                        f"items (the file's ids: {theirs}, ...; the dataset's original ids: {ours}, ...)")
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

    Refused with a `DataError` naming the file (see `align_to_items`): NaN, infinite or
    absurdly large values (|x| > `MAX_FEATURE_MAGNITUDE`), duplicate ids, ids with NUL
    bytes, and a file that covers none of the dataset's items.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"feature file {path} not found")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as saved:
                if "ids" not in saved.files or "vectors" not in saved.files:
                    raise DataError(f"{path} must hold arrays 'ids' and 'vectors' (it has {', '.join(saved.files)})")
                raw_ids = saved["ids"]
                if raw_ids.ndim != 1:
                    raise DataError(f"{path}: 'ids' must be a 1-D array, not shape {raw_ids.shape}")
                ids = [i.decode() if isinstance(i, bytes) else str(i) for i in raw_ids.tolist()]
                vectors = saved["vectors"]
        else:
            vectors = np.load(path, allow_pickle=False)
            if not isinstance(vectors, np.ndarray):
                vectors.close()
                raise DataError(f"{path} holds several arrays; name it .npz (arrays 'ids' and 'vectors')")
            sidecar = Path(f"{path}.ids")
            if not sidecar.is_file():
                raise DataError(f"{path} needs {sidecar} (one original item id per line, row k ↔ line k)")
            ids = [line.strip() for line in sidecar.read_text().splitlines() if line.strip()]
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"cannot read feature file {path}: {error}") from None
    return align_to_items(vectors, ids, items, source=f"feature file {path}")
