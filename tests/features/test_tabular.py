"""XGBoost tabular embedding: shape, determinism, training data only, bad values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("xgboost")

from auxrec.data.dataset import PreparedDataset
from auxrec.data.prepare import prepare_dataset, write_prepared
from auxrec.data.schema import ItemColumns
from auxrec.features.tabular import TabularConfig, fit_tabular_embedding

FAST = TabularConfig(dim=8, grid={"max_depth": [2, 3], "n_estimators": [10]})


def prepared(tmp_path: Path, raw_factory, implicit: bool = False) -> PreparedDataset:  # type: ignore[no-untyped-def]
    raw = raw_factory()
    items = raw.items
    items["year"] = np.where(items["item"] % 5 == 0, np.nan, 1990 + items["item"] % 20)
    items["group"] = items["group"].where(items["item"] % 7 != 0, None)  # NaN categories
    items.loc[items["item"] == 150, "group"] = "only-here"  # a category on one (probably unseen) item
    items.loc[items["item"] == 149, ["group", "year"]] = [None, np.nan]  # nothing known at all
    raw.item_columns = ItemColumns(text=("title",), categorical=("group",), numeric=("year",))
    if implicit:
        raw.interactions = raw.interactions.drop(columns="rating")
    return PreparedDataset.load(write_prepared(prepare_dataset(raw), tmp_path / ("implicit" if implicit else "explicit")))


def test_shape_presence_and_determinism(tmp_path: Path, raw_factory) -> None:  # type: ignore[no-untyped-def]
    dataset = prepared(tmp_path, raw_factory)
    said: list[str] = []
    matrix, present, report = fit_tabular_embedding(dataset, FAST, log=said.append)
    assert matrix.shape == (dataset.n_items + 1, 8) and matrix.dtype == np.float32
    assert np.isfinite(matrix).all() and not matrix[0].any() and not present[0]
    missing_everything = dataset.items.loc[dataset.items["original_id"] == "149", "item"].iat[0]
    assert not present[missing_everything] and not matrix[missing_everything].any()
    nothing_known = dataset.items["year"].isna() & dataset.items["group"].isna()
    assert present.sum() == dataset.n_items - nothing_known.sum() and nothing_known.sum() >= 1
    assert len(report.cv) == 2 and report.chosen in [{"max_depth": 2, "n_estimators": 10},
                                                      {"max_depth": 3, "n_estimators": 10}]
    assert any("CV MAE" in line for line in said) and np.isfinite(report.holdout_mae)
    again, _, _ = fit_tabular_embedding(dataset, FAST, log=said.append)
    np.testing.assert_array_equal(matrix, again)


def test_never_reads_validation_or_test_targets(tmp_path: Path, raw_factory) -> None:  # type: ignore[no-untyped-def]
    dataset = prepared(tmp_path, raw_factory)
    before, _, _ = fit_tabular_embedding(dataset, FAST, log=lambda _: None)
    held_out = dataset.interactions["split"] != "train"
    dataset.interactions.loc[held_out, "rating"] = 1000.0
    after, _, _ = fit_tabular_embedding(dataset, FAST, log=lambda _: None)
    np.testing.assert_array_equal(before, after)


def test_implicit_data_gets_a_non_degenerate_embedding(tmp_path: Path, raw_factory) -> None:  # type: ignore[no-untyped-def]
    dataset = prepared(tmp_path, raw_factory, implicit=True)
    matrix, present, report = fit_tabular_embedding(dataset, FAST, log=lambda _: None)
    assert report.implicit and np.isfinite(matrix).all()
    assert np.abs(matrix[present]).sum() > 0
