"""`prepare --cold-start-fraction` and `--cold-start-where`: cold items never reach a training row, and the default
changes nothing."""

import json

import numpy as np
import pandas as pd
import pydantic
import pytest
from typer.testing import CliRunner

from auxrec.cli import USER_ERROR_EXIT_CODE, app
from auxrec.data.cold_start import ColdStartCondition, cold_start_cut, hold_out_cold_items
from auxrec.data.dataset import PreparedDataset
from auxrec.data.prepare import PrepareOptions, prepare_dataset, write_prepared
from auxrec.data.schema import RawDataset
from auxrec.exceptions import DataError


def raw(rows: list[tuple[str, str, int]]) -> RawDataset:
    return RawDataset("cold", pd.DataFrame(rows, columns=["user", "item", "timestamp"]))


# Items first seen: a@1 b@2 c@3 d@4 e@5 f@6 g@7 h@8 x@20 y@21 (10 items). With f = 0.2 the
# cut is the 8th first-seen time (h, 8): x and y are cold.
ROWS = [
    ("u1", "a", 1), ("u1", "b", 2), ("u1", "x", 22), ("u1", "c", 23), ("u1", "y", 24),  # y: test target
    ("u2", "c", 3), ("u2", "d", 4), ("u2", "x", 25), ("u2", "e", 26),  # x: valid target
    ("u3", "e", 5), ("u3", "f", 6), ("u3", "g", 7), ("u3", "h", 8),
    ("u4", "x", 20), ("u4", "y", 21), ("u4", "a", 30), ("u4", "b", 31),  # every training row is cold
    ("u5", "y", 27), ("u5", "a", 28),  # train-only user (2 interactions)
    ("u6", "y", 29),  # train-only user whose only row is cold: gone
]


def items_of(prepared: dict, internal: np.ndarray) -> list[str]:
    names = prepared["tables"]["items"].set_index("item")["original_id"]
    return [names[i] for i in internal]


def users_of(prepared: dict, internal: np.ndarray) -> list[str]:
    names = prepared["tables"]["users"].set_index("user")["original_id"]
    return [names[u] for u in internal]


def test_the_cut_keeps_at_most_the_fraction_and_ties_stay_warm():
    assert cold_start_cut(np.array([5, 1, 4, 2, 3, 9, 8, 7, 6, 10]), 0.2) == 8  # 9 and 10 are cold
    assert cold_start_cut(np.array([1, 2, 3, 4]), 0.5) == 2
    # the 3 latest of 10 would be cold, but 8 ties with the latest warm item: only 9 and 10 are
    assert cold_start_cut(np.array([1, 2, 3, 4, 5, 6, 8, 8, 9, 10]), 0.3) == 8
    with pytest.raises(DataError, match="holds out no item"):
        cold_start_cut(np.arange(5), 0.1)


def test_hold_out_marks_cold_training_rows_and_orphaned_users():
    users = np.array([1, 1, 1, 1, 1, 2, 2, 2])
    items = np.array([1, 2, 3, 1, 2, 3, 1, 2])
    stamps = np.array([1, 2, 7, 9, 10, 8, 11, 12])
    codes = np.array([0, 0, 0, 1, 2, 0, 1, 2], dtype=np.int8)
    held = hold_out_cold_items(users, items, stamps, codes, 3, 0.34)  # item 3 (first seen at 7) is cold
    assert held.cold.tolist() == [False, False, False, True] and held.cut == 2
    # user 2's only training row is cold: their validation and test rows go too
    assert held.keep.tolist() == [True, True, False, True, True, False, False, False]
    assert (held.train_rows_dropped, held.users_dropped, held.rows_of_dropped_users) == (2, 1, 2)


def test_no_cold_item_in_a_training_row_and_only_as_target_or_validation_history(tmp_path):
    prepared = prepare_dataset(raw(ROWS), PrepareOptions(cold_start_fraction=0.2))
    table = prepared["tables"]["interactions"]
    manifest = prepared["manifest"]
    cold = {"x", "y"}
    assert manifest["cold_start"]["cold_items"] == 2 and manifest["cold_start"]["cut_timestamp"] == 8
    assert not cold & set(items_of(prepared, table.loc[table["split"] == "train", "item"]))
    # leave-one-out ran on all rows first: u1 keeps y as test target, u2 keeps x as validation target
    targets = {(u, s): i for u, s, i in zip(users_of(prepared, table["user"]), table["split"],
                                            items_of(prepared, table["item"])) if s != "train"}
    assert targets == {("u1", "valid"): "c", ("u1", "test"): "y", ("u2", "valid"): "x", ("u2", "test"): "e",
                       ("u3", "valid"): "g", ("u3", "test"): "h"}
    # u4 had only cold training rows: dropped with all their rows; u5 (train-only) lost its cold row, u6 its only row
    assert set(users_of(prepared, table["user"])) == {"u1", "u2", "u3", "u5"}
    assert prepared["tables"]["users"]["user"].tolist() == [1, 2, 3, 4]
    assert items_of(prepared, table.loc[table["user"] == 4, "item"]) == ["a"]
    counts = manifest["cold_start"]
    assert (counts["train_rows_dropped"], counts["users_dropped"], counts["rows_of_dropped_users"]) == (5, 2, 2)
    assert (counts["cold_valid_targets"], counts["cold_test_targets"]) == (1, 1)
    assert manifest["n_items"] == 10  # cold items stay in the catalogue
    assert manifest["options"]["cold_start_fraction"] == 0.2

    dataset = PreparedDataset.load(write_prepared(prepared, tmp_path / "cold"))
    names = dataset.items.set_index("item")["original_id"]
    cold_ids = {int(i) for i, name in names.items() if name in cold}
    assert not cold_ids & set(dataset.train_sequences.items.tolist())
    assert not cold_ids & set(dataset.history("valid").items.tolist())
    assert all(dataset.train_item_counts[i] == 0 for i in cold_ids)
    test_history = dataset.history("test")
    valid_users, valid_targets = dataset.targets("valid")
    for user in range(1, dataset.n_users + 1):
        seen = test_history.of(user).tolist()
        # a cold item is visible at test time only as the user's own validation target, the last item
        assert not cold_ids & set(seen[:-1] if user in valid_users else seen)
    assert {int(t) for t in valid_targets} & cold_ids == {int(names[names == "x"].index[0])}


def test_default_leaves_preparation_byte_identical(tiny_raw, raw_factory, tmp_path):
    before = prepare_dataset(tiny_raw)
    explicit = prepare_dataset(raw_factory(), PrepareOptions(cold_start_fraction=None))
    assert before["manifest"]["fingerprint"] == explicit["manifest"]["fingerprint"]
    assert set(before["manifest"]["options"]) == {"drop_duplicates", "min_rating", "k_core"}  # as before the option
    assert "cold_start" not in before["manifest"]
    first = write_prepared(before, tmp_path / "a")
    second = write_prepared(explicit, tmp_path / "b")
    for name in ("interactions.parquet", "items.parquet", "users.parquet", "manifest.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    cold = prepare_dataset(raw_factory(), PrepareOptions(cold_start_fraction=0.1))["manifest"]
    assert cold["fingerprint"] != before["manifest"]["fingerprint"]
    again = prepare_dataset(raw_factory(), PrepareOptions(cold_start_fraction=0.1))["manifest"]
    assert again["fingerprint"] == cold["fingerprint"]


def test_the_fraction_is_checked():
    for value in (0, 1, -0.1, 1.5):
        with pytest.raises(pydantic.ValidationError):
            PrepareOptions(cold_start_fraction=value)
    with pytest.raises(DataError, match="holds out no item"):
        prepare_dataset(raw(ROWS), PrepareOptions(cold_start_fraction=0.05))
    tied = [("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 2), ("u1", "d", 2)]
    with pytest.raises(DataError, match="same time"):
        prepare_dataset(raw(tied), PrepareOptions(cold_start_fraction=0.5))


def test_cli_flag(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    pd.DataFrame(ROWS, columns=["user", "item", "ts"]).to_csv(source / "interactions.csv", index=False)
    (source / "auxrec-source.json").write_text(json.dumps(
        {"name": "cold", "interactions": {"path": "interactions.csv", "user": "user", "item": "item",
                                          "timestamp": "ts"}}))
    runner = CliRunner()
    result = runner.invoke(app, ["prepare", "generic", "--source", str(source), "--out", str(tmp_path / "out"),
                                 "--cold-start-fraction", "0.2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "cold start: 2 items" in " ".join(result.output.split())
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["cold_start"]["cold_test_targets"] == 1
    result = runner.invoke(app, ["prepare", "generic", "--source", str(source), "--out", str(tmp_path / "bad"),
                                 "--cold-start-fraction", "1.5"], catch_exceptions=False)
    assert result.exit_code == USER_ERROR_EXIT_CODE and "Traceback" not in result.output
    assert "--cold-start-fraction" in result.output and len(result.output.strip().splitlines()) == 1


def test_ml100k_cold_items_never_train(shared_dataset):
    from auxrec.data.loaders import load_dataset

    prepared = prepare_dataset(load_dataset("ml-100k", shared_dataset("ml-100k")),
                               PrepareOptions(cold_start_fraction=0.1))
    table = prepared["tables"]["interactions"]
    first_seen = table.groupby("item")["timestamp"].min()
    cut = prepared["manifest"]["cold_start"]["cut_timestamp"]
    train = table[table["split"] == "train"]
    assert (train["item"].map(first_seen) <= cut).all()
    assert prepared["manifest"]["cold_start"]["cold_items"] <= 168  # floor(0.1 * 1,682)


# --cold-start-where: the same ROWS, with an item table saying which items are new.
ITEM_TABLE = pd.DataFrame({
    "item": ["a", "b", "c", "d", "e", "f", "g", "h", "x", "y", "z"],
    "year": [1990, 1991, 1992, 1993, 1994, 1995, 1996, None, 2000, 2001, 2000],  # z: nobody's item
    "section": ["old", "old", "old", "old", "old", "old", "old", "old", "new", "new", "new"],
})


def raw_with_items(rows: list[tuple[str, str, int]] = ROWS) -> RawDataset:
    return RawDataset("cold", pd.DataFrame(rows, columns=["user", "item", "timestamp"]), items=ITEM_TABLE.copy())


@pytest.mark.parametrize("condition", ["year >= 2000", "year>1996", "section == new", "section == 'new'"])
def test_a_condition_holds_out_exactly_the_items_satisfying_it(condition):
    """x and y satisfy it; h has no year and stays warm; z satisfies it but has no interaction to hold out."""
    by_condition = prepare_dataset(raw_with_items(), PrepareOptions(cold_start_where=condition))
    by_time = prepare_dataset(raw_with_items(), PrepareOptions(cold_start_fraction=0.2))  # x, y too (above)
    pd.testing.assert_frame_equal(by_condition["tables"]["interactions"], by_time["tables"]["interactions"])
    cold = by_condition["manifest"]["cold_start"]
    assert cold["where"] == str(ColdStartCondition.parse(condition)) and "cut_timestamp" not in cold
    assert (cold["cold_items"], cold["train_rows_dropped"], cold["users_dropped"]) == (2, 5, 2)  # u4 and u6
    assert (cold["cold_valid_targets"], cold["cold_test_targets"]) == (1, 1)
    assert by_condition["manifest"]["options"]["cold_start_where"] == cold["where"]
    assert by_condition["manifest"]["fingerprint"] != by_time["manifest"]["fingerprint"]  # the option is recorded


def test_condition_marks_items_by_internal_id():
    index = pd.Index(["a", "h", "x", "y"])  # internal ids 1..4
    assert ColdStartCondition.parse("year >= 2000").items(ITEM_TABLE, index).tolist() == [False, False, False, True,
                                                                                          True]
    assert ColdStartCondition.parse("year != 2000").items(ITEM_TABLE, index).tolist() == [False, True, False, False,
                                                                                          True]  # h: no year, warm


@pytest.mark.parametrize(("condition", "message"), [
    ("yr >= 2000", "no column 'yr'; it has year, section"),
    ("year >= new", "year is numeric, so the value must be a number"),
    ("year >= 3000", "no item with interactions satisfies it"),
])
def test_a_condition_the_data_cannot_meet_is_one_data_error(condition, message):
    with pytest.raises(DataError, match=message):
        prepare_dataset(raw_with_items(), PrepareOptions(cold_start_where=condition))


def test_conditions_on_lists_or_without_an_item_table_are_refused():
    tagged = raw_with_items()
    tagged.items["tags"] = [["a"]] * len(tagged.items)
    with pytest.raises(DataError, match="tags holds lists"):
        prepare_dataset(tagged, PrepareOptions(cold_start_where="tags == a"))
    with pytest.raises(DataError, match="has no item table"):
        prepare_dataset(raw(ROWS), PrepareOptions(cold_start_where="year >= 2000"))


@pytest.mark.parametrize("condition", ["year", "year ~ 2000", ">= 2000", "year >=", "2000 <= year"])
def test_a_malformed_condition_is_an_option_error(condition):
    with pytest.raises(pydantic.ValidationError, match="COLUMN OP VALUE"):
        PrepareOptions(cold_start_where=condition)


def test_cli_condition_flag(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    pd.DataFrame(ROWS, columns=["user", "item", "ts"]).to_csv(source / "interactions.csv", index=False)
    ITEM_TABLE.to_csv(source / "items.csv", index=False)
    (source / "auxrec-source.json").write_text(json.dumps(
        {"name": "cold", "interactions": {"path": "interactions.csv", "user": "user", "item": "item", "timestamp": "ts"},
         "items": {"path": "items.csv", "item": "item", "numeric": ["year"], "categorical": ["section"]}}))
    runner = CliRunner()
    result = runner.invoke(app, ["prepare", "generic", "--source", str(source), "--out", str(tmp_path / "out"),
                                 "--cold-start-where", "year >= 2000"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "cold start: 2 items with year >= 2000 are cold" in " ".join(result.output.split())
    for flags, message in ((["--cold-start-where", "year >= soon"], "must be a number"),
                           (["--cold-start-where", "year"], "--cold-start-where"),
                           (["--cold-start-where", "year >= 2000", "--cold-start-fraction", "0.2"], "not both")):
        result = runner.invoke(app, ["prepare", "generic", "--source", str(source), "--out", str(tmp_path / "bad"),
                                     *flags], catch_exceptions=False)
        assert result.exit_code == USER_ERROR_EXIT_CODE and "Traceback" not in result.output, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
        assert not (tmp_path / "bad").exists()
