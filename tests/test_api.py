"""`auxrec.api`: the Python front door sends each setting where it belongs and rejects unknown ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import auxrec
from auxrec.exceptions import ConfigError


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("api")
    auxrec.generate(root / "source", preset="tiny")
    manifest = auxrec.prepare("synthetic", source=root / "source", out=root / "prepared")
    assert manifest["n_users"] > 0
    return root / "prepared"


def test_train_splits_model_and_training_settings(prepared: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    metrics = auxrec.train("sasrec", data=prepared, out=run, aux="text", max_length=10, hidden_dim=16,
                           epochs=1, validation_protocol="full", protocols=("full",), progress=False)
    assert set(metrics["test"]) == {"full"}
    config = json.loads((run / "config.json").read_text())
    assert config["model_config"]["max_length"] == 10 and config["training"]["epochs"] == 1
    assert config["sources"]["model_config"]["max_length"] == "python"
    assert list(config["item_features"]) == ["text"]
    assert auxrec.load_run(run).recommend(users="1", k=3).items


def test_unknown_settings_and_models_are_errors(prepared: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown setting.*max_len\\b"):
        auxrec.train("sasrec", data=prepared, out=tmp_path / "x", max_len=10)
    with pytest.raises(ConfigError, match="unknown model"):
        auxrec.train("sasrc", data=prepared, out=tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
