import json

import numpy as np
import pandas as pd
import pytest

from auxrec.data.dataset import PreparedDataset
from auxrec.data.ids import PADDING_ID
from auxrec.data.prepare import (
    PrepareOptions,
    drop_exact_duplicates,
    k_core_filter,
    leave_one_out_split,
    prepare_dataset,
    write_prepared,
)
from auxrec.data.schema import RawDataset
from auxrec.exceptions import DataError


def test_leave_one_out_labels_last_two_and_keeps_short_users_train_only():
    users = np.array([1, 1, 1, 1, 2, 2, 3, 3, 3])
    assert leave_one_out_split(users).tolist() == [0, 0, 1, 2, 0, 0, 0, 1, 2]


def test_k_core_is_iterative():
    frame = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": [1, 2, 1, 2, 3], "timestamp": [0] * 5})
    kept = k_core_filter(frame, 2)
    assert sorted(kept["user"].unique()) == [1, 2] and sorted(kept["item"].unique()) == [1, 2]


def test_exact_duplicates_only():
    frame = pd.DataFrame({"user": [1, 1, 1], "item": [5, 5, 5], "timestamp": [1, 1, 2]})
    assert len(drop_exact_duplicates(frame)) == 2


def test_prepare_remaps_splits_and_records_counts(tiny_raw, tmp_path):
    prepared = prepare_dataset(tiny_raw)
    manifest = prepared["manifest"]
    table = prepared["tables"]["interactions"]
    assert manifest["n_users"] == tiny_raw.interactions["user"].nunique()
    assert table["user"].min() == 1 and table["item"].min() == 1
    assert PADDING_ID not in set(table["item"])
    assert manifest["counts"]["users_train_only"] == 2  # users u1, u2 have < 3 interactions
    # each evaluated user has exactly one valid and one test row, and they are the latest two
    for _, rows in table.groupby("user"):
        if len(rows) >= 3:
            assert rows["split"].tolist()[-2:] == ["valid", "test"]
            assert rows["timestamp"].is_monotonic_increasing


def test_ties_keep_source_order():
    interactions = pd.DataFrame(
        {"user": [7, 7, 7, 7], "item": [10, 20, 30, 40], "timestamp": [5, 9, 9, 9]}
    )
    prepared = prepare_dataset(RawDataset("ties", interactions))
    table = prepared["tables"]["interactions"]
    items = prepared["tables"]["items"].set_index("item")["original_id"]
    order = [items[i] for i in table["item"]]
    assert order == ["10", "20", "30", "40"]
    assert table["split"].tolist() == ["train", "train", "valid", "test"]


def test_same_input_same_files_and_fingerprint(tiny_raw, raw_factory, tmp_path):
    first = write_prepared(prepare_dataset(tiny_raw), tmp_path / "a")
    second = write_prepared(prepare_dataset(raw_factory()), tmp_path / "b")
    for name in ("interactions.parquet", "items.parquet", "users.parquet", "manifest.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    other = prepare_dataset(raw_factory(seed=1))["manifest"]["fingerprint"]
    assert other != json.loads((first / "manifest.json").read_text())["fingerprint"]
    options_changed = prepare_dataset(tiny_raw, PrepareOptions(k_core=2))["manifest"]["fingerprint"]
    assert options_changed != json.loads((first / "manifest.json").read_text())["fingerprint"]


def test_items_without_metadata_are_kept_and_flagged(tiny_raw):
    tiny_raw.items = tiny_raw.items.iloc[:-5]
    items = prepare_dataset(tiny_raw)["tables"]["items"]
    assert (~items["has_metadata"]).sum() >= 1
    assert items["item"].tolist() == list(range(1, len(items) + 1))


def test_empty_after_filtering_is_a_clear_error(tiny_raw):
    with pytest.raises(DataError, match="no interactions are left"):
        prepare_dataset(tiny_raw, PrepareOptions(k_core=1000))


def test_write_refuses_non_empty_folder_and_leaves_no_partial(tiny_raw, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "something").write_text("x")
    with pytest.raises(DataError, match="not empty"):
        write_prepared(prepare_dataset(tiny_raw), out)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_loaded_dataset_views(tiny_prepared):
    dataset = tiny_prepared
    users, targets = dataset.targets("test")
    valid_users, valid_targets = dataset.targets("valid")
    assert np.array_equal(users, valid_users)
    history = dataset.history("test")
    for user, valid_item in zip(valid_users[:5], valid_targets[:5]):
        assert history.of(int(user))[-1] == valid_item  # the test history ends with the valid item
        assert len(dataset.train_sequences.of(int(user))) == len(history.of(int(user))) - 1
    padded = history.padded(users[:3], 4)
    assert padded.shape == (3, 4)
    assert padded[0, -1] == history.of(int(users[0]))[-1]
    assert dataset.train_item_counts[PADDING_ID] == 0


def test_load_rejects_a_folder_that_is_not_prepared(tmp_path):
    with pytest.raises(DataError, match="not a prepared dataset"):
        PreparedDataset.load(tmp_path)


def test_ml100k_split_matches_time_order_with_file_order_ties(shared_dataset, tmp_path):
    """On the real ML-100K, each user's test item is their latest interaction (file order breaks ties)."""
    from auxrec.data.loaders import load_dataset

    raw = load_dataset("ml-100k", shared_dataset("ml-100k"))
    prepared = prepare_dataset(raw)
    manifest = prepared["manifest"]
    assert (manifest["n_users"], manifest["n_items"], manifest["n_interactions"]) == (943, 1682, 100_000)
    table = prepared["tables"]["interactions"]
    users = prepared["tables"]["users"].set_index("user")["original_id"]
    items = prepared["tables"]["items"].set_index("item")["original_id"]
    # Expected: per original user, the row with the largest timestamp, the last such row in file order.
    source = raw.interactions.reset_index(drop=True)
    source["order"] = np.arange(len(source))
    expected = source.sort_values(["user", "timestamp", "order"]).groupby("user").tail(2)
    expected_test = expected.groupby("user").tail(1).set_index("user")["item"]
    expected_valid = expected.groupby("user").head(1).set_index("user")["item"]
    for split, truth in (("test", expected_test), ("valid", expected_valid)):
        rows = table[table["split"] == split]
        got = {int(users[u]): int(items[i]) for u, i in zip(rows["user"], rows["item"])}
        assert got == {int(u): int(i) for u, i in truth.items()}


def test_items_without_interactions_join_the_catalogue_only_when_asked(tmp_path):
    """They get ids after the interacted items, never enter a split, and can be drawn as negatives."""
    from auxrec.data.schema import ItemColumns
    from auxrec.evaluation.negatives import load_or_draw_negatives

    rng = np.random.default_rng(0)
    interactions = pd.DataFrame({"user": np.repeat(np.arange(30), 4), "item": rng.integers(100, 130, size=120),
                                 "timestamp": np.tile(np.arange(4), 30)})
    items = pd.DataFrame({"item": np.arange(90, 250), "title": [f"item {i}" for i in range(90, 250)]})
    raw = RawDataset("catalogue", interactions, items=items, item_columns=ItemColumns(text=("title",)))
    plain = prepare_dataset(raw)
    kept = prepare_dataset(raw, PrepareOptions(keep_items_without_interactions=True))
    interacted = plain["manifest"]["n_items"]
    assert kept["manifest"]["n_items"] == 160 and kept["manifest"]["counts"]["items_without_interactions_kept"] == 160 - interacted
    assert plain["manifest"]["counts"]["item_rows_without_interactions"] == 160 - interacted
    # The interactions are untouched: same ids, same splits; the new ids come after them, sorted.
    pd.testing.assert_frame_equal(plain["tables"]["interactions"], kept["tables"]["interactions"])
    table = kept["tables"]["items"]
    assert table["item"].tolist() == list(range(1, 161))
    original = table["original_id"].astype(int).to_numpy()
    assert set(original[:interacted]) == set(interactions["item"])
    assert (np.diff(original[interacted:]) > 0).all() and table["title"].notna().all()
    # Unset, the option leaves the manifest (and fingerprint) as it was before it existed.
    assert "keep_items_without_interactions" not in plain["manifest"]["options"]
    assert plain["manifest"]["fingerprint"] == prepare_dataset(raw, PrepareOptions())["manifest"]["fingerprint"]
    assert kept["manifest"]["fingerprint"] != plain["manifest"]["fingerprint"]
    dataset = PreparedDataset.load(write_prepared(kept, tmp_path / "kept"))
    assert dataset.n_items == 160 and (dataset.train_item_counts[interacted + 1:] == 0).all()
    negatives = load_or_draw_negatives(dataset, "test", "uniform", 0).negatives
    assert (negatives > interacted).mean() > 0.5  # most of the catalogue was never chosen
