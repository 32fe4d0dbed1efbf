"""The Python front door: the same steps as the command line, as functions.

``import auxrec`` exposes these (lazily, so importing the package stays cheap)::

    auxrec.generate("data/synthetic", preset="small")
    auxrec.prepare("synthetic", source="data/synthetic", out="prepared/synthetic")
    metrics = auxrec.train("sasrec", data="prepared/synthetic", out="runs/sasrec-plus",
                           aux=("text", "image", "tabular"), epochs=5)
    model = auxrec.load_run("runs/sasrec-plus")   # `auxrec.serving.trained_model.TrainedModel`

Each function is what the CLI command of the same name calls, with the same checks: a
mistake raises an `auxrec.exceptions.AuxrecError` whose message says what to fix.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from auxrec.data.loaders import load_dataset
from auxrec.data.prepare import PrepareOptions, prepare_dataset, write_prepared
from auxrec.data.synthetic import SyntheticConfig, write_synthetic
from auxrec.exceptions import ConfigError
from auxrec.experiments.runs import DEFAULT_PROTOCOLS, train_run
from auxrec.models import REGISTRY, lookup
from auxrec.training.config import TrainingConfig


def generate(out: Path | str, preset: str = "small", seed: int = 0, overwrite: bool = False) -> Path:
    """Write a synthetic multimodal dataset (`auxrec generate`); prepare it as ``"synthetic"``."""
    config = dataclasses.replace(SyntheticConfig.preset(preset), seed=seed)
    return write_synthetic(config, Path(out), overwrite=overwrite)


def prepare(dataset: str, source: Path | str, out: Path | str, *, k_core: int = 0, min_rating: float | None = None,
            drop_duplicates: bool = True, cold_start_fraction: float | None = None,
            cold_start_where: str | None = None, keep_items_without_interactions: bool = False, overwrite: bool = False,
            **loader_options: Any) -> dict[str, Any]:
    """Load, clean, remap and split a dataset (`auxrec prepare`); returns the manifest written."""
    options = PrepareOptions(drop_duplicates=drop_duplicates, min_rating=min_rating, k_core=k_core,
                             cold_start_fraction=cold_start_fraction, cold_start_where=cold_start_where,
                             keep_items_without_interactions=keep_items_without_interactions)
    raw = load_dataset(dataset, source, **loader_options)
    prepared = prepare_dataset(raw, options)
    read = tuple(Path(raw.source.get("path", source)) / name for name in raw.source.get("files", []))
    write_prepared(prepared, Path(out), overwrite=overwrite, inputs=(source, *read))
    return dict(prepared["manifest"])


def train(model: str, data: Path | str, out: Path | str, *, seed: int = 0, aux: tuple[str, ...] | str = (),
          features: dict[str, Path | str] | None = None, protocols: tuple[str, ...] = DEFAULT_PROTOCOLS,
          overwrite: bool = False, resume: bool = False, **settings: Any) -> dict[str, Any]:
    """Train and evaluate ``model`` (`auxrec train`); returns ``metrics.json`` as a dict.

    ``settings`` are model settings (``max_length=50``, ``aux_on_output=True``, see
    ``auxrec models``) and training settings (``epochs=20``, ``learning_rate=1e-3``)
    by name; each goes where it belongs, and an unknown name is an error.
    """
    _, config_class = lookup(model)
    model_fields = {f.name for f in dataclasses.fields(config_class)}
    training_fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    unknown = sorted(set(settings) - model_fields - training_fields)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)} for {model}; model settings: "
                          f"{', '.join(sorted(model_fields)) or 'none'}; training settings: "
                          f"{', '.join(sorted(training_fields))}")
    model_values = {k: v for k, v in settings.items() if k in model_fields}
    training_values = {k: v for k, v in settings.items() if k in training_fields and k not in model_fields}
    modalities = tuple(m.strip() for m in aux.split(",") if m.strip()) if isinstance(aux, str) else tuple(aux)
    return train_run(model, Path(data), Path(out), seed,
                     [("python", model_values)], [("python", training_values)], tuple(protocols), overwrite,
                     aux=modalities, feature_files={k: Path(v) for k, v in (features or {}).items()},
                     resume=resume)


MODELS = tuple(REGISTRY)
