"""Item attributes derived from interactions come from training rows only (issue 13, point 4).

The H&M loader used to set each article's ``price`` to its mean transaction price over *all*
transactions, validation and test purchases included. Now the loader keeps the price per
transaction and `prepare_dataset` aggregates it after the leave-one-out split from the
training rows only. These tests perturb the validation/test prices of a small H&M-format
source and check that nothing prepared (item table, item features, fingerprint) moves,
while a training price does move them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auxrec.data.dataset import PreparedDataset
from auxrec.data.loaders import load_dataset
from auxrec.data.prepare import PrepareOptions, prepare_dataset, training_item_aggregates, write_prepared
from auxrec.data.schema import InteractionAggregate, ItemColumns, RawDataset
from auxrec.exceptions import DataError
from auxrec.features.basic import tabular_features
from auxrec.features.tabular import item_attributes

SHARED_HM = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "hm-fashion-sample"

A1, A2, A3, A4 = "0100000001", "0200000001", "0300000001", "0400000001"
NO_METADATA = "0900000001"
ARTICLE_HEADER = (
    "article_id,prod_name,product_type_name,product_group_name,graphical_appearance_name,colour_group_name,"
    "perceived_colour_value_name,perceived_colour_master_name,department_name,index_name,index_group_name,"
    "section_name,garment_group_name,detail_desc"
)

# (date, customer, article, price); each user's last row is test, the one before valid.
TRANSACTIONS = [
    ("2020-01-01", "c1", A1, "10.0"),  # train
    ("2020-01-02", "c1", A2, "20.0"),  # valid
    ("2020-01-03", "c1", A3, "30.0"),  # test
    ("2020-01-01", "c2", A2, "22.0"),  # train
    ("2020-01-02", "c2", A1, "12.0"),  # train
    ("2020-01-03", "c2", A4, "40.0"),  # valid
    ("2020-01-04", "c2", A3, "33.0"),  # test
    ("2020-01-05", "c3", A1, ""),  # train (user with 2 purchases: train-only), price missing
    ("2020-01-06", "c3", NO_METADATA, "5.0"),  # train, article without metadata
    ("2020-01-02", "c4", A1, "14.0"),  # same day: source order decides → train
    ("2020-01-02", "c4", A2, "26.0"),  # valid
    ("2020-01-02", "c4", A4, "44.0"),  # test
]
VALID_ROWS = (1, 5, 10)
TEST_ROWS = (2, 6, 11)
TRAIN_ROW = 4  # c2's purchase of A1 at 12.0
# Mean training price; A3 and A4 are bought in validation/test only; NO_METADATA has no article row.
EXPECTED_PRICE = {A1: 12.0, A2: 22.0, A3: np.nan, A4: np.nan, NO_METADATA: np.nan}


def _write_source(folder: Path, prices: dict[int, str] | None = None) -> Path:
    """An H&M-format folder; ``prices`` overrides the price of some TRANSACTIONS rows."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["t_dat,customer_id,article_id,price,sales_channel_id"]
    for row, (date, customer, article, price) in enumerate(TRANSACTIONS):
        lines.append(f"{date},{customer},{article},{(prices or {}).get(row, price)},2")
    (folder / "transactions_train_sample.csv").write_text("\n".join(lines) + "\n")
    articles = [ARTICLE_HEADER]
    for k, article in enumerate((A1, A2, A3, A4)):
        articles.append(f"{article},Name {k},Type {k % 2},Group,Solid,Colour {k},Dark,Black,Dept,Index,"
                        f"Ladies,Section,Garment,Description {k}")
    (folder / "articles_train_sample.csv").write_text("\n".join(articles) + "\n")
    return folder


def _prepare(folder: Path, **options: object) -> dict:
    return prepare_dataset(load_dataset("hm", folder), PrepareOptions(**options))


def _prices(prepared: dict) -> dict[str, float]:
    items = prepared["tables"]["items"]
    return dict(zip(items["original_id"], items["price"]))


def _features(prepared: dict, out: Path) -> tuple[np.ndarray, np.ndarray]:
    write_prepared(prepared, out)
    dataset = PreparedDataset.load(out)
    return tabular_features(dataset)[0], item_attributes(dataset)[0]


def test_price_is_the_mean_over_training_purchases_only(tmp_path: Path) -> None:
    prepared = _prepare(_write_source(tmp_path / "hm"))
    table = prepared["tables"]["interactions"]
    assert table["split"].value_counts().to_dict() == {"train": 6, "valid": 3, "test": 3}
    prices = _prices(prepared)
    assert prices.keys() == EXPECTED_PRICE.keys()
    for article, expected in EXPECTED_PRICE.items():
        assert prices[article] == pytest.approx(expected, nan_ok=True), article
    # The per-transaction price is not part of the prepared interactions.
    assert list(table.columns) == ["user", "item", "timestamp", "split"]
    manifest = prepared["manifest"]
    assert manifest["item_aggregates"] == [
        {"column": "price", "source": "price", "how": "mean", "rows": "train"}
    ]
    assert manifest["counts"]["items_without_train_price"] == 2  # A3, A4 (NO_METADATA has no metadata)
    assert manifest["item_columns"]["numeric"] == ["price"]
    assert prepared["tables"]["items"]["price"].dtype == np.float64


@pytest.mark.parametrize(
    "rows",
    [VALID_ROWS, TEST_ROWS, VALID_ROWS + TEST_ROWS],
    ids=["valid", "test", "valid+test"],
)
@pytest.mark.parametrize("value", ["1000.0", ""], ids=["large", "blank"])
def test_validation_and_test_prices_do_not_move_item_features(tmp_path: Path, rows: tuple[int, ...],
                                                              value: str) -> None:
    base = _prepare(_write_source(tmp_path / "base"))
    moved = _prepare(_write_source(tmp_path / "moved", {row: value for row in rows}))
    pd.testing.assert_frame_equal(moved["tables"]["items"], base["tables"]["items"])
    pd.testing.assert_frame_equal(moved["tables"]["interactions"], base["tables"]["interactions"])
    assert moved["manifest"]["fingerprint"] == base["manifest"]["fingerprint"]
    assert moved["manifest"]["counts"] == base["manifest"]["counts"]
    base_basic, base_xgb_input = _features(base, tmp_path / "base-prepared")
    moved_basic, moved_xgb_input = _features(moved, tmp_path / "moved-prepared")
    np.testing.assert_array_equal(moved_basic, base_basic)
    np.testing.assert_array_equal(moved_xgb_input, base_xgb_input)  # NaN == NaN here


def test_a_training_price_moves_item_features(tmp_path: Path) -> None:
    base = _prepare(_write_source(tmp_path / "base"))
    # 60.0 lifts A1's mean above A2's: with two priced items the standardised basic
    # feature is ±1, so only a change of order shows there (the raw attribute always moves).
    moved = _prepare(_write_source(tmp_path / "moved", {TRAIN_ROW: "60.0"}))
    prices = _prices(moved)
    assert prices[A1] == pytest.approx((10.0 + 60.0 + 14.0) / 3)
    assert prices[A2] == pytest.approx(22.0) and np.isnan(prices[A3])
    assert moved["manifest"]["fingerprint"] != base["manifest"]["fingerprint"]
    base_basic, base_xgb_input = _features(base, tmp_path / "base-prepared")
    moved_basic, moved_xgb_input = _features(moved, tmp_path / "moved-prepared")
    assert not np.array_equal(moved_basic, base_basic)
    assert not np.array_equal(moved_xgb_input, base_xgb_input, equal_nan=True)


def test_items_without_training_price_are_missing_for_the_encoders(tmp_path: Path) -> None:
    prepared = _prepare(_write_source(tmp_path / "hm"))
    write_prepared(prepared, tmp_path / "prepared")
    dataset = PreparedDataset.load(tmp_path / "prepared")
    ids = dict(zip(dataset.items["original_id"], dataset.items["item"]))
    basic, present = tabular_features(dataset)
    # The numeric block is the last two columns: standardised price, missing indicator.
    assert basic[ids[A3], -1] == 1.0 and basic[ids[A3], -2] == 0.0
    assert basic[ids[A1], -1] == 0.0 and basic[ids[A1], -2] != 0.0
    assert present[ids[A3]] and not present[ids[NO_METADATA]]
    matrix, names, observed = item_attributes(dataset)
    column = names.index("price")
    assert np.isnan(matrix[ids[A3], column]) and matrix[ids[A1], column] == pytest.approx(12.0)
    assert observed[ids[A3]]  # its categorical attributes are still there
    assert not observed[ids[NO_METADATA]]


def test_preparation_stays_deterministic(tmp_path: Path) -> None:
    source = _write_source(tmp_path / "hm")
    first, second = _prepare(source), _prepare(source)
    assert first["manifest"] == second["manifest"]
    write_prepared(first, tmp_path / "one")
    write_prepared(second, tmp_path / "two")
    for name in ("manifest.json", "items.parquet", "interactions.parquet", "users.parquet"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_duplicates_and_filters_only_use_the_kept_training_rows(tmp_path: Path) -> None:
    # An exact duplicate (same customer, article, day) of a test purchase at another price
    # is dropped with it, so it cannot reach the training price either.
    source = _write_source(tmp_path / "hm")
    with (source / "transactions_train_sample.csv").open("a") as handle:
        handle.write(f"2020-01-03,c1,{A3},999.0,2\n")
    deduplicated = _prices(_prepare(source))
    assert np.isnan(deduplicated[A3]) and deduplicated[A1] == pytest.approx(12.0)
    # With duplicates kept, the extra row becomes c1's test row and A3 (first copy) its validation row.
    kept = _prices(_prepare(source, drop_duplicates=False))
    assert np.isnan(kept[A3]) and kept[A2] == pytest.approx((20.0 + 22.0) / 2)


# --------------------------------------------------------------------------- generic


def _raw(aggregates: tuple[InteractionAggregate, ...], **changes: object) -> RawDataset:
    interactions = pd.DataFrame({
        "user": ["u1"] * 4 + ["u2"] * 3,
        "item": [1, 2, 1, 3, 2, 1, 3],
        "timestamp": [1, 2, 3, 4, 1, 2, 3],
        "rating": [5.0, 4.0, 3.0, 1.0, 2.0, 4.0, 5.0],
        "watched": [0.5, 0.1, 0.2, 0.9, 0.3, 0.8, 0.7],
    })
    items = pd.DataFrame({"item": [1, 2, 3], "genre": ["a", "b", "a"]})
    values: dict[str, object] = {
        "name": "toy", "interactions": interactions, "items": items,
        "item_columns": ItemColumns(categorical=("genre",), numeric=tuple(a.column for a in aggregates)),
        "item_aggregates": aggregates,
    }
    values.update(changes)
    return RawDataset(**values)  # type: ignore[arg-type]


def test_generic_aggregates_read_training_rows_only() -> None:
    aggregates = (InteractionAggregate("max_rating", "rating", "max"), InteractionAggregate("watched", "watched"))
    raw = _raw(aggregates)
    items = prepare_dataset(raw)["tables"]["items"].set_index("original_id")
    # u1: items 1, 2 train (5, 4), item 1 valid, item 3 test; u2: item 2 train (2), item 1 valid, item 3 test.
    assert items.loc["1", "max_rating"] == 5.0 and items.loc["2", "max_rating"] == 4.0
    assert np.isnan(items.loc["3", "max_rating"])
    assert items.loc["1", "watched"] == pytest.approx(0.5) and items.loc["2", "watched"] == pytest.approx(0.2)
    assert list(items.columns) == ["item", "genre", "max_rating", "watched", "has_metadata"]


def test_training_item_aggregates_function() -> None:
    frame = training_item_aggregates(
        (InteractionAggregate("p", "v", "median"),),
        items=np.array([1, 1, 1, 2, 3]),
        split_codes=np.array([0, 0, 2, 1, 0]),
        values={"v": np.array([1.0, 3.0, 100.0, 7.0, np.nan])},
        n_items=4,
    )
    assert frame.index.tolist() == [1, 2, 3, 4]
    np.testing.assert_array_equal(frame["p"].to_numpy(), [2.0, np.nan, np.nan, np.nan])


@pytest.mark.parametrize(
    ("aggregates", "changes", "message"),
    [
        ((InteractionAggregate("p", "rating", "sum"),), {}, "unknown aggregation 'sum'"),
        ((InteractionAggregate("p", "price"),), {}, "interactions lack"),
        ((InteractionAggregate("genre", "rating"),), {}, "both in the item table"),
        ((InteractionAggregate("p", "rating"), InteractionAggregate("p", "watched")), {}, "aggregated twice"),
        ((InteractionAggregate("p", "rating"),), {"items": None}, "need an item table"),
    ],
)
def test_aggregate_declarations_are_validated(aggregates: tuple[InteractionAggregate, ...],
                                              changes: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        _raw(aggregates, **changes).validate()


def test_non_numeric_source_is_rejected() -> None:
    raw = _raw((InteractionAggregate("p", "user"),))
    with pytest.raises(DataError, match="must be numeric"):
        raw.validate()


def test_undeclared_numeric_column_still_fails_without_an_aggregate() -> None:
    raw = _raw((), item_columns=ItemColumns(numeric=("price",)))
    with pytest.raises(DataError, match="lacks declared column"):
        raw.validate()


# --------------------------------------------------------------------------- real H&M sample


@pytest.mark.skipif(not SHARED_HM.exists(), reason="../shared/data/hm-fashion-sample not present")
def test_shared_hm_validation_and_test_prices_do_not_move_items() -> None:
    raw = load_dataset("hm", SHARED_HM, items_with_metadata_only=True)
    base = prepare_dataset(raw)
    table = base["tables"]["interactions"]
    users = base["tables"]["users"].set_index("user")["original_id"]
    items = base["tables"]["items"].set_index("item")["original_id"]
    held_out = table[table["split"] != "train"]
    keys = set(zip(users[held_out["user"]], items[held_out["item"]], held_out["timestamp"]))
    inter = raw.interactions
    held = zip(inter["user"], inter["item"], inter["timestamp"])
    rows = np.fromiter((k in keys for k in held), bool, len(inter))
    assert rows.sum() >= len(held_out)
    inter = inter.assign(price=np.where(rows, inter["price"] * 1000.0, inter["price"]))
    moved = prepare_dataset(RawDataset(**{**raw.__dict__, "interactions": inter}))
    pd.testing.assert_frame_equal(moved["tables"]["items"], base["tables"]["items"])
    assert moved["manifest"]["fingerprint"] == base["manifest"]["fingerprint"]
