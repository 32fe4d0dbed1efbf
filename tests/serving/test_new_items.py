"""`auxrec add-items`: items that arrive after training become recommendable through their content."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import auxrec
from auxrec.cli import app
from auxrec.exceptions import ConfigError, DataError
from auxrec.experiments.runs import load_run as load_run_parts
from auxrec.experiments.runs import train_run
from auxrec.serving.new_items import ADDED_FOLDER, add_items, remove_added_items

runner = CliRunner()
TRAINING = {"epochs": 2, "batch_size": 64, "eval_every": 2, "validation_protocol": "full", "progress": False}


@pytest.fixture(scope="module")
def output_side_run(trained_runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SASRec+ with content on the output side too (`aux_on_output`), the model that can rank new items."""
    run = tmp_path_factory.mktemp("output-side") / "sasrec-plus-output"
    train_run("sasrec", trained_runs["prepared"], run, seed=0, protocols=("full",),
              model_layers=[("test", {"max_length": 20, "aux_on_output": True})],
              training_layers=[("test", TRAINING)], aux=("text", "image", "tabular"))
    return run


def copies_of_catalogue_items(run: Path, folder: Path, rows: slice, prefix: str = "new-") -> tuple[Path, list[str]]:
    """A new-items Parquet file: existing items' content under new ids."""
    items = auxrec.load_run(run).dataset.items.iloc[rows].drop(columns=["item"])
    originals = items["original_id"].astype(str).tolist()
    items = items.rename(columns={"original_id": "item_id"})
    items["item_id"] = [prefix + i for i in originals]
    path = folder / f"{prefix}items.parquet"
    items.to_parquet(path, index=False)
    return path, originals


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_new_items_are_encoded_like_the_catalogue_and_ranked_by_content(output_side_run: Path,
                                                                         tmp_path: Path) -> None:
    before = tree_digest(output_side_run)
    path, originals = copies_of_catalogue_items(output_side_run, tmp_path, slice(0, 6))
    summary = add_items(output_side_run, path)
    assert summary.added == 6 and summary.coverage["text"] == 6
    model = auxrec.load_run(output_side_run)
    n = model.dataset.n_items
    assert model.n_items == n + 6 and list(model.item_ids[n:]) == [f"new-{i}" for i in originals]
    fusion = model.model.fusion
    for offset, original in enumerate(originals):
        new_id, old_id = n + 1 + offset, int(model.item_ids.get_loc(original)) + 1
        for name in fusion.names:  # the same content gives exactly the stored vector the model trained with
            stored = getattr(fusion, f"features_{name}")
            assert torch.allclose(stored[new_id], stored[old_id], atol=1e-6), name
        # no learnt id embedding: the candidate vector is the projected content alone
        assert torch.allclose(model.model.item_vectors()[new_id], fusion(torch.tensor([old_id]))[0], atol=1e-6)
    new_ids = list(model.item_ids[n:])
    user = model.user_ids[0]
    ranked = model.recommend(users=user, k=6, candidates=new_ids)
    assert sorted(ranked.items) == sorted(new_ids) and all(np.isfinite(ranked.scores))
    everything = model.recommend(users=user, k=model.n_items - len(model.history(user)))
    assert set(new_ids) <= set(everything.items)
    # a new item in a history is read through its content
    assert model.recommend(histories=[[new_ids[0]]], k=3)[0].unknown_items == []
    assert model.item(new_ids[0])["added_after_training"] is True
    # the trained run itself is untouched: evaluation still sees the original catalogue
    after = tree_digest(output_side_run)
    assert {k: v for k, v in after.items() if not k.startswith(ADDED_FOLDER)} == before
    assert load_run_parts(output_side_run)[1].n_items == n
    # more items accumulate; an id already in the catalogue is refused
    more, _ = copies_of_catalogue_items(output_side_run, tmp_path, slice(6, 8), prefix="more-")
    assert add_items(output_side_run, more).total_added == 8
    with pytest.raises(DataError, match="already in this run's catalogue"):
        add_items(output_side_run, more)
    assert auxrec.load_run(output_side_run).n_items == n + 8
    assert remove_added_items(output_side_run) == 8 and auxrec.load_run(output_side_run).n_items == n


def test_models_that_cannot_rank_new_items_say_so(trained_runs: dict[str, Path], tmp_path: Path) -> None:
    for run, reason in ((trained_runs["sasrec_plus"], "content on the input side only"),
                        (trained_runs["poprec"], "training interactions")):
        path, _ = copies_of_catalogue_items(run, tmp_path, slice(0, 2), prefix=f"{run.name}-")
        with pytest.raises(ConfigError, match=reason):
            add_items(run, path)
        assert not (run / ADDED_FOLDER).exists()


def test_borrowed_id_embeddings_are_the_weighted_mean_of_content_neighbours(trained_runs: dict[str, Path],
                                                                             tmp_path: Path) -> None:
    run = trained_runs["sasrec_plus"]  # content on the input side only: allowed when borrowing
    path, originals = copies_of_catalogue_items(run, tmp_path, slice(0, 3), prefix="borrow-")
    try:
        add_items(run, path, neighbours=1)
        model = auxrec.load_run(run)
        n = model.dataset.n_items
        table = model.model.item_embedding.weight
        for offset, original in enumerate(originals):
            twin = int(model.item_ids.get_loc(original)) + 1
            if model.dataset.train_item_counts[twin] > 0:  # identical content: the nearest is the twin itself
                assert torch.allclose(table[n + 1 + offset], table[twin])
        assert len(model.recommend(users=model.user_ids[0], k=3, candidates=list(model.item_ids[n:])).items) == 3
    finally:
        remove_added_items(run)


def test_a_new_item_reaches_the_users_whose_taste_its_content_matches(output_side_run: Path,
                                                                     tmp_path: Path) -> None:
    """The copy of a user's favourite item (content only, no id embedding) enters that user's top 10.

    Measured over every user, not cherry-picked (on this tiny run the copies rank 2nd to
    10th of 71; on the `small` preset, median 22nd of 2,076: docs/serving.md).
    """
    model = auxrec.load_run(output_side_run)
    users = list(model.user_ids)
    favourites = [model.recommend(users=u, k=1).items[0] for u in users]
    items = model.dataset.items.set_index("original_id").loc[sorted(set(favourites))].reset_index()
    items = items.drop(columns=["item"]).rename(columns={"original_id": "item_id"})
    items["item_id"] = "copy-" + items["item_id"]
    items.to_parquet(tmp_path / "copies.parquet", index=False)
    add_items(output_side_run, tmp_path / "copies.parquet")
    try:
        grown = auxrec.load_run(output_side_run)
        ranks = []
        for user, favourite in zip(users, favourites):
            ranked = grown.recommend(users=user, k=grown.n_items - len(grown.history(user))).items
            ranks.append(ranked.index(f"copy-{favourite}") + 1)
        ranks_ = np.array(ranks)
        assert np.median(ranks_) <= 10, sorted(ranks)
    finally:
        remove_added_items(output_side_run)


@pytest.mark.parametrize("case", ["no id column", "duplicate ids", "no content", "suffix", "missing"])
def test_bad_new_item_files_are_one_line_errors(output_side_run: Path, tmp_path: Path, case: str) -> None:
    path = tmp_path / "new.csv"
    text = {"no id column": "title\nA new skirt\n", "duplicate ids": "item_id,title\nx,A\nx,B\n",
            "no content": "item_id,colourway\nx,red\n", "suffix": "", "missing": ""}[case]
    if case == "suffix":
        path = tmp_path / "new.json"
    if case != "missing":
        path.write_text(text)
    result = runner.invoke(app, ["add-items", str(output_side_run), "--items", str(path)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)


def test_add_items_command_from_a_csv_with_relative_image_paths(output_side_run: Path, tmp_path: Path) -> None:
    model = auxrec.load_run(output_side_run)
    image_column = model.dataset.item_columns.image
    source_image = Path(model.dataset.items[image_column].dropna().iloc[0])
    (tmp_path / "pictures").mkdir()
    (tmp_path / "pictures" / "skirt.png").write_bytes(source_image.read_bytes())
    csv = tmp_path / "new.csv"
    pd.DataFrame({"item_id": ["csv-1", "csv-2"], "title": ["Linen summer skirt", "Wool winter coat"],
                  image_column: ["pictures/skirt.png", ""]}).to_csv(csv, index=False)
    result = runner.invoke(app, ["add-items", str(output_side_run), "--items", str(csv)])
    assert result.exit_code == 0, result.output
    assert "added 2 items" in result.output and "image 1/2" in result.output
    details = auxrec.load_run(output_side_run).item("csv-1")
    assert details[image_column] == str((tmp_path / "pictures" / "skirt.png").resolve())
    remove_added_items(output_side_run)


def test_runs_on_embedded_attributes_take_new_items_and_leaf_vectors_are_refused(
        trained_runs: dict[str, Path], tmp_path: Path) -> None:
    """`auxrec embed`'s default tabular vectors are the basic encoder's, so new items can be encoded like them;
    vectors no built-in encoder can compute for a new item (XGBoost leaves) are refused in one line."""
    import shutil

    from auxrec.features.embed import embed_dataset
    from auxrec.features.tabular import TabularConfig

    prepared = shutil.copytree(trained_runs["prepared"], tmp_path / "prepared")
    quiet = {"progress": False, "log": lambda _: None}
    embed_dataset(prepared, "tabular", **quiet)
    runs = {}
    for encoder in ("attributes", "xgboost"):
        embed_dataset(prepared, "tabular", tabular_encoder=encoder,
                      tabular_config=TabularConfig(dim=4, grid={"max_depth": [2], "n_estimators": [5]}), **quiet)
        runs[encoder] = tmp_path / f"run-{encoder}"
        train_run("sasrec", prepared, runs[encoder], seed=0, protocols=("full",),
                  model_layers=[("test", {"max_length": 20, "aux_on_output": True})],
                  training_layers=[("test", {**TRAINING, "epochs": 1})], aux=("text", "tabular"))
    config = auxrec.load_run(runs["attributes"]).config
    assert config["item_features"]["tabular"]["source"].startswith("cache:attributes (")
    new_items, _ = copies_of_catalogue_items(runs["attributes"], tmp_path, slice(0, 3))
    assert add_items(runs["attributes"], new_items).added == 3
    with pytest.raises(ConfigError, match="tabular from cache:xgboost-leaves"):
        add_items(runs["xgboost"], new_items)
