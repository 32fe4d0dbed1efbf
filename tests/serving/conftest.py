"""Shared by the serving tests: tiny trained runs, built once per test session.

``trained_runs`` is ``{"sasrec_plus": RUN, "poprec": RUN, "prepared": PREPARED}``: a
synthetic dataset with text, images and tabular attributes (the ``tiny`` preset with
16-pixel images), a SASRec run reading all three modalities through the basic encoders
(content on the input side only), and a PopRec run. Training takes a few seconds on 2 cores.

``run_with_added_item`` is a copy of the SASRec run to which `auxrec add-items` added one item.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

TRAINING = {"epochs": 2, "batch_size": 64, "eval_every": 2, "validation_protocol": "full"}


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from auxrec.data.loaders import load_dataset
    from auxrec.data.prepare import prepare_dataset, write_prepared
    from auxrec.data.synthetic import SyntheticConfig, write_synthetic
    from auxrec.experiments.runs import train_run

    root = tmp_path_factory.mktemp("serving-runs")
    source = write_synthetic(SyntheticConfig.preset("tiny", images=True, image_size=16), root / "source")
    prepared = write_prepared(prepare_dataset(load_dataset("synthetic", source)), root / "prepared")
    sasrec_plus, poprec = root / "runs" / "sasrec-plus", root / "runs" / "poprec"
    # Content on the input side only, pinned (the default became aux_on_output=true): the add-items tests
    # need a run that refuses new items without --neighbours.
    input_side = {"max_length": 20, "aux_on_output": False}
    train_run("sasrec", prepared, sasrec_plus, seed=0, model_layers=[("test", input_side)],
              training_layers=[("test", TRAINING)], protocols=("full",), aux=("text", "image", "tabular"))
    train_run("poprec", prepared, poprec, seed=0, protocols=("full",),
              training_layers=[("test", {"validation_protocol": "full"})])
    return {"sasrec_plus": sasrec_plus, "poprec": poprec, "prepared": prepared}


@pytest.fixture(scope="session")
def run_with_added_item(trained_runs: dict[str, Path],
                        tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A copy of the SASRec run plus one item added by `auxrec add-items --neighbours 1`.

    ``{"run": RUN, "user": U, "item": NEW, "twin": TWIN}``: NEW has exactly the content of
    TWIN, a trained item that U's recommendations rank near the top. The run has content on
    the input side only, so NEW borrows its nearest neighbour's id embedding (TWIN's: the same
    content) and ranks beside TWIN for U. A copy, so the other tests' run keeps its catalogue.
    """
    from typer.testing import CliRunner

    from auxrec.cli import app
    from auxrec.serving.trained_model import load_run

    root = tmp_path_factory.mktemp("added-item")
    run = root / "sasrec-plus"
    shutil.copytree(trained_runs["sasrec_plus"], run)
    model = load_run(run)
    user = str(model.user_ids[0])
    trained = model.dataset.train_item_counts  # only items with interactions lend their id embedding
    ranked = model.recommend(users=user, k=20).items
    twin = next(item for item in ranked if trained[model.item_ids.get_loc(item) + 1] > 0)
    items = model.dataset.items[model.dataset.items["original_id"].astype(str) == twin].drop(columns=["item"])
    items = items.rename(columns={"original_id": "item_id"}).assign(item_id=f"new-{twin}")
    items.to_parquet(root / "new-items.parquet", index=False)
    result = CliRunner().invoke(app, ["add-items", str(run), "--items", str(root / "new-items.parquet"),
                                      "--neighbours", "1"])
    assert result.exit_code == 0, result.output
    return {"run": run, "user": user, "item": f"new-{twin}", "twin": twin}
