"""Small private helpers shared by the dataset loaders (file lookup, CSV reading, dates)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auxrec.exceptions import DataError

_EPOCH_UTC = pd.Timestamp("1970-01-01", tz="UTC")
_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)\s*$")


def find_file(source: Path, candidates: Sequence[str], dataset: str, what: str) -> Path:
    """Return the first of ``candidates`` (names or glob patterns) present in ``source``.

    A glob pattern that matches several files is ambiguous and raises `DataError`.
    """
    found = find_optional(source, candidates, dataset, what)
    if found is None:
        expected = " or ".join(candidates)
        raise DataError(f"{dataset}: {what} file not found in {source} (expected {expected})")
    return found


def find_optional(source: Path, candidates: Sequence[str], dataset: str, what: str) -> Path | None:
    """Like `find_file` but returns None when no candidate exists."""
    for candidate in candidates:
        if any(ch in candidate for ch in "*?["):
            matches = sorted(p for p in source.glob(candidate) if p.is_file())
            if len(matches) > 1:
                names = ", ".join(p.name for p in matches)
                raise DataError(
                    f"{dataset}: several {what} files match {candidate!r} in {source} ({names}); "
                    "keep only one or name the file explicitly"
                )
            if matches:
                return matches[0]
        else:
            path = source / candidate
            if path.is_file():
                return path
    return None


def relative_name(path: Path, source: Path) -> str:
    """``path`` relative to ``source`` when inside it, else the absolute path."""
    try:
        return str(path.resolve().relative_to(source.resolve()))
    except ValueError:
        return str(path.resolve())


def read_header(path: Path, dataset: str, sep: str = ",", encoding: str | None = None) -> list[str]:
    """Column names of a delimited file (compressed files are handled by pandas)."""
    try:
        header = pd.read_csv(path, sep=sep, nrows=0, encoding=encoding, engine="c")
    except (pd.errors.EmptyDataError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"{dataset}: cannot read the header of {path}: {exc}") from None
    return [str(c) for c in header.columns]


def require_columns(header: Iterable[str], needed: Iterable[str], path: Path, dataset: str) -> None:
    """Raise `DataError` naming the first needed column that the file lacks."""
    present = set(header)
    missing = [c for c in needed if c not in present]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        names = ", ".join(repr(c) for c in missing)
        raise DataError(
            f"{dataset}: column{plural} {names} missing from {path.name} ({path}); "
            f"its header has: {', '.join(present_sorted(header))}"
        )


def present_sorted(header: Iterable[str]) -> list[str]:
    return [str(c) for c in header][:30]


def read_csv_columns(
    path: Path,
    columns: Sequence[str],
    dataset: str,
    *,
    dtype: dict[str, Any],
    sep: str = ",",
    optional: Sequence[str] = (),
    encoding: str | None = None,
) -> pd.DataFrame:
    """Read ``columns`` (+ whichever ``optional`` columns exist) of a CSV after checking the header.

    Uses pyarrow's multithreaded reader for plain single-character separators (row order is
    kept), which keeps 20M-row files fast and typed; falls back to the C engine otherwise.
    """
    header = read_header(path, dataset, sep=sep, encoding=encoding)
    require_columns(header, columns, path, dataset)
    usecols = [*columns, *[c for c in optional if c in header and c not in columns]]
    dtypes = {c: t for c, t in dtype.items() if c in usecols}
    use_arrow = encoding in (None, "utf-8") and len(sep) == 1
    try:
        if use_arrow:
            frame = pd.read_csv(path, sep=sep, usecols=usecols, dtype=dtypes, engine="pyarrow")
        else:
            frame = pd.read_csv(path, sep=sep, usecols=usecols, dtype=dtypes, encoding=encoding, engine="c")
    except (ValueError, TypeError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        # pyarrow / C parser conversion errors (e.g. a non-numeric value in an int column)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{dataset}: cannot parse {path.name} ({path}): {message}") from None
    return frame[usecols]


def dates_to_seconds(values: pd.Series, dataset: str, column: str, path: Path) -> np.ndarray:
    """Parse date/datetime strings to int64 seconds since the epoch (naive values are UTC).

    Parses each distinct string once, so 30M rows of ~700 distinct dates are cheap.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if (codes < 0).any():
        raise DataError(f"{dataset}: {int((codes < 0).sum())} row(s) of {path.name} have no {column!r}")
    try:
        parsed = pd.to_datetime(pd.Series(uniques), utc=True)
    except (ValueError, TypeError, OverflowError):
        parsed = _parse_one_by_one(pd.Series(uniques), dataset, column, path)
    seconds = datetime_to_seconds(parsed)
    return seconds[codes]


def _parse_one_by_one(values: pd.Series, dataset: str, column: str, path: Path) -> pd.Series:
    """Dates pandas could not parse as one column: say which value is no date, or which zones mix.

    Values in several formats that are each a date are accepted; naive and zoned values in
    one column are an error, since "naive = UTC" would silently shift the zoned ones' order.
    """
    naive = zoned = None
    for value in values:
        try:
            stamp = pd.to_datetime(value)
        except (ValueError, TypeError, OverflowError):
            raise DataError(
                f"{dataset}: column {column!r} in {path.name} holds values that are not dates, such as {value!r}"
            ) from None
        if stamp.tzinfo is None:
            naive = value if naive is None else naive
        else:
            zoned = value if zoned is None else zoned
    if naive is not None and zoned is not None:
        raise DataError(
            f"{dataset}: column {column!r} in {path.name} mixes dates without a time zone (such as {naive!r}) "
            f"and dates with one (such as {zoned!r}); give every value a zone (e.g. +00:00) or none"
        )
    try:
        return pd.to_datetime(values, utc=True, format="mixed")
    except (ValueError, TypeError, OverflowError) as error:
        raise DataError(f"{dataset}: column {column!r} in {path.name}: {str(error).splitlines()[0]}") from None


def datetime_to_seconds(values: pd.Series) -> np.ndarray:
    """int64 seconds since the epoch (floored) of a datetime series; naive values count as UTC."""
    if values.dt.tz is None:
        values = values.dt.tz_localize("UTC")
    return ((values - _EPOCH_UTC) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


def to_object(values: pd.Series | Sequence[Any]) -> pd.Series:
    """An object-dtype series whose missing values (NaN, None, '') are None."""
    series = pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values
    out = series.astype(object)
    blank = np.fromiter((isinstance(v, str) and not v.strip() for v in out.tolist()), dtype=bool, count=len(out))
    mask = out.isna().to_numpy() | blank
    return out.where(~mask, None).astype(object)


def split_title_year(titles: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Split ``"Title (1995)"`` into ``("Title", 1995.0)``; titles without a year keep NaN."""
    parts = titles.astype(str).str.extract(_TITLE_YEAR)
    has = parts["year"].notna()
    title = titles.astype(object).where(~has, parts["title"])
    title = pd.Series(
        [v.strip() if isinstance(v, str) else v for v in title.tolist()], index=titles.index, dtype=object
    )
    year = pd.to_numeric(parts["year"], errors="coerce").astype("float64")
    return to_object(title), year


def image_column(ids: pd.Series, folder: Path | None, pattern: str = "{}.jpg") -> pd.Series:
    """Absolute expected image paths ``folder/pattern.format(id)`` (None when ``folder`` is None)."""
    if folder is None:
        return pd.Series([None] * len(ids), index=ids.index, dtype=object)
    root = str(folder.resolve())
    return pd.Series(
        [f"{root}/{pattern.format(i)}" if i is not None else None for i in ids.tolist()],
        index=ids.index,
        dtype=object,
    )


def split_multi_label(values: pd.Series, separator: str) -> pd.Series:
    """Separator-joined strings → lists of stripped non-empty strings (missing → [])."""

    def convert(value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, (list, tuple, np.ndarray)):
            return [str(v).strip() for v in value if v is not None and str(v).strip()]
        if isinstance(value, float) and np.isnan(value):
            return []
        return [part.strip() for part in str(value).split(separator) if part.strip()]

    return pd.Series([convert(v) for v in values.tolist()], index=values.index, dtype=object)


def source_info(fmt: str, source: Path, files: Iterable[Path], **extra: Any) -> dict[str, Any]:
    """The ``RawDataset.source`` dict."""
    info: dict[str, Any] = {
        "format": fmt,
        "path": str(source.resolve()),
        "files": [relative_name(p, source) for p in files],
    }
    info.update(extra)
    return info


def check_source_dir(source: Path, dataset: str) -> Path:
    source = Path(source)
    if not source.is_dir():
        what = "is not a folder" if source.exists() else "does not exist"
        raise DataError(f"{dataset}: source folder {source} {what}")
    return source
