"""Dataset loaders: each turns a source folder into a `RawDataset` with original ids.

``load_dataset(name, source, **options)`` looks ``name`` up in `LOADERS` and validates the
result. ``synthetic`` is the generic loader: the synthetic generator writes folders in the
generic format (``auxrec-source.json`` + CSV/Parquet files).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from auxrec.data.loaders.amazon import load_amazon
from auxrec.data.loaders.generic import GenericSourceSpec, load_generic
from auxrec.data.loaders.hm import load_hm
from auxrec.data.loaders.movielens import load_movielens_1m, load_movielens_100k, load_movielens_csv
from auxrec.data.schema import RawDataset
from auxrec.exceptions import ConfigError, DataError

LOADERS: dict[str, Callable[..., RawDataset]] = {
    "ml-100k": load_movielens_100k,
    "ml-1m": load_movielens_1m,
    "ml-20m": partial(load_movielens_csv, name="ml-20m"),
    "ml-25m": partial(load_movielens_csv, name="ml-25m"),
    "hm": load_hm,
    "amazon": load_amazon,
    "generic": load_generic,
    "synthetic": load_generic,
}


def load_dataset(name: str, source: Path | str, **options: Any) -> RawDataset:
    """Load dataset ``name`` from ``source`` with loader ``options`` and validate it.

    Raises
    ------
    ConfigError
        ``name`` is not in `LOADERS`, or an option is not accepted by that loader.
    DataError
        ``source`` does not exist, or the data is missing or malformed.
    """
    loader = LOADERS.get(name)
    if loader is None:
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(LOADERS)}")
    source = Path(source)
    if not source.exists():
        raise DataError(f"{name}: source folder {source} does not exist")
    parameters = inspect.signature(loader).parameters
    accepted = [p for p in list(parameters)[1:] if not (name.startswith("ml-2") and p == "name")]
    unknown = [key for key in options if key not in accepted]
    if unknown:
        raise ConfigError(
            f"dataset {name!r} has no option(s) {', '.join(unknown)}; its options: {', '.join(accepted) or 'none'}"
        )
    raw = loader(source, **options)
    raw.validate()
    return raw


__all__ = [
    "LOADERS",
    "GenericSourceSpec",
    "load_amazon",
    "load_dataset",
    "load_generic",
    "load_hm",
    "load_movielens_1m",
    "load_movielens_100k",
    "load_movielens_csv",
]
