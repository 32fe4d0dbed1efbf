"""Turn a `RawDataset` into a prepared dataset folder: clean, remap, split, fingerprint.

Steps, in this order (each is a pure function below):

1. drop exact duplicate interaction rows (same user, item, timestamp and rating);
2. optionally keep only interactions with ``rating >= min_rating``;
3. optionally apply an iterative k-core filter (every user and item keeps >= k);
4. sort each user's interactions by timestamp, stably, so equal timestamps keep the
   source order (the documented tie rule: the later row in the file is the later event);
5. remap users and items to internal ids 1..n (`auxrec.data.ids`);
6. leave-one-out split: a user's last interaction is ``test``, the second-to-last is
   ``valid``, the rest ``train``; users with fewer than 3 interactions are train-only and
   counted in the manifest;
7. optionally (``cold_start_fraction`` or ``cold_start_where``), hold out cold-start items
   (`hold_out_cold_items`, `hold_out_items`; rules below);
8. optionally (``keep_items_without_interactions``), add the item-table rows nobody
   interacted with to the catalogue, numbered after the interacted items
   (`with_items_without_interactions`);
9. item attributes derived from interactions (`RawDataset.item_aggregates`, e.g. H&M's
   mean transaction price) are computed from the ``train`` rows of step 6 only, so no
   validation or test interaction leaks into an item feature (`training_item_aggregates`).

**Cold-start items**: the rules are in `auxrec.data.cold_start`.

The folder holds Parquet tables and ``manifest.json``. Preparation is deterministic: the
same input and options give the same fingerprint and byte-identical files.

**Memory.** Steps 1-5 never copy the interaction table: they read one lean array per
column (`EncodedInteractions`: int32 id codes), narrow one mask over the source rows and
reuse one stable sort of all rows (`cleaned_rows`); the fingerprint is hashed in blocks.
Beyond the loaded table, a 20M-row dataset (the ``ml20m`` synthetic preset) needs about
1 GB; the files and fingerprint are those of the earlier whole-table pandas steps
(``tests/data/test_prepare_equivalence.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from auxrec import __version__
from auxrec.data.cold_start import (
    COLD_START_RULE,
    COLD_START_WHERE_RULE,
    ColdStartCondition,
    ColdStartHoldOut,
    hold_out_cold_items,
    hold_out_items,
)
from auxrec.data.ids import FIRST_ID, PADDING_ID, distinct_sorted_ids, id_map_frame, to_internal
from auxrec.data.schema import SPLITS, InteractionAggregate, RawDataset
from auxrec.exceptions import DataError
from auxrec.io import check_output_folder, folder_mode, mark_output

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
MIN_EVALUATED_LENGTH = 3  # train item(s) + validation target + test target
FINGERPRINT_BLOCK_ROWS = 1 << 20  # rows hashed at a time (a few MB of temporaries per column)


class PrepareOptions(BaseModel):
    """Options of `prepare_dataset`; they are recorded in the manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drop_duplicates: bool = Field(True, description="drop rows equal in user, item, timestamp, rating")
    min_rating: float | None = Field(None, description="keep interactions with rating >= this only")
    k_core: int = Field(0, ge=0, description="iteratively keep users and items with >= k interactions")
    cold_start_fraction: float | None = Field(
        None, gt=0, lt=1, description="hold out the latest-appearing share of items as cold-start items "
        "(`hold_out_cold_items`); None = off")
    cold_start_where: str | None = Field(
        None, description="hold out the items whose item-table attribute satisfies 'COLUMN OP VALUE' "
        "(e.g. 'year >= 2000') as cold-start items (`ColdStartCondition`); None = off")
    keep_items_without_interactions: bool = Field(
        False, description="keep the item-table rows nobody interacted with in the catalogue (ids after the "
        "interacted items): candidates and negatives that no user chose, as a real catalogue has")

    @field_validator("cold_start_where")
    @classmethod
    def _condition_parses(cls, value: str | None) -> str | None:
        return None if value is None else str(ColdStartCondition.parse(value))

    @model_validator(mode="after")
    def _one_cold_start_rule(self) -> PrepareOptions:
        if self.cold_start_fraction is not None and self.cold_start_where is not None:
            raise ValueError("give --cold-start-fraction or --cold-start-where, not both")
        return self

    def manifest_values(self) -> dict[str, Any]:
        """The options as recorded in the manifest (and fingerprint): unset new options are left out,
        so data prepared without them keeps the fingerprint it had before they existed."""
        values = self.model_dump()
        for name in ("cold_start_fraction", "cold_start_where"):
            if values[name] is None:
                del values[name]
        if not values["keep_items_without_interactions"]:
            del values["keep_items_without_interactions"]
        return values


@dataclass(frozen=True)
class EncodedInteractions:
    """The interaction columns that cleaning reads, as one lean numpy array each.

    ``users[r]`` is the 1-based position of row r's user in ``user_index``, the distinct
    original ids sorted (`distinct_sorted_ids`), so comparing codes compares original ids;
    likewise for items. Timestamps and ratings are the loaded columns themselves, not copies.
    """

    users: np.ndarray  # (n_rows,) int32, 1..len(user_index)
    items: np.ndarray  # (n_rows,) int32, 1..len(item_index)
    timestamps: np.ndarray  # (n_rows,) int64 seconds
    ratings: np.ndarray | None  # (n_rows,) float64, or None when the data has no ratings
    user_index: pd.Index  # distinct original user ids, sorted
    item_index: pd.Index  # distinct original item ids, sorted

    @classmethod
    def from_frame(cls, interactions: pd.DataFrame) -> EncodedInteractions:
        users, user_index = _encoded(interactions["user"], "user")
        items, item_index = _encoded(interactions["item"], "item")
        return cls(
            users=users,
            items=items,
            timestamps=interactions["timestamp"].to_numpy(dtype=np.int64),
            ratings=interactions["rating"].to_numpy(dtype=np.float64) if "rating" in interactions else None,
            user_index=user_index,
            item_index=item_index,
        )


def _encoded(ids: pd.Series, what: str) -> tuple[np.ndarray, pd.Index]:
    """Each row's 1-based position among the sorted distinct ids, and those ids (`auxrec.data.ids`).

    The ids are factorized once and only the distinct ones are sorted and numbered: text ids
    then never become one Python string per row (over 1 GB per column at 20M rows).
    """
    codes, distinct = pd.factorize(ids, use_na_sentinel=False)
    index = distinct_sorted_ids(pd.Series(distinct), what)
    return to_internal(index, distinct.to_numpy())[codes], index


def sort_by_user_and_time(users: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Row order sorting by (user, timestamp), stably: ties keep the source row order.

    ``users`` are non-negative integer codes. One int64 key ``user * span + time`` sorts with
    numpy's stable sort (timsort), which is linear on data already in user/time order, the
    usual layout of a source file; lexsort is kept for spans too wide for the key.
    """
    if len(users) == 0:
        return np.zeros(0, dtype=np.int64)
    earliest = int(timestamps.min())
    span = int(timestamps.max()) - earliest + 1
    if (int(users.max()) + 1) * span > np.iinfo(np.int64).max:
        return np.lexsort((timestamps, users))
    key = users.astype(np.int64) * span + (timestamps - earliest)
    return np.argsort(key, kind="stable")


def duplicate_rows(rows: EncodedInteractions, order: np.ndarray) -> np.ndarray:
    """True for each row equal in user, item, timestamp and rating to an earlier source row.

    ``order`` is `sort_by_user_and_time` of all ``rows``. Equal rows share user and time, so
    they lie in one run of equal (user, time) there, in source order; only the rows of such
    runs (a small share unless times are coarse, like dates) are sorted again by item and
    rating. Missing ratings equal each other, as in `pandas.DataFrame.duplicated`.
    """
    duplicate = np.zeros(len(order), dtype=bool)
    users, timestamps = rows.users[order], rows.timestamps[order]
    tied = (users[1:] == users[:-1]) & (timestamps[1:] == timestamps[:-1])  # (n - 1,) row i+1 ties row i
    del users, timestamps
    after_tie = np.concatenate([[False], tied])
    positions = np.flatnonzero(after_tie | np.concatenate([tied, [False]]))  # sorted rows in a run of >= 2
    if len(positions) == 0:
        return duplicate
    run = np.maximum.accumulate(np.where(after_tie[positions], 0, positions))  # the run's first position
    source = order[positions]
    items = rows.items[source]
    ratings = None if rows.ratings is None else rows.ratings[source]
    by = np.lexsort([positions, items, run] if ratings is None else [positions, ratings, items, run])
    source, run, items = source[by], run[by], items[by]  # by run, item, rating; equal rows in source order
    same = (run[1:] == run[:-1]) & (items[1:] == items[:-1])
    if ratings is not None:
        ratings = ratings[by]
        same &= (ratings[1:] == ratings[:-1]) | (np.isnan(ratings[1:]) & np.isnan(ratings[:-1]))
    duplicate[source[1:][same]] = True
    return duplicate


def k_core_rows(rows: EncodedInteractions, keep: np.ndarray, k: int) -> np.ndarray:
    """``keep`` narrowed until every kept user and item has >= ``k`` kept rows (iteratively)."""
    if k <= 1:
        return keep
    keep = keep.copy()
    while True:
        kept = np.flatnonzero(keep)
        users, items = rows.users[kept], rows.items[kept]
        enough = (np.bincount(users) >= k)[users] & (np.bincount(items) >= k)[items]
        if enough.all():
            return keep
        keep[kept[~enough]] = False


def drop_exact_duplicates(interactions: pd.DataFrame) -> pd.DataFrame:
    """Drop rows identical in every interaction column, keeping the first occurrence."""
    rows = EncodedInteractions.from_frame(interactions)
    return interactions.loc[~duplicate_rows(rows, sort_by_user_and_time(rows.users, rows.timestamps))]


def k_core_filter(interactions: pd.DataFrame, k: int) -> pd.DataFrame:
    """Repeatedly drop users and items with fewer than ``k`` interactions until stable."""
    keep = np.ones(len(interactions), dtype=bool)
    return interactions.loc[k_core_rows(EncodedInteractions.from_frame(interactions), keep, k)]


def cleaned_rows(
    rows: EncodedInteractions, options: PrepareOptions, dataset: str
) -> tuple[np.ndarray, dict[str, int]]:
    """Steps 1-4: the rows that stay, as source row numbers in (user, time) order, and what was dropped.

    Every filter narrows one mask over the source rows, in the order of the module docstring,
    and the one sort of all rows is then restricted to the kept ones (a stable sort of a
    subset is the subset of the stable sort), so no step copies the table.
    """
    n_input = len(rows.users)
    order = sort_by_user_and_time(rows.users, rows.timestamps)
    keep = ~duplicate_rows(rows, order) if options.drop_duplicates else np.ones(n_input, dtype=bool)
    counts = {"input_interactions": n_input, "duplicates_dropped": n_input - int(np.count_nonzero(keep))}
    if options.min_rating is not None:
        if rows.ratings is None:
            raise DataError(f"{dataset}: --min-rating was given but the data has no ratings")
        below = ~(rows.ratings >= options.min_rating)  # a missing rating is below every threshold
        counts["below_min_rating_dropped"] = int(np.count_nonzero(keep & below))
        keep &= ~below
    before = int(np.count_nonzero(keep))
    keep = k_core_rows(rows, keep, options.k_core)
    counts["k_core_dropped"] = before - int(np.count_nonzero(keep))
    if not keep.any():
        raise DataError(f"{dataset}: no interactions are left after filtering ({options.manifest_values()})")
    return order[keep[order]], counts


def leave_one_out_split(users: np.ndarray) -> np.ndarray:
    """Label rows of a (user, time)-sorted frame as train/valid/test.

    ``users`` is the internal user id column of interactions sorted by user then time.
    Returns an int8 array: 0 = train, 1 = valid, 2 = test (indices into `SPLITS`).
    Users with fewer than `MIN_EVALUATED_LENGTH` interactions are all train.
    """
    n = len(users)
    split = np.zeros(n, dtype=np.int8)
    if n == 0:
        return split
    # Position of each row counted from the end of its user's sequence (0 = last).
    boundaries = np.flatnonzero(np.diff(users)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [n]])
    lengths = ends - starts
    evaluated = lengths >= MIN_EVALUATED_LENGTH
    split[(ends - 1)[evaluated]] = 2
    split[(ends - 2)[evaluated]] = 1
    return split


def _renumbered(index: pd.Index, ids: np.ndarray) -> tuple[pd.Index, np.ndarray]:
    """Keep the ids (1-based positions in ``index``) still used, numbered 1..n again in the same order."""
    used = np.zeros(len(index) + FIRST_ID, dtype=bool)
    used[ids] = True
    renumbered = np.cumsum(used, dtype=np.int32)  # used id i → how many used ids are <= i
    return index[used[FIRST_ID:]], renumbered[ids]


def _fingerprint(tables: dict[str, pd.DataFrame], options: dict[str, Any]) -> str:
    """SHA-256 over the prepared tables' values and the options (order-sensitive)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(options, sort_keys=True).encode())
    for name in sorted(tables):
        frame = tables[name]
        digest.update(name.encode())
        digest.update(json.dumps(list(map(str, frame.columns))).encode())
        # A row's hash depends on that row only, so hashing in blocks gives the bytes of hashing the
        # whole table at once, without its several table-sized temporary arrays.
        for start in range(0, len(frame), FINGERPRINT_BLOCK_ROWS):
            block = frame.iloc[start:start + FINGERPRINT_BLOCK_ROWS]
            values = block.map(_hashable) if _needs_mapping(block) else block
            hashed = pd.util.hash_pandas_object(values, index=False)
            digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()


def _needs_mapping(frame: pd.DataFrame) -> bool:
    return any(frame[c].dtype == object for c in frame.columns)


def _hashable(value: Any) -> Any:
    # Lists (multi-label columns) are not hashable by pandas; hash their JSON text.
    if isinstance(value, list | tuple | np.ndarray):
        return json.dumps([str(v) for v in value])
    return value


def prepare_dataset(raw: RawDataset, options: PrepareOptions | None = None) -> dict[str, Any]:
    """Clean, remap and split ``raw``; return the tables and the manifest (not yet written).

    Item attributes declared in ``raw.item_aggregates`` are computed here, after the split,
    from the prepared training interactions only (see `training_item_aggregates`); the
    manifest lists them under ``item_aggregates`` and counts, per attribute, the items with
    metadata that have no training value (``items_without_train_<column>``).
    """
    options = options or PrepareOptions()
    raw.validate()
    rows = EncodedInteractions.from_frame(raw.interactions)
    order, counts = cleaned_rows(rows, options, raw.name)  # source row behind each prepared row
    user_index, user_column = _renumbered(rows.user_index, rows.users[order])
    item_index, item_column = _renumbered(rows.item_index, rows.items[order])
    table = pd.DataFrame(
        {"user": user_column, "item": item_column, "timestamp": rows.timestamps[order]}, copy=False
    )
    if rows.ratings is not None:
        table["rating"] = rows.ratings[order].astype(np.float32)
    del rows  # the codes of all source rows: freed before the item and user tables and the fingerprint
    split_codes = leave_one_out_split(table["user"].to_numpy())
    cold_start: dict[str, Any] | None = None
    held: ColdStartHoldOut | None = None
    if options.cold_start_fraction is not None:
        held = hold_out_cold_items(table["user"].to_numpy(), table["item"].to_numpy(), table["timestamp"].to_numpy(),
                                   split_codes, len(item_index), options.cold_start_fraction)
    elif options.cold_start_where is not None:
        condition = ColdStartCondition.parse(options.cold_start_where)
        cold = condition.items(raw.items, item_index)
        if not cold.any():
            raise DataError(f"--cold-start-where {condition}: no item with interactions satisfies it, so no item "
                            "can be held out")
        held = hold_out_items(table["user"].to_numpy(), table["item"].to_numpy(), split_codes, cold)
    if held is not None:
        table, order, split_codes = table.loc[held.keep].reset_index(drop=True), order[held.keep], split_codes[held.keep]
        if held.users_dropped:
            user_index, table["user"] = _renumbered(user_index, table["user"].to_numpy())
        kept_items = np.zeros(len(item_index) + 1, dtype=bool)
        kept_items[table["item"].to_numpy()] = True
        chosen_by = {"where": options.cold_start_where, "rule": COLD_START_WHERE_RULE} if held.cut is None else {
            "fraction": options.cold_start_fraction,
            "rule": COLD_START_RULE,
            "cut_timestamp": held.cut,
            "cut_time_utc": pd.Timestamp(held.cut, unit="s", tz="UTC").isoformat(),
        }
        cold_start = {
            **chosen_by,
            "cold_items": int(held.cold.sum()),
            "cold_items_without_rows": int((held.cold & ~kept_items).sum()),
            "train_rows_dropped": held.train_rows_dropped,
            "users_dropped": held.users_dropped,
            "rows_of_dropped_users": held.rows_of_dropped_users,
            **{f"cold_{name}_targets": int(held.cold[table["item"].to_numpy()[split_codes == SPLITS.index(name)]].sum())
               for name in ("valid", "test")},
        }
    table["split"] = pd.Categorical.from_codes(split_codes, categories=list(SPLITS))
    interacted_items = len(item_index)
    if options.keep_items_without_interactions and raw.items is not None:
        item_index = with_items_without_interactions(item_index, raw.items["item"])

    sources = {a.source for a in raw.item_aggregates}
    values = {
        s: raw.interactions[s].to_numpy(dtype=np.float64, na_value=np.nan)[order] for s in sorted(sources)
    }
    aggregates = training_item_aggregates(
        raw.item_aggregates, table["item"].to_numpy(), split_codes, values, len(item_index)
    )
    items = _item_table(raw, item_index, aggregates)
    for aggregate in raw.item_aggregates:
        counts[f"items_without_train_{aggregate.column}"] = int(
            (items["has_metadata"] & items[aggregate.column].isna()).sum()
        )
    users = _user_table(raw, user_index)

    lengths = np.bincount(table["user"].to_numpy())[FIRST_ID:]  # users are numbered 1..n, each has rows
    n_split = {name: int((split_codes == code).sum()) for code, name in enumerate(SPLITS)}
    counts.update(
        {
            "users_evaluated": int((lengths >= MIN_EVALUATED_LENGTH).sum()),
            "users_train_only": int((lengths < MIN_EVALUATED_LENGTH).sum()),
            "items_without_side_information": int(items["has_metadata"].eq(False).sum()),
            # Dropped by `_item_table`: said in the output, never silently.
            "item_rows_without_interactions": 0 if raw.items is None else int(
                (to_internal(item_index, raw.items["item"].to_numpy()) == PADDING_ID).sum()),
        }
    )
    if options.keep_items_without_interactions:
        counts["items_without_interactions_kept"] = len(item_index) - interacted_items
    tables = {"interactions": table, "items": items, "users": users}
    option_values = options.manifest_values()
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "name": raw.name,
        "n_users": len(user_index),
        "n_items": len(item_index),
        "n_interactions": len(table),
        "n_train": n_split["train"],
        "n_valid": n_split["valid"],
        "n_test": n_split["test"],
        "counts": counts,
        "fingerprint": _fingerprint(tables, option_values),
        "options": option_values,
        "source": raw.source,
        "item_columns": raw.item_columns.to_dict(),
        "item_aggregates": [a.to_dict() for a in raw.item_aggregates],
        "user_columns": list(raw.user_columns),
        "auxrec_version": __version__,
        "tie_rule": "equal timestamps keep the source row order (stable sort)",
    }
    if cold_start is not None:
        manifest["cold_start"] = cold_start
    return {"tables": tables, "manifest": manifest}


def with_items_without_interactions(item_index: pd.Index, item_rows: pd.Series) -> pd.Index:
    """``item_index`` followed by the item-table ids it lacks (sorted, distinct): ids n + 1 … n + m.

    The interacted items keep their ids (the interaction table does not change); the others
    join the catalogue after them. Why keep them: a catalogue of interacted items only makes
    "no training interaction" itself a label, since every such item is then somebody's
    validation or test target or a held-out cold item (H&M: all 495 of them), which no real
    shop's new arrivals are (benchmarks/unseen_offset.py measures what that is worth).
    """
    extra = distinct_sorted_ids(item_rows, "item")
    extra = extra[~extra.isin(item_index)]
    return item_index.append(extra)


def training_item_aggregates(
    aggregates: tuple[InteractionAggregate, ...],
    items: np.ndarray,
    split_codes: np.ndarray,
    values: dict[str, np.ndarray],
    n_items: int,
) -> pd.DataFrame:
    """Item attributes aggregated over the training interactions only.

    ``items`` and ``split_codes`` are the prepared interaction rows (internal item ids,
    `leave_one_out_split` codes); ``values[source]`` holds each row's value of an
    aggregate's source column. Only rows with code 0 (``train``) are read, so validation
    and test interactions cannot move an item attribute. Returns a float64 frame indexed
    by internal item id 1..``n_items`` with one column per aggregate; items with no
    (non-missing) training value get NaN.
    """
    index = pd.RangeIndex(1, n_items + 1, name="item")
    train = split_codes == SPLITS.index("train")
    columns: dict[str, np.ndarray] = {}
    for aggregate in aggregates:
        rows = pd.Series(values[aggregate.source][train], dtype=np.float64)
        grouped = rows.groupby(items[train], sort=True).agg(aggregate.how)
        columns[aggregate.column] = grouped.reindex(index).to_numpy(dtype=np.float64)
    return pd.DataFrame(columns, index=index)


def _item_table(
    raw: RawDataset, item_index: pd.Index, aggregates: pd.DataFrame | None = None
) -> pd.DataFrame:
    items = id_map_frame(item_index).rename(columns={"index": "item"})
    if raw.items is None:
        items["has_metadata"] = False
        return items
    side = raw.items
    if aggregates is not None and len(aggregates.columns):
        # Training-only attributes join the metadata rows (items without one get NaN).
        keys = to_internal(item_index, side["item"].to_numpy())
        side = side.assign(
            **{column: aggregates[column].reindex(keys).to_numpy(np.float64) for column in aggregates.columns}
        )
    columns = [c for c in raw.item_columns.all_columns() if c != "item"]
    extra = [c for c in side.columns if c not in columns and c != "item"]
    side = side[["item", *columns, *extra]]
    # Align metadata rows to internal ids; items without a metadata row get nulls and
    # metadata rows of items nobody interacted with are dropped.
    internal = to_internal(item_index, side["item"].to_numpy())
    side = side.loc[internal != PADDING_ID].assign(item=internal[internal != PADDING_ID])
    merged = items.merge(side, on="item", how="left", sort=True, indicator=True)
    merged["has_metadata"] = merged.pop("_merge").eq("both")
    return merged.reset_index(drop=True)


def _user_table(raw: RawDataset, user_index: pd.Index) -> pd.DataFrame:
    users = id_map_frame(user_index).rename(columns={"index": "user"})
    if raw.users is None:
        return users
    side = raw.users[["user", *[c for c in raw.user_columns if c != "user"]]]
    internal = to_internal(user_index, side["user"].to_numpy())
    side = side.loc[internal != PADDING_ID].assign(user=internal[internal != PADDING_ID])
    return users.merge(side, on="user", how="left", sort=True)


def write_prepared(prepared: dict[str, Any], out_dir: Path, overwrite: bool = False,
                   inputs: tuple[Path | str | None, ...] = ()) -> Path:
    """Write tables and manifest to ``out_dir`` atomically (temporary folder, then rename).

    ``overwrite`` replaces an earlier prepared dataset only (`auxrec.io.check_output_folder`),
    never a folder that is or holds one of ``inputs`` (the raw source).
    """
    out_dir = Path(out_dir)
    check_output_folder(out_dir, "prepared", overwrite, inputs)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        os.chmod(staging, folder_mode())  # mkdtemp makes 0700; outputs follow the user's umask
        mark_output(staging, "prepared")
        for name, frame in prepared["tables"].items():
            _write_parquet(frame, staging / f"{name}.parquet")
        (staging / MANIFEST_NAME).write_text(json.dumps(prepared["manifest"], indent=2, sort_keys=True) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    # No pandas index metadata and fixed writer options keep the bytes reproducible.
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, compression="zstd", write_statistics=True)
