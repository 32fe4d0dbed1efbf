"""Compare finished runs of two or more variants seed by seed (`auxrec compare`).

Give it every run folder of the variants at once (e.g. ``runs/sasrec-s* runs/sasrec-plus-s*``).
Runs are grouped into **variants** by everything that defines them except the seed: the
model, its settings, the training settings and the item features it read (display-only
settings such as the device aside). The variant of the first run given is the baseline;
every other variant is compared with it on the seeds both have, by a paired t-test
(`paired_t_test`), per protocol and, with ``by_group``, per target group of the runs'
breakdowns (cold/warm targets, popularity terciles, novel/repeated, same-time ties). The
p-values of one comparison table are Holm-adjusted together (`holm`).

Runs on different data (another fingerprint), unfinished runs and a seed repeated within a
variant are errors: a paired comparison of those would silently mean something else.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from auxrec.exceptions import RunError
from auxrec.experiments.run_folder import RunFolder, comparable_settings
from auxrec.reporting.statistics import PairedTest, holm, paired_t_test
from auxrec.training.config import DISPLAY_ONLY

# Training settings that never change a run's numbers: a variant is the same on any device.
NOT_DEFINING_TRAINING = (*DISPLAY_ONLY, "device")
METRICS = ("NDCG@10", "HR@10", "NDCG@5", "HR@5", "HR@1", "MAP")
GROUP_METRICS = ("NDCG@10", "HR@10")  # what a run's breakdown.json holds per group


@dataclass(frozen=True)
class LoadedRun:
    path: Path
    seed: int
    key: str  # the variant: every defining setting except the seed, as canonical JSON
    description: dict[str, Any]
    fingerprint: str
    metrics: Mapping[str, Any]
    breakdowns: Mapping[str, Any]


@dataclass
class Variant:
    label: str
    runs: dict[int, LoadedRun] = field(default_factory=dict)  # by seed


@dataclass(frozen=True)
class ComparisonRow:
    candidate: str
    protocol: str
    group: str  # "all" for the whole split
    value: str
    metric: str
    seeds: tuple[int, ...]
    users: int | None  # users in the group (from the baseline's first seed); None when unknown
    test: PairedTest

    def to_json(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "protocol": self.protocol, "group": self.group, "value": self.value,
                "metric": self.metric, "seeds": list(self.seeds), "users": self.users, **self.test.to_json()}


@dataclass(frozen=True)
class Comparison:
    baseline: str
    split: str
    variants: dict[str, list[int]]  # label → seeds
    rows: list[ComparisonRow]

    def to_json(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "split": self.split, "variants": self.variants,
                "rows": [row.to_json() for row in self.rows]}


def load_run_for_comparison(path: Path) -> LoadedRun:
    """One finished run folder's seed, variant key, data fingerprint, metrics and breakdowns."""
    folder = RunFolder(path)
    if not folder.config_path.is_file():
        raise RunError(f"{path} is not an auxrec run (no {folder.config_path.name})")
    if not folder.is_finished():
        raise RunError(f"{path} has not finished (no {folder.metrics_path.name}); compare finished runs only")
    config = folder.read_config()
    model_settings, training = comparable_settings(config)
    for name in NOT_DEFINING_TRAINING:
        training.pop(name, None)
    features = {name: (info or {}).get("source") for name, info in sorted((config.get("item_features") or {}).items())}
    description = {"model": config["model"], "features": features, "model_config": model_settings,
                   "training": training}
    return LoadedRun(
        path=path, seed=int(config["seed"]), key=json.dumps(description, sort_keys=True),
        description=description, fingerprint=str(config.get("data", {}).get("fingerprint")),
        metrics=folder.read_metrics(), breakdowns=folder.read_breakdowns() if folder.breakdown_path.is_file() else {},
    )


def _label(description: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> str:
    """A variant's name: its model, + and its modalities, and the settings where it differs from the baseline."""
    label = description["model"]
    if description["features"]:
        label += "+" + ",".join(description["features"])
    if baseline is None:
        return label
    changed = []
    for section in ("model_config", "training"):
        mine, theirs = description[section], baseline[section]
        changed += [f"{name}={mine[name]}" for name in sorted(mine)
                    if name in theirs and mine[name] != theirs[name]]
    return label + (f" ({', '.join(changed)})" if changed else "")


def group_variants(runs: Sequence[LoadedRun]) -> list[Variant]:
    """Variants in the order their first run was given (the first is the baseline)."""
    if not runs:
        raise RunError("no runs to compare")
    fingerprints = {run.fingerprint for run in runs}
    if len(fingerprints) > 1:
        raise RunError("the runs were trained on different data (dataset fingerprints differ): "
                       + ", ".join(f"{run.path.name}={run.fingerprint[:12]}" for run in runs))
    by_key: dict[str, Variant] = {}
    first_description = runs[0].description
    for run in runs:
        variant = by_key.get(run.key)
        if variant is None:
            baseline = None if not by_key else first_description
            variant = by_key[run.key] = Variant(_label(run.description, baseline))
        if run.seed in variant.runs:
            raise RunError(f"{run.path} and {variant.runs[run.seed].path} are the same variant with the same "
                           f"seed {run.seed}; give each seed once")
        variant.runs[run.seed] = run
    variants = list(by_key.values())
    if len(variants) < 2:
        raise RunError("every run given is the same variant (same model, settings and features); give the runs "
                       "of at least two variants, e.g. `auxrec compare runs/sasrec-s* runs/sasrec-plus-s*`")
    labels = [variant.label for variant in variants]
    for index, variant in enumerate(variants):  # two variants that differ only outside the label
        if labels.count(variant.label) > 1:
            variant.label += f" #{index + 1}"
    return variants


def compare(runs: Sequence[LoadedRun], split: str = "test", protocols: Sequence[str] | None = None,
            metric: str = "NDCG@10", by_group: bool = False) -> Comparison:
    """Every variant against the first, paired by seed (see the module notes)."""
    if metric not in METRICS:
        raise RunError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if by_group and metric not in GROUP_METRICS:
        raise RunError(f"target groups hold {' and '.join(GROUP_METRICS)} only, not {metric}")
    variants = group_variants(runs)
    baseline = variants[0]
    available = set.intersection(*(set(run.metrics.get(split, {})) for v in variants for run in v.runs.values()))
    chosen = list(protocols) if protocols else sorted(available, key=lambda p: (p != "sampled", p))
    missing = [protocol for protocol in chosen if protocol not in available]
    if missing:
        raise RunError(f"not every run has {split} results under {', '.join(missing)} (all have: "
                       f"{', '.join(sorted(available)) or 'none'}); `auxrec evaluate RUN --protocol P` adds them")
    rows: list[ComparisonRow] = []
    for candidate in variants[1:]:
        seeds = tuple(sorted(set(baseline.runs) & set(candidate.runs)))
        if not seeds:
            raise RunError(f"{candidate.label} and {baseline.label} share no seed; a paired test needs the same seeds")
        for protocol in chosen:
            cells = [("all", "all")]
            if by_group:
                groups = baseline.runs[seeds[0]].breakdowns.get(split, {}).get(protocol, {})
                cells += [(group, value) for group, values in groups.items() if group != "all" for value in values]
            for group, value in cells:
                without = [_value(baseline.runs[s], split, protocol, group, value, metric) for s in seeds]
                with_aux = [_value(candidate.runs[s], split, protocol, group, value, metric) for s in seeds]
                users = _users(baseline.runs[seeds[0]], split, protocol, group, value)
                rows.append(ComparisonRow(candidate.label, protocol, group, value, metric, seeds, users,
                                          paired_t_test(without, with_aux)))
    adjusted = holm([row.test.p for row in rows])
    rows = [ComparisonRow(row.candidate, row.protocol, row.group, row.value, row.metric, row.seeds, row.users,
                          _with_holm(row.test, p_holm)) for row, p_holm in zip(rows, adjusted, strict=True)]
    return Comparison(baseline.label, split, {v.label: sorted(v.runs) for v in variants}, rows)


def _with_holm(test: PairedTest, p_holm: float) -> PairedTest:
    return replace(test, p_holm=None if math.isnan(p_holm) else float(p_holm))


def _value(run: LoadedRun, split: str, protocol: str, group: str, value: str, metric: str) -> float:
    if group == "all":
        found = run.metrics.get(split, {}).get(protocol, {}).get(metric)
    else:
        cell = run.breakdowns.get(split, {}).get(protocol, {}).get(group, {}).get(value)
        if cell is None:
            raise RunError(f"{run.path} has no {split}/{protocol} breakdown for {group}={value} "
                           "(trained before breakdowns, or on other data)")
        found = cell.get(metric)
    return math.nan if found is None else float(found)


def _users(run: LoadedRun, split: str, protocol: str, group: str, value: str) -> int | None:
    cell = run.breakdowns.get(split, {}).get(protocol, {}).get(group, {}).get(value)
    return int(cell["users"]) if cell and cell.get("users") is not None else None


def comparison_csv(comparison: Comparison) -> str:
    """The rows as CSV (one line per candidate, protocol and group)."""
    columns = ["candidate", "protocol", "group", "value", "metric", "n", "users", "mean_without", "std_without",
               "mean_with", "std_with", "mean_difference", "ci_low", "ci_high", "t", "p", "p_holm"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in comparison.rows:
        writer.writerow({**row.to_json(), "p_holm": row.test.p_holm})
    return buffer.getvalue()
