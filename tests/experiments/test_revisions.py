"""Runs trained before a fix that changed a model's numbers are retrained, not reused (issue 13)."""

from __future__ import annotations

import dataclasses

from auxrec.experiments.plan import Variant
from auxrec.experiments.run_folder import RunSettings, current_revisions, recorded_revisions
from auxrec.models.bert4rec import BERT4RecConfig
from auxrec.models.bpr import BPRConfig
from auxrec.models.sasrec import SASRecConfig
from auxrec.training.config import TrainingConfig


def saved_config(model: str, model_config: object, features: dict | None = None, revisions: dict | None = None
                 ) -> dict:
    config = {"model": model, "seed": 0, "model_config": dataclasses.asdict(model_config),
              "training": dataclasses.asdict(TrainingConfig()), "item_features": features or {}}
    if revisions is not None:
        config["revisions"] = revisions
    return config


def same_settings(saved: dict, variant: Variant, model_config: dict, training: dict, epochs_trained: int) -> bool:
    """Whether the saved run is ``variant``'s run (seed 0) with these settings."""
    wanted = RunSettings(variant.model, 0, model_config, training, variant.features)
    return wanted.matches(saved, epochs_trained)


def test_runs_from_before_revisions_were_recorded_count_as_revision_one() -> None:
    assert recorded_revisions(saved_config("bpr", BPRConfig())) == {"model": 1}
    assert recorded_revisions(saved_config("sasrec", SASRecConfig(), {"text": {}})) == {"model": 1, "fusion": 1}


def test_old_sasrec_runs_are_retrained_but_unchanged_models_are_reused() -> None:
    training = dataclasses.asdict(TrainingConfig())
    for model, config, reused in [("bpr", BPRConfig(), True), ("bert4rec", BERT4RecConfig(), True),
                                  ("sasrec", SASRecConfig(), False)]:  # SASRec's padding-position fix
        old = saved_config(model, config)
        assert same_settings(old, Variant(model, model), dataclasses.asdict(config), training, 5) is reused, model


def test_old_sum_fusion_runs_are_retrained_concat_ones_reused() -> None:
    training = dataclasses.asdict(TrainingConfig())
    for fusion, reused in [("concat", True), ("sum", False)]:  # "sum" became the paper's summation
        config = BERT4RecConfig(aux_fusion=fusion)
        old = saved_config("bert4rec", config, {"text": {}})
        variant = Variant("BERT4Rec+", "bert4rec", aux=("text",), fusion=fusion)
        assert same_settings(old, variant, dataclasses.asdict(config), training, 5) is reused, fusion


def test_a_run_saved_now_is_reused() -> None:
    config = SASRecConfig(aux_fusion="sum")
    revisions = current_revisions("sasrec", dataclasses.asdict(config), True)
    assert revisions == {"model": 2, "fusion": 2}
    saved = saved_config("sasrec", config, {"text": {}}, revisions)
    variant = Variant("SASRec+", "sasrec", aux=("text",), fusion="sum")
    assert same_settings(saved, variant, dataclasses.asdict(config), dataclasses.asdict(TrainingConfig()), 5)


def test_a_setting_added_later_keeps_older_runs_reusable_at_its_default() -> None:
    training = dataclasses.asdict(TrainingConfig())
    config = BERT4RecConfig()
    old = saved_config("bert4rec", config)
    removed = sorted(old["model_config"])[-1]  # as if this setting had not existed when the run was saved
    del old["model_config"][removed]
    del old["training"]["validation_protocol"]
    assert same_settings(old, Variant("BERT4Rec", "bert4rec"), dataclasses.asdict(config), training, 5)
    other = dataclasses.asdict(config) | {"dropout": 0.5}
    assert not same_settings(old, Variant("BERT4Rec", "bert4rec"), other, training, 5)
