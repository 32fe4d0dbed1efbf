"""The one in-memory form every loader produces.

A `RawDataset` holds original ids exactly as the source has them; preparation
(`auxrec.data.prepare`) turns it into a `PreparedDataset` with internal ids and a split.

Interactions: columns ``user``, ``item``, ``timestamp`` (int64 seconds since the Unix
epoch; dates become midnight UTC) and optionally ``rating`` (float). Row order is the
source order, which breaks ties between equal timestamps.

Items: one row per item with column ``item`` plus side information whose role is given
by `ItemColumns`: free text, categorical, numeric, multi-label (lists of tags such as
genres, used as keywords by KeBERT4Rec) and an image path.

Item attributes derived from interactions (a product's price paid per transaction, a
rating statistic, ...) must not be aggregated by the loader: it reads every interaction,
validation and test ones included, so the attribute would carry test-time information.
The loader instead keeps the per-interaction value as an extra interaction column and
declares an `InteractionAggregate`; preparation computes the item attribute after the
leave-one-out split from the *training* interactions only (NaN for items without any).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from auxrec.exceptions import DataError

INTERACTION_COLUMNS = ("user", "item", "timestamp")
SPLITS = ("train", "valid", "test")  # the prepared `split` column's values, in code order
OPTIONAL_INTERACTION_COLUMNS = ("rating",)
# How an `InteractionAggregate` combines an item's training values (pandas groupby names;
# all skip NaN and give NaN for an item with no non-missing training value).
AGGREGATIONS = ("mean", "median", "min", "max")

# Timestamps are int64 seconds; pandas' datetimes (int64 nanoseconds) reach ±2262 years
# from 1970, so anything beyond that many seconds is a unit mistake or a corrupt value.
MAX_TIMESTAMP_SECONDS = int(pd.Timestamp.max.value // 1_000_000_000)


def check_timestamp_range(seconds: np.ndarray, dataset: str, where: str, original: pd.Series | None = None) -> None:
    """Raise `DataError` naming the first row whose timestamp lies outside ±`MAX_TIMESTAMP_SECONDS`."""
    # Both bounds rather than |seconds|: abs(INT64_MIN) overflows, and no 20M-row float copy is made.
    bad = (seconds < -MAX_TIMESTAMP_SECONDS) | (seconds > MAX_TIMESTAMP_SECONDS)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = str(original.iloc[row] if original is not None else seconds[row])
        raise DataError(f"{dataset}: row {row + 1} ({where}) has timestamp {value!r}, outside the range of dates "
                        f"(|seconds since 1970| <= {MAX_TIMESTAMP_SECONDS:.3g}); fix that row or the timestamp unit")


def _refuse_nul(ids: pd.Series, dataset: str, what: str) -> None:
    """A NUL byte in an id is a corrupt or binary file: it would print as nothing and split C strings."""

    def nul(value: Any) -> bool:
        return isinstance(value, str) and "\x00" in value

    # Distinct ids first: one Python call per row of 20M rows took seconds, on every validation.
    if pd.api.types.is_numeric_dtype(ids) or not any(map(nul, ids.unique())):
        return
    has_nul = ids.map(nul)
    if has_nul.any():
        row = int(has_nul.to_numpy().nonzero()[0][0])
        raise DataError(f"{dataset}: {what} {ids.iloc[row]!r} (row {row + 1}) contains a NUL byte; "
                        "check that the file is text and not corrupted")


@dataclass(frozen=True)
class ItemColumns:
    """Which item-table columns carry which kind of side information."""

    text: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    multi_label: tuple[str, ...] = ()
    image: str | None = None

    def all_columns(self) -> list[str]:
        columns = [*self.text, *self.categorical, *self.numeric, *self.multi_label]
        if self.image is not None:
            columns.append(self.image)
        return columns

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": list(self.text),
            "categorical": list(self.categorical),
            "numeric": list(self.numeric),
            "multi_label": list(self.multi_label),
            "image": self.image,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ItemColumns:
        return cls(
            text=tuple(values.get("text", ())),
            categorical=tuple(values.get("categorical", ())),
            numeric=tuple(values.get("numeric", ())),
            multi_label=tuple(values.get("multi_label", ())),
            image=values.get("image"),
        )


@dataclass(frozen=True)
class InteractionAggregate:
    """An item attribute computed from a per-interaction value, from training rows only.

    ``source`` is a numeric column of the interaction table (e.g. H&M's per-transaction
    ``price``); ``column`` is the item-table column that `auxrec.data.prepare` fills with
    ``how`` (one of `AGGREGATIONS`) over the item's *training* interactions of the
    prepared data, i.e. after duplicate removal, filtering and the leave-one-out split.
    Validation and test interactions never contribute; an item with no training
    interaction (or only missing values) gets NaN, which the item encoders treat as a
    missing value. Items without a metadata row (``has_metadata`` False) get NaN too,
    like every other attribute. Declare ``column`` in `ItemColumns` (usually numeric) to
    use it as a feature; it must not also be a column of the loader's item table.
    """

    column: str
    source: str
    how: str = "mean"

    def to_dict(self) -> dict[str, str]:
        return {"column": self.column, "source": self.source, "how": self.how, "rows": "train"}


@dataclass
class RawDataset:
    """Interactions, item side information and optional user attributes, original ids.

    ``source`` records where the data came from (format, folder, files) and ends up in
    the prepared dataset's manifest. ``item_aggregates`` lists the item attributes that
    preparation derives from interaction columns using training rows only (see
    `InteractionAggregate`); their source columns stay in ``interactions`` and are not
    written to the prepared interaction table.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame | None = None
    item_columns: ItemColumns = field(default_factory=ItemColumns)
    users: pd.DataFrame | None = None
    user_columns: tuple[str, ...] = ()
    source: dict[str, Any] = field(default_factory=dict)
    item_aggregates: tuple[InteractionAggregate, ...] = ()

    def validate(self) -> None:
        """Raise `DataError` with a precise message if the dataset is malformed."""
        missing = [c for c in INTERACTION_COLUMNS if c not in self.interactions.columns]
        if missing:
            raise DataError(f"{self.name}: interactions lack column(s) {', '.join(missing)}")
        if len(self.interactions) == 0:
            raise DataError(f"{self.name}: no interactions were read")
        for column in ("user", "item", "timestamp"):
            if self.interactions[column].isna().any():
                n_missing = int(self.interactions[column].isna().sum())
                raise DataError(f"{self.name}: {n_missing} interaction(s) have no {column}")
        for column in ("user", "item"):
            _refuse_nul(self.interactions[column], self.name, f"interaction {column} id")
        if not pd.api.types.is_integer_dtype(self.interactions["timestamp"]):
            raise DataError(f"{self.name}: timestamps must be integer seconds after loading")
        # Every loader's timestamps pass here: an overflowed cast (INT64_MIN) would reorder a history.
        check_timestamp_range(self.interactions["timestamp"].to_numpy(), self.name, "of the interactions")
        if self.items is not None:
            if "item" not in self.items.columns:
                raise DataError(f"{self.name}: the item table lacks the 'item' column")
            aggregated = {a.column for a in self.item_aggregates}
            present = {*self.items.columns, *aggregated}
            absent = [c for c in self.item_columns.all_columns() if c not in present]
            if absent:
                raise DataError(f"{self.name}: the item table lacks declared column(s) {', '.join(absent)}")
            _refuse_nul(self.items["item"], self.name, "item-table id")
            if self.items["item"].duplicated().any():
                dup = self.items.loc[self.items["item"].duplicated(), "item"].iloc[0]
                raise DataError(f"{self.name}: item {dup!r} appears twice in the item table")
        if self.users is not None and "user" not in self.users.columns:
            raise DataError(f"{self.name}: the user table lacks the 'user' column")
        self._validate_aggregates()

    def _validate_aggregates(self) -> None:
        if not self.item_aggregates:
            return
        if self.items is None:
            raise DataError(f"{self.name}: item attributes aggregated from interactions need an item table")
        seen: set[str] = set()
        for aggregate in self.item_aggregates:
            column, source = aggregate.column, aggregate.source
            where = f"{self.name}: item attribute {column!r}"
            if aggregate.how not in AGGREGATIONS:
                known = ", ".join(AGGREGATIONS)
                raise DataError(f"{where}: unknown aggregation {aggregate.how!r}; known: {known}")
            if column in seen or column == "item":
                raise DataError(f"{where} is aggregated twice or is the id column")
            seen.add(column)
            if column in self.items.columns:
                raise DataError(f"{where} is both in the item table and aggregated from interactions")
            if source not in self.interactions.columns:
                raise DataError(f"{where} is aggregated from column {source!r}, which the interactions lack")
            values = self.interactions[source]
            if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
                raise DataError(f"{where}: interaction column {source!r} must be numeric, not {values.dtype}")
