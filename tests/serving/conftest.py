"""Shared by the serving tests: tiny trained runs, built once per test session.

``trained_runs`` is ``{"sasrec_plus": RUN, "poprec": RUN, "prepared": PREPARED}``: a
synthetic dataset with text, images and tabular attributes (the ``tiny`` preset with
16-pixel images), a SASRec run reading all three modalities through the basic encoders,
and a PopRec run. Training takes a few seconds on 2 cores.
"""

from __future__ import annotations

from pathlib import Path

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
    train_run("sasrec", prepared, sasrec_plus, seed=0, model_layers=[("test", {"max_length": 20})],
              training_layers=[("test", TRAINING)], protocols=("full",), aux=("text", "image", "tabular"))
    train_run("poprec", prepared, poprec, seed=0, protocols=("full",),
              training_layers=[("test", {"validation_protocol": "full"})])
    return {"sasrec_plus": sasrec_plus, "poprec": poprec, "prepared": prepared}
