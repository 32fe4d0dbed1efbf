"""`embed_dataset` end to end on a tiny dataset: report, bad inputs, cache reuse, `resolve`."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
torch = pytest.importorskip("torch")
pytest.importorskip("xgboost")

from auxrec.data.dataset import PreparedDataset
from auxrec.data.prepare import prepare_dataset, write_prepared
from auxrec.data.schema import ItemColumns
from auxrec.exceptions import ConfigError, DataError
from auxrec.features.basic import basic_item_features
from auxrec.features.embed import embed_dataset, format_report
from auxrec.features.resolve import resolve_item_features
from auxrec.features.tabular import TabularConfig

FAST = TabularConfig(dim=4, grid={"max_depth": [2], "n_estimators": [5]})


def tiny_models(folder: Path) -> tuple[str, str]:
    """Random tiny data2vec-text (byte-level BPE) and data2vec-vision folders."""
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator([f"item {i} g{i % 4}" for i in range(50)], vocab_size=280, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tokenizer = transformers.RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>",
                                                  sep_token="</s>", cls_token="<s>", unk_token="<unk>",
                                                  pad_token="<pad>", mask_token="<mask>")
    torch.manual_seed(0)
    text_config = transformers.Data2VecTextConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                                  num_attention_heads=2, intermediate_size=37, pad_token_id=1)
    tokenizer.save_pretrained(folder / "text")
    transformers.Data2VecTextModel(text_config).save_pretrained(folder / "text")
    vision_config = transformers.Data2VecVisionConfig(image_size=32, patch_size=8, hidden_size=24,
                                                      num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
    transformers.Data2VecVisionModel(vision_config).save_pretrained(folder / "vision")
    return str(folder / "text"), str(folder / "vision")


@pytest.fixture
def dataset_path(tmp_path: Path, raw_factory) -> Path:  # type: ignore[no-untyped-def]
    raw = raw_factory()
    items = raw.items
    images = tmp_path / "images"
    images.mkdir()
    for item in (1, 2, 3):
        pixels = np.random.default_rng(item).integers(0, 256, size=(40, 30, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"{item}.jpg", format="PNG" if item == 3 else "JPEG")
    (images / "4.jpg").write_bytes((images / "1.jpg").read_bytes()[:200])  # truncated
    (images / "5.jpg").write_text("not an image")
    items["image_path"] = [str(images / f"{i}.jpg") if i <= 6 else None for i in items["item"]]  # 6.jpg missing
    items["title"] = items["title"].where(items["item"] % 10 != 0, "")  # blank texts
    items.loc[items["item"] == 11, "title"] = None
    raw.item_columns = ItemColumns(text=("title",), categorical=("group",), image="image_path")
    return write_prepared(prepare_dataset(raw), tmp_path / "prepared")


def test_embed_reports_coverage_caches_and_feeds_resolve(dataset_path: Path, tmp_path: Path) -> None:
    text_model, vision_model = tiny_models(tmp_path / "models")
    dataset = PreparedDataset.load(dataset_path)
    items = dataset.items
    said: list[str] = []
    options = {"text_encoder": text_model, "image_encoder": vision_model, "text_template": "{title}",
               "tabular_encoder": "xgboost", "tabular_config": FAST, "progress": False}
    report = embed_dataset(dataset_path, "text,image,tabular", log=said.append, **options)
    text, image, tabular = (report["modalities"][m] for m in ("text", "image", "tabular"))
    has_text = (items["title"].fillna("") != "").sum()
    assert text["n_present"] == has_text < dataset.n_items
    assert text["coverage"] == f"{has_text:,} / {dataset.n_items:,} items have text"
    kept_images = items["original_id"].astype(int).isin([1, 2, 3]).sum()
    assert image["n_present"] == kept_images and image["coverage"].endswith("items have an image")
    assert tabular["dim"] == 4 and "holdout_mae" in tabular and tabular["encoder"].startswith("xgboost")
    assert {e["cache"] for e in (text, image, tabular)} == {"miss"}
    assert text["encoder"].startswith("data2vec-text") and image["encoder"].startswith("data2vec-vision")
    assert "items have an image" in format_report(report)

    again = embed_dataset(dataset_path, ["text", "image", "tabular"], log=said.append, **options)
    assert {e["cache"] for e in again["modalities"].values()} == {"hit"}

    features = resolve_item_features(dataset, ["text", "image", "tabular", "keywords"])
    assert features is not None
    assert features.descriptions["text"] == f"cache:{text['encoder']}"
    assert features.descriptions["keywords"] == "basic-keywords"
    assert features.dims()["text"] == 32 and features.dims()["image"] == 24
    assert features.coverage()["image"] == (kept_images, dataset.n_items)
    blank = items.loc[items["title"].fillna("") == "", "item"].to_numpy()
    assert not features.present["text"][blank].any() and not features.matrices["text"][blank].any()


def test_changed_parameters_miss_and_corruption_is_rebuilt(dataset_path: Path, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    text_model, _ = tiny_models(tmp_path / "models")
    quiet = {"progress": False, "log": lambda _: None}
    first = embed_dataset(dataset_path, "text", text_encoder=text_model, **quiet)["modalities"]["text"]
    cls = embed_dataset(dataset_path, "text", text_encoder=text_model, text_pooling="cls", **quiet)
    assert cls["modalities"]["text"]["cache"] == "miss" and cls["modalities"]["text"]["file"] != first["file"]
    templated = embed_dataset(dataset_path, "text", text_encoder=text_model, text_template="{title} in {group}",
                              **quiet)
    assert templated["modalities"]["text"]["cache"] == "miss"

    # resolve uses the entry selected last; a corrupted one is refused with a warning.
    npz = Path(templated["modalities"]["text"]["file"])
    npz.write_bytes(npz.read_bytes()[:-50] + b"\0" * 50)
    dataset = PreparedDataset.load(dataset_path)
    with caplog.at_level(logging.WARNING):
        features = resolve_item_features(dataset, ["text"])
    assert features is not None and features.descriptions["text"] == "basic-text"
    assert "corrupt" in caplog.text
    said: list[str] = []
    rebuilt = embed_dataset(dataset_path, "text", text_encoder=text_model, text_template="{title} in {group}",
                            progress=False, log=said.append)
    assert rebuilt["modalities"]["text"]["cache"] == "miss" and any("rejected" in line for line in said)
    assert resolve_item_features(dataset, ["text"]).descriptions["text"].startswith("cache:")  # type: ignore[union-attr]


def test_the_default_tabular_vectors_are_the_attributes_and_either_encoder_can_be_selected(
        dataset_path: Path) -> None:
    """`auto` = the one-hot attributes (what training uses without embedding); xgboost stays selectable."""
    dataset = PreparedDataset.load(dataset_path)
    quiet = {"progress": False, "log": lambda _: None}
    default = embed_dataset(dataset_path, "tabular", **quiet)["modalities"]["tabular"]
    assert default["encoder"].startswith("attributes") and default["cache"] == "miss"
    embedded = resolve_item_features(dataset, ["tabular"])
    assert embedded is not None and embedded.descriptions["tabular"] == f"cache:{default['encoder']}"
    basic = basic_item_features(dataset, ["tabular"])
    np.testing.assert_array_equal(embedded.matrices["tabular"], basic.matrices["tabular"])
    np.testing.assert_array_equal(embedded.present["tabular"][1:], basic.present["tabular"][1:])

    leaves = embed_dataset(dataset_path, "tabular", tabular_encoder="xgboost", tabular_config=FAST, **quiet)
    assert leaves["modalities"]["tabular"]["encoder"].startswith("xgboost")
    assert resolve_item_features(dataset, ["tabular"]).descriptions["tabular"].startswith("cache:xgboost")
    back = embed_dataset(dataset_path, "tabular", tabular_encoder="attributes", **quiet)["modalities"]["tabular"]
    assert back["cache"] == "hit" and back["file"] == default["file"]  # same vectors as `auto`: one cache entry
    assert resolve_item_features(dataset, ["tabular"]).descriptions["tabular"] == f"cache:{default['encoder']}"
    with pytest.raises(ConfigError, match="xgboost"):
        embed_dataset(dataset_path, "tabular", tabular_encoder="leaves", **quiet)


def test_items_without_attributes_are_refused_not_embedded_as_zeros(
        tmp_path: Path, raw_factory) -> None:  # type: ignore[no-untyped-def]
    raw = raw_factory()
    raw.item_columns = ItemColumns(text=("title",))
    prepared = write_prepared(prepare_dataset(raw), tmp_path / "prepared")
    with pytest.raises(DataError, match="no tabular item attributes"):
        embed_dataset(prepared, "tabular", progress=False, log=lambda _: None)


def test_unknown_modality_and_template_field_fail_clearly(dataset_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown modality"):
        embed_dataset(dataset_path, "text,audio", progress=False, log=lambda _: None)
    with pytest.raises(ConfigError, match="unknown item field"):
        embed_dataset(dataset_path, "text", text_encoder="minilm", text_template="{plot}", progress=False,
                      log=lambda _: None)


def test_image_digest_follows_content_not_location_or_mtime(tmp_path: Path) -> None:
    import os
    import shutil

    from auxrec.features.embed import image_files_digest

    first = tmp_path / "a"
    first.mkdir()
    for index, colour in enumerate(((255, 0, 0), (0, 255, 0))):
        Image.new("RGB", (4, 4), colour).save(first / f"{index}.png")
    moved = tmp_path / "b"
    shutil.copytree(first, moved)
    os.utime(moved / "0.png", ns=(1, 1))  # a re-mounted copy: same bytes, other mtime and place
    digest = image_files_digest([str(first / "0.png"), None, str(first / "1.png")])
    assert image_files_digest([str(moved / "0.png"), None, str(moved / "1.png")]) == digest
    Image.new("RGB", (4, 4), (0, 0, 255)).save(moved / "1.png")  # a replaced image
    assert image_files_digest([str(moved / "0.png"), None, str(moved / "1.png")]) != digest
    assert image_files_digest([str(first / "0.png"), str(first / "gone.png"), str(first / "1.png")]) != digest
