"""`auxrec quickstart`: synthetic data → prepare → train baselines → one table, in minutes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from auxrec.data.loaders import load_dataset
from auxrec.data.prepare import prepare_dataset, write_prepared
from auxrec.data.synthetic import SyntheticConfig, write_synthetic
from auxrec.experiments.runs import train_run

QUICKSTART_MODELS: dict[str, dict[str, object]] = {
    "poprec": {},
    "bpr": {"epochs": 40, "batch_size": 1024, "learning_rate": 5e-3, "patience": 3},
}


def run_quickstart(
    workdir: Path, seed: int = 0, preset: str = "small", log: Callable[[str], None] = print
) -> dict[str, dict[str, dict[str, float]]]:
    """Returns ``{protocol: {model: test metrics}}``; everything is written under ``workdir``."""
    workdir = Path(workdir)
    source = workdir / "source"
    prepared = workdir / "prepared"
    if not (source / "auxrec-source.json").is_file():
        log(f"generating synthetic data ({preset}) in {source}")
        write_synthetic(SyntheticConfig.preset(preset), source, progress=True)
    if not (prepared / "manifest.json").is_file():
        log(f"preparing {prepared}")
        write_prepared(prepare_dataset(load_dataset("synthetic", source)), prepared, overwrite=True)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for model, training in QUICKSTART_MODELS.items():
        log(f"training {model}")
        metrics = train_run(model, prepared, workdir / "runs" / f"{model}-seed{seed}", seed=seed,
                            training_layers=[("quickstart", training)], overwrite=True)
        for protocol, values in metrics["test"].items():
            results.setdefault(protocol, {})[model] = values
    return results
