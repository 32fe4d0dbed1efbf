"""Shared fixtures: tiny datasets built in code, and the location of ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

# pytest-xdist workers (`make test` runs `pytest -n auto`) inherit COLUMNS = the controller's
# terminal width, which the CLI's rich console would freeze at import; in-process CLI tests set
# their own COLUMNS through CliRunner, as in a serial run.
os.environ.pop("COLUMNS", None)
# Each worker gets its share of the cores for torch (tests that need a thread count set it).
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))

from auxrec.data.dataset import PreparedDataset
from auxrec.data.prepare import prepare_dataset, write_prepared
from auxrec.data.schema import ItemColumns, RawDataset

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def _shared_dataset(name: str) -> Path:
    """Path of a shared dataset, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} not present: the shared datasets exist only on the project's machines")
    return path


@pytest.fixture
def shared_dataset():  # type: ignore[no-untyped-def]
    """``shared_dataset("ml-100k")`` → the folder, or skip when absent."""
    return _shared_dataset


def make_raw(n_users: int = 40, n_items: int = 150, seed: int = 0) -> RawDataset:
    """Random interactions with structure: user u prefers items near (u mod n_items)."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, n_users + 1):
        length = int(rng.integers(3, 16)) if user > 2 else user  # users 1 and 2 are too short
        centre = (user * 11) % n_items
        items = (centre + rng.integers(-3, 4, size=length)) % n_items + 1  # 7 nearby items
        times = np.sort(rng.integers(1_000_000, 1_100_000, size=length))
        rows += [(f"u{user}", int(item), int(t), float(rng.integers(1, 6))) for item, t in zip(items, times)]
    interactions = pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"])
    items_table = pd.DataFrame(
        {"item": np.arange(1, n_items + 1), "title": [f"item {i}" for i in range(1, n_items + 1)],
         "group": [f"g{i % 4}" for i in range(1, n_items + 1)]}
    )
    return RawDataset(
        name="tiny", interactions=interactions, items=items_table,
        item_columns=ItemColumns(text=("title",), categorical=("group",)), source={"format": "test"},
    )


@pytest.fixture
def tiny_raw() -> RawDataset:
    return make_raw()


@pytest.fixture
def tiny_prepared(tmp_path: Path) -> PreparedDataset:
    path = write_prepared(prepare_dataset(make_raw()), tmp_path / "prepared")
    return PreparedDataset.load(path)


@pytest.fixture
def raw_factory():  # type: ignore[no-untyped-def]
    return make_raw
