"""A run: one model trained on one prepared dataset with one seed, saved as a folder.

The folder's layout is `auxrec.experiments.run_folder.RunFolder`'s. This is the only
layer that seeds global RNGs (inside `seeded`, which restores them). A run is written to
its staging folder beside its final place and renamed when complete, so a killed run
never looks finished, and `train_run(..., resume=True)` continues it from its last
epoch checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pickle
import platform
import shutil
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from auxrec import __version__
from auxrec.config import resolve_config
from auxrec.data.dataset import PreparedDataset
from auxrec.evaluation.breakdown import breakdown_of_result, complete_from_ranks
from auxrec.evaluation.evaluator import NEGATIVE_STRATEGY, EvaluationResult, check_protocol, evaluate
from auxrec.evaluation.negatives import load_or_draw_negatives
from auxrec.exceptions import ConfigError, DamagedFile, ResumeMismatch, RunError
from auxrec.experiments.run_folder import RunFolder, comparable_settings, recorded_revisions
from auxrec.features.item_features import ItemFeatures
from auxrec.features.resolve import resolve_item_features
from auxrec.io import atomic_output, check_output_folder, mark_output
from auxrec.io import write_json_atomic as _write_json
from auxrec.models import lookup
from auxrec.training.config import DISPLAY_ONLY, TrainingConfig
from auxrec.training.distributed import join_process_group, training_device, wait_for_all
from auxrec.training.trainer import fit as fit_model
from auxrec.training.trainer import resolve_device

DEFAULT_PROTOCOLS = ("sampled", "full")
SPLITS = ("valid", "test")


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's global RNG for model initialisation, restoring it afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform(), "auxrec": __version__}
    for package in ("torch", "numpy", "pandas", "pyarrow", "scipy", "pydantic", "typer"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _versions_with_hardware(run: RunFolder, device: str, processes: int = 1) -> dict[str, Any]:
    """`package_versions` plus what trained the run: on CPU, numbers depend on the thread count.

    ``trained_with`` lists each (re)start of the run; a resumed run keeps the earlier entries.
    """
    resolved = resolve_device(device)
    entry = {"device": str(resolved), "torch_threads": torch.get_num_threads(),
             "device_name": (torch.cuda.get_device_name(resolved) if resolved.type == "cuda"
                             else platform.processor() or platform.machine())}
    if processes > 1:  # data-parallel (torchrun); absent for one process, as in runs from before
        entry["processes"] = processes
    earlier = (run.read_versions() or {}).get("trained_with", [])
    return {**package_versions(), "trained_with": earlier if earlier[-1:] == [entry] else [*earlier, entry]}


def _save_ranks(directory: Path, dataset: PreparedDataset, result: EvaluationResult) -> None:
    directory.mkdir(exist_ok=True)
    frame = pd.DataFrame({"user": result.users, "target": result.targets, "rank": result.ranks})
    with atomic_output(directory / f"{result.split}-{result.protocol}.parquet") as temporary:
        frame.to_parquet(temporary, index=False)


def build_model(
    model_name: str,
    model_config: Any,
    dataset: PreparedDataset,
    aux: tuple[str, ...] = (),
    feature_files: dict[str, Path] | None = None,
) -> tuple[Any, ItemFeatures | None]:
    """Construct a registered model, with the item features it needs or was asked for."""
    model_class, _ = lookup(model_name)
    feature_files = feature_files or {}
    required = model_class.required_features
    modalities = list(dict.fromkeys([*required, *aux, *feature_files]))
    if modalities and not model_class.uses_item_features:
        raise ConfigError(f"model {model_name!r} does not use auxiliary item information (--aux/--features)")
    features = resolve_item_features(dataset, modalities, feature_files)
    kwargs = {"item_features": features} if features is not None else {}
    return model_class(model_config, n_users=dataset.n_users, n_items=dataset.n_items, **kwargs), features


def _describe_features(features: ItemFeatures | None) -> dict[str, Any]:
    if features is None:
        return {}
    coverage = features.coverage()
    return {name: {"source": features.descriptions.get(name, ""), "dim": features.dims()[name],
                   "items_present": coverage[name][0], "items": coverage[name][1]} for name in features.names}


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """The parts of a run config that must match for a resume (display settings may differ)."""
    kept = {k: v for k, v in config.items() if k != "sources"}
    kept["revisions"] = recorded_revisions(config)
    kept["model_config"], training = comparable_settings(config)
    kept["training"] = {k: v for k, v in training.items() if k not in (*DISPLAY_ONLY, "epochs")}
    return kept


def model_training_defaults(model_name: str) -> dict[str, Any]:
    """The model's own defaults for training settings (``training_defaults``, optional in the contract)."""
    return dict(getattr(lookup(model_name)[0], "training_defaults", {}))


def resolve_training(model_name: str,
                     layers: list[tuple[str, dict[str, Any]]]) -> tuple[TrainingConfig, dict[str, str]]:
    """The training settings of a ``model_name`` run: `TrainingConfig`'s defaults, then the
    model's own ``training_defaults`` (recorded as "model defaults"), then ``layers``."""
    return resolve_config(TrainingConfig, [("model defaults", model_training_defaults(model_name)), *layers])


def train_run(
    model_name: str,
    data: Path,
    out: Path,
    seed: int = 0,
    model_layers: list[tuple[str, dict[str, Any]]] | None = None,
    training_layers: list[tuple[str, dict[str, Any]]] | None = None,
    protocols: tuple[str, ...] = DEFAULT_PROTOCOLS,
    overwrite: bool = False,
    aux: tuple[str, ...] = (),
    feature_files: dict[str, Path] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train ``model_name`` on the prepared dataset ``data`` and write the run folder ``out``.

    While training, the run lives in its staging folder (`RunFolder.staging`) beside ``out``
    (with a checkpoint after every epoch); ``resume=True`` continues an interrupted one with
    the same settings. Returns the metrics written to ``metrics.json``.
    """
    _, config_class = lookup(model_name)
    for protocol in protocols:
        check_protocol(protocol)
    model_config, model_sources = resolve_config(config_class, model_layers or [])
    training, training_sources = resolve_training(model_name, training_layers or [])
    out = Path(out)
    check_output_folder(out, "run", overwrite, inputs=(data, *(feature_files or {}).values()))
    run = RunFolder(out)
    dataset = PreparedDataset.load(data)
    if int(dataset.manifest.get("n_valid", 0)) == 0 or int(dataset.manifest.get("n_test", 0)) == 0:
        raise RunError(f"{data} has no validation or test targets (no user has the 3 or more interactions "
                       "leave-one-out needs), so a model trained on it could not be validated or evaluated; "
                       "prepare it again keeping more interactions per user")
    # Under torchrun every process trains; the main one alone writes (negatives, run folder).
    shard = join_process_group(training_device(resolve_device(training.device)))
    if shard.is_main:
        _draw_negatives_before_training(dataset, training.validation_protocol, protocols, seed)
    wait_for_all(shard)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = run.staging
    with seeded(seed):
        model, features = build_model(model_name, model_config, dataset, tuple(aux), feature_files)
    config = {
        "model": model_name,
        "model_config": dataclasses.asdict(model_config),
        "training": dataclasses.asdict(training),
        "seed": seed,
        "data": {"path": str(Path(data).resolve()), "name": dataset.name, "fingerprint": dataset.fingerprint,
                 "n_users": dataset.n_users, "n_items": dataset.n_items},
        "item_features": _describe_features(features),
        "revisions": lookup(model_name)[0].revisions(model_config, features is not None),
        "protocols": list(protocols),
        "sources": {"model_config": model_sources, "training": training_sources},
    }
    if resume and staging.config_path.is_file():
        if _comparable(staging.read_config()) != _comparable(json.loads(json.dumps(config))):
            raise ResumeMismatch(f"cannot resume {out}: the settings differ from the interrupted run's")
    elif shard.is_main:
        run.discard_staging()
        staging.path.mkdir()
    if shard.is_main:
        mark_output(staging.path, "run")
        _write_json(staging.config_path, config)
        _write_json(staging.versions_path, _versions_with_hardware(staging, training.device, shard.world_size))
    wait_for_all(shard)  # a resumed run's checkpoint is read by every process
    started = time.perf_counter()
    with seeded(seed):
        fit_model(model, dataset, training, seed, checkpoint_dir=staging.path, resume=resume)
    fit_seconds = time.perf_counter() - started
    results = _evaluate_all(model, dataset, protocols, seed, sharded=True)  # under torchrun, by every process
    if not shard.is_main:
        return {}
    model.save(staging.model_path)
    log = {"fit_seconds": round(fit_seconds, 3), "epochs": model.training_log if model.trainable else []}
    if getattr(model, "training_finish", None):
        log["finish"] = model.training_finish  # what was chosen after the epochs, e.g. on validation
    _write_json(staging.training_log_path, log)
    metrics = _write_evaluations(staging, dataset, results, {})
    staging.checkpoint_path.unlink(missing_ok=True)  # the run is complete; model/ holds the weights
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging.path, out)
    return metrics


def _draw_negatives_before_training(dataset: PreparedDataset, validation_protocol: str,
                                    protocols: tuple[str, ...], seed: int) -> None:
    """Draw (and cache) the sampled protocols' negatives now, as evaluation would later.

    A catalogue too small for 100 negatives per user then fails before the first epoch
    instead of after training; the negatives are the ones evaluation reads, so nothing changes.
    """
    needed = {("valid", validation_protocol)} | {(split, p) for p in protocols for split in SPLITS}
    for split, protocol in sorted(needed):
        if protocol in NEGATIVE_STRATEGY:
            load_or_draw_negatives(dataset, split, NEGATIVE_STRATEGY[protocol], seed)


def training_seconds(training_log: dict[str, Any]) -> float | None:
    """A run's training time over all its (re)starts: its epochs' training plus validation time.

    ``fit_seconds`` in ``training_log.json`` times one call of `train_run`, so for a run that
    was interrupted and resumed it covers the last start only; the epoch log spans them all.
    """
    epochs = training_log.get("epochs") or []
    total = sum(e.get("train_seconds", 0.0) + (e.get("valid_seconds") or 0.0) for e in epochs)
    return round(total, 3) if total else training_log.get("fit_seconds")


def trained_on(run_dir: Path) -> str | None:
    """The device that trained a run ("NVIDIA H200", "cpu x86_64 (2 threads)"), from versions.json.

    A run resumed on another device names each, in order ("cpu ... + NVIDIA H200").
    """
    versions = RunFolder(run_dir).read_versions()
    if versions is None:
        return None
    starts = versions.get("trained_with")
    if not starts:
        return "not recorded (run from before device records)"
    names = []
    for entry in starts:
        if str(entry.get("device", "")).startswith("cuda"):
            names.append(entry.get("device_name", "cuda"))
        else:
            threads = entry.get("torch_threads")
            names.append(f"cpu {entry.get('device_name', '')}".strip()
                         + (f" ({threads} thread{'s' if threads != 1 else ''})" if threads else ""))
    return " + ".join(dict.fromkeys(names))


def _evaluate_into(
    run: RunFolder, model: Any, dataset: PreparedDataset, protocols: tuple[str, ...], seed: int,
    metrics: dict[str, Any], breakdowns: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate, save ranks, and write ``breakdown.json`` (`auxrec.evaluation.breakdown`) then ``metrics.json``.

    ``breakdowns`` ({split: {protocol: groups}}) are merged into, and completed from any
    other saved ranks file (runs evaluated before breakdowns existed).
    """
    return _write_evaluations(run, dataset, _evaluate_all(model, dataset, protocols, seed), metrics, breakdowns)


def _evaluate_all(model: Any, dataset: PreparedDataset, protocols: tuple[str, ...], seed: int,
                  sharded: bool = False) -> list[EvaluationResult]:
    """Every split under every protocol (``sharded``: shared by the torchrun processes, all of which call it)."""
    return [evaluate(model, dataset, split, protocol, seed, sharded=sharded)
            for protocol in protocols for split in SPLITS]


def _write_evaluations(run: RunFolder, dataset: PreparedDataset, results: list[EvaluationResult],
                       metrics: dict[str, Any], breakdowns: dict[str, Any] | None = None) -> dict[str, Any]:
    breakdowns = {} if breakdowns is None else breakdowns
    for result in results:
        metrics.setdefault(result.split, {})[result.protocol] = result.metrics
        _save_ranks(run.ranks_path, dataset, result)
        breakdowns.setdefault(result.split, {})[result.protocol] = breakdown_of_result(dataset, result)
    _write_json(run.breakdown_path, complete_from_ranks(dataset, run.ranks_path, breakdowns))
    _write_json(run.metrics_path, metrics)
    return metrics


def load_run(run_dir: Path) -> tuple[dict[str, Any], Any, PreparedDataset]:
    """The config, fitted model and dataset of a finished run."""
    run = RunFolder(run_dir)
    if not run.config_path.is_file() or not run.model_path.is_dir():
        raise RunError(f"{run_dir} is not a finished auxrec run (no {run.config_path.name} or {run.model_path.name}/)")
    config = run.read_config()
    model_class, _ = lookup(config["model"])
    dataset = PreparedDataset.load(config["data"]["path"])
    if dataset.fingerprint != config["data"]["fingerprint"]:
        raise RunError(
            f"the dataset at {config['data']['path']} changed since this run was trained "
            "(fingerprint differs); evaluate against the data it was trained on"
        )
    try:
        model = model_class.load(run.model_path)
    except FileNotFoundError as missing:
        raise RunError(
            f"{run_dir} kept its metrics but not its model weights ({Path(missing.filename or '').name} is missing; "
            "runs trained on another machine may come back without them). Its saved metrics still render; "
            "to evaluate it again (another protocol, a figure), delete the folder and train it again"
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError, KeyError, TypeError, pickle.UnpicklingError) as error:
        # torch reports a truncated weights file as "[Errno 22] Invalid argument" or a zip error
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DamagedFile(f"the saved model in {run.model_path} is damaged ({reason}); delete the run folder "
                          "and train it again") from None
    return config, model, dataset


def evaluate_run(run_dir: Path, protocols: tuple[str, ...]) -> dict[str, Any]:
    """(Re-)evaluate a finished run under ``protocols``; merges into its metrics.json."""
    for protocol in protocols:
        check_protocol(protocol)
    config, model, dataset = load_run(run_dir)
    run = RunFolder(run_dir)
    return _evaluate_into(run, model, dataset, protocols, int(config["seed"]), run.read_metrics(),
                          run.read_breakdowns())

