"""`auxrec reproduce`: the paper's tables and figures on one dataset, from a declarative spec.

The experiments are the paper's and are defined once, in `auxrec.experiments.plan`. A spec
(`auxrec.experiments.specs`) says how to run them on a dataset. Every run is an ordinary
run folder (`auxrec.experiments.run_folder`) under ``WORKDIR/runs/<variant>/seed-<n>``:
a finished run is reused, never retrained, unless its settings no longer match the spec;
an interrupted one resumes from its last epoch checkpoint. Reports are rendered from the
saved runs only (`auxrec.reporting.reproduction_report`), into ``REPORTS/`` as Markdown,
CSV, LaTeX, JSON and PNG.

**Fair tuning.** When the spec has a tuning grid, every tuned model (all of Table 1 but
PopRec, which has no hyperparameter) gets the same trials — the whole grid — on seed 0,
chosen by validation NDCG@10 under the validation protocol (`auxrec.experiments.tuning`);
Table 3's variants use the values chosen for their family (BERT4Rec+ or SASRec+). The
trials and the choice are recorded in ``REPORTS/tuning.json``.

This module orchestrates: it holds the work folder, prepares the data, layers each run's
settings, reuses or trains runs (``jobs`` at a time) and hands the results to the reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from auxrec.config import resolve_config
from auxrec.data.dataset import PreparedDataset
from auxrec.data.loaders import load_dataset
from auxrec.data.prepare import MANIFEST_NAME, PrepareOptions, prepare_dataset, write_prepared
from auxrec.data.synthetic import SyntheticConfig, write_synthetic
from auxrec.evaluation.evaluator import check_protocol
from auxrec.exceptions import ConfigError
from auxrec.experiments.parallel import Executor, RunExecutor
from auxrec.experiments.plan import (
    TABLE1,
    UNTUNED,
    PlannedRun,
    RunRequest,
    SeedCounts,
    Variant,
    expand_targets,
    paper_layout,
    planned_runs,
    table1_variant,
    tuning_labels,
)
from auxrec.experiments.run_folder import RunFolder, RunSettings
from auxrec.experiments.runs import evaluate_run, load_run, resolve_training, trained_on, training_seconds
from auxrec.experiments.specs import ReproductionSpec
from auxrec.experiments.status import State, StatusEntry, training_time_left
from auxrec.experiments.tuning import CRITERION, ScoredTrial, Trial, choose, trials_of
from auxrec.features.cache import FeatureCache
from auxrec.features.embed import embed_dataset
from auxrec.io import exclusive_folder, read_json
from auxrec.io import write_json_atomic as _write_json
from auxrec.models import lookup
from auxrec.reporting.reproduction_report import ReportedRun, render, write_index

# Imported from here by tools and tests; defined in `plan` and `status`.
__all__ = ["TABLE1", "Reproduction", "RunRecord", "SeedCounts", "expand_targets", "reproduce",
           "training_time_left"]

Layers = list[tuple[str, dict[str, Any]]]  # (source, values), lowest precedence first


@dataclass(frozen=True)
class RunRecord:
    """A run of the reproduction, reused or trained, and its metrics."""

    variant: Variant
    seed: int
    metrics: dict[str, Any]  # metrics.json: split → protocol → metric → value
    folder: RunFolder


@dataclass(frozen=True)
class _TrialRun:
    """Whose tuning trial a request is, to report and score it."""

    label: str
    trial: Trial
    protocol: str  # its validation protocol


class Reproduction:
    """Runs and renders one spec; ``log`` receives one line per step."""

    def __init__(
        self, spec: ReproductionSpec, workdir: Path, reports: Path, log: Callable[[str], None] = print,
        progress: bool = True, jobs: int = 1, finished_only: bool = False, cached_features: bool = False,
        executor: Executor | None = None,
    ) -> None:
        self.spec = spec
        # Train on the item features already embedded in the work folder, without the raw
        # data or encoders (a work folder copied to a GPU machine, say).
        self.cached_features = cached_features
        # Interim reports while a long reproduction trains: use finished runs, train nothing.
        self.finished_only = finished_only
        self.executor: Executor = executor or RunExecutor(jobs)
        self.workdir = Path(workdir)
        self.reports = Path(reports)
        self.log = log
        self.progress = progress
        self.prepared = self.workdir / "prepared"
        self.runs = self.workdir / "runs"
        self.chosen_trials: dict[str, RunFolder] = {}  # label → its chosen tuning trial, when that is its seed-0 run
        self.trained = 0  # runs and tuning trials trained (not reused) by this process
        self._workdir_lock: contextlib.ExitStack | None = None

    # -- one writer per work folder ------------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._workdir_lock is not None:
            self._workdir_lock.close()
            self._workdir_lock = None

    def _hold_workdir(self) -> None:
        """Take the work folder for this process (until `__exit__`) before it prepares data or trains.

        Two reproductions training into one work folder would resume the same checkpoints at
        once; the second is refused with a one-line error instead. It is taken only when
        something must be written, so rendering reports from finished runs still works while
        a long reproduction trains the rest.
        """
        if self._workdir_lock is None:
            stack = contextlib.ExitStack()
            stack.enter_context(exclusive_folder(self.workdir, f"auxrec reproduce --dataset {self.spec.name}"))
            self._workdir_lock = stack

    # -- data -----------------------------------------------------------------------
    def ensure_data(self) -> Path:
        """Prepare (and embed) the dataset once; later calls reuse it."""
        data = self.spec.data
        if self.finished_only:  # finished runs were trained on this data, features and all
            if not (self.prepared / MANIFEST_NAME).is_file():
                raise ConfigError(f"nothing has finished in {self.workdir} yet (its data is not even prepared)")
            return self.prepared
        self.ensure_prepared()
        if data.embed and self.cached_features:
            self._check_cached_features(list(data.embed))
        elif data.embed:
            embed_dataset(self.prepared, list(data.embed), text_encoder=data.text_encoder,
                          image_encoder=data.image_encoder, tabular_encoder=data.tabular_encoder,
                          progress=self.progress, log=self.log)
        return self.prepared

    def _check_cached_features(self, modalities: list[str]) -> None:
        """Every modality of the spec has embedded features selected for this data (``--cached-features``)."""
        dataset = PreparedDataset.load(self.prepared)
        cache = FeatureCache(self.prepared)
        for modality in modalities:
            found, why = cache.current(modality, dataset.fingerprint, dataset.n_items + 1)
            if found is None:
                raise ConfigError(
                    f"--cached-features: no usable {modality} features in {cache.root} ({why}); embed them "
                    "first where the raw data and encoders are (the same command without --cached-features)"
                )
            self.log(f"{modality}: {found.description}, cached (--cached-features: not checked against the raw data)")

    def ensure_prepared(self) -> Path:
        """The spec's dataset, prepared once into ``workdir/prepared`` (no item features)."""
        data = self.spec.data
        if not (self.prepared / MANIFEST_NAME).is_file():
            self._hold_workdir()
            source = self.spec.source_path()
            if data.synthetic_preset is not None and (source is None or not source.exists()):
                source = self.workdir / "source"
                self.log(f"generating synthetic data ({data.synthetic_preset}) in {source}")
                write_synthetic(SyntheticConfig.preset(data.synthetic_preset, **data.synthetic_overrides), source,
                                overwrite=True)
            if source is None:
                raise ConfigError(f"spec {self.spec.path}: data.source is required for loader {data.loader!r}")
            self.log(f"preparing {data.loader} from {source}")
            raw = load_dataset(data.loader, source, **data.options)
            options = PrepareOptions(k_core=data.k_core, min_rating=data.min_rating)
            write_prepared(prepare_dataset(raw, options), self.prepared, overwrite=True)
        return self.prepared

    # -- settings -------------------------------------------------------------------
    def _layers(self, variant: Variant, values: dict[str, Any]) -> tuple[Layers, Layers]:
        """(model layers, training layers) of ``variant`` with the tuned ``values``, as `resolve_config` takes them."""
        model_spec = self.spec.models.get(variant.model)
        model_layers: Layers = [(f"spec models.{variant.model}.model", dict(model_spec.model) if model_spec else {})]
        if variant.aux and variant.fusion:
            model_layers.append(("variant", {"aux_fusion": variant.fusion, **dict(variant.settings)}))
        trainable = lookup(variant.model)[0].trainable  # the spec's [training] is for the gradient loop
        training_layers: Layers = [
            ("spec training", dict(self.spec.training) if trainable else {}),
            (f"spec models.{variant.model}.training", dict(model_spec.training) if model_spec else {}),
            ("tuning", values),
            ("reproduce", {"progress": False}),
        ]
        return model_layers, training_layers

    def _settings(self, variant: Variant, seed: int, values: dict[str, Any]) -> RunSettings:
        """The settings of ``variant`` with ``seed`` and the tuned ``values``, resolved."""
        _, config_class = lookup(variant.model)
        model_layers, training_layers = self._layers(variant, values)
        model_config, _ = resolve_config(config_class, model_layers)
        training, _ = resolve_training(variant.model, training_layers)
        return RunSettings(variant.model, seed, dataclasses.asdict(model_config), dataclasses.asdict(training),
                           variant.features)

    def _validation_protocol(self, variant: Variant, values: dict[str, Any]) -> str:
        return str(self._settings(variant, 0, values).training["validation_protocol"])

    # -- runs -----------------------------------------------------------------------
    def run_folder(self, variant: Variant, seed: int) -> RunFolder:
        return RunFolder(self.runs / variant.key / f"seed-{seed}")

    def _holds(self, request: RunRequest) -> bool:
        """Whether the request's folder holds that run, finished (so it is reused, not trained)."""
        return request.folder.holds(self._settings(request.variant, request.seed, request.values))

    def _reuse_or_plan(self, request: RunRequest) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """(metrics, _) of a finished run with the spec's settings, or (None, train_run arguments)."""
        variant, folder = request.variant, request.folder
        wanted = self._settings(variant, request.seed, request.values)
        if folder.holds(wanted):
            metrics = folder.read_metrics()
            missing = tuple(p for p in request.protocols if p not in metrics.get("test", {}))
            return (evaluate_run(folder.path, missing) if missing else metrics), {}
        if folder.is_finished():
            epoch = folder.interrupted_epoch(wanted)
            again = f"resuming its retraining from epoch {epoch}" if epoch is not None else "training it again"
            self.log(f"  settings of {folder.path} differ from the spec; {again}")
        model_layers, training_layers = self._layers(variant, request.values)
        return None, {
            "model_name": variant.model, "data": self.prepared, "out": folder.path, "seed": request.seed,
            "model_layers": model_layers, "training_layers": training_layers, "protocols": request.protocols,
            "overwrite": True, "aux": variant.aux,
        }

    def ensure_runs(
        self, requests: Sequence[RunRequest], describe: Callable[[int, dict[str, Any], str], None],
    ) -> list[dict[str, Any]]:
        """Metrics of every request: reused, or trained ``jobs`` at a time.

        ``describe(index, metrics, how)`` is called once per request as it completes, with
        ``how`` "reused" or the training time.
        """
        metrics: list[dict[str, Any] | None] = [None] * len(requests)
        if self._workdir_lock is None and any(not self._holds(request) for request in requests):
            self._hold_workdir()  # before planning: a run another process was training may finish meanwhile
        tasks, task_index = [], []
        for index, request in enumerate(requests):
            reused, arguments = self._reuse_or_plan(request)
            if reused is not None:
                metrics[index] = reused
            else:
                tasks.append(arguments)
                task_index.append(index)
        for index, result in enumerate(metrics):
            if result is not None:
                describe(index, result, "reused")

        # Longest first, so that with several jobs no core idles at the end behind one
        # slow transformer (BERT4Rec's masked training needs the most epochs).
        order = sorted(range(len(tasks)), key=lambda i: -requests[task_index[i]].variant.expected_cost)
        tasks, task_index = [tasks[i] for i in order], [task_index[i] for i in order]

        def finished(position: int, result: dict[str, Any], seconds: float) -> None:
            metrics[task_index[position]] = result
            describe(task_index[position], result, f"{seconds:.0f} s")

        self.executor.run(tasks, finished)
        self.trained += len(tasks)
        return metrics  # type: ignore[return-value]

    def tuned_values(self, labels: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Run the shared grid for each label that needs it; returns label → chosen values."""
        tuning = self.spec.tuning
        chosen: dict[str, dict[str, Any]] = {label: {} for label in labels}
        if not tuning.trials:
            return chosen
        record_path = self.reports / "tuning.json"
        record = read_json(record_path) if record_path.is_file() else {}
        record.update({"grid": tuning.grid, "seed": tuning.seed, "criterion": CRITERION})
        results = record.setdefault("models", {})
        requests: list[RunRequest] = []  # every trial of every label, trained together
        owners: list[_TrialRun] = []
        for label in labels:
            if label in UNTUNED:
                results[label] = {"trials": [], "chosen": {}, "note": "no hyperparameters to tune"}
                continue
            variant = table1_variant(label)
            trials = trials_of(tuning, self.workdir, variant)
            if self.finished_only and not all(trial.folder.holds(self._settings(variant, tuning.seed, trial.values))
                                              for trial in trials):
                self.log(f"tuning {label}: not finished; its runs are left out")
                del chosen[label]
                continue
            for trial in trials:
                protocol = self._validation_protocol(variant, trial.values)
                requests.append(RunRequest(variant, tuning.seed, trial.values, (protocol,), trial.folder))
                owners.append(_TrialRun(label, trial, protocol))

        def describe(position: int, metrics: dict[str, Any], how: str) -> None:
            owner = owners[position]
            self.log(f"tuning {owner.label}: trial {owner.trial.index + 1}/{len(tuning.trials)} {owner.trial.point}: "
                     f"valid NDCG@10 {metrics['valid'][owner.protocol]['NDCG@10']:.4f} ({how})")

        trial_metrics = self.ensure_runs(requests, describe)
        scored: dict[str, list[ScoredTrial]] = {}
        for owner, metrics in zip(owners, trial_metrics, strict=True):
            scored.setdefault(owner.label, []).append(
                ScoredTrial(owner.trial, metrics["valid"][owner.protocol]["NDCG@10"]))
        for label, trials_scored in scored.items():
            choice = choose(trials_scored, tuning)
            chosen[label] = choice.values
            if choice.reusable_run is not None:
                self.chosen_trials[label] = choice.reusable_run
            results[label] = {"trials": [{"values": entry.trial.point, "valid_ndcg@10": entry.valid_ndcg}
                                         for entry in trials_scored],
                              "chosen": choice.best.trial.point}
            self.log(f"tuning {label}: chose {choice.best.trial.point} "
                     f"(valid NDCG@10 {choice.best.valid_ndcg:.4f})")
        self.reports.mkdir(parents=True, exist_ok=True)
        _write_json(record_path, record)
        return chosen

    def run(self, targets: Sequence[str], seeds: SeedCounts, protocols: Sequence[str]) -> list[RunRecord]:
        """Train (or reuse) every run the targets need; returns one record per run."""
        plan = planned_runs(targets, seeds)
        chosen = self.tuned_values(tuning_labels(plan))
        first = protocols[0]
        requests: list[RunRequest] = []
        for planned in plan:
            variant, seed = planned.variant, planned.seed
            if variant.tuning_label not in chosen:
                continue  # only in an interim report: its tuning is unfinished
            folder = self.run_folder(variant, seed)
            values = chosen[variant.tuning_label]
            if not self.finished_only:
                self._adopt_chosen_trial(variant, seed, folder, values)
            elif not folder.holds(self._settings(variant, seed, values)):
                trial = self.chosen_trials.get(variant.label)
                if seed != self.spec.tuning.seed or trial is None:
                    continue  # not trained yet: left out of the interim report
                folder = trial  # the winning trial is this run; read it where it lies
            requests.append(RunRequest(variant, seed, values, tuple(protocols), folder))
        if self.finished_only:
            self.log(f"finished runs only: {len(requests)} of {len(plan)} planned runs")
            plan = [PlannedRun(request.variant, request.seed) for request in requests]
        progress = _progress_bar(self.progress, len(plan))
        with progress:
            task = progress.add_task(f"runs ({self.executor.description})", total=len(plan))
            done = 0

            def describe(index: int, metrics: dict[str, Any], how: str) -> None:
                nonlocal done
                done += 1
                request = requests[index]
                self.log(f"[{done}/{len(plan)}] {request.variant.label} seed {request.seed}: test NDCG@10 ({first}) "
                         f"{metrics['test'][first]['NDCG@10']:.4f} ({how})")
                progress.advance(task)

            metrics = self.ensure_runs(requests, describe)
        return [RunRecord(request.variant, request.seed, result, request.folder)
                for request, result in zip(requests, metrics, strict=True)]

    # -- what is left (``auxrec reproduce --dry-run``) ---------------------------------
    def status(self, targets: Sequence[str], seeds: SeedCounts) -> list[StatusEntry]:
        """Where every tuning trial and run of ``targets`` stands, without training anything.

        A run waits for tuning while some trial of its tuning label is unfinished; the
        values chosen then are `auxrec.experiments.tuning.choose`'s, as when training.
        """
        tuning = self.spec.tuning
        plan = planned_runs(targets, seeds)
        entries: list[StatusEntry] = []
        chosen: dict[str, dict[str, Any]] = {}
        winners: dict[str, RunFolder] = {}
        for label in tuning_labels(plan):
            if not tuning.trials or label in UNTUNED:
                chosen[label] = {}
                continue
            variant = table1_variant(label)
            scored = []
            for trial in trials_of(tuning, self.workdir, variant):
                state, epoch = self._state(variant, tuning.seed, trial.values, trial.folder)
                entries.append(StatusEntry("tuning", label, f"trial {trial.index + 1} {trial.point}", variant,
                                           state, epoch, trial.folder))
                if state == "done":
                    protocol = self._validation_protocol(variant, trial.values)
                    scored.append(ScoredTrial(trial, trial.folder.read_metrics()["valid"][protocol]["NDCG@10"]))
            if len(scored) == len(tuning.trials):
                choice = choose(scored, tuning)
                chosen[label] = choice.values
                if choice.reusable_run is not None:
                    winners[label] = choice.reusable_run
        for planned in plan:
            variant, seed = planned.variant, planned.seed
            folder = self.run_folder(variant, seed)
            state: State = "waits for tuning"
            epoch: int | None = None
            if variant.tuning_label in chosen:
                state, epoch = self._state(variant, seed, chosen[variant.tuning_label], folder)
                if state != "done" and seed == tuning.seed and variant.label in winners:
                    state, epoch = "done", None  # the winning trial becomes this run (no training)
            entries.append(StatusEntry("run", variant.label, f"seed {seed}", variant, state, epoch, folder))
        return entries

    def _state(self, variant: Variant, seed: int, values: dict[str, Any], folder: RunFolder
               ) -> tuple[State, int | None]:
        """("done" | "partial" | "to train", last saved epoch of a partial run) of one run folder."""
        wanted = self._settings(variant, seed, values)
        if folder.holds(wanted):
            return "done", None
        epoch = folder.interrupted_epoch(wanted)
        return ("partial", epoch) if epoch is not None else ("to train", None)

    def _adopt_chosen_trial(self, variant: Variant, seed: int, folder: RunFolder, values: dict[str, Any]) -> None:
        """The winning tuning trial *is* the seed-0 run (same settings and seed): copy, don't retrain.

        A seed-0 run left from an earlier choice (tuning picked other values since) is
        replaced by the trial too. `ensure_runs` still checks the copied settings against
        the spec and evaluates the protocols the trial skipped.
        """
        trial = self.chosen_trials.get(variant.label)
        if seed != self.spec.tuning.seed or trial is None or not trial.is_finished():
            return
        if folder.holds(self._settings(variant, seed, values)):
            return  # already this run, perhaps evaluated under more protocols than the trial
        self._hold_workdir()
        if folder.is_finished():
            self.log(f"  {folder.path} was trained with values tuning no longer chooses; "
                     f"using the winning trial {trial.path} instead")
        folder.remove()
        folder.path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(trial.path, folder.path)


def _progress_bar(enabled: bool, total: int) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    disable=not enabled or total == 0, transient=True)


def reported(record: RunRecord) -> ReportedRun:
    """What the reports show of a run: its metrics, training time and device."""
    log = record.folder.read_training_log()
    return ReportedRun(label=record.variant.label, variant=record.variant.key, seed=record.seed,
                       metrics=record.metrics, fit_seconds=log.get("fit_seconds"), training_seconds=training_seconds(log),
                       trained_on=trained_on(record.folder.path), breakdowns=record.folder.read_breakdowns())


def reproduce(
    spec: ReproductionSpec, targets: Sequence[str], workdir: Path, reports: Path,
    protocols: Sequence[str] | None = None, seeds: int | None = None, log: Callable[[str], None] = print,
    progress: bool = True, jobs: int = 1, finished_only: bool = False, cached_features: bool = False,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Run what ``targets`` need (reusing finished runs, training ``jobs`` at a time) and render their reports.

    ``executor`` trains elsewhere than in a local pool of ``jobs`` processes (`RayExecutor`).
    ``finished_only`` renders interim reports from the runs finished so far and trains nothing.
    ``cached_features`` trains on the item features already embedded in ``workdir`` (no raw
    data or encoders needed), instead of checking them against the raw data first.
    """
    chosen_targets = expand_targets(targets)
    protocols = list(protocols or spec.protocols)
    for protocol in protocols:
        check_protocol(protocol)
    counts = SeedCounts.from_spec(spec, seeds)
    started = time.perf_counter()
    with Reproduction(spec, workdir, reports, log, progress, jobs, finished_only, cached_features,
                      executor) as reproduction:
        reproduction.ensure_data()
        # Runs are always evaluated under every protocol of the spec, so a later report for
        # another protocol needs no retraining.
        records = reproduction.run(chosen_targets, counts, list(dict.fromkeys([*spec.protocols, *protocols])))
        seed0 = {record.variant.label: record.folder for record in records if record.seed == 0}

        def load_seed0(label: str) -> tuple[Any, PreparedDataset]:
            _, model, dataset = load_run(seed0[label].path)
            return model, dataset

        written = render(spec.name, reproduction.reports, paper_layout(), chosen_targets,
                         [reported(record) for record in records], counts, protocols, spec.figures, load_seed0,
                         interim=finished_only, log=log)
        trained = reproduction.trained
    seconds = time.perf_counter() - started
    summary = {"dataset": spec.name, "targets": chosen_targets, "protocols": protocols,
               "seeds": dataclasses.asdict(counts), "runs": len(records), "trained": trained, "jobs": jobs,
               **({"executor": executor.description} if executor is not None else {}),
               **({"finished_only": True} if finished_only else {}),
               "wall_seconds": round(seconds, 1),
               "spec": str(spec.path), "workdir": str(Path(workdir).resolve()), "files": [str(p) for p in written]}
    history_path = Path(reports) / "reproduce-log.json"
    history = read_json(history_path) if history_path.is_file() else []
    history = [*history, {k: v for k, v in summary.items() if k != "files"}]
    _write_json(history_path, history)
    write_index(spec.name, spec.description, Path(reports), history)
    return summary
