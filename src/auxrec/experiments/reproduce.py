"""`auxrec reproduce`: the paper's tables and figures on one dataset, from a declarative spec.

The experiments are the paper's and are defined here once:

- **Table 1**: PopRec, BPR, TransRec, BERT4Rec, KeBERT4Rec, SASRec, BERT4Rec+, SASRec+;
- **Table 2**: paired t-tests of NDCG@10, BERT4Rec vs BERT4Rec+ and SASRec vs SASRec+;
- **Table 3**: the 11 modality/fusion variants of BERT4Rec+ and SASRec+;
- **Figure 2**: a case study of two users; **Figure 3**: SASRec+ attention by user cluster.

A spec (`auxrec.experiments.specs`) says how to run them on a dataset. Every run is an
ordinary run folder (`auxrec.experiments.runs`) under ``WORKDIR/runs/<variant>/seed-<n>``:
a finished run is reused, never retrained, unless its settings no longer match the spec;
an interrupted one resumes from its last epoch checkpoint. Reports are rendered from the
saved runs only, into ``REPORTS/`` as Markdown, CSV, LaTeX, JSON and PNG.

**Fair tuning.** When the spec has a tuning grid, every tuned model (all of Table 1 but
PopRec, which has no hyperparameter) gets the same trials — the whole grid — on seed 0,
chosen by validation NDCG@10 under the validation protocol; Table 3's variants use the
values chosen for their family (BERT4Rec+ or SASRec+). The trials and the choice are
recorded in ``REPORTS/tuning.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from auxrec.config import resolve_config
from auxrec.evaluation.metrics import METRIC_NAMES
from auxrec.exceptions import ConfigError
from auxrec.experiments.parallel import RunExecutor, train_or_restart
from auxrec.experiments.runs import (
    comparable_settings,
    current_revisions,
    evaluate_run,
    load_run,
    recorded_revisions,
    trained_on,
    training_seconds,
)
from auxrec.experiments.specs import MODALITIES, ReproductionSpec
from auxrec.io import exclusive_folder, read_json, write_text_atomic
from auxrec.io import write_json_atomic as _write_json
from auxrec.models import lookup
from auxrec.training.config import TrainingConfig, same_training

TARGETS = ("table1", "table2", "table3", "figure2", "figure3")
ALL_MODALITIES = MODALITIES


@dataclass(frozen=True)
class Variant:
    """One trainable configuration: a registered model, optionally with auxiliary information."""

    label: str  # as printed in reports
    model: str  # registry name
    aux: tuple[str, ...] = ()
    fusion: str | None = None  # None = the model's default (only meaningful with aux)
    tuned_as: str = ""  # whose tuned hyperparameters it uses ("" = its own label)

    @property
    def key(self) -> str:
        """Folder name: ``sasrec``, ``sasrec+text-image-tabular.concat``..."""
        if not self.aux:
            return self.model
        return f"{self.model}+{'-'.join(self.aux)}.{self.fusion or 'concat'}"

    @property
    def tuning_label(self) -> str:
        return self.tuned_as or self.label


TABLE1 = (
    Variant("PopRec", "poprec"),
    Variant("BPR", "bpr"),
    Variant("TransRec", "transrec"),
    Variant("BERT4Rec", "bert4rec"),
    Variant("KeBERT4Rec", "kebert4rec"),
    Variant("SASRec", "sasrec"),
    Variant("BERT4Rec+", "bert4rec", ALL_MODALITIES, "concat"),
    Variant("SASRec+", "sasrec", ALL_MODALITIES, "concat"),
)
BASELINES = ("PopRec", "BPR", "TransRec", "BERT4Rec", "KeBERT4Rec", "SASRec")
PAIRS = (("BERT4Rec", "BERT4Rec+"), ("SASRec", "SASRec+"))
UNTUNED = ("PopRec",)  # no hyperparameters to search
# (row label, modalities, fusion) of the paper's Table 3.
ABLATION_ROWS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("(1) Text", ("text",), "concat"),
    ("(2) Image", ("image",), "concat"),
    ("(3) Tabular", ("tabular",), "concat"),
    ("(4) Concatenated: text + image + tabular", ALL_MODALITIES, "concat"),
    ("(5) Concatenated: w/o tabular", ("text", "image"), "concat"),
    ("(6) Concatenated: w/o image", ("text", "tabular"), "concat"),
    ("(7) Concatenated: w/o text", ("image", "tabular"), "concat"),
    ("(8) Summed: text + image + tabular", ALL_MODALITIES, "sum"),
    ("(9) Summed: w/o tabular", ("text", "image"), "sum"),
    ("(10) Summed: w/o image", ("text", "tabular"), "sum"),
    ("(11) Summed: w/o text", ("image", "tabular"), "sum"),
)
ABLATION_FAMILIES = (("BERT4Rec+", "bert4rec"), ("SASRec+", "sasrec"))
FIGURE2_MODELS = ("BERT4Rec", "BERT4Rec+", "SASRec", "SASRec+")


def table1_variant(label: str) -> Variant:
    return next(v for v in TABLE1 if v.label == label)


def ablation_variants() -> list[tuple[str, str, Variant]]:
    """(row, family, variant) for every cell of Table 3; row (4) is the family's own variant."""
    cells = []
    for family, model in ABLATION_FAMILIES:
        for row, aux, fusion in ABLATION_ROWS:
            variant = Variant(f"{family} {row}", model, aux, fusion, tuned_as=family)
            if aux == ALL_MODALITIES and fusion == "concat":
                variant = table1_variant(family)
            cells.append((row, family, variant))
    return cells


@dataclass(frozen=True)
class SeedCounts:
    table1: int
    table2: int
    table3: int

    @classmethod
    def from_spec(cls, spec: ReproductionSpec, override: int | None) -> SeedCounts:
        seeds = spec.seeds
        if override is None:
            return cls(seeds.table1, seeds.table2, seeds.table3)
        if override < 1:
            raise ConfigError("--seeds must be at least 1")
        return cls(min(seeds.table1, override), override, min(seeds.table3, override))


def expand_targets(targets: Sequence[str]) -> list[str]:
    chosen: list[str] = []
    for target in targets:
        if target == "all":
            chosen += TARGETS
        elif target in TARGETS:
            chosen.append(target)
        else:
            raise ConfigError(f"unknown target {target!r}; choose from {', '.join(TARGETS)} or all")
    return list(dict.fromkeys(chosen))


def planned_runs(targets: Sequence[str], seeds: SeedCounts) -> list[tuple[Variant, int]]:
    """Every (variant, seed) the targets need, each once, in a sensible training order."""
    plan: list[tuple[Variant, int]] = []
    if "table1" in targets:
        plan += [(v, s) for s in range(seeds.table1) for v in TABLE1]
    if "table2" in targets:
        plan += [(table1_variant(label), s) for s in range(seeds.table2) for pair in PAIRS for label in pair]
    if "table3" in targets:
        plan += [(v, s) for s in range(seeds.table3) for _, _, v in ablation_variants()]
    if "figure2" in targets:
        plan += [(table1_variant(label), 0) for label in FIGURE2_MODELS]
    if "figure3" in targets:
        plan += [(table1_variant("SASRec+"), 0)]
    return list(dict.fromkeys(plan))


class Reproduction:
    """Runs and renders one spec; ``log`` receives one line per step."""

    def __init__(
        self, spec: ReproductionSpec, workdir: Path, reports: Path, log: Callable[[str], None] = print,
        progress: bool = True, jobs: int = 1, finished_only: bool = False, cached_features: bool = False,
    ) -> None:
        self.spec = spec
        # Train on the item features already embedded in the work folder, without the raw
        # data or encoders (a work folder copied to a GPU machine, say).
        self.cached_features = cached_features
        # Interim reports while a long reproduction trains: use finished runs, train nothing.
        self.finished_only = finished_only
        self.executor = RunExecutor(jobs)
        self.workdir = Path(workdir)
        self.reports = Path(reports)
        self.log = log
        self.progress = progress
        self.prepared = self.workdir / "prepared"
        self.runs = self.workdir / "runs"
        self.chosen_trials: dict[str, Path] = {}  # label → run folder of its chosen tuning trial
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
            if not (self.prepared / "manifest.json").is_file():
                raise ConfigError(f"nothing has finished in {self.workdir} yet (its data is not even prepared)")
            return self.prepared
        self.ensure_prepared()
        if data.embed and self.cached_features:
            self._check_cached_features(list(data.embed))
        elif data.embed:
            from auxrec.features.embed import embed_dataset

            embed_dataset(self.prepared, list(data.embed), text_encoder=data.text_encoder,
                          image_encoder=data.image_encoder, progress=self.progress, log=self.log)
        return self.prepared

    def _check_cached_features(self, modalities: list[str]) -> None:
        """Every modality of the spec has embedded features selected for this data (``--cached-features``)."""
        from auxrec.data.dataset import PreparedDataset
        from auxrec.features.cache import FeatureCache

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
        from auxrec.data.loaders import load_dataset
        from auxrec.data.prepare import PrepareOptions, prepare_dataset, write_prepared

        data = self.spec.data
        if not (self.prepared / "manifest.json").is_file():
            self._hold_workdir()
            source = self.spec.source_path()
            if data.synthetic_preset is not None and (source is None or not source.exists()):
                from auxrec.data.synthetic import SyntheticConfig, write_synthetic

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
    def _layers(self, variant: Variant, chosen: dict[str, Any]) -> tuple[list[Any], list[Any]]:
        model_spec = self.spec.models.get(variant.model)
        model_layers: list[tuple[str, dict[str, Any]]] = [(f"spec models.{variant.model}.model",
                                                           dict(model_spec.model) if model_spec else {})]
        if variant.aux and variant.fusion:
            model_layers.append(("variant", {"aux_fusion": variant.fusion}))
        trainable = lookup(variant.model)[0].trainable  # the spec's [training] is for the gradient loop
        training_layers: list[tuple[str, dict[str, Any]]] = [
            ("spec training", dict(self.spec.training) if trainable else {}),
            (f"spec models.{variant.model}.training", dict(model_spec.training) if model_spec else {}),
            ("tuning", chosen),
            ("reproduce", {"progress": False}),
        ]
        return model_layers, training_layers

    def _resolved(
        self, variant: Variant, layers: tuple[list[Any], list[Any]]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The model and training configs ``layers`` resolve to, as plain dicts."""
        _, config_class = lookup(variant.model)
        model_layers, training_layers = layers
        model_config, _ = resolve_config(config_class, model_layers)
        training, _ = resolve_config(TrainingConfig, training_layers)
        return dataclasses.asdict(model_config), dataclasses.asdict(training)

    # -- runs -----------------------------------------------------------------------
    def run_dir(self, variant: Variant, seed: int) -> Path:
        return self.runs / variant.key / f"seed-{seed}"

    def ensure_run(
        self, variant: Variant, seed: int, chosen: dict[str, Any], protocols: Sequence[str],
        run_dir: Path | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """The metrics of ``variant`` with ``seed`` and whether a finished run was reused."""
        reused, arguments = self._reuse_or_plan(variant, seed, chosen, protocols, run_dir)
        if reused is not None:
            return reused, True
        return train_or_restart(arguments)[0], False

    def _reuse_or_plan(
        self, variant: Variant, seed: int, chosen: dict[str, Any], protocols: Sequence[str],
        run_dir: Path | None = None,
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """(metrics, _) of a finished run with the spec's settings, or (None, train_run arguments)."""
        run_dir = run_dir or self.run_dir(variant, seed)
        if self._finished(variant, seed, chosen, run_dir):
            metrics = read_json(run_dir / "metrics.json")
            missing = tuple(p for p in protocols if p not in metrics.get("test", {}))
            return (evaluate_run(run_dir, missing) if missing else metrics), {}
        if (run_dir / "metrics.json").is_file():
            state, epoch = self._state(variant, seed, chosen, run_dir)
            again = (f"resuming its retraining from epoch {epoch}" if state == "partial"
                     else "training it again")
            self.log(f"  settings of {run_dir} differ from the spec; {again}")
        model_layers, training_layers = self._layers(variant, chosen)
        return None, {
            "model_name": variant.model, "data": self.prepared, "out": run_dir, "seed": seed,
            "model_layers": model_layers, "training_layers": training_layers, "protocols": tuple(protocols),
            "overwrite": True, "aux": variant.aux,
        }

    def _matches(self, variant: Variant, seed: int, chosen: dict[str, Any], config: dict[str, Any],
                 epochs_trained: int) -> bool:
        """Whether a saved run ``config`` is ``variant`` with ``seed`` and the spec's settings for ``chosen``."""
        model_config, training = self._resolved(variant, self._layers(variant, chosen))
        return config.get("seed") == seed and _same_settings(config, variant, model_config, training, epochs_trained)

    def _finished(self, variant: Variant, seed: int, chosen: dict[str, Any], run_dir: Path) -> bool:
        """Whether ``run_dir`` holds that run, finished (so it is reused, not trained)."""
        return ((run_dir / "metrics.json").is_file()
                and self._matches(variant, seed, chosen, read_json(run_dir / "config.json"),
                                  _epochs_trained(run_dir)))

    def ensure_runs(
        self, requests: Sequence[tuple[Variant, int, dict[str, Any], Sequence[str], Path]],
        describe: Callable[[int, dict[str, Any], str], None],
    ) -> list[dict[str, Any]]:
        """Metrics of every (variant, seed, chosen, protocols, run_dir): reused, or trained ``jobs`` at a time.

        ``describe(index, metrics, how)`` is called once per request as it completes, with
        ``how`` "reused" or the training time.
        """
        metrics: list[dict[str, Any] | None] = [None] * len(requests)
        if self._workdir_lock is None and any(not self._finished(variant, seed, chosen, run_dir)
                                              for variant, seed, chosen, _, run_dir in requests):
            self._hold_workdir()  # before planning: a run another process was training may finish meanwhile
        tasks, task_index = self._plan(requests, metrics)
        for index, result in enumerate(metrics):
            if result is not None:
                describe(index, result, "reused")

        # Longest first, so that with several jobs no core idles at the end behind one
        # slow transformer (BERT4Rec's masked training needs the most epochs).
        order = sorted(range(len(tasks)), key=lambda i: -_expected_cost(requests[task_index[i]][0]))
        tasks, task_index = [tasks[i] for i in order], [task_index[i] for i in order]

        def finished(position: int, result: dict[str, Any], seconds: float) -> None:
            metrics[task_index[position]] = result
            describe(task_index[position], result, f"{seconds:.0f} s")

        self.executor.run(tasks, finished)
        self.trained += len(tasks)
        return metrics  # type: ignore[return-value]

    def _plan(self, requests: Sequence[tuple[Variant, int, dict[str, Any], Sequence[str], Path]],
              metrics: list[dict[str, Any] | None]) -> tuple[list[dict[str, Any]], list[int]]:
        """Fill ``metrics`` of finished requests; (train_run arguments, request index) of the others."""
        tasks, task_index = [], []
        for index, (variant, seed, chosen, protocols, run_dir) in enumerate(requests):
            reused, arguments = self._reuse_or_plan(variant, seed, chosen, protocols, run_dir)
            if reused is not None:
                metrics[index] = reused
            else:
                tasks.append(arguments)
                task_index.append(index)
        return tasks, task_index

    def _trials(self, variant: Variant) -> list[tuple[int, dict[str, Any], dict[str, Any], Path]]:
        """(index, grid point, training values, run folder) of each tuning trial of ``variant``."""
        tuning = self.spec.tuning
        return [(index, trial, dict(trial) | ({"epochs": tuning.epochs} if tuning.epochs else {}),
                 self.workdir / "tuning" / variant.key / f"trial-{index}")
                for index, trial in enumerate(tuning.trials)]

    def tuned_values(self, labels: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Run the shared grid for each label that needs it; returns label → chosen values."""
        tuning = self.spec.tuning
        trials = tuning.trials
        chosen: dict[str, dict[str, Any]] = {label: {} for label in labels}
        if not trials:
            return chosen
        record_path = self.reports / "tuning.json"
        record = read_json(record_path) if record_path.is_file() else {}
        record.update({"grid": tuning.grid, "seed": tuning.seed, "criterion": "valid NDCG@10 (validation protocol)"})
        results = record.setdefault("models", {})
        requests, owners = [], []  # every trial of every label, trained together
        for label in labels:
            if label in UNTUNED:
                results[label] = {"trials": [], "chosen": {}, "note": "no hyperparameters to tune"}
                continue
            variant = table1_variant(label)
            if self.finished_only and not all(self._finished(variant, tuning.seed, values, run_dir)
                                              for _, _, values, run_dir in self._trials(variant)):
                self.log(f"tuning {label}: not finished; its runs are left out")
                del chosen[label]
                continue
            for index, trial, values, run_dir in self._trials(variant):
                protocol = self._resolved(variant, self._layers(variant, values))[1]["validation_protocol"]
                requests.append((variant, tuning.seed, values, (protocol,), run_dir))
                owners.append((label, index, trial, protocol))

        def describe(position: int, metrics: dict[str, Any], how: str) -> None:
            label, index, trial, protocol = owners[position]
            self.log(f"tuning {label}: trial {index + 1}/{len(trials)} {trial}: valid NDCG@10 "
                     f"{metrics['valid'][protocol]['NDCG@10']:.4f} ({how})")

        trial_metrics = self.ensure_runs(requests, describe)
        for label in dict.fromkeys(owner[0] for owner in owners):
            positions = [i for i, owner in enumerate(owners) if owner[0] == label]
            scored = [{"values": owners[i][2], "valid_ndcg@10": trial_metrics[i]["valid"][owners[i][3]]["NDCG@10"]}
                      for i in positions]
            best = max(scored, key=lambda entry: entry["valid_ndcg@10"])
            chosen[label] = dict(best["values"])
            if not tuning.epochs:
                self.chosen_trials[label] = requests[positions[scored.index(best)]][4]
            results[label] = {"trials": scored, "chosen": best["values"]}
            self.log(f"tuning {label}: chose {best['values']} (valid NDCG@10 {best['valid_ndcg@10']:.4f})")
        self.reports.mkdir(parents=True, exist_ok=True)
        _write_json(record_path, record)
        return chosen

    def run(self, targets: Sequence[str], seeds: SeedCounts, protocols: Sequence[str]) -> list[dict[str, Any]]:
        """Train (or reuse) every run the targets need; returns one record per run."""
        plan = planned_runs(targets, seeds)
        labels = list(dict.fromkeys(v.tuning_label for v, _ in plan))
        chosen = self.tuned_values(labels)
        first = protocols[0]
        requests = []
        for variant, seed in plan:
            if variant.tuning_label not in chosen:
                continue  # only in an interim report: its tuning is unfinished
            run_dir = self.run_dir(variant, seed)
            values = chosen[variant.tuning_label]
            if not self.finished_only:
                self._adopt_chosen_trial(variant, seed, run_dir, values)
            elif not self._finished(variant, seed, values, run_dir):
                trial = self.chosen_trials.get(variant.label)
                if seed != self.spec.tuning.seed or trial is None:
                    continue  # not trained yet: left out of the interim report
                run_dir = trial  # the winning trial is this run; read it where it lies
            requests.append((variant, seed, values, protocols, run_dir))
        if self.finished_only:
            self.log(f"finished runs only: {len(requests)} of {len(plan)} planned runs")
            plan = [(variant, seed) for variant, seed, *_ in requests]
        progress = _progress_bar(self.progress, len(plan))
        with progress:
            task = progress.add_task(f"runs ({self.executor.jobs} at a time)", total=len(plan))
            done = 0

            def describe(index: int, metrics: dict[str, Any], how: str) -> None:
                nonlocal done
                done += 1
                variant, seed = plan[index]
                self.log(f"[{done}/{len(plan)}] {variant.label} seed {seed}: test NDCG@10 ({first}) "
                         f"{metrics['test'][first]['NDCG@10']:.4f} ({how})")
                progress.advance(task)

            metrics = self.ensure_runs(requests, describe)
        return [{"variant": variant, "seed": seed, "metrics": result, "run": request[4]}
                for (variant, seed), result, request in zip(plan, metrics, requests, strict=True)]

    # -- what is left (``auxrec reproduce --dry-run``) ---------------------------------
    def status(self, targets: Sequence[str], seeds: SeedCounts) -> list[dict[str, Any]]:
        """Where every tuning trial and run of ``targets`` stands, without training anything.

        One entry per trial or run: ``stage`` ("tuning" or "run"), ``label``, ``what``,
        ``state`` ("done", "partial" with its last ``epoch``, "to train", or "waits for
        tuning" when the values it needs are not chosen yet), ``variant`` and ``dir``.
        """
        tuning = self.spec.tuning
        plan = planned_runs(targets, seeds)
        labels = list(dict.fromkeys(v.tuning_label for v, _ in plan))
        entries: list[dict[str, Any]] = []
        chosen: dict[str, dict[str, Any]] = {}
        winners: dict[str, Path] = {}
        for label in labels:
            if not tuning.trials or label in UNTUNED:
                chosen[label] = {}
                continue
            variant = table1_variant(label)
            scored = []
            for index, trial, values, run_dir in self._trials(variant):
                state, epoch = self._state(variant, tuning.seed, values, run_dir)
                entries.append({"stage": "tuning", "label": label, "what": f"trial {index + 1} {trial}",
                                "variant": variant, "state": state, "epoch": epoch, "dir": str(run_dir)})
                if state == "done":
                    protocol = self._resolved(variant, self._layers(variant, values))[1]["validation_protocol"]
                    metrics = read_json(run_dir / "metrics.json")
                    scored.append((metrics["valid"][protocol]["NDCG@10"], values, run_dir))
            if len(scored) == len(tuning.trials):
                best = max(scored, key=lambda entry: entry[0])  # first of equals, as `tuned_values`
                chosen[label] = dict(best[1])
                if not tuning.epochs:
                    winners[label] = best[2]
        for variant, seed in plan:
            run_dir = self.run_dir(variant, seed)
            state, epoch = "waits for tuning", None
            if variant.tuning_label in chosen:
                state, epoch = self._state(variant, seed, chosen[variant.tuning_label], run_dir)
                if state != "done" and seed == tuning.seed and variant.label in winners:
                    state, epoch = "done", None  # the winning trial becomes this run (no training)
            entries.append({"stage": "run", "label": variant.label, "what": f"seed {seed}", "variant": variant,
                            "state": state, "epoch": epoch, "dir": str(run_dir)})
        return entries

    def _state(self, variant: Variant, seed: int, chosen: dict[str, Any], run_dir: Path) -> tuple[str, int | None]:
        """("done" | "partial" | "to train", last finished epoch of a partial run) of one run folder."""
        if self._finished(variant, seed, chosen, run_dir):
            return "done", None
        staging = run_dir.with_name(f".{run_dir.name}.partial")
        if (staging / "checkpoint.pt").is_file() and (staging / "config.json").is_file():
            if self._matches(variant, seed, chosen, read_json(staging / "config.json"), 0):
                from auxrec.training.trainer import load_checkpoint

                checkpoint = load_checkpoint(staging / "checkpoint.pt")
                return "partial", int(checkpoint["epoch"])
        return "to train", None

    def _adopt_chosen_trial(self, variant: Variant, seed: int, run_dir: Path, chosen: dict[str, Any]) -> None:
        """The winning tuning trial *is* the seed-0 run (same settings and seed): copy, don't retrain.

        A seed-0 run left from an earlier choice (tuning picked other values since) is
        replaced by the trial too. `ensure_run` still checks the copied settings against
        the spec and evaluates the protocols the trial skipped.
        """
        trial = self.chosen_trials.get(variant.label)
        if seed != self.spec.tuning.seed or trial is None or not (trial / "metrics.json").is_file():
            return
        if self._finished(variant, seed, chosen, run_dir):
            return  # already this run, perhaps evaluated under more protocols than the trial
        self._hold_workdir()
        if (run_dir / "metrics.json").is_file():
            self.log(f"  {run_dir} was trained with values tuning no longer chooses; "
                     f"using the winning trial {trial} instead")
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(run_dir.with_name(f".{run_dir.name}.partial"), ignore_errors=True)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(trial, run_dir)


def training_time_left(entries: Sequence[dict[str, Any]]) -> tuple[float, int]:
    """(seconds, runs without an estimate) for the unfinished entries of `Reproduction.status`.

    Each costs the median training time of finished runs of the same variant (else of the
    same model with any modalities, else of the model), less the share of epochs saved.
    """
    def kinds(variant: Variant) -> list[str]:
        return [variant.key, variant.model + "+", variant.model] if variant.aux else [variant.key]

    finished: dict[str, list[tuple[float, int]]] = {}
    for entry in entries:
        log = Path(entry["dir"]) / "training_log.json"
        if entry["state"] == "done" and log.is_file():
            record = read_json(log)
            if record.get("epochs"):
                for kind in kinds(entry["variant"]):
                    finished.setdefault(kind, []).append((training_seconds(record) or 0.0, len(record["epochs"])))
    seconds, unknown = 0.0, 0
    for entry in entries:
        if entry["state"] == "done":
            continue
        known = next((finished[kind] for kind in kinds(entry["variant"]) if kind in finished), None)
        if not known:
            unknown += 1
            continue
        run_seconds = statistics.median(s for s, _ in known)
        run_epochs = statistics.median(e for _, e in known)
        seconds += run_seconds * max(0.0, 1 - (entry["epoch"] or 0) / run_epochs)
    return seconds, unknown


# -- collecting saved results ---------------------------------------------------------
def collect(records: Sequence[dict[str, Any]], protocol: str, split: str = "test"
            ) -> dict[str, dict[int, dict[str, float]]]:
    """label → seed → metrics (``split``, ``protocol``) from run records."""
    table: dict[str, dict[int, dict[str, float]]] = {}
    for record in records:
        table.setdefault(record["variant"].label, {})[record["seed"]] = record["metrics"][split][protocol]
    return table


def _same_settings(config: dict[str, Any], variant: Variant, model_config: dict[str, Any],
                   training: dict[str, Any], epochs_trained: int) -> bool:
    """Whether a saved run is the run the spec asks for (see `same_training` for training settings)."""
    if config.get("model") != variant.model:
        return False
    wanted_model_config, wanted_training = comparable_settings(
        {"model": variant.model, "model_config": model_config, "training": training})
    saved_model_config, saved_training = comparable_settings(config)
    return (saved_model_config == wanted_model_config
            # a run of an earlier revision (a fix changed its numbers since) is retrained
            and recorded_revisions(config) == current_revisions(variant.model, wanted_model_config,
                                                                bool(_features_of(variant)))
            and same_training(saved_training, wanted_training, epochs_trained)
            and sorted(config.get("item_features", {})) == sorted(_features_of(variant)))


def _epochs_trained(run_dir: Path) -> int:
    log = run_dir / "training_log.json"
    if not log.is_file():
        return 0
    return len(read_json(log).get("epochs", []))


def _expected_cost(variant: Variant) -> int:
    """Rough relative training time, for scheduling only."""
    return lookup(variant.model)[0].relative_cost + (1 if variant.aux else 0)


def _features_of(variant: Variant) -> tuple[str, ...]:
    model_class, _ = lookup(variant.model)
    return tuple(dict.fromkeys([*model_class.required_features, *variant.aux]))


def _progress_bar(enabled: bool, total: int) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    disable=not enabled or total == 0, transient=True)


# -- rendering ------------------------------------------------------------------------
def render(
    reproduction: Reproduction, targets: Sequence[str], records: Sequence[dict[str, Any]], seeds: SeedCounts,
    protocols: Sequence[str],
) -> list[Path]:
    """Write every requested table and figure under ``reproduction.reports``; returns the paths."""
    from auxrec.reporting import tables

    spec = reproduction.spec
    out = reproduction.reports
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    interim = " — interim: the runs finished so far" if reproduction.finished_only else ""
    for protocol in protocols:
        results = collect(records, protocol)
        if "table1" in targets:
            means, stds = {}, {}
            for variant in TABLE1:
                per_seed = [results[variant.label][s] for s in range(seeds.table1) if s in results.get(variant.label, {})]
                if per_seed:
                    spread = {m: tables.mean_and_std([r[m] for r in per_seed]) for m in METRIC_NAMES}
                    means[variant.label] = {m: mean for m, (mean, _) in spread.items()}
                    stds[variant.label] = {m: std for m, (_, std) in spread.items()}
            table = tables.table1(f"table1-{protocol}", f"Table 1 — {spec.name}, test, {protocol} "
                                  f"({seeds.table1} seed(s)){interim}", means, BASELINES, stds=stds)
            written += table.write(out)
        if "table2" in targets:
            per_seed_ndcg = {label: {s: results[label][s]["NDCG@10"] for s in range(seeds.table2)
                                     if s in results.get(label, {})} for pair in PAIRS for label in pair}
            table, tests = tables.table2(f"table2-{protocol}", f"Table 2 — {spec.name}, test NDCG@10, {protocol}: "
                                         f"paired t-test with and without auxiliary information{interim}", per_seed_ndcg,
                                         PAIRS)
            written += table.write(out)
            path = out / f"table2-{protocol}.json"
            _write_json(path, {"per_seed_ndcg@10": per_seed_ndcg,
                               "tests": {label: test.to_json() for label, test in tests.items()}})
            written.append(path)
        if "table3" in targets:
            values: dict[str, dict[str, tuple[float, float, int]]] = {}
            for row, family, variant in ablation_variants():
                scores = [results[variant.label][s]["NDCG@10"] for s in range(seeds.table3)
                          if s in results.get(variant.label, {})]
                mean, std = tables.mean_and_std(scores)
                values.setdefault(family, {})[row] = (mean, std, len(scores))
            table = tables.table3(f"table3-{protocol}", f"Table 3 — {spec.name}, ablation, test NDCG@10, {protocol}{interim}",
                                  values, [row for row, _, _ in ABLATION_ROWS])
            written += table.write(out)
    written += _write_runs_csv(records, out)
    seed0_runs = {record["variant"].label: record["run"] for record in records if record["seed"] == 0}
    for figure, labels, draw in (("figure2", FIGURE2_MODELS, _figure2), ("figure3", ("SASRec+",), _figure3)):
        if figure not in targets:
            continue
        missing = [label for label in labels if label not in seed0_runs]
        if missing:  # only in an interim report: otherwise every planned run exists by now
            reproduction.log(f"{figure}: left out, waiting for the seed-0 run of {', '.join(missing)}")
        else:
            written += draw(reproduction, seed0_runs)
    return written


def _write_runs_csv(records: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    """Every run's test metrics per protocol and its training time: the raw material of all tables.

    ``fit_seconds`` is the last (re)start's time, ``training_seconds`` the epochs' time over all starts,
    ``trained_on`` the device (runs of one report may come from several machines).
    """
    import pandas as pd

    rows = []
    for record in records:
        log_path = record["run"] / "training_log.json"
        log = read_json(log_path) if log_path.is_file() else {}
        for protocol, values in record["metrics"]["test"].items():
            rows.append({"label": record["variant"].label, "variant": record["variant"].key, "seed": record["seed"],
                         "protocol": protocol, **values, "fit_seconds": log.get("fit_seconds"),
                         "training_seconds": training_seconds(log), "trained_on": trained_on(record["run"])})
    path = out / "runs.csv"
    existing = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    frame = pd.concat([existing, pd.DataFrame(rows)], ignore_index=True)
    if not frame.empty:
        frame = frame.drop_duplicates(subset=["variant", "seed", "protocol"], keep="last")
        frame = frame.sort_values(["variant", "protocol", "seed"])
    write_text_atomic(path, frame.to_csv(index=False))
    return [path]


def _figure2(reproduction: Reproduction, seed0_runs: dict[str, Path]) -> list[Path]:
    from auxrec.reporting.analysis import case_study
    from auxrec.reporting.figures import plot_case_study

    models, dataset = {}, None
    for label in FIGURE2_MODELS:
        _, model, dataset = load_run(seed0_runs[label])
        models[label] = model
    figures = reproduction.spec.figures
    users = case_study(dataset, models, n_users=figures.case_study_users, n_recent=figures.case_study_recent, seed=0)
    path = plot_case_study(users, reproduction.reports / "figure2-case-study.png",
                           title=f"{reproduction.spec.name}: recent history and each model's top-1 next item (seed 0)")
    summary = reproduction.reports / "figure2-case-study.json"
    _write_json(summary, [{"user": u.user, "history": [i.title for i in u.history], "target": u.target.title,
                           "predictions": {m: {"title": item.title, "hit": hit} for m, (item, hit) in
                                           u.predictions.items()}} for u in users])
    return [path, summary]


def _figure3(reproduction: Reproduction, seed0_runs: dict[str, Path]) -> list[Path]:
    from auxrec.reporting.analysis import attention_analysis
    from auxrec.reporting.figures import plot_attention_heatmap, plot_elbow

    _, model, dataset = load_run(seed0_runs["SASRec+"])
    figures = reproduction.spec.figures
    analysis = attention_analysis(dataset, model, n_clusters=figures.attention_clusters,
                                  set_size=figures.attention_set_size, seed=0)
    out = reproduction.reports
    elbow = plot_elbow(analysis.k_values, analysis.inertias, analysis.elbow_k, out / "figure3-elbow.png")
    heatmap = plot_attention_heatmap(analysis, out / "figure3-attention.png")
    summary = out / "figure3-attention.json"
    _write_json(summary, analysis.to_json())
    return [elbow, heatmap, summary]


def reproduce(
    spec: ReproductionSpec, targets: Sequence[str], workdir: Path, reports: Path,
    protocols: Sequence[str] | None = None, seeds: int | None = None, log: Callable[[str], None] = print,
    progress: bool = True, jobs: int = 1, finished_only: bool = False, cached_features: bool = False,
) -> dict[str, Any]:
    """Run what ``targets`` need (reusing finished runs, training ``jobs`` at a time) and render their reports.

    ``finished_only`` renders interim reports from the runs finished so far and trains nothing.
    ``cached_features`` trains on the item features already embedded in ``workdir`` (no raw
    data or encoders needed), instead of checking them against the raw data first.
    """
    from auxrec.evaluation.evaluator import check_protocol

    chosen_targets = expand_targets(targets)
    protocols = list(protocols or spec.protocols)
    for protocol in protocols:
        check_protocol(protocol)
    counts = SeedCounts.from_spec(spec, seeds)
    started = time.perf_counter()
    with Reproduction(spec, workdir, reports, log, progress, jobs, finished_only, cached_features) as reproduction:
        reproduction.ensure_data()
        # Runs are always evaluated under every protocol of the spec, so a later report for
        # another protocol needs no retraining.
        records = reproduction.run(chosen_targets, counts, list(dict.fromkeys([*spec.protocols, *protocols])))
        written = render(reproduction, chosen_targets, records, counts, protocols)
        trained = reproduction.trained
    seconds = time.perf_counter() - started
    summary = {"dataset": spec.name, "targets": chosen_targets, "protocols": protocols,
               "seeds": dataclasses.asdict(counts), "runs": len(records), "trained": trained, "jobs": jobs,
               **({"finished_only": True} if finished_only else {}),
               "wall_seconds": round(seconds, 1),
               "spec": str(spec.path), "workdir": str(Path(workdir).resolve()), "files": [str(p) for p in written]}
    history_path = Path(reports) / "reproduce-log.json"
    history = read_json(history_path) if history_path.is_file() else []
    history = [*history, {k: v for k, v in summary.items() if k != "files"}]
    _write_json(history_path, history)
    write_index(spec, Path(reports), history)
    return summary


def _devices_paragraph(runs_csv: Path) -> list[str]:
    """Which devices trained the runs of a report, and their summed training time (from runs.csv).

    A report's wall times count only what its invocations trained; runs trained elsewhere
    (another machine, an earlier work folder) are reused, so this says where they came from.
    """
    import pandas as pd

    if not runs_csv.is_file():
        return []
    frame = pd.read_csv(runs_csv)
    if "trained_on" not in frame.columns or frame.empty:
        return []
    runs = frame.drop_duplicates(subset=["variant", "seed"]).fillna({"trained_on": "unknown"})
    lines = ["| trained on | runs | training time, summed over runs (other tuning trials not counted) |", "|---|---|---|"]
    for device, group in runs.groupby("trained_on", sort=True):
        lines.append(f"| {device} | {len(group)} | {group['training_seconds'].sum() / 3600:.2f} h |")
    return lines


def write_index(spec: ReproductionSpec, reports: Path, history: Sequence[dict[str, Any]]) -> Path:
    """``reports/README.md``: every table and figure present in the folder, on one page."""
    lines = [f"# {spec.name}: reproduction report", "", spec.description, "",
             "Rendered by `auxrec reproduce` from the saved runs (`runs.csv` holds every run's metrics).", "",
             "| invocation | targets | protocols | seeds (T1/T2/T3) | runs (trained by it) | jobs | wall time |",
             "|---|---|---|---|---|---|---|"]
    for index, entry in enumerate(history, start=1):
        seeds = entry.get("seeds", {})
        targets = ", ".join(entry["targets"]) + (" (interim: finished runs only)" if entry.get("finished_only") else "")
        runs = f"{entry['runs']}" + (f" ({entry['trained']})" if "trained" in entry else "")
        lines.append(f"| {index} | {targets} | {', '.join(entry['protocols'])} | "
                     f"{seeds.get('table1')}/{seeds.get('table2')}/{seeds.get('table3')} | {runs} | "
                     f"{entry.get('jobs', 1)} | "
                     f"{entry['wall_seconds'] / 60:.1f} min |")
    lines += ["", *_devices_paragraph(reports / "runs.csv")]
    lines.append("")
    for table in ("table1", "table2", "table3"):
        for path in sorted(reports.glob(f"{table}-*.md")):
            lines += [path.read_text().strip(), ""]
    figures = [("figure2-case-study.png", "Figure 2: case study"), ("figure3-elbow.png", "Figure 3: elbow curve"),
               ("figure3-attention.png", "Figure 3: attention similarity between user clusters")]
    for name, caption in figures:
        if (reports / name).is_file():
            lines += [f"**{caption}**", "", f"![{caption}]({name})", ""]
    if (reports / "tuning.json").is_file():
        tuning = read_json(reports / "tuning.json")
        lines += ["**Tuning** (shared grid " + json.dumps(tuning.get("grid", {})) + ", seed "
                  f"{tuning.get('seed')}, chosen by {tuning.get('criterion')})", "",
                  "| model | trials (valid NDCG@10) | chosen |", "|---|---|---|"]
        for label, entry in tuning.get("models", {}).items():
            trials = "; ".join(f"{t['values']} → {t['valid_ndcg@10']:.4f}" for t in entry.get("trials", [])) or "–"
            lines.append(f"| {label} | {trials} | {entry.get('chosen') or entry.get('note', '')} |")
        lines.append("")
    path = reports / "README.md"
    write_text_atomic(path, "\n".join(lines))
    return path
