"""docs/extending.md holds: a model, a loader and an encoder are each one new file plus one registry line.

The three files are in tests/extensions/; each test adds the one line, uses the extension
through the ordinary entry points (prepare, train, evaluate, recommend, embed), then
removes the line again.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import auxrec
from auxrec.cli import app
from auxrec.data.dataset import PreparedDataset
from auxrec.data.loaders import LOADERS
from auxrec.exceptions import ConfigError, DataError
from auxrec.features.embed import embed_dataset
from auxrec.features.registry import ENCODERS, MODALITIES, EncoderEntry, find_encoder, register_encoder
from auxrec.features.resolve import resolve_item_features
from auxrec.models import REGISTRY

EXTENSIONS = Path(__file__).parent / "extensions"
runner = CliRunner()


@pytest.fixture(autouse=True)
def extensions_importable() -> Iterator[None]:
    sys.path.insert(0, str(EXTENSIONS))
    yield
    sys.path.remove(str(EXTENSIONS))
    for name in ("toy_text_encoder", "markov_chain", "semicolon_loader"):
        sys.modules.pop(name, None)


@pytest.fixture
def toy_encoder() -> Iterator[None]:
    register_encoder(EncoderEntry("text", "toy", "toy_text_encoder:toy_text_embedder", ("numpy",), "a toy"))
    yield
    del ENCODERS[("text", "toy")]


def test_a_new_encoder_embeds_caches_and_feeds_training(tiny_prepared: PreparedDataset, toy_encoder: None) -> None:
    report = embed_dataset(tiny_prepared.path, "text", text_encoder="toy", log=lambda _: None)
    entry = report["modalities"]["text"]
    assert entry["encoder"].startswith("toy-text") and entry["dim"] == 3 and entry["cache"] == "miss"
    assert embed_dataset(tiny_prepared.path, "text", text_encoder="toy", log=lambda _: None
                         )["modalities"]["text"]["cache"] == "hit"
    features = resolve_item_features(tiny_prepared, ["text"])
    assert features is not None and features.descriptions["text"].startswith("cache:toy-text")
    assert features.dims() == {"text": 3}
    result = runner.invoke(app, ["embed", str(tiny_prepared.path), "--modalities", "text", "--text-encoder", "toy",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "toy" in runner.invoke(app, ["encoders"], env={"COLUMNS": "200"}).output


def test_built_in_encoders_are_registry_entries() -> None:
    assert {m for m, _ in ENCODERS} == set(MODALITIES)
    assert find_encoder("text", "minilm").name == "minilm"
    assert find_encoder("text", "/some/model/folder").name == "path"  # folders and hub names
    with pytest.raises(ConfigError, match="unknown tabular encoder"):
        find_encoder("tabular", "catboost")
    with pytest.raises(ConfigError, match="unknown modality"):
        register_encoder(EncoderEntry("audio", "x", "m:f", (), ""))


def test_a_new_model_trains_evaluates_and_recommends(tiny_prepared: PreparedDataset, tmp_path: Path) -> None:
    from markov_chain import MarkovChain, MarkovChainConfig

    REGISTRY["markov"] = (MarkovChain, MarkovChainConfig)  # the one registry line
    try:
        metrics = auxrec.train("markov", data=tiny_prepared.path, out=tmp_path / "markov", prior=0.1,
                               protocols=("full",))
        assert 0 < metrics["test"]["full"]["NDCG@10"] <= 1
        model = auxrec.load_run(tmp_path / "markov")
        last = model.history(model.user_ids[0])[-1]
        top = model.recommend(histories=[[last]], k=3, exclude_seen=False)[0].items
        assert len(top) == 3
        assert "markov" in runner.invoke(app, ["models"], env={"COLUMNS": "200"}).output
    finally:
        del REGISTRY["markov"]


def test_a_new_loader_prepares_data(tmp_path: Path) -> None:
    from semicolon_loader import load_semicolon_events

    rng = np.random.default_rng(0)
    lines = [f"u{u};i{rng.integers(20)};{1_600_000_000 + 60 * k}" for u in range(8) for k in range(6)]
    (tmp_path / "events.txt").write_text("\n".join(lines) + "\n")
    LOADERS["semicolon"] = load_semicolon_events  # the one registry line
    try:
        manifest = auxrec.prepare("semicolon", source=tmp_path, out=tmp_path / "prepared")
        assert manifest["n_users"] == 8 and manifest["n_test"] == 8
        with pytest.raises(DataError, match="does not exist"):
            auxrec.prepare("semicolon", source=tmp_path, out=tmp_path / "other", file_name="missing.txt")
    finally:
        del LOADERS["semicolon"]
