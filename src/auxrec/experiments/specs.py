"""Declarative reproduction specs: which data, which models, which seeds, which settings.

A spec is a TOML file (``configs/<dataset>.toml``), validated here by pydantic so a typo
is a one-line error, not a silently ignored key. The *experiments* (which models form
Table 1, the 11 ablation variants of Table 3, the pairs of Table 2) are the paper's and
live in code (`auxrec.experiments.reproduce`); a spec only says how to run them on one
dataset: where the data comes from, the hyperparameters per model, how many seeds each
table gets, the protocols, and the shared tuning grid.

Relative paths in a spec are relative to the spec file's folder.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from auxrec.config import first_validation_error, resolve_config
from auxrec.exceptions import ConfigError
from auxrec.models import lookup
from auxrec.training.config import TrainingConfig

SPEC_FOLDER_NAME = "configs"
MODALITIES = ("text", "image", "tabular")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Strict):
    loader: str  # a name known to `auxrec prepare`
    source: str | None = None  # raw files; relative to the spec file
    options: dict[str, Any] = Field(default_factory=dict)  # loader options (`--option`)
    k_core: int = 0
    min_rating: float | None = None
    synthetic_preset: str | None = None  # loader "synthetic": generate this preset when source is absent
    synthetic_overrides: dict[str, Any] = Field(default_factory=dict)  # fields of SyntheticConfig
    embed: list[Literal["text", "image", "tabular"]] = Field(default_factory=list)  # `auxrec embed` first
    text_encoder: str = "auto"
    image_encoder: str = "auto"
    tabular_encoder: str = "auto"  # the reproduction specs name "xgboost", the paper's


class ModelSpec(_Strict):
    model: dict[str, Any] = Field(default_factory=dict)  # model config values
    training: dict[str, Any] = Field(default_factory=dict)  # training config values


class SeedSpec(_Strict):
    table1: int = Field(3, ge=1)
    table2: int = Field(10, ge=2)
    table3: int = Field(1, ge=1)


class TuningSpec(_Strict):
    """One grid shared by every tuned model: equal search budgets by construction."""

    grid: dict[str, list[Any]] = Field(default_factory=dict)  # training setting → values
    seed: int = 0
    epochs: int | None = None  # cap for tuning runs (None: the model's own)

    @property
    def trials(self) -> list[dict[str, Any]]:
        combinations: list[dict[str, Any]] = [{}]
        for key, values in self.grid.items():
            combinations = [{**c, key: v} for c in combinations for v in values]
        return combinations if self.grid else []


class FigureSpec(_Strict):
    case_study_users: int = Field(2, ge=1)
    case_study_recent: int = Field(6, ge=1, le=12)
    attention_clusters: int = Field(4, ge=2)
    attention_set_size: int = Field(100, ge=1)


class ReproductionSpec(_Strict):
    name: str  # the dataset's name in reports
    description: str = ""
    data: DataSpec
    protocols: list[Literal["sampled", "popularity", "full", "full-with-history"]] = ["sampled", "full"]
    seeds: SeedSpec = SeedSpec()
    training: dict[str, Any] = Field(default_factory=dict)  # defaults for every neural model
    models: dict[str, ModelSpec] = Field(default_factory=dict)  # by registry name
    tuning: TuningSpec = TuningSpec()
    figures: FigureSpec = FigureSpec()
    path: Path | None = None  # where the spec was read from (set by `load_spec`)

    def source_path(self) -> Path | None:
        if self.data.source is None:
            return None
        source = Path(self.data.source).expanduser()
        if not source.is_absolute() and self.path is not None:
            source = self.path.parent / source
        return source.resolve()


def spec_search_path() -> list[Path]:
    """Where ``--dataset NAME`` looks for ``NAME.toml``: ./configs, then the checkout's configs/."""
    checkout = Path(__file__).resolve().parents[3] / SPEC_FOLDER_NAME
    return list(dict.fromkeys([Path.cwd() / SPEC_FOLDER_NAME, checkout]))


def available_specs() -> list[str]:
    return sorted({p.stem for folder in spec_search_path() if folder.is_dir() for p in folder.glob("*.toml")})


def find_spec(dataset: str) -> Path:
    for folder in spec_search_path():
        candidate = folder / f"{dataset}.toml"
        if candidate.is_file():
            return candidate
    known = ", ".join(available_specs()) or "none found"
    raise ConfigError(f"no reproduction spec for dataset {dataset!r} (looked for {dataset}.toml in "
                      f"{', '.join(map(str, spec_search_path()))}); known: {known}; or pass --spec FILE")


def load_spec(path: Path) -> ReproductionSpec:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"spec file {path} not found")
    try:
        content = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"spec {path} is not valid TOML: {error}") from None
    try:
        spec = ReproductionSpec.model_validate({**content, "path": path.resolve()})
    except pydantic.ValidationError as error:
        where, message = first_validation_error(error)
        raise ConfigError(f"spec {path}: {where}: {message}") from None
    check_settings(spec)
    return spec


def check_settings(spec: ReproductionSpec) -> None:
    """Every model name, setting and value of ``spec`` is one a run would accept.

    pydantic checks the spec's own structure; the model and training settings are free
    dicts there, so a misspelt ``[models.sasrc.model]`` or ``hiden_dim`` would otherwise be
    silently ignored and the model trained with defaults. Checked here with the same
    `resolve_config` a run uses, so ``--dry-run`` and rendering catch them too.
    """
    where = f"spec {spec.path}" if spec.path else f"spec {spec.name}"
    for name, model_spec in spec.models.items():
        try:
            _, config_class = lookup(name)
        except ConfigError as error:
            raise ConfigError(f"{where}: [models.{name}]: {error}") from None
        _check_layer(where, f"[models.{name}.model]", config_class, model_spec.model)
        _check_layer(where, f"[models.{name}.training]", TrainingConfig, {**spec.training, **model_spec.training})
    _check_layer(where, "[training]", TrainingConfig, spec.training)
    for trial in spec.tuning.trials:
        _check_layer(where, "[tuning] grid", TrainingConfig, {**spec.training, **trial})


def _check_layer(where: str, section: str, config_class: type[Any], values: dict[str, Any]) -> None:
    try:
        resolve_config(config_class, [(section, values)])
    except ConfigError as error:
        raise ConfigError(f"{where}: {section}: {error}") from None
