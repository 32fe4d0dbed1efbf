"""Generic loader: CSV/TSV/Parquet files described by an ``auxrec-source.json`` schema.

Schema format (``items``, ``users``, ``rating``, ``image``, ``image_root`` optional)::

    {"name": "my-data",
     "interactions": {"path": "interactions.parquet", "user": "user_id", "item": "item_id",
                      "timestamp": "ts", "rating": null, "timestamp_unit": "s",
                      "user_dtype": "int", "item_dtype": "int", "separator": ","},
     "items": {"path": "items.parquet", "item": "item_id", "text": ["title"],
               "categorical": ["color"], "numeric": ["price"], "multi_label": ["tags"],
               "multi_label_separator": "|", "image": "image", "image_root": "images"},
     "users": {"path": "users.csv", "user": "user_id", "columns": ["age"]}}

Relative paths are relative to the schema file's folder.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from auxrec.data.loaders._io import (
    dates_to_seconds,
    datetime_to_seconds,
    read_header,
    require_columns,
    source_info,
    split_multi_label,
    to_object,
)
from auxrec.data.schema import MAX_TIMESTAMP_SECONDS, ItemColumns, RawDataset, check_timestamp_range
from auxrec.exceptions import ConfigError, DataError

NAME = "generic"
logger = logging.getLogger(__name__)
SCHEMA_FILE = "auxrec-source.json"
DEFAULT_INTERACTIONS = "interactions.csv"
PARQUET_SUFFIXES = (".parquet", ".pq")
TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")
_UNIT_DIVISOR = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InteractionsSpec(_Spec):
    path: str | None = None
    user: str = "user"
    item: str = "item"
    timestamp: str = "timestamp"
    rating: str | None = None
    timestamp_unit: Literal["s", "ms", "us", "ns", "datetime"] = "s"
    user_dtype: Literal["int", "str"] = "str"
    item_dtype: Literal["int", "str"] = "str"
    separator: str | None = None


class ItemsSpec(_Spec):
    path: str
    item: str = "item"
    text: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    numeric: list[str] = Field(default_factory=list)
    multi_label: list[str] = Field(default_factory=list)
    multi_label_separator: str = "|"
    image: str | None = None
    image_root: str | None = None
    separator: str | None = None


class UsersSpec(_Spec):
    path: str
    user: str = "user"
    columns: list[str] | None = None
    separator: str | None = None


class GenericSourceSpec(_Spec):
    """The ``auxrec-source.json`` schema of the generic loader (unknown keys are rejected)."""

    name: str | None = None
    interactions: InteractionsSpec = Field(default_factory=InteractionsSpec)
    items: ItemsSpec | None = None
    users: UsersSpec | None = None


def parse_spec(values: Any, origin: str) -> GenericSourceSpec:
    """Validate a schema dict; pydantic errors become one-line `DataError`s naming the fields."""
    try:
        return GenericSourceSpec.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = ".".join(str(p) for p in error["loc"]) or "(top level)"
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"field '{location}': {message}")
        raise DataError(f"{NAME}: invalid schema {origin}: {'; '.join(problems)}") from None


def load_generic(source: Path, schema: Path | str | None = None,
                 allow_absolute_image_paths: bool = False) -> RawDataset:
    """Load interactions (+ optional items and users) described by a JSON schema.

    Parameters
    ----------
    source : Path
        A folder holding the schema ``auxrec-source.json`` and the files it names, or a
        folder with just ``interactions.csv`` (columns ``user,item,timestamp[,rating]``,
        used when no schema exists), or a single CSV/TSV/Parquet interactions file (then
        the schema, if any, describes its columns and its ``interactions.path`` is ignored).
    schema : Path or str, optional
        The schema file; default ``<source>/auxrec-source.json`` (for a file source,
        ``auxrec-source.json`` beside it) when it exists. Relative paths inside the schema
        are relative to the schema's folder.
    allow_absolute_image_paths : bool, default False
        By default every image value must lead into the image folder (``image_root``, else
        the schema's folder) once ``..`` and symlinks are followed: an absolute path
        elsewhere (``/etc/shadow``), a ``../../x`` or a symlink out of the folder is never
        read. Such an item counts as without an image (like an image file that does not
        exist), and one warning gives the count and an example; if no image at all is left,
        it is a `DataError`. True reads image paths wherever they lead (absolute paths
        included): ``auxrec prepare generic --option allow_absolute_image_paths=true``.

    Returns
    -------
    RawDataset
        Columns renamed to ``user``/``item``/``timestamp``/``rating``; ids ``int64`` or
        strings as declared (``user_dtype``/``item_dtype``, default ``str``); timestamps
        converted to int64 seconds (``timestamp_unit`` ``s``/``ms``/``us``/``ns`` floors
        numbers, ``datetime`` parses date strings, naive ones as UTC). Items keep the
        declared columns with their roles; multi-label columns become lists of strings;
        image values become absolute paths under ``image_root`` (None where empty, or where
        the path leads outside that folder: see ``allow_absolute_image_paths``).
    """
    source = Path(source)
    if not source.exists():
        raise DataError(f"{NAME}: source {source} does not exist")
    base = source if source.is_dir() else source.parent
    schema_path = _schema_path(source, base, schema)
    if schema_path is not None:
        spec = _read_spec(schema_path)
        root = schema_path.parent
    else:
        spec = GenericSourceSpec()
        root = base
    files: list[Path] = [schema_path] if schema_path is not None else []

    inter = spec.interactions
    if source.is_file():
        inter_path = source
    else:
        inter_path = _resolve(root, inter.path or DEFAULT_INTERACTIONS)
        if not inter_path.is_file():
            hint = "" if inter.path or schema_path else f" and no {SCHEMA_FILE} describes the data"
            raise DataError(f"{NAME}: interactions file {inter_path} not found{hint}")
    files.append(inter_path)
    columns = [inter.user, inter.item, inter.timestamp, *([inter.rating] if inter.rating else [])]
    if schema_path is None and inter.rating is None and "rating" in _columns(inter_path, inter.separator):
        columns.append("rating")
        inter = inter.model_copy(update={"rating": "rating"})
    raw = _read_table(inter_path, columns, inter.separator, id_columns=[inter.user, inter.item])
    renamed = {
        "user": _ids(raw[inter.user], inter.user_dtype, inter.user, inter_path),
        "item": _ids(raw[inter.item], inter.item_dtype, inter.item, inter_path),
        "timestamp": _timestamps(raw[inter.timestamp], inter.timestamp_unit, inter.timestamp, inter_path),
    }
    if inter.rating:
        renamed["rating"] = _numbers(raw[inter.rating], inter.rating, inter_path)
    del raw
    interactions = pd.DataFrame(renamed, copy=False)  # columns already of the right type are not copied again

    items = None
    item_columns = ItemColumns()
    if spec.items is not None:
        if not isinstance(allow_absolute_image_paths, bool):
            raise ConfigError(f"{NAME}: allow_absolute_image_paths must be true or false, "
                              f"not {allow_absolute_image_paths!r}")
        items, item_columns, items_path = _read_items(spec.items, root, inter.item_dtype,
                                                      allow_absolute_image_paths)
        files.append(items_path)

    users = None
    user_columns: tuple[str, ...] = ()
    if spec.users is not None:
        users_path = _resolve(root, spec.users.path)
        if not users_path.is_file():
            raise DataError(f"{NAME}: users file {users_path} not found")
        files.append(users_path)
        wanted = spec.users.columns
        if wanted is None:
            wanted = [c for c in _columns(users_path, spec.users.separator) if c != spec.users.user]
        frame = _read_table(users_path, [spec.users.user, *wanted], spec.users.separator, id_columns=[spec.users.user])
        users = pd.DataFrame({"user": _ids(frame[spec.users.user], inter.user_dtype, spec.users.user, users_path)})
        for column in wanted:
            values = frame[column]
            users[column] = values.to_numpy() if pd.api.types.is_numeric_dtype(values) else to_object(values)
        user_columns = tuple(wanted)

    name = spec.name or (base.name if source.is_dir() else source.stem)
    return RawDataset(
        name=name,
        interactions=interactions,
        items=items,
        item_columns=item_columns,
        users=users,
        user_columns=user_columns,
        source=source_info(NAME, base, files),
    )


# --------------------------------------------------------------------------- helpers


def _schema_path(source: Path, base: Path, schema: Path | str | None) -> Path | None:
    if schema is not None:
        path = Path(schema)
        if not path.is_absolute() and not path.exists():
            path = base / path
        if not path.is_file():
            raise DataError(f"{NAME}: schema file {path} not found")
        return path
    default = base / SCHEMA_FILE
    return default if default.is_file() else None


def _read_spec(path: Path) -> GenericSourceSpec:
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{NAME}: schema {path} is not valid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise DataError(f"{NAME}: schema {path} must hold a JSON object")
    return parse_spec(values, str(path))


def _resolve(root: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def _separator(path: Path, separator: str | None) -> str:
    if separator is not None:
        return separator
    name = path.name.lower().removesuffix(".gz")
    return "\t" if name.endswith(".tsv") else ","


def _check_format(path: Path) -> None:
    name = path.name.lower()
    if not (_is_parquet(path) or name.endswith(TEXT_SUFFIXES)):
        raise DataError(
            f"{NAME}: cannot read {path.name}: expected a .csv, .tsv, .txt (optionally .gz) or .parquet file"
        )


def _columns(path: Path, separator: str | None) -> list[str]:
    _check_format(path)
    if _is_parquet(path):
        try:
            return list(pq.read_schema(path).names)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise DataError(f"{NAME}: cannot read {path.name} as Parquet: {exc}") from None
    return read_header(path, NAME, sep=_separator(path, separator))


def _read_table(path: Path, columns: list[str], separator: str | None, id_columns: list[str]) -> pd.DataFrame:
    """Read ``columns`` of a CSV/TSV/Parquet file after checking they exist.

    Id columns of text files are read as strings (so leading zeros survive until the
    declared dtype is applied); other columns get pandas' inference.
    """
    header = _columns(path, separator)
    unique = list(dict.fromkeys(columns))
    require_columns(header, unique, path, NAME)
    if _is_parquet(path):
        try:
            return _read_parquet(path, unique)
        except Exception as exc:
            raise DataError(f"{NAME}: cannot read {path.name} as Parquet: {exc}") from None
    sep = _separator(path, separator)
    try:
        return pd.read_csv(
            path, sep=sep, usecols=unique, dtype={c: str for c in id_columns},
            engine="pyarrow" if len(sep) == 1 else "python",
        )  # fmt: skip
    except (ValueError, TypeError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{NAME}: cannot parse {path.name} ({path}): {message}") from None


def _read_parquet(path: Path, columns: list[str]) -> pd.DataFrame:
    """``columns`` of a Parquet file, decoded and converted to pandas one column at a time.

    Converting a whole Arrow table holds it and its pandas copy at once (2x the data);
    column by column, only one column is held twice. Each column is still converted as a
    table (with the file's pandas metadata), so the dtypes are those of a whole-table read.
    One thread: decoding is memory-bound, and more threads were slower on a busy machine.
    """
    file = pq.ParquetFile(path)
    frame = {c: file.read(columns=[c], use_threads=False).to_pandas()[c] for c in columns}
    # Arrow's allocator keeps the freed decoding buffers for reuse; what follows allocates
    # through numpy, so hand them back (a few hundred MB on a 20M-row file).
    pa.default_memory_pool().release_unused()
    return pd.DataFrame(frame, copy=False)


def _ids(values: pd.Series, dtype: str, column: str, path: Path) -> pd.Series:
    if dtype == "int":
        if pd.api.types.is_integer_dtype(values) and not values.isna().any():
            return values.astype("int64")
        numbers = pd.to_numeric(values, errors="coerce")
        bad = (numbers.isna() & values.notna()) | (numbers.notna() & (numbers % 1 != 0))
        if bad.any():
            example = values[bad].iloc[0]
            raise DataError(
                f"{NAME}: column {column!r} in {path.name} was declared int but holds non-integer values "
                f"such as {example!r}"
            )
        if numbers.isna().any():
            return numbers.astype("Int64")  # missing ids: RawDataset.validate names the count
        return numbers.astype("int64")
    if pd.api.types.is_float_dtype(values):
        whole = values.dropna()
        if (whole % 1 == 0).all():  # ids stored as floats (a Parquet/NaN artefact): 1.0 → "1"
            return values.astype("Int64").astype("str")
    return values.astype("str")


def _numbers(values: pd.Series, column: str, path: Path) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() & values.notna() & (values.astype("str").str.strip() != "")
    if bad.any():
        raise DataError(
            f"{NAME}: column {column!r} in {path.name} should be numeric but holds values such as "
            f"{values[bad].iloc[0]!r}"
        )
    return numbers.astype("float64")


def _timestamps(values: pd.Series, unit: str, column: str, path: Path) -> np.ndarray:
    if values.isna().any():
        raise DataError(f"{NAME}: {int(values.isna().sum())} row(s) of {path.name} have no {column!r}")
    if pd.api.types.is_datetime64_any_dtype(values):
        return datetime_to_seconds(values)
    if unit == "datetime":
        return dates_to_seconds(values.astype("str"), NAME, column, path)
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        example = values[numbers.isna()].iloc[0]
        raise DataError(
            f"{NAME}: column {column!r} in {path.name} should hold numbers in unit {unit!r} but holds "
            f"{example!r} (use \"timestamp_unit\": \"datetime\" for date strings)"
        )
    divisor = _UNIT_DIVISOR[unit]
    if pd.api.types.is_integer_dtype(numbers):
        seconds = numbers.to_numpy(dtype=np.int64)
        if divisor != 1:  # seconds already are the loaded column, not a copy of it
            seconds = seconds // divisor
    else:
        # Checked before the cast: a float beyond int64 (1e30, inf) casts to INT64_MIN and
        # would silently move the user's latest interaction to the front of the history.
        floats = np.floor(numbers.to_numpy(dtype=np.float64) / divisor)
        bad = ~np.isfinite(floats) | (np.abs(floats) > MAX_TIMESTAMP_SECONDS)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{NAME}: data row {row + 1} of {path.name} has timestamp {str(values.iloc[row])!r} in column {column!r}, "
                f"which is not a finite time in unit {unit!r} (|seconds| must be <= {MAX_TIMESTAMP_SECONDS:.3g}); "
                "fix that row or the \"timestamp_unit\""
            )
        seconds = floats.astype(np.int64)
    check_timestamp_range(seconds, NAME, f"{path.name}, column {column!r}", values)
    return seconds


def _read_items(spec: ItemsSpec, root: Path, item_dtype: str,
                allow_absolute_image_paths: bool = False) -> tuple[pd.DataFrame, ItemColumns, Path]:
    path = _resolve(root, spec.path)
    if not path.is_file():
        raise DataError(f"{NAME}: items file {path} not found")
    declared = [*spec.text, *spec.categorical, *spec.numeric, *spec.multi_label]
    if spec.image:
        declared.append(spec.image)
    raw = _read_table(path, [spec.item, *declared], spec.separator, id_columns=[spec.item])
    items = pd.DataFrame({"item": _ids(raw[spec.item], item_dtype, spec.item, path)})
    for column in [*spec.text, *spec.categorical]:
        values = raw[column]
        items[column] = to_object(values if values.dtype == object else values.astype("str"))
    for column in spec.numeric:
        items[column] = _numbers(raw[column], column, path)
    for column in spec.multi_label:
        items[column] = split_multi_label(raw[column], spec.multi_label_separator)
    if spec.image:
        image_root = _resolve(root, spec.image_root) if spec.image_root else root
        image_root = image_root.resolve()
        paths = _image_paths(raw[spec.image].tolist(), image_root, allow_absolute_image_paths, path,
                             spec.image)
        items[spec.image] = pd.Series(paths, index=items.index, dtype=object)
    duplicated = items["item"].duplicated() & items["item"].notna()
    if duplicated.any():
        raise DataError(
            f"{NAME}: item {items.loc[duplicated, 'item'].iloc[0]!r} appears on several rows of {path.name}"
        )
    items = items[items["item"].notna()].reset_index(drop=True)
    columns = ItemColumns(
        text=tuple(spec.text),
        categorical=tuple(spec.categorical),
        numeric=tuple(spec.numeric),
        multi_label=tuple(spec.multi_label),
        image=spec.image,
    )
    return items, columns, path


def _image_paths(values: list[Any], image_root: Path, allow_outside: bool, path: Path,
                 column: str) -> list[str | None]:
    """Absolute image paths for the values of the image column (None where empty), guarded.

    The one place where user data turns into image paths. Unless ``allow_outside``, a value
    that leads outside ``image_root`` (absolute elsewhere, ``..``, a symlink out, followed
    as it is now) gives None (no image, nothing is read) and is counted in one warning;
    all of them refused is a `DataError`. Stored paths are ``image_root / value`` as before.
    """
    root = os.path.realpath(image_root)
    paths: list[str | None] = []
    refused: list[str] = []
    for value in values:
        if value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip():
            paths.append(None)
            continue
        text = str(value).strip()
        try:
            candidate = Path(text).expanduser()
        except RuntimeError:  # "~someone" with no such user: a literal name
            candidate = Path(text)
        full = candidate if candidate.is_absolute() else image_root / candidate
        if not allow_outside:
            try:
                inside = os.path.commonpath([root, os.path.realpath(full)]) == root
            except (OSError, ValueError):  # a NUL byte in the value
                inside = False
            if not inside:
                refused.append(text)
                paths.append(None)
                continue
        paths.append(str(full))
    if refused:
        given = len(refused) + sum(p is not None for p in paths)
        what = (f"{len(refused):,} of {given:,} image paths in column {column!r} of {path.name} lead "
                f"outside the image folder {image_root} (e.g. {refused[0]!r})")
        allow = "--option allow_absolute_image_paths=true reads images wherever they are"
        if len(refused) == given:
            raise DataError(f"{NAME}: {what}, so no image would be left; move the images into that folder, "
                            f"set \"image_root\" in {SCHEMA_FILE}, or pass {allow}")
        logger.warning("%s: %s; those items count as without an image (%s)", NAME, what, allow)
    return paths
