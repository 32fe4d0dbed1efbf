"""A loader for ``events.txt`` files of ``user;item;unix-seconds`` lines, the way docs/extending.md shows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from auxrec.data.schema import RawDataset
from auxrec.exceptions import DataError


def load_semicolon_events(source: Path, file_name: str = "events.txt") -> RawDataset:
    """``source/file_name``: one interaction per line, ``user;item;timestamp`` (seconds)."""
    path = Path(source) / file_name
    if not path.is_file():
        raise DataError(f"{path} does not exist; this loader reads user;item;timestamp lines from it")
    frame = pd.read_csv(path, sep=";", names=["user", "item", "timestamp"], dtype={"user": str, "item": str})
    frame["timestamp"] = pd.to_numeric(frame["timestamp"], errors="coerce")
    if frame["timestamp"].isna().any():
        row = int(frame["timestamp"].isna().to_numpy().argmax()) + 1
        raise DataError(f"{path}: line {row} has no whole-number timestamp")
    frame["timestamp"] = frame["timestamp"].astype("int64")
    return RawDataset(name="semicolon-events", interactions=frame,
                      source={"format": "semicolon events", "path": str(source), "files": [file_name]})
