"""Batch recommendation: every user (or a list of them) to one Parquet or CSV file.

Users are scored ``chunk_size`` at a time and each chunk is written as it comes, so
memory stays flat however many users there are. The file appears only when complete
(written to a temporary name beside it, then renamed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from auxrec.exceptions import ConfigError, DataError
from auxrec.io import atomic_output
from auxrec.serving.trained_model import TopK, TrainedModel

OUTPUT_FORMATS = (".parquet", ".csv")
SCHEMA = pa.schema([("user", pa.string()), ("rank", pa.int32()), ("item", pa.string()), ("score", pa.float32())])


@dataclass(frozen=True)
class BatchSummary:
    users: int
    rows: int
    seconds: float

    @property
    def users_per_second(self) -> float:
        return self.users / self.seconds if self.seconds > 0 else float("inf")


def read_user_file(path: Path) -> list[str]:
    """User ids, one per line (blank lines and surrounding spaces ignored)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text; --users takes a text file with one user id per line") from None
    users = [line.strip() for line in lines if line.strip()]
    if not users:
        raise DataError(f"{path} lists no user ids; --users takes a text file with one user id per line")
    return users


def recommend_to_file(model: TrainedModel, out: Path, k: int = 10, users: list[str] | None = None,
                      exclude_seen: bool = True, overwrite: bool = False, progress: bool = True) -> BatchSummary:
    """Write ``user, rank, item, score`` rows (k per user, best first) for ``users`` (default: all)."""
    out = Path(out)
    if out.suffix.lower() not in OUTPUT_FORMATS:
        raise ConfigError(f"--out {out}: choose a .parquet or .csv file name")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists; pass --overwrite to replace it")
    if out.is_dir():
        raise ConfigError(f"{out} is a folder; --out takes a file name")
    if users is not None:
        model.check_users(users)  # every id, before any work
    model.recommend(users=(users or list(model.user_ids))[:1], k=k)  # checks k
    total = len(users) if users is not None else model.n_users
    started = time.perf_counter()
    rows = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as temporary, tqdm(total=total, unit="user", disable=not progress,
                                               desc="recommending") as bar:
        writer = pq.ParquetWriter(temporary, SCHEMA) if out.suffix.lower() == ".parquet" else None
        try:
            for index, top in enumerate(model.iter_top_k(users, k=k, exclude_seen=exclude_seen)):
                table = chunk_table(top)
                if writer is not None:
                    writer.write_table(table)
                else:
                    table.to_pandas().to_csv(temporary, mode="w" if index == 0 else "a", header=index == 0,
                                             index=False)
                rows += table.num_rows
                bar.update(len(top.users))
        finally:
            if writer is not None:
                writer.close()
    return BatchSummary(users=total, rows=rows, seconds=time.perf_counter() - started)


def chunk_table(top: TopK) -> pa.Table:
    """A chunk's ``user, rank, item, score`` rows, built from its flat arrays (no object per user or row)."""
    n_users, k = top.items.shape
    return pa.table({"user": pa.array(np.repeat(top.users, k), pa.string()),
                     "rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), n_users)),
                     "item": pa.array(top.items.ravel(), pa.string()),
                     "score": pa.array(top.scores.ravel().astype(np.float32))}, schema=SCHEMA)
