"""Amazon Review Data (2018, McAuley lab) loader: reviews (+ optional item metadata)."""

from __future__ import annotations

import ast
import gzip
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pajson

from auxrec.data.loaders._io import check_source_dir, relative_name, source_info, to_object
from auxrec.data.schema import ItemColumns, RawDataset
from auxrec.exceptions import DataError

NAME = "amazon"
REVIEW_FIELDS = ("reviewerID", "asin", "overall", "unixReviewTime")
REVIEW_PATTERNS = ("*.json", "*.json.gz", "*.jsonl", "*.jsonl.gz")
META_PATTERNS = ("meta_*.json", "meta_*.json.gz", "meta_*.jsonl", "meta_*.jsonl.gz")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_PRICE = re.compile(r"\$\s*([0-9][0-9,]*(?:\.[0-9]+)?)")


def load_amazon(
    source: Path,
    reviews: Path | str | None = None,
    meta: Path | str | None = None,
    images_dir: Path | str | None = None,
) -> RawDataset:
    """Load an Amazon 2018 review file and, when present, its ``meta_*`` item metadata.

    Parameters
    ----------
    source : Path
        Folder holding the reviews file (``*.json``, ``*.json.gz``, ``*.jsonl``,
        ``*.jsonl.gz`` not starting with ``meta_``), each either JSON lines or one JSON array
        (detected from the first non-space character; Python-dict-style lines of the 2014
        release are accepted too).
    reviews : Path or str, optional
        The reviews file (absolute, or relative to ``source``); required when ``source``
        holds several candidates.
    meta : Path or str, optional
        The metadata file; default: the single ``meta_*.json[l][.gz]`` in ``source`` if any.
    images_dir : Path or str, optional
        Folder of item images ``<asin>.jpg`` (``.jpeg``/``.png`` also accepted); default
        ``source/images`` when it exists. An explicit folder that does not exist is an error.

    Returns
    -------
    RawDataset
        Interactions ``user`` (reviewerID), ``item`` (asin), ``timestamp``
        (unixReviewTime), ``rating`` (overall), in file order. Items: every asin of the
        reviews; with metadata, text ``title`` and ``description`` (list joined by spaces,
        HTML tags removed), categorical ``brand``, numeric ``price`` ("$12.99" → 12.99, a
        range "$10.99 - $15.99" → its midpoint, anything else NaN), multi-label
        ``category``; ``image_path`` for the asins with an image file (None otherwise) when
        an images folder exists.
    """
    source = check_source_dir(Path(source), NAME)
    reviews_path = _pick_file(source, reviews, REVIEW_PATTERNS, exclude_meta=True, what="reviews")
    assert reviews_path is not None
    interactions = _read_reviews(reviews_path)
    files = [reviews_path]

    items = pd.DataFrame({"item": pd.unique(interactions["item"])})
    text: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    multi_label: tuple[str, ...] = ()
    meta_path = _pick_file(source, meta, META_PATTERNS, exclude_meta=False, what="meta", required=False)
    if meta_path is not None:
        files.append(meta_path)
        metadata = _read_meta(meta_path, set(items["item"].tolist()))
        items = items.merge(metadata, on="item", how="left")
        items["category"] = pd.Series(
            [v if isinstance(v, list) else [] for v in items["category"].tolist()], index=items.index, dtype=object
        )
        for column in ("title", "description", "brand"):
            items[column] = to_object(items[column])
        text, categorical, numeric, multi_label = ("title", "description"), ("brand",), ("price",), ("category",)

    image = None
    folder = _images_folder(source, images_dir)
    if folder is not None:
        found: dict[str, str] = {}
        for suffix in reversed(IMAGE_SUFFIXES):  # .jpg wins when several exist
            for path in folder.glob(f"*{suffix}"):
                found[path.name[: -len(suffix)]] = str(path.resolve())
        items["image_path"] = pd.Series([found.get(a) for a in items["item"].tolist()], index=items.index, dtype=object)
        image = "image_path"

    return RawDataset(
        name=NAME,
        interactions=interactions,
        items=items,
        item_columns=ItemColumns(
            text=text, categorical=categorical, numeric=numeric, multi_label=multi_label, image=image
        ),
        source=source_info(
            NAME, source, files, images_dir=str(folder.resolve()) if folder is not None else None
        ),
    )


def _pick_file(
    source: Path,
    given: Path | str | None,
    patterns: tuple[str, ...],
    *,
    exclude_meta: bool,
    what: str,
    required: bool = True,
) -> Path | None:
    if given is not None:
        path = Path(given)
        if not path.is_absolute():
            path = source / path
        if not path.is_file():
            raise DataError(f"{NAME}: {what} file {path} not found")
        return path
    candidates = sorted(
        {p for pattern in patterns for p in source.glob(pattern) if p.is_file()}
        - ({p for p in source.glob("meta_*") if exclude_meta})
    )
    if not candidates:
        if not required:
            return None
        raise DataError(
            f"{NAME}: {what} file not found in {source} (expected one of {', '.join(patterns)}, "
            "not starting with meta_)"
        )
    if len(candidates) > 1:
        names = ", ".join(relative_name(p, source) for p in candidates)
        raise DataError(f"{NAME}: several {what} files in {source} ({names}); pass {what}=<file> to choose one")
    return candidates[0]


def _images_folder(source: Path, images_dir: Path | str | None) -> Path | None:
    if images_dir is not None:
        folder = Path(images_dir)
        if not folder.is_absolute():
            folder = source / folder
        if not folder.is_dir():
            raise DataError(f"{NAME}: images_dir {folder} is not a folder")
        return folder
    default = source / "images"
    return default if default.is_dir() else None


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return path.open(encoding="utf-8")


def _first_char(path: Path) -> str:
    with _open_text(path) as handle:
        while True:
            chunk = handle.read(4096)
            if not chunk:
                return ""
            stripped = chunk.lstrip()
            if stripped:
                return stripped[0]


def _parse_record(line: str, path: Path, number: int) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        try:  # the 2014 release writes Python dict literals
            value = ast.literal_eval(line)
        except (ValueError, SyntaxError):
            raise DataError(f"{NAME}: line {number} of {path.name} is neither JSON nor a Python dict") from None
    if not isinstance(value, dict):
        raise DataError(f"{NAME}: line {number} of {path.name} is not a JSON object")
    return value


def _iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSON-lines or JSON-array file."""
    if _first_char(path) == "[":
        with _open_text(path) as handle:
            try:
                records = json.load(handle)
            except json.JSONDecodeError as exc:
                raise DataError(f"{NAME}: {path.name} is not a valid JSON array: {exc}") from None
        for number, record in enumerate(records, start=1):
            if not isinstance(record, dict):
                raise DataError(f"{NAME}: element {number} of the JSON array in {path.name} is not an object")
            yield record
        return
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield _parse_record(line, path, number)


def _read_reviews(path: Path) -> pd.DataFrame:
    table = None
    if _first_char(path) != "[":
        # Fast path for JSON lines: pyarrow reads only the four fields (others ignored).
        schema = pa.schema(
            [
                ("reviewerID", pa.string()),
                ("asin", pa.string()),
                ("overall", pa.float64()),
                ("unixReviewTime", pa.int64()),
            ]
        )
        options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
        try:
            table = pajson.read_json(path, parse_options=options)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError):
            table = None  # e.g. Python-dict lines or odd types: fall back to the slow path
    if table is not None:
        frame = table.to_pandas()
    else:
        rows = [[r.get(f) for f in REVIEW_FIELDS] for r in _iter_records(path)]
        frame = pd.DataFrame(rows, columns=list(REVIEW_FIELDS))
    if len(frame) == 0:
        raise DataError(f"{NAME}: no reviews in {path.name}")
    for field in REVIEW_FIELDS:
        if frame[field].isna().all():
            raise DataError(f"{NAME}: field {field!r} missing from the reviews in {path.name}")
    timestamp = pd.to_numeric(frame["unixReviewTime"], errors="coerce")
    if timestamp.isna().any():
        n = int(timestamp.isna().sum())
        raise DataError(f"{NAME}: {n} review(s) in {path.name} lack a numeric 'unixReviewTime'")
    return pd.DataFrame(
        {
            "user": frame["reviewerID"].astype("str"),
            "item": frame["asin"].astype("str"),
            "timestamp": timestamp.to_numpy().astype(np.int64),
            "rating": pd.to_numeric(frame["overall"], errors="coerce").astype("float64"),
        }
    )


def _read_meta(path: Path, wanted: set[str]) -> pd.DataFrame:
    rows = []
    seen: set[str] = set()
    for record in _iter_records(path):
        asin = record.get("asin")
        if asin is None or str(asin) not in wanted or str(asin) in seen:
            continue
        seen.add(str(asin))
        rows.append(
            {
                "item": str(asin),
                "title": _clean_text(record.get("title")),
                "description": _clean_text(record.get("description")),
                "brand": _clean_text(record.get("brand")),
                "price": parse_price(record.get("price")),
                "category": _categories(record.get("category", record.get("categories"))),
            }
        )
    frame = pd.DataFrame(rows, columns=["item", "title", "description", "brand", "price", "category"])
    frame["item"] = frame["item"].astype("str")
    frame["price"] = frame["price"].astype("float64")
    return frame


_TAG = re.compile(r"<[^>]+>")


def _clean_text(value: Any) -> str | None:
    if isinstance(value, list):
        value = " ".join(str(v) for v in value if v is not None)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = " ".join(_TAG.sub(" ", str(value)).split())
    return text or None


def _categories(value: Any) -> list[str]:
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):  # 2014: list of paths
        value = [c for path in value for c in path]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    out: list[str] = []
    for v in value:
        text = _clean_text(v)
        if text and text not in out:
            out.append(text)
    return out


def parse_price(value: Any) -> float:
    """``"$12.99"`` → 12.99, ``"$10.99 - $15.99"`` → 13.49, numbers pass, anything else NaN."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or len(value) > 40:  # long strings are scraped HTML, not prices
        return float("nan")
    amounts = [float(m.replace(",", "")) for m in _PRICE.findall(value)]
    if not amounts:
        try:
            return float(value.strip())
        except ValueError:
            return float("nan")
    return float(sum(amounts[:2]) / len(amounts[:2]))
