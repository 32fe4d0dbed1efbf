"""A run folder's layout, and what its saved files say: the only place that builds their paths.

Layout::

    RUN/
      config.json        resolved model/training config, seed, data, source of each value
      versions.json      Python, auxrec and library versions, platform; device and torch threads of each (re)start
      model/             the fitted model (reloadable without the config)
      training_log.json  one record per epoch (neural models); "finish": what was chosen after them
      metrics.json       {"valid": {PROTOCOL: {METRIC: value}}, "test": {...}}; written last, so it marks a finished run
      breakdown.json     metrics per user group (`auxrec.evaluation.breakdown`)
      ranks/             per-user ranks, one Parquet file per split and protocol

While it trains, a run lives in ``.RUN.partial`` beside its final place, with the trainer's
checkpoint (`auxrec.run_layout.CHECKPOINT_NAME`) after every epoch, and is renamed
when complete, so a killed run never looks finished.
The names themselves are in `auxrec.run_layout`, which `auxrec.io` reads too.

`RunSettings` says which saved runs are the run a reproduction asks for (the reuse check),
reading saved configs the way `with_later_defaults` and `recorded_revisions` explain.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auxrec.io import read_json
from auxrec.models import lookup
from auxrec.run_layout import (
    BREAKDOWN_NAME,
    CHECKPOINT_NAME,
    CONFIG_NAME,
    METRICS_NAME,
    MODEL_FOLDER,
    PARTIAL_SUFFIX,
    RANKS_FOLDER,
    TRAINING_LOG_NAME,
    VERSIONS_NAME,
    WEIGHTS_NAME,
)
from auxrec.training.config import TrainingConfig, same_training
from auxrec.training.trainer import load_checkpoint


@dataclass(frozen=True)
class RunFolder:
    """One run's folder (finished or not); ``staging`` is where it trains."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # -- where things are ------------------------------------------------------------
    @property
    def staging(self) -> RunFolder:
        """``.NAME.partial`` beside this folder: the run while it trains."""
        return RunFolder(self.path.with_name(f".{self.path.name}{PARTIAL_SUFFIX}"))

    @staticmethod
    def is_unfinished(path: Path) -> bool:
        """Whether ``path`` is, or lies in, work in progress: a staging folder or a file being written."""
        return any(part.endswith(PARTIAL_SUFFIX) for part in Path(path).parts)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def versions_path(self) -> Path:
        return self.path / VERSIONS_NAME

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FOLDER

    @property
    def weights_path(self) -> Path:
        """The fitted neural model's weights (a PopRec run has none)."""
        return self.model_path / WEIGHTS_NAME

    @property
    def training_log_path(self) -> Path:
        return self.path / TRAINING_LOG_NAME

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_NAME

    @property
    def breakdown_path(self) -> Path:
        return self.path / BREAKDOWN_NAME

    @property
    def ranks_path(self) -> Path:
        return self.path / RANKS_FOLDER

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_NAME

    # -- what it holds ---------------------------------------------------------------
    def is_finished(self) -> bool:
        """Whether a run finished here (its metrics are written last)."""
        return self.metrics_path.is_file()

    def has_checkpoint(self) -> bool:
        """Whether this (staging) folder holds an interrupted run that can resume."""
        return self.checkpoint_path.is_file() and self.config_path.is_file()

    def last_epoch(self) -> int:
        """The last finished epoch of the checkpoint here."""
        return int(load_checkpoint(self.checkpoint_path)["epoch"])

    def read_config(self) -> dict[str, Any]:
        return dict(read_json(self.config_path))

    def read_metrics(self) -> dict[str, Any]:
        """``metrics.json``, or nothing when the run has none yet."""
        return dict(read_json(self.metrics_path)) if self.metrics_path.is_file() else {}

    def read_breakdowns(self) -> dict[str, Any]:
        return dict(read_json(self.breakdown_path)) if self.breakdown_path.is_file() else {}

    def read_training_log(self) -> dict[str, Any]:
        """``training_log.json``, or nothing when the run has none (yet)."""
        return dict(read_json(self.training_log_path)) if self.training_log_path.is_file() else {}

    def read_versions(self) -> dict[str, Any] | None:
        return dict(read_json(self.versions_path)) if self.versions_path.is_file() else None

    def epochs_trained(self) -> int:
        return len(self.read_training_log().get("epochs", []))

    # -- the reuse check ---------------------------------------------------------------
    def holds(self, wanted: RunSettings) -> bool:
        """Whether a finished run of ``wanted`` is here, so it is reused rather than trained."""
        return self.is_finished() and wanted.matches(self.read_config(), self.epochs_trained())

    def interrupted_epoch(self, wanted: RunSettings) -> int | None:
        """The last saved epoch of an interrupted run of ``wanted`` in this folder's staging, if there is one."""
        staging = self.staging
        if staging.has_checkpoint() and wanted.matches(staging.read_config(), 0):
            return staging.last_epoch()
        return None

    # -- removing ----------------------------------------------------------------------
    def discard_staging(self) -> None:
        shutil.rmtree(self.staging.path, ignore_errors=True)

    def remove(self) -> None:
        """Delete the run, finished or not."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.discard_staging()


#: Where `auxrec train` writes when no --out is given: RUNS_ROOT/DATASET/MODEL[+MODALITIES]-seedS.
RUNS_ROOT = Path("runs")


def default_run_folder(data: Path, model: str, modalities: tuple[str, ...], seed: int, *, resume: bool = False,
                       overwrite: bool = False, root: Path = RUNS_ROOT) -> Path:
    """The run folder `auxrec train` picks without --out, named after the data, model, modalities and seed.

    Never an existing run's, unless asked: training the same thing twice writes ``NAME-2``,
    ``NAME-3``... (a second run is often the point, e.g. after changing the data). With
    ``resume`` it is the latest of those that exists, finished or interrupted, so a bare
    ``--resume`` continues what the same command started; with ``overwrite`` it is ``NAME``.
    """
    name = model + ("+" + "-".join(modalities) if modalities else "") + f"-seed{seed}"
    base = root / Path(data).resolve().name / name

    def taken(path: Path) -> bool:
        folder = RunFolder(path)
        return any(p.is_dir() and any(p.iterdir()) for p in (folder.path, folder.staging.path))

    candidates = (base if number == 1 else base.with_name(f"{name}-{number}") for number in range(1, 10_000))
    if overwrite:
        return base
    latest = base
    for candidate in candidates:
        if not taken(candidate):
            return latest if resume else candidate
        latest = candidate
    return latest

# -- what a saved config means ------------------------------------------------------------
def recorded_revisions(config: Mapping[str, Any]) -> dict[str, int]:
    """The model revisions a saved run was trained under; runs from before they were recorded are revision 1."""
    if "revisions" in config:
        return dict(config["revisions"])
    return {"model": 1, **({"fusion": 1} if config.get("item_features") else {})}


def current_revisions(model_name: str, model_config: Mapping[str, Any], with_features: bool) -> dict[str, int]:
    """The revisions a run of ``model_name`` with ``model_config`` (a dict, as saved) would record now."""
    model_class, config_class = lookup(model_name)
    return dict(model_class.revisions(config_class(**model_config), with_features))


def with_later_defaults(saved: Mapping[str, Any], config_class: type[Any]) -> dict[str, Any]:
    """``saved`` settings plus the defaults of settings added to ``config_class`` since they were saved.

    The rule for adding a setting: its default gives exactly the behaviour from before it
    existed (a change of behaviour bumps the model's revision instead), so a run saved
    before the setting existed is the run its default gives, and stays reusable.
    """
    # A default changed later is declared in the class's ``earlier_defaults``: the value a run
    # saved before the setting existed had (e.g. FusionSettings.aux_unseen_items).
    earlier = getattr(config_class, "earlier_defaults", {})
    defaults = {f.name: earlier.get(f.name, f.default) for f in dataclasses.fields(config_class)
                if f.default is not dataclasses.MISSING and f.name not in saved}
    return dict(json.loads(json.dumps({**saved, **defaults})))


def comparable_settings(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model settings, training settings) of a saved run config, completed with later defaults.

    A run without item features leaves out the settings that act only on them (a config
    class's ``feature_only_settings``, e.g. the ``aux_*`` fusion settings): a new fusion
    default does not make an id-only run another run.
    """
    _, config_class = lookup(config["model"])
    model_settings = with_later_defaults(config.get("model_config", {}), config_class)
    if not config.get("item_features"):
        for name in getattr(config_class, "feature_only_settings", ()):
            model_settings.pop(name, None)
    return model_settings, with_later_defaults(config.get("training", {}), TrainingConfig)


@dataclass(frozen=True)
class RunSettings:
    """The run a reproduction asks for; a saved run with these settings is that run."""

    model: str  # registry name
    seed: int
    model_config: Mapping[str, Any]  # resolved, as `dataclasses.asdict` gives it
    training: Mapping[str, Any]  # resolved `TrainingConfig`, as a dict
    features: tuple[str, ...]  # the item-feature modalities it trains with

    def matches(self, config: Mapping[str, Any], epochs_trained: int) -> bool:
        """Whether a saved run ``config`` (that trained ``epochs_trained`` epochs) is this run.

        Training settings compare as `same_training` says; a run of an earlier model revision
        (a fix changed its numbers since) is not this run and is retrained.
        """
        if config.get("seed") != self.seed or config.get("model") != self.model:
            return False
        wanted_model_config, wanted_training = comparable_settings(
            {"model": self.model, "model_config": self.model_config, "training": self.training,
             "item_features": {name: {} for name in self.features}})
        saved_model_config, saved_training = comparable_settings(config)
        return (saved_model_config == wanted_model_config
                and recorded_revisions(config) == current_revisions(self.model, wanted_model_config,
                                                                    bool(self.features))
                and same_training(saved_training, wanted_training, epochs_trained)
                and sorted(config.get("item_features", {})) == sorted(self.features))
