"""Internal id conventions, defined in exactly one place.

Users and items are remapped to contiguous integers 1..n. Index 0 is reserved for
padding in every padded sequence, embedding table and feature matrix, so models can
use ``padding_idx=PADDING_ID`` and evaluation never ranks the padding "item".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from auxrec.exceptions import DataError

PADDING_ID = 0
FIRST_ID = PADDING_ID + 1


def distinct_sorted_ids(original_ids: pd.Series, what: str) -> pd.Index:
    """Distinct original ids, sorted in their own dtype (numbers numerically, strings
    lexicographically), so the mapping depends only on the set of ids, never on row order.
    """
    values = pd.unique(original_ids.to_numpy())
    try:
        return pd.Index(np.sort(values))
    except TypeError as error:
        raise DataError(f"{what} ids mix incomparable types (for example numbers and text)") from error


def to_internal(index: pd.Index, original_ids: np.ndarray) -> np.ndarray:
    """Internal ids (``FIRST_ID``-based, int32) of ``original_ids``; unknown ids map to PADDING_ID."""
    positions = index.get_indexer(original_ids)
    return np.where(positions >= 0, positions + FIRST_ID, PADDING_ID).astype(np.int32)


def id_map_frame(index: pd.Index) -> pd.DataFrame:
    """The stored mapping: internal ``index`` (int32) → ``original_id`` (as text, one Parquet type)."""
    return pd.DataFrame(
        {
            "index": np.arange(FIRST_ID, FIRST_ID + len(index), dtype=np.int32),
            "original_id": index.astype(str).to_numpy(dtype=object),
        }
    )
