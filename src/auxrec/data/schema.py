"""The one in-memory form every loader produces.

A `RawDataset` holds original ids exactly as the source has them; preparation
(`auxrec.data.prepare`) turns it into a `PreparedDataset` with internal ids and a split.

Interactions: columns ``user``, ``item``, ``timestamp`` (int64 seconds since the Unix
epoch; dates become midnight UTC) and optionally ``rating`` (float). Row order is the
source order, which breaks ties between equal timestamps.

Items: one row per item with column ``item`` plus side information whose role is given
by `ItemColumns`: free text, categorical, numeric, multi-label (lists of tags such as
genres, used as keywords by KeBERT4Rec) and an image path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from auxrec.exceptions import DataError

INTERACTION_COLUMNS = ("user", "item", "timestamp")
OPTIONAL_INTERACTION_COLUMNS = ("rating",)


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


@dataclass
class RawDataset:
    """Interactions, item side information and optional user attributes, original ids.

    ``source`` records where the data came from (format, folder, files) and ends up in
    the prepared dataset's manifest.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame | None = None
    item_columns: ItemColumns = field(default_factory=ItemColumns)
    users: pd.DataFrame | None = None
    user_columns: tuple[str, ...] = ()
    source: dict[str, Any] = field(default_factory=dict)

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
        if not pd.api.types.is_integer_dtype(self.interactions["timestamp"]):
            raise DataError(f"{self.name}: timestamps must be integer seconds after loading")
        if self.items is not None:
            if "item" not in self.items.columns:
                raise DataError(f"{self.name}: the item table lacks the 'item' column")
            absent = [c for c in self.item_columns.all_columns() if c not in self.items.columns]
            if absent:
                raise DataError(f"{self.name}: the item table lacks declared column(s) {', '.join(absent)}")
            if self.items["item"].duplicated().any():
                dup = self.items.loc[self.items["item"].duplicated(), "item"].iloc[0]
                raise DataError(f"{self.name}: item {dup!r} appears twice in the item table")
        if self.users is not None and "user" not in self.users.columns:
            raise DataError(f"{self.name}: the user table lacks the 'user' column")
