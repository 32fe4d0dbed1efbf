"""Cold-start items: which items a prepared dataset holds out of training, and which rows go.

**Cold-start items** (``cold_start_fraction = f``, off by default). An item's *first-seen
time* is the timestamp of its earliest interaction (in any split). The time cut ``T`` is the
first-seen time of the ``(n - ⌊f·n⌋)``-th item in first-seen order (n = the items left after
cleaning, steps 1-3 of `auxrec.data.prepare`);
the items first seen strictly after ``T`` are *cold*: at most ⌊f·n⌋ items, exactly that many
unless several items are first seen at ``T`` itself (a time cut cannot separate items that
appear at the same moment; they all stay warm). ``f`` is a share of the catalogue rather
than of the interactions because on MovieLens, where users rate old films late, the latest
10% of interactions introduce only 45 of ML-100K's 1,682 items (14 test targets); a
share of the items gives a controlled number of cold items on every dataset.

**Cold-start items by attribute** (``cold_start_where = "COLUMN OP VALUE"``, e.g. ``"year >=
2000"``; `ColdStartCondition`). The items whose row in the item table satisfies the
comparison are cold; items without a value (or without a row) stay warm. Why a second rule:
in a rating log collected after the fact, such as MovieLens, "first seen late" mostly means
"rarely rated" (on the ML-1M subset the time cut's cold films have a median of 10 ratings
against 114, and are no newer: median year 1995 against 1993), so the time cut measures
obscure items, not new ones. Holding out the films released in the log's last year
measures what a new catalogue entry meets: on the ML-1M subset, the 151 films of 2000 are
the test target of 462 of 2,999 users, 4.2 times more often per film than older films.

The leave-one-out split (step 6 of `auxrec.data.prepare`) is computed first, on all interactions, so every user's
validation and test targets are the ones they have without the option. Then (either rule):

- every ``train`` row of a cold item is **dropped** from the prepared data, so no cold item
  occurs in a training row: it occurs only as a validation or test target, and in the
  history a model sees at test time when it is the user's validation target (test history
  = training rows + the validation item, `PreparedDataset.history`). The dropped rows are
  gone entirely: they are not part of any user's history and not excluded when negatives
  are sampled (`all_sequences`);
- a user left with no training row (all of them were cold) is dropped with all their rows,
  since nothing about them could be learned or shown to a model (``users_dropped`` counts
  them, train-only users whose every row was cold included);
- cold items stay in the catalogue (the item table, ``n_items``) even when none of their
  rows is left (they occurred only in dropped training rows): they are new items a model
  may still recommend, so they compete in the ``full`` protocol and can be sampled as
  negatives; users are numbered 1..n again when some were dropped (same order).

The manifest's ``cold_start`` section records ``f`` and ``T`` (or the condition), the
number of cold items, the dropped rows and users, and the cold validation and test targets; the option enters
the manifest's ``options`` (and so the fingerprint) only when it is set, so preparing without
it gives the same files as before the option existed.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from auxrec.data.ids import FIRST_ID, PADDING_ID, to_internal
from auxrec.data.schema import SPLITS
from auxrec.exceptions import DataError

COLD_START_RULE = (
    "cold items: first seen strictly after the cut T, the first-seen time of the (n - floor(f*n))-th item "
    "in first-seen order; their training rows are dropped (they occur only as validation/test targets and, "
    "as a validation target, in the test history); cold items stay in the catalogue; users left without a "
    "training row are dropped"
)
COLD_START_WHERE_RULE = (
    "cold items: those whose item-table value satisfies the condition (items without a value stay warm); "
    "their training rows are dropped (they occur only as validation/test targets and, as a validation target, "
    "in the test history); cold items stay in the catalogue; users left without a training row are dropped"
)

_COMPARISONS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
                ">": operator.gt, "<": operator.lt}
_CONDITION = re.compile(r"^\s*([A-Za-z_][\w]*)\s*(>=|<=|==|!=|>|<)\s*(.*?)\s*$")


@dataclass(frozen=True)
class ColdStartCondition:
    """``COLUMN OP VALUE`` over the item table, e.g. ``year >= 2000`` or ``section == 'Sale'``.

    OP is one of ``>= <= == != > <``. VALUE is compared as a number when the column is
    numeric and as text otherwise (quotes around it are optional). Deliberately not a query
    language: one comparison says which items are new, and it cannot run code.
    """

    column: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> ColdStartCondition:
        """Raise ``ValueError`` (a one-line option error) when ``text`` is not one comparison."""
        match = _CONDITION.match(text)
        if not match or not match.group(3):
            raise ValueError("expected one comparison COLUMN OP VALUE with OP one of >= <= == != > < "
                             "(e.g. 'year >= 2000')")
        column, op, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        return cls(column, op, value)

    def __str__(self) -> str:
        return f"{self.column} {self.op} {self.value}"

    def items(self, item_table: pd.DataFrame | None, item_index: pd.Index) -> np.ndarray:
        """(len(item_index) + 1,) bool by internal item id: the items satisfying the condition.

        ``item_table`` is the loaded item table (original ids in ``item``). Raises `DataError`
        when it lacks the column, or when VALUE is not a number for a numeric column.
        """
        if item_table is None or self.column not in item_table.columns or self.column == "item":
            known = [] if item_table is None else [c for c in item_table.columns if c != "item"]
            raise DataError(f"--cold-start-where {self}: the item table has no column {self.column!r}"
                            + (f"; it has {', '.join(known)}" if known else " (this dataset has no item table)"))
        column = item_table[self.column]
        if column.map(lambda v: isinstance(v, list | tuple | np.ndarray)).any():
            raise DataError(f"--cold-start-where {self}: {self.column} holds lists (several values per item); "
                            "compare a column with one value per item")
        compare = _COMPARISONS[self.op]
        present = column.notna().to_numpy()  # no value: warm, whatever the comparison (NaN != x is true)
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            try:
                value: Any = float(self.value)
            except ValueError:
                raise DataError(f"--cold-start-where {self}: {self.column} is numeric, so the value must be a "
                                f"number, not {self.value!r}") from None
            satisfied = present & compare(column.to_numpy(dtype=np.float64, na_value=np.nan), value)
        else:
            satisfied = present & compare(column.astype(str).to_numpy(), self.value)
        cold = np.zeros(len(item_index) + FIRST_ID, dtype=bool)
        ids = to_internal(item_index, item_table["item"].to_numpy())
        chosen = ids[(ids != PADDING_ID) & np.asarray(satisfied, dtype=bool)]
        cold[chosen] = True
        return cold


@dataclass(frozen=True)
class ColdStartHoldOut:
    """What `hold_out_items` decided, over the rows it was given."""

    keep: np.ndarray  # (n_rows,) bool: rows that stay in the prepared data
    cold: np.ndarray  # (n_items + 1,) bool by internal item id: the cold items
    cut: int | None  # T: cold items are first seen strictly after it (None: chosen by a condition)
    train_rows_dropped: int  # training rows of cold items
    users_dropped: int  # users with no row left (no training row was left, so all their rows go)
    rows_of_dropped_users: int  # their validation/test rows (their cold training rows count above)


def cold_start_cut(first_seen: np.ndarray, fraction: float) -> int:
    """The time cut T: items first seen strictly after T are cold (at most ``floor(fraction * n)``).

    ``first_seen`` holds each item's earliest timestamp. T is the first-seen time of the
    ``(n - floor(fraction * n))``-th item in first-seen order, so at least ``1 - fraction`` of
    the items are first seen at or before it; items tied with it stay warm. Raises
    `DataError` when ``floor(fraction * n)`` is 0 (no item could be cold).
    """
    ordered = np.sort(np.asarray(first_seen, dtype=np.int64))
    n_cold = math.floor(fraction * len(ordered) + 1e-9)
    if n_cold < 1:
        raise DataError(f"--cold-start-fraction {fraction} of {len(ordered):,} items holds out no item; "
                        f"use at least {1 / max(len(ordered), 1):.3g}")
    return int(ordered[len(ordered) - n_cold - 1])


def hold_out_cold_items(
    users: np.ndarray, items: np.ndarray, timestamps: np.ndarray, split_codes: np.ndarray, n_items: int,
    fraction: float,
) -> ColdStartHoldOut:
    """Choose the cold items by the time cut, and the rows to keep (the rule is in the module docstring).

    The arrays are the prepared interaction rows sorted by (user, time), internal item ids
    1..``n_items``, with their `leave_one_out_split` codes. Pure: nothing is modified.
    """
    items = np.asarray(items)  # indices as they come: an int64 copy of 20M ids would only cost memory
    timestamps = np.asarray(timestamps, dtype=np.int64)
    first_seen = np.full(n_items + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_seen, items, timestamps)
    present = np.zeros(n_items + 1, dtype=bool)
    present[items] = True
    cut = cold_start_cut(first_seen[present], fraction)
    cold = present & (first_seen > cut)
    if not cold.any():
        raise DataError(f"--cold-start-fraction {fraction}: every item that would be cold is first seen at the "
                        f"same time as the latest warm item (timestamp {cut}), so no item can be held out; "
                        "use a larger fraction")
    return dataclasses.replace(hold_out_items(users, items, split_codes, cold), cut=cut)


def hold_out_items(users: np.ndarray, items: np.ndarray, split_codes: np.ndarray, cold: np.ndarray
                   ) -> ColdStartHoldOut:
    """The rows to keep when the items marked in ``cold`` (bool by internal id) are held out.

    Their training rows are dropped, and so are the users left without a training row (with
    their validation and test rows). Pure: nothing is modified.
    """
    items = np.asarray(items)
    train = split_codes == SPLITS.index("train")
    dropped = train & cold[items]
    users = np.asarray(users)
    present_users = np.zeros(int(users.max(initial=0)) + 1, dtype=bool)
    present_users[users] = True
    has_train = np.zeros_like(present_users)
    has_train[users[train & ~dropped]] = True
    orphan = ~has_train[users] & ~dropped  # rows of users left without a training row
    keep = ~dropped & ~orphan
    return ColdStartHoldOut(
        keep=keep, cold=cold, cut=None, train_rows_dropped=int(dropped.sum()),
        users_dropped=int(np.count_nonzero(present_users & ~has_train)),  # they keep no row
        rows_of_dropped_users=int(orphan.sum()),
    )
