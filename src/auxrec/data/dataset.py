"""A prepared dataset loaded from its folder, with the views models and evaluation need.

Sequences are stored CSR-style (one flat item array plus per-user offsets) so that
ML-20M-sized data stays a handful of NumPy arrays rather than millions of Python lists.

Every table of a prepared folder is read by `read_prepared_table`: a missing, truncated or
corrupt file, or one that does not match the manifest, is a one-line `DataError` naming
the file and saying to run ``auxrec prepare`` again, never a pyarrow traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from auxrec.data.ids import PADDING_ID
from auxrec.data.prepare import FORMAT_VERSION, MANIFEST_NAME, SPLITS
from auxrec.data.schema import ItemColumns
from auxrec.exceptions import DataError


@dataclass(frozen=True)
class UserSequences:
    """Per-user item sequences in time order, CSR layout.

    ``items[offsets[u]:offsets[u + 1]]`` is user u's sequence; ``offsets`` has length
    ``n_users + 2`` because user ids start at 1 (user 0 is padding and always empty).
    """

    offsets: np.ndarray  # (n_users + 2,) int64
    items: np.ndarray  # (n_events,) int32

    def of(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user] : self.offsets[user + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def owners(self) -> np.ndarray:
        """(n_events,) int64: the user of each entry of ``items``."""
        return np.repeat(np.arange(len(self.offsets) - 1, dtype=np.int64), self.lengths)

    def padded(self, users: np.ndarray, max_length: int) -> np.ndarray:
        """The last ``max_length`` items of each user's sequence, left-padded with PADDING_ID.

        Returns (len(users), max_length) int64; the most recent item is in the last column.
        """
        users = np.asarray(users, dtype=np.int64)
        ends = self.offsets[users + 1]
        starts = np.maximum(self.offsets[users], ends - max_length)
        lengths = ends - starts
        out = np.full((len(users), max_length), PADDING_ID, dtype=np.int64)
        # Gather all kept events at once: column position = max_length - length + k.
        rows = np.repeat(np.arange(len(users)), lengths)
        within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        columns = max_length - np.repeat(lengths, lengths) + within
        out[rows, columns] = self.items[np.repeat(starts, lengths) + within]
        return out


def _sequences(users: np.ndarray, items: np.ndarray, n_users: int) -> UserSequences:
    """CSR sequences from rows already sorted by (user, time)."""
    counts = np.bincount(users, minlength=n_users + 1)
    offsets = np.zeros(n_users + 2, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return UserSequences(offsets=offsets, items=items.astype(np.int32, copy=False))


_MANIFEST_KEYS = ("name", "n_users", "n_items", "n_interactions", "fingerprint")


def _prepare_again(path: Path) -> str:
    return f"re-run `auxrec prepare` to rewrite {path} (--overwrite replaces it)"


def read_prepared_table(path: Path, columns: tuple[str, ...] = (), n_rows: int | None = None) -> pd.DataFrame:
    """One Parquet table of a prepared dataset folder, checked.

    Raises `DataError` naming the file when it is missing, cannot be read as Parquet
    (truncated, corrupt), lacks one of ``columns`` or has not ``n_rows`` rows.
    """
    folder = path.parent
    if not path.is_file():
        raise DataError(f"{path} is missing; the prepared dataset is incomplete: {_prepare_again(folder)}")
    try:
        frame = pd.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError, IndexError, EOFError) as error:
        # pyarrow: ArrowInvalid "Parquet magic bytes not found" (truncated), OSError
        # "ZSTD decompression failed" (corrupt pages), and more; pandas: its metadata.
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise DataError(f"{path} is truncated or corrupt ({reason}); {_prepare_again(folder)}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {', '.join(missing)}; it is not the table auxrec wrote: "
                        f"{_prepare_again(folder)}")
    if n_rows is not None and len(frame) != n_rows:
        raise DataError(f"{path} has {len(frame):,} rows where its manifest says {n_rows:,}; "
                        f"{_prepare_again(folder)}")
    return frame


class PreparedDataset:
    """A prepared dataset folder (see `auxrec.data.prepare`), loaded lazily.

    Splits follow leave-one-out: for ``valid`` the history is the training part; for
    ``test`` the history is training + the validation item.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], interactions: pd.DataFrame) -> None:
        self.path = path
        self.manifest = manifest
        self.interactions = interactions

    @classmethod
    def load(cls, path: Path | str) -> PreparedDataset:
        path = Path(path)
        manifest_path = path / MANIFEST_NAME
        if not manifest_path.is_file():
            raise DataError(f"{path} is not a prepared dataset (no {MANIFEST_NAME}); run `auxrec prepare` first")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise DataError(f"{manifest_path} is corrupt ({error}); {_prepare_again(path)}") from None
        if not isinstance(manifest, dict):
            raise DataError(f"{manifest_path} is corrupt (not a JSON object); {_prepare_again(path)}")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"{path} was prepared with format {manifest.get('format_version')}, this auxrec reads "
                f"{FORMAT_VERSION}; prepare it again"
            )
        lacking = [key for key in _MANIFEST_KEYS if key not in manifest]
        if lacking:
            raise DataError(f"{manifest_path} lacks {', '.join(lacking)}; {_prepare_again(path)}")
        table_path = path / "interactions.parquet"
        interactions = read_prepared_table(table_path, ("user", "item", "split"))
        if len(interactions) != manifest["n_interactions"]:
            raise DataError(f"{table_path} does not match its manifest; prepare the dataset again")
        if not isinstance(interactions["split"].dtype, pd.CategoricalDtype):
            raise DataError(f"{table_path}: column split is not categorical; it is not the table auxrec "
                            f"wrote: {_prepare_again(path)}")
        return cls(path, manifest, interactions)

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def n_users(self) -> int:
        return int(self.manifest["n_users"])

    @property
    def n_items(self) -> int:
        return int(self.manifest["n_items"])

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["fingerprint"])

    @property
    def item_columns(self) -> ItemColumns:
        return ItemColumns.from_dict(self.manifest.get("item_columns", {}))

    @cached_property
    def items(self) -> pd.DataFrame:
        """``items.parquet``: one row per item (``item`` 1..n_items, ``original_id``, side columns)."""
        return read_prepared_table(self.path / "items.parquet", ("item", "original_id"), self.n_items)

    @cached_property
    def users(self) -> pd.DataFrame:
        """``users.parquet``: one row per user (``user`` 1..n_users, ``original_id``, side columns)."""
        return read_prepared_table(self.path / "users.parquet", ("user", "original_id"), self.n_users)

    @cached_property
    def _split_codes(self) -> np.ndarray:
        return self.interactions["split"].cat.codes.to_numpy()

    def _sequences_up_to(self, last_split: str) -> UserSequences:
        keep = self._split_codes <= SPLITS.index(last_split)
        return _sequences(
            self.interactions["user"].to_numpy()[keep],
            self.interactions["item"].to_numpy()[keep],
            self.n_users,
        )

    @cached_property
    def train_sequences(self) -> UserSequences:
        """Training items of every user (all items of train-only users)."""
        return self._sequences_up_to("train")

    @cached_property
    def all_sequences(self) -> UserSequences:
        """Every item of every user: the set excluded when sampling negatives."""
        return self._sequences_up_to("test")

    def history(self, split: str) -> UserSequences:
        """What a model may see when predicting the ``split`` target."""
        if split == "valid":
            return self.train_sequences
        if split == "test":
            return self._sequences_up_to("valid")
        raise ValueError(f"no history for split {split!r}")

    def targets(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(users, target items) of ``split`` ('valid' or 'test'), ordered by user."""
        rows = self._split_codes == SPLITS.index(split)
        return (
            self.interactions["user"].to_numpy()[rows].astype(np.int64),
            self.interactions["item"].to_numpy()[rows].astype(np.int64),
        )

    @cached_property
    def train_item_counts(self) -> np.ndarray:
        """(n_items + 1,) number of training interactions per item; index 0 (padding) is 0."""
        return np.bincount(self.train_sequences.items, minlength=self.n_items + 1).astype(np.int64)
