"""The command line, driven through typer's CliRunner: happy paths and user mistakes."""

import json

import pytest
from typer.testing import CliRunner

from auxrec.cli import USER_ERROR_EXIT_CODE, app
from auxrec.data.prepare import prepare_dataset, write_prepared

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, *fragments):
    assert result.exit_code == USER_ERROR_EXIT_CODE, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in text, text


@pytest.fixture
def prepared_dir(tmp_path, tiny_raw):
    return write_prepared(prepare_dataset(tiny_raw), tmp_path / "prepared")


def test_train_and_evaluate_write_a_complete_run(prepared_dir, tmp_path):
    run = tmp_path / "run"
    result = invoke("train", "bpr", "--data", prepared_dir, "--out", run, "--seed", 3, "--epochs", 2,
                    "--no-progress", "--set", "embedding_dim=8")
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"valid", "test"}
    assert set(metrics["test"]) == {"sampled", "full"}
    assert list(metrics["test"]["sampled"]) == ["HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MAP"]
    config = json.loads((run / "config.json").read_text())
    assert config["seed"] == 3 and config["model_config"]["embedding_dim"] == 8
    assert config["sources"]["model_config"]["embedding_dim"] == "--set"
    assert config["sources"]["training"]["epochs"] == "command line"
    assert config["data"]["fingerprint"] == json.loads((prepared_dir / "manifest.json").read_text())["fingerprint"]
    assert "torch" in json.loads((run / "versions.json").read_text())
    assert (run / "ranks" / "test-sampled.parquet").is_file()

    result = invoke("evaluate", run, "--protocol", "popularity")
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["test"]) == {"sampled", "full", "popularity"}


def test_sequence_models_default_to_batches_of_128_sequences(prepared_dir, tmp_path):
    """A model's own training defaults sit between TrainingConfig's and the user's settings."""
    result = invoke("train", "sasrec", "--data", prepared_dir, "--out", tmp_path / "sasrec", "--epochs", 1,
                    "--no-progress", "--set", "max_length=8", "--validation-protocol", "full")
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "sasrec" / "config.json").read_text())
    assert config["training"]["batch_size"] == 128
    assert config["sources"]["training"]["batch_size"] == "model defaults"

    result = invoke("train", "sasrec", "--data", prepared_dir, "--out", tmp_path / "small", "--epochs", 1,
                    "--no-progress", "--set", "max_length=8", "--validation-protocol", "full", "--batch-size", 16)
    config = json.loads((tmp_path / "small" / "config.json").read_text())
    assert config["training"]["batch_size"] == 16 and config["sources"]["training"]["batch_size"] == "command line"

    result = invoke("train", "bpr", "--data", prepared_dir, "--out", tmp_path / "bpr", "--epochs", 1, "--no-progress")
    config = json.loads((tmp_path / "bpr" / "config.json").read_text())
    assert config["training"]["batch_size"] == 1024 and config["sources"]["training"]["batch_size"] == "default"

    shown = " ".join(invoke("models", "sasrec").output.split())
    assert "batch_size │ int │ 128" in shown


def test_same_seed_same_metrics(prepared_dir, tmp_path):
    for name in ("a", "b"):
        assert invoke("train", "bpr", "--data", prepared_dir, "--out", tmp_path / name, "--epochs", 2,
                      "--no-progress").exit_code == 0
    assert (tmp_path / "a" / "metrics.json").read_text() == (tmp_path / "b" / "metrics.json").read_text()


def test_unknown_model(prepared_dir, tmp_path):
    result = invoke("train", "nosuchmodel", "--data", prepared_dir, "--out", tmp_path / "r")
    assert_one_line_error(result, "unknown model 'nosuchmodel'", "bpr")


def test_unknown_setting(prepared_dir, tmp_path):
    result = invoke("train", "bpr", "--data", prepared_dir, "--out", tmp_path / "r", "--set", "colour=blue")
    assert_one_line_error(result, "unknown setting(s) colour")
    assert not (tmp_path / "r").exists()


def test_bad_setting_value(prepared_dir, tmp_path):
    result = invoke("train", "bpr", "--data", prepared_dir, "--out", tmp_path / "r", "--set", "embedding_dim=big")
    assert_one_line_error(result, "embedding_dim")


def test_missing_prepared_dataset(tmp_path):
    result = invoke("train", "poprec", "--data", tmp_path / "nothing", "--out", tmp_path / "r")
    assert_one_line_error(result, "not a prepared dataset")


def test_unknown_protocol(prepared_dir, tmp_path):
    result = invoke("train", "poprec", "--data", prepared_dir, "--out", tmp_path / "r", "--protocol", "magic")
    assert_one_line_error(result, "unknown protocol 'magic'")


def test_evaluate_missing_run(tmp_path):
    assert_one_line_error(invoke("evaluate", tmp_path / "none"), "not a finished auxrec run")


def test_unknown_dataset(tmp_path):
    result = invoke("prepare", "nosuchdata", "--source", tmp_path, "--out", tmp_path / "p")
    assert_one_line_error(result, "unknown dataset 'nosuchdata'")


def test_missing_source_folder(tmp_path):
    result = invoke("prepare", "ml-100k", "--source", tmp_path / "absent", "--out", tmp_path / "p")
    assert_one_line_error(result)
    assert not (tmp_path / "p").exists()


def test_prepare_generic_with_wrong_column(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "interactions.csv").write_text("uid,item,timestamp\n1,2,3\n")
    result = invoke("prepare", "generic", "--source", source, "--out", tmp_path / "p")
    assert_one_line_error(result, "user")
    assert not (tmp_path / "p").exists()


def test_prepare_generic_empty_file(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "interactions.csv").write_text("user,item,timestamp\n")
    result = invoke("prepare", "generic", "--source", source, "--out", tmp_path / "p")
    assert_one_line_error(result)


def test_prepare_generic_string_ids_declared_int(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "interactions.csv").write_text("user_id,item_id,ts\nabc,1,10\nabd,2,11\n")
    (source / "auxrec-source.json").write_text(json.dumps({
        "name": "mine",
        "interactions": {"path": "interactions.csv", "user": "user_id", "item": "item_id", "timestamp": "ts",
                         "user_dtype": "int", "item_dtype": "int"},
    }))
    result = invoke("prepare", "generic", "--source", source, "--out", tmp_path / "p")
    assert_one_line_error(result, "user_id", "int")


def test_prepare_generic_end_to_end(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    rows = ["user,item,timestamp"] + [f"{u},{(u * 3 + k) % 20 + 1},{k}" for u in range(1, 11) for k in range(6)]
    (source / "interactions.csv").write_text("\n".join(rows) + "\n")
    result = invoke("prepare", "generic", "--source", source, "--out", tmp_path / "p")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["n_users"] == 10 and manifest["n_interactions"] == 60
    assert "10 users" in " ".join(result.output.split())


def test_train_sasrec_plus_with_aux_and_feature_file(prepared_dir, tmp_path):
    import numpy as np
    import pandas as pd

    items = pd.read_parquet(prepared_dir / "items.parquet")
    vectors = np.random.default_rng(0).normal(size=(len(items), 5)).astype(np.float32)
    np.savez(tmp_path / "mine.npz", ids=items["original_id"].to_numpy().astype(str), vectors=vectors)
    run = tmp_path / "plus"
    result = invoke("train", "sasrec", "--data", prepared_dir, "--out", run, "--aux", "text,tabular",
                    "--features", f"image={tmp_path / 'mine.npz'}", "--fusion", "sum", "--max-len", 20,
                    "--epochs", 1, "--no-progress")
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert set(config["item_features"]) == {"text", "tabular", "image"}
    assert config["item_features"]["image"]["source"].startswith("file:")
    assert config["item_features"]["image"]["items_present"] == len(items)
    assert config["model_config"]["aux_fusion"] == "sum"
    assert invoke("evaluate", run, "--protocol", "full").exit_code == 0


def test_aux_on_a_model_without_features(prepared_dir, tmp_path):
    result = invoke("train", "bpr", "--data", prepared_dir, "--out", tmp_path / "r", "--aux", "text")
    assert_one_line_error(result, "does not use auxiliary item information")


def test_option_for_another_model(prepared_dir, tmp_path):
    result = invoke("train", "sasrec", "--data", prepared_dir, "--out", tmp_path / "r", "--mask-probability", "0.3")
    assert_one_line_error(result, "unknown setting(s) mask_probability")


def test_a_loss_the_model_does_not_have(prepared_dir, tmp_path):
    result = invoke("train", "bert4rec", "--data", prepared_dir, "--out", tmp_path / "r", "--loss", "bce")
    assert_one_line_error(result, "BERT4RecConfig.loss")


def test_missing_feature_file(prepared_dir, tmp_path):
    result = invoke("train", "sasrec", "--data", prepared_dir, "--out", tmp_path / "r",
                    "--features", f"image={tmp_path / 'none.npz'}")
    assert_one_line_error(result, "feature file", "not found")


def test_quickstart_end_to_end(tmp_path, monkeypatch):
    from auxrec.experiments import quickstart

    short = {"epochs": 1, "batch_size": 256, "eval_every": 1}
    monkeypatch.setattr(quickstart, "QUICKSTART_RUNS", [
        ("PopRec", "poprec", (), {}),
        ("SASRec", "sasrec", (), short),
        ("SASRec+", "sasrec", ("text", "image", "tabular"), short),
    ])
    result = invoke("quickstart", "--workdir", tmp_path / "qs")
    assert result.exit_code == 0, result.output
    assert "SASRec+" in result.output and "NDCG@10" in result.output
    assert (tmp_path / "qs" / "runs" / "sasrec-plus-seed0" / "metrics.json").is_file()
    assert f"auxrec serve {tmp_path / 'qs' / 'runs' / 'sasrec-plus-seed0'}" in " ".join(result.output.split())


def test_embed_then_train_uses_the_cache(prepared_dir, tmp_path):
    result = invoke("embed", prepared_dir, "--modalities", "tabular", "--no-progress")
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "items" in said and "cache miss" in said and "attributes" in said  # the default tabular encoder
    leaves = invoke("embed", prepared_dir, "--modalities", "tabular", "--tabular-encoder", "xgboost", "--no-progress")
    assert leaves.exit_code == 0, leaves.output
    assert "xgboost-leaves" in " ".join(leaves.output.split()) and "cache miss" in " ".join(leaves.output.split())
    again = invoke("embed", prepared_dir, "--modalities", "tabular", "--tabular-encoder", "xgboost", "--no-progress")
    assert "cache hit" in " ".join(again.output.split())
    run = tmp_path / "run"
    result = invoke("train", "sasrec", "--data", prepared_dir, "--out", run, "--aux", "tabular", "--max-len", 20,
                    "--epochs", 1, "--no-progress")
    assert result.exit_code == 0, result.output
    source = json.loads((run / "config.json").read_text())["item_features"]["tabular"]["source"]
    assert source.startswith("cache:xgboost-leaves"), source  # the encoder embedded last is the one selected
    assert_one_line_error(invoke("embed", prepared_dir, "--modalities", "tabular", "--tabular-encoder", "trees"),
                          "trees")


def test_embed_unknown_modality(prepared_dir):
    assert_one_line_error(invoke("embed", prepared_dir, "--modalities", "smell"), "smell")


def test_embed_refuses_an_encoder_choice_for_a_modality_it_does_not_embed(prepared_dir):
    result = invoke("embed", prepared_dir, "--modalities", "text", "--tabular-encoder", "xgboost")
    assert_one_line_error(result, "--tabular-encoder xgboost has no effect: tabular is not in --modalities")
    result = invoke("embed", prepared_dir, "--modalities", "tabular", "--text-template", "{title}")
    assert_one_line_error(result, "--text-template")


def test_train_says_what_became_of_the_items_without_training_interactions(tiny_raw, tmp_path):
    """With cold-start items, SASRec+'s default (aux_unseen_id_neighbours=auto) chooses on validation and says so."""
    from auxrec.data.prepare import PrepareOptions

    prepared = write_prepared(prepare_dataset(tiny_raw, PrepareOptions(cold_start_fraction=0.2)), tmp_path / "cold")
    run = tmp_path / "plus"
    result = invoke("train", "sasrec", "--data", prepared, "--out", run, "--aux", "text,tabular", "--max-len", 20,
                    "--epochs", 2, "--no-progress")
    assert result.exit_code == 0, result.output
    finish = json.loads((run / "training_log.json").read_text())["finish"]
    assert finish["items"] > 0 and set(finish["validation"]) == {"1", "3", "10"}
    said = " ".join(result.output.split())
    assert f"{finish['items']} items without training interactions: id rows" in said
    assert "K=1: " in said and "K=10: " in said


def test_prepare_and_train_without_out_write_named_folders(tmp_path, monkeypatch):
    """No --out: prepared/SOURCE for a generic dataset, runs/DATA/MODEL-seedS, a second run beside the first."""
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "shop"
    source.mkdir()
    rows = ["user,item,timestamp"] + [f"{u},{(u * 3 + k) % 20 + 1},{k}" for u in range(1, 11) for k in range(6)]
    (source / "interactions.csv").write_text("\n".join(rows) + "\n")
    result = invoke("prepare", "generic", "--source", source)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "prepared" / "shop" / "manifest.json").is_file()
    assert_one_line_error(invoke("prepare", "generic", "--source", source), "prepared/shop exists", "--overwrite")

    full = ("--protocol", "full", "--validation-protocol", "full")  # 20 items: too few for 100 negatives
    for expected in ("poprec-seed0", "poprec-seed0-2"):
        result = invoke("train", "poprec", "--data", "prepared/shop", "--no-progress", *full)
        assert result.exit_code == 0, result.output
        assert (tmp_path / "runs" / "shop" / expected / "metrics.json").is_file()
        assert f"runs/shop/{expected}" in " ".join(result.output.split())
    result = invoke("train", "poprec", "--data", "prepared/shop", "--no-progress", "--overwrite", *full)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "runs" / "shop").iterdir()) == ["poprec-seed0", "poprec-seed0-2"]
