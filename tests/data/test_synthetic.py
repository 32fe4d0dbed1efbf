"""Tests of the synthetic multimodal dataset generator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from auxrec.data.schema import ItemColumns, RawDataset
from auxrec.data.synthetic import (
    PRESETS,
    SyntheticConfig,
    generate,
    render_item_images,
    write_synthetic,
)
from auxrec.exceptions import AuxrecError, ConfigError, DataError

ITEM_TABLE_COLUMNS = [
    "item", "title", "description", "category", "colour", "style", "price", "weight", "tags", "image_path",
]


@pytest.fixture(scope="module")
def tiny_config() -> SyntheticConfig:
    return SyntheticConfig.preset("tiny")


@pytest.fixture(scope="module")
def tiny(tiny_config: SyntheticConfig) -> RawDataset:
    return generate(tiny_config)


@pytest.fixture(scope="module")
def medium() -> RawDataset:
    """Large enough for the statistical checks, still a fraction of a second."""
    return generate(SyntheticConfig(name="medium", n_users=400, n_items=300, n_categories=12,
                                    mean_sequence_length=25.0, images=False, seed=7))


@pytest.fixture(scope="module")
def image_config() -> SyntheticConfig:
    return SyntheticConfig(name="img", n_users=30, n_items=40, n_categories=8, mean_sequence_length=8.0,
                           images=True, image_size=16, seed=3, users_per_chunk=16)


# --- generate ----------------------------------------------------------------------------------


def test_generate_shapes_columns_and_item_columns(tiny: RawDataset, tiny_config: SyntheticConfig) -> None:
    tiny.validate()
    assert tiny.name == "synthetic-tiny"
    assert list(tiny.interactions.columns) == ["user", "item", "timestamp", "rating"]
    for column in ("user", "item", "timestamp"):
        assert tiny.interactions[column].dtype == np.int64
    assert tiny.interactions["rating"].dtype == np.float64
    assert tiny.interactions["rating"].between(1, 5).all()
    assert tiny.interactions["user"].nunique() == tiny_config.n_users
    assert tiny.items is not None and len(tiny.items) == tiny_config.n_items
    assert list(tiny.items.columns[: len(ITEM_TABLE_COLUMNS)]) == ITEM_TABLE_COLUMNS
    assert {"latent_category", "latent_colour", "latent_style"} <= set(tiny.items.columns)
    assert sorted(tiny.items["item"]) == list(range(1, tiny_config.n_items + 1))
    assert tiny.item_columns == ItemColumns(
        text=("title", "description"), categorical=("category", "colour", "style"),
        numeric=("price", "weight"), multi_label=("tags",), image="image_path",
    )
    assert tiny.items["image_path"].isna().all()
    for tags in tiny.items["tags"]:
        assert isinstance(tags, list) and all(isinstance(t, str) for t in tags)
    assert tiny.source["format"] == "synthetic"
    assert tiny.source["config"]["n_users"] == tiny_config.n_users
    assert tiny.users is not None and list(tiny.users["user"]) == list(range(1, tiny_config.n_users + 1))


def test_generate_without_ratings() -> None:
    data = generate(SyntheticConfig.preset("tiny", ratings=False))
    assert "rating" not in data.interactions.columns


def test_generate_is_deterministic(tiny: RawDataset, tiny_config: SyntheticConfig) -> None:
    again = generate(tiny_config)
    pd.testing.assert_frame_equal(tiny.interactions, again.interactions)
    assert tiny.items is not None and again.items is not None
    pd.testing.assert_frame_equal(tiny.items, again.items)
    other = generate(SyntheticConfig.preset("tiny", seed=1))
    assert not tiny.interactions.equals(other.interactions)
    assert other.items is not None
    assert not tiny.items["title"].equals(other.items["title"])


def test_sequences_are_long_enough_and_ordered(medium: RawDataset) -> None:
    config = SyntheticConfig(**medium.source["config"])
    interactions = medium.interactions
    lengths = interactions.groupby("user").size()
    assert lengths.min() >= config.min_sequence_length
    assert lengths.max() <= config.max_sequence_length
    assert interactions["user"].is_monotonic_increasing
    same_user = interactions["user"].to_numpy()[1:] == interactions["user"].to_numpy()[:-1]
    steps = np.diff(interactions["timestamp"].to_numpy())[same_user]
    assert (steps >= 0).all()
    assert (steps == 0).mean() < 0.05  # ties are allowed but rare
    assert medium.items is not None
    assert set(interactions["item"]) <= set(medium.items["item"])


def test_long_tail_of_items(medium: RawDataset) -> None:
    counts = medium.interactions["item"].value_counts()
    assert counts.max() >= 10 * counts.median()  # a few popular items ...
    assert (counts <= counts.median()).mean() >= 0.5  # ... and many rarely seen ones


# --- attributes drive the sequences --------------------------------------------------------------


def _next_category_accuracy(data: RawDataset, column: str) -> tuple[float, float]:
    """Accuracy of "most frequent next category given the current one" and its marginal baseline."""
    assert data.items is not None
    category = data.interactions["item"].map(data.items.set_index("item")[column]).to_numpy()
    users = data.interactions["user"].to_numpy()
    same_user = users[1:] == users[:-1]
    pairs = pd.DataFrame({"current": category[:-1][same_user], "next": category[1:][same_user]}).dropna()
    best = pairs.groupby("current")["next"].agg(lambda s: s.value_counts().iloc[0]).sum()
    marginal = pairs["next"].value_counts(normalize=True).iloc[0]
    return float(best / len(pairs)), float(marginal)


def test_latent_category_predicts_the_next_category(medium: RawDataset) -> None:
    accuracy, baseline = _next_category_accuracy(medium, "latent_category")
    assert accuracy >= 2 * baseline, (accuracy, baseline)


def test_observed_features_reveal_the_latent_attributes(medium: RawDataset) -> None:
    items = medium.items
    assert items is not None
    config = SyntheticConfig(**medium.source["config"])
    for observed, latent in (("category", "latent_category"), ("colour", "latent_colour"),
                             ("style", "latent_style")):
        agree = (items[observed] == items[latent]).mean()
        assert 0.75 <= agree < 1.0, (observed, agree)  # informative, but not a perfect id
        assert items[observed].isna().mean() <= 2 * config.missing_rate + 0.05
    # The observable category column alone keeps most of the predictive signal.
    accuracy, baseline = _next_category_accuracy(medium, "category")
    assert accuracy >= 1.5 * baseline, (accuracy, baseline)
    # Titles name the category in most items.
    nouns = {"jacket": ("jacket", "coat", "parka")}
    jackets = items[items["latent_category"] == "jacket"]
    mentions = jackets["title"].str.lower().apply(lambda t: any(n in t for n in nouns["jacket"]))
    assert mentions.mean() >= 0.75


def test_ratings_follow_the_users_favourite_colour(medium: RawDataset) -> None:
    assert medium.items is not None and medium.users is not None
    colour = medium.interactions["item"].map(medium.items.set_index("item")["latent_colour"])
    favourite = medium.interactions["user"].map(medium.users.set_index("user")["favourite_colour"])
    match = (colour == favourite).to_numpy()
    ratings = medium.interactions["rating"].to_numpy()
    assert ratings[match].mean() > ratings[~match].mean() + 0.5


# --- presets and validation -----------------------------------------------------------------------


def test_presets_exist_with_expected_sizes() -> None:
    assert set(PRESETS) == {"tiny", "small", "ml20m", "catalog1m"}
    small = SyntheticConfig.preset("small")
    assert 1_000 <= small.n_users <= 2_000 and 1_000 <= small.n_items <= 2_000 and small.images
    ml20m = SyntheticConfig.preset("ml20m")
    assert ml20m.n_users == 138_493 and ml20m.n_items == 26_744 and not ml20m.images
    assert 19e6 <= ml20m.n_users * ml20m.mean_sequence_length <= 21e6
    assert SyntheticConfig.preset("tiny", seed=5).seed == 5


def test_catalog1m_preset_is_a_shop_with_a_million_items() -> None:
    """benchmarks/scale.py's 1M-item preset: validated here, never generated in a test (~40 s)."""
    config = SyntheticConfig.preset("catalog1m")
    assert config.dataset_name == "synthetic-catalog1m" and not config.images
    # 2^20 items, of which ~1.02M occur in some interaction (`prepare` keeps only those).
    assert config.n_items == 2**20
    assert config.min_sequence_length == 5 and 15 <= config.mean_sequence_length <= 25
    assert 10e6 <= config.n_users * config.mean_sequence_length <= 14e6
    assert config.zipf_exponent < PRESETS["ml20m"].zipf_exponent  # flatter tail: most items occur
    assert SyntheticConfig.preset("catalog1m", n_users=1_000).n_users == 1_000


def test_unknown_preset_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="tiny, small, ml20m"):
        SyntheticConfig.preset("huge")
    with pytest.raises(ConfigError, match="n_userz"):
        SyntheticConfig.preset("tiny", n_userz=3)


@pytest.mark.parametrize("changes", [
    {"n_items": 3, "n_categories": 6},
    {"n_categories": 99},
    {"min_sequence_length": 0},
    {"mean_sequence_length": 2.0},
    {"missing_rate": 1.5},
    {"image_size": 2},
    {"seed": -1},
])
def test_invalid_configs_are_config_errors(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SyntheticConfig.preset("tiny", **changes)


# --- write_synthetic --------------------------------------------------------------------------------


def test_write_synthetic_generic_format(tmp_path: Path, image_config: SyntheticConfig) -> None:
    out = write_synthetic(image_config, tmp_path / "data")
    assert out == tmp_path / "data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary folder left behind
    spec = json.loads((out / "auxrec-source.json").read_text())
    assert spec == {
        "name": "synthetic-img",
        "interactions": {"path": "interactions.parquet", "user": "user_id", "item": "item_id",
                         "timestamp": "ts", "rating": "rating", "timestamp_unit": "s", "user_dtype": "int", "item_dtype": "int"},
        "items": {"path": "items.parquet", "item": "item_id", "text": ["title", "description"],
                  "categorical": ["category", "colour", "style"], "numeric": ["price", "weight"],
                  "multi_label": ["tags"], "image": "image", "image_root": "images"},
    }
    interactions = pq.read_table(out / "interactions.parquet")
    assert [(f.name, str(f.type)) for f in interactions.schema] == [
        ("user_id", "int64"), ("item_id", "int64"), ("ts", "int64"), ("rating", "double")]
    items = pq.read_table(out / "items.parquet")
    assert items.schema.names == ["item_id", "title", "description", "category", "colour", "style",
                                  "price", "weight", "tags", "image"]
    assert str(items.schema.field("tags").type) == "list<element: string>"
    assert not any(name.startswith("latent") for name in items.schema.names)

    # Same data as in memory, in several user chunks.
    memory = generate(image_config)
    written = interactions.to_pandas()
    np.testing.assert_array_equal(written["user_id"], memory.interactions["user"])
    np.testing.assert_array_equal(written["item_id"], memory.interactions["item"])
    np.testing.assert_array_equal(written["ts"], memory.interactions["timestamp"])
    assert memory.items is not None
    assert items.column("title").to_pylist() == memory.items["title"].tolist()
    categories = items.column("category").to_pylist()
    assert [c is None for c in categories] == memory.items["category"].isna().tolist()

    # Images: one readable PNG of the configured size per item, the same pixels as rendered.
    names = items.column("image").to_pylist()
    assert names == [f"{i}.png" for i in items.column("item_id").to_pylist()]
    rendered = render_item_images(image_config)
    for item_id, name in zip(items.column("item_id").to_pylist(), names):
        with Image.open(out / "images" / name) as image:
            assert image.format == "PNG" and image.mode == "RGB"
            assert image.size == (image_config.image_size, image_config.image_size)
            np.testing.assert_array_equal(np.asarray(image), rendered[item_id - 1])
    latent = pq.read_table(out / "latent" / "items.parquet").to_pandas()
    assert len(latent) == image_config.n_items


def test_write_synthetic_is_byte_identical(tmp_path: Path, image_config: SyntheticConfig) -> None:
    first = write_synthetic(image_config, tmp_path / "a")
    second = write_synthetic(image_config, tmp_path / "b")
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for relative in files:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative


def test_write_synthetic_without_images_or_ratings(tmp_path: Path) -> None:
    config = SyntheticConfig.preset("tiny", ratings=False, images=False)
    out = write_synthetic(config, tmp_path / "plain", progress=True)
    spec = json.loads((out / "auxrec-source.json").read_text())
    assert spec["interactions"]["rating"] is None
    assert "image" not in spec["items"] and "image_root" not in spec["items"]
    assert not (out / "images").exists()
    assert pq.read_schema(out / "interactions.parquet").names == ["user_id", "item_id", "ts"]
    assert "image" not in pq.read_schema(out / "items.parquet").names


def test_write_synthetic_refuses_to_clobber(tmp_path: Path, tiny_config: SyntheticConfig) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        write_synthetic(tiny_config, out)
    assert (out / "keep.txt").read_text() == "mine"
    # --overwrite replaces only what auxrec generated: the user's folder stays (issue 16, case 1).
    with pytest.raises(DataError, match="only replaces folders auxrec wrote"):
        write_synthetic(tiny_config, out, overwrite=True)
    assert (out / "keep.txt").read_text() == "mine"
    generated = tmp_path / "generated"
    write_synthetic(tiny_config, generated)
    (generated / "stale.txt").write_text("from the first generation")
    write_synthetic(tiny_config, generated, overwrite=True)
    assert not (generated / "stale.txt").exists() and (generated / "auxrec-source.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "generated"]
    assert issubclass(DataError, AuxrecError)


def test_generate_can_write_images(tmp_path: Path, image_config: SyntheticConfig) -> None:
    data = generate(image_config, image_dir=tmp_path / "img")
    assert data.items is not None
    paths = data.items["image_path"].tolist()
    assert all(Path(p).is_file() for p in paths)
    assert Path(paths[0]).name == f"{data.items['item'].iloc[0]}.png"
