"""The reports of `auxrec reproduce`, rendered from saved results only: tables, figures, runs.csv, README.md.

Nothing here trains or reads a run folder: `auxrec.experiments.reproduce` hands over each
run's saved numbers (`ReportedRun`), which runs form which table (`PaperLayout`) and, for
the figures, a loader of seed-0 models. Files written into ``REPORTS/``:

- ``table{1,2,3}-PROTOCOL.{md,csv,tex}`` (`auxrec.reporting.tables`), ``table2-PROTOCOL.json``;
- ``table{1,2}-groups-PROTOCOL.{md,csv,tex}``: Tables 1 and 2 per group of test targets (cold/warm,
  popularity terciles, novel/repeated, same-time validation and test), from each run's
  breakdown; ``table2-groups-PROTOCOL.json`` with the tests;
- ``runs.csv``: every run's test metrics per protocol and its training time, merged with earlier ones;
- ``figure2-case-study.{png,json}``, ``figure3-{elbow,attention}.png``, ``figure3-attention.json``;
- ``README.md``: all of the above on one page, with the invocations (``reproduce-log.json``) and
  the tuning record (``tuning.json``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from auxrec.data.dataset import PreparedDataset
from auxrec.evaluation.metrics import METRIC_NAMES
from auxrec.io import read_json, write_text_atomic
from auxrec.io import write_json_atomic as _write_json
from auxrec.reporting import tables
from auxrec.reporting.analysis import attention_analysis, case_study
from auxrec.reporting.figures import plot_attention_heatmap, plot_case_study, plot_elbow

# split → protocol → metric → value, as a run's metrics.json holds them
RunMetrics = Mapping[str, Mapping[str, Mapping[str, float]]]
# label → (fitted model, its dataset) of the label's seed-0 run
ModelLoader = Callable[[str], tuple[Any, PreparedDataset]]


@dataclass(frozen=True)
class ReportedRun:
    """One saved run, as the reports see it."""

    label: str  # the row it fills
    variant: str  # its folder name (``sasrec+text-image-tabular.concat``), one per trained configuration
    seed: int
    metrics: RunMetrics
    fit_seconds: float | None  # the last (re)start's time
    training_seconds: float | None  # the epochs' time over all starts
    trained_on: str | None  # the device(s) that trained it
    # split → protocol → group → value → cell, as its breakdown.json holds them (empty: none saved)
    breakdowns: Mapping[str, Mapping[str, tables.Breakdown]] = field(default_factory=dict)


@dataclass(frozen=True)
class AblationCell:
    """One cell of Table 3: a row (modalities and fusion) of a family's column, filled by run ``label``."""

    row: str
    family: str
    label: str


@dataclass(frozen=True)
class PaperLayout:
    """Which runs (by label) make each table and figure; `auxrec.experiments.plan` defines the paper's."""

    table1: tuple[str, ...]  # Table 1's models, in order
    baselines: tuple[str, ...]  # Table 1's models without auxiliary information
    pairs: tuple[tuple[str, str], ...]  # Table 2: (without, with) auxiliary information
    ablation_rows: tuple[str, ...]  # Table 3's rows, in order
    ablation: tuple[AblationCell, ...]  # Table 3's cells
    figure2: tuple[str, ...]  # the models of the case study
    figure3: str  # the model whose attention is analysed


class FigureSettings(Protocol):
    """The figures' settings (a spec's ``[figures]``, `auxrec.experiments.specs.FigureSpec`)."""

    @property
    def case_study_users(self) -> int: ...  # users shown in Figure 2

    @property
    def case_study_recent(self) -> int: ...  # history items shown per user

    @property
    def attention_clusters(self) -> int: ...  # user clusters of Figure 3

    @property
    def attention_set_size(self) -> int: ...  # users per cluster whose attention is compared


class SeedsPerTable(Protocol):
    """How many seeds (0, 1, ...) each table reports (`auxrec.experiments.plan.SeedCounts`)."""

    @property
    def table1(self) -> int: ...

    @property
    def table2(self) -> int: ...

    @property
    def table3(self) -> int: ...


def collect(runs: Sequence[ReportedRun], protocol: str, split: str = "test"
            ) -> dict[str, dict[int, Mapping[str, float]]]:
    """label → seed → metrics (``split``, ``protocol``) of ``runs``."""
    table: dict[str, dict[int, Mapping[str, float]]] = {}
    for run in runs:
        table.setdefault(run.label, {})[run.seed] = run.metrics[split][protocol]
    return table


def collect_breakdowns(runs: Sequence[ReportedRun], protocol: str, labels: Sequence[str], seeds: int,
                       split: str = "test") -> dict[str, dict[int, tables.Breakdown]]:
    """label → seed → breakdown (``split``, ``protocol``) of the runs of ``labels`` with seed < ``seeds``."""
    found: dict[str, dict[int, tables.Breakdown]] = {label: {} for label in labels}
    for run in runs:
        breakdown = run.breakdowns.get(split, {}).get(protocol)
        if run.label in found and run.seed < seeds and breakdown:
            found[run.label][run.seed] = breakdown
    return found


def render(
    name: str, reports: Path, layout: PaperLayout, targets: Sequence[str], runs: Sequence[ReportedRun],
    seeds: SeedsPerTable, protocols: Sequence[str], figures: FigureSettings, load_seed0: ModelLoader,
    interim: bool = False, log: Callable[[str], None] = print,
) -> list[Path]:
    """Write every requested table and figure of dataset ``name`` under ``reports``; returns the paths.

    ``interim`` marks the tables as made of the runs finished so far; a figure whose seed-0
    runs are not among them is left out (and said so in ``log``).
    """
    out = reports
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    note = " — interim: the runs finished so far" if interim else ""
    for protocol in protocols:
        results = collect(runs, protocol)
        if "table1" in targets:
            means, stds = {}, {}
            for label in layout.table1:
                per_seed = [results[label][s] for s in range(seeds.table1) if s in results.get(label, {})]
                if per_seed:
                    spread = {m: tables.mean_and_std([r[m] for r in per_seed]) for m in METRIC_NAMES}
                    means[label] = {m: mean for m, (mean, _) in spread.items()}
                    stds[label] = {m: std for m, (_, std) in spread.items()}
            table = tables.table1(f"table1-{protocol}", f"Table 1 — {name}, test, {protocol} "
                                  f"({seeds.table1} seed(s)){note}", means, layout.baselines, stds=stds)
            written += table.write(out)
            groups = collect_breakdowns(runs, protocol, layout.table1, seeds.table1)
            if any(groups.values()):
                written += tables.table1_groups(
                    f"table1-groups-{protocol}", f"Table 1 by target group — {name}, test NDCG@10, {protocol} "
                    f"({seeds.table1} seed(s)){note}", groups).write(out)
        if "table2" in targets:
            per_seed_ndcg = {label: {s: results[label][s]["NDCG@10"] for s in range(seeds.table2)
                                     if s in results.get(label, {})} for pair in layout.pairs for label in pair}
            table, tests = tables.table2(f"table2-{protocol}", f"Table 2 — {name}, test NDCG@10, {protocol}: "
                                         f"paired t-test with and without auxiliary information{note}",
                                         per_seed_ndcg, layout.pairs)
            written += table.write(out)
            path = out / f"table2-{protocol}.json"
            _write_json(path, {"per_seed_ndcg@10": per_seed_ndcg,
                               "tests": {label: test.to_json() for label, test in tests.items()}})
            written.append(path)
            labels = [label for pair in layout.pairs for label in pair]
            groups = collect_breakdowns(runs, protocol, labels, seeds.table2)
            if any(groups.values()):
                table, group_tests = tables.table2_groups(
                    f"table2-groups-{protocol}", f"Table 2 by target group — {name}, test NDCG@10, {protocol}: "
                    f"with and without auxiliary information{note}", groups, layout.pairs)
                written += table.write(out)
                path = out / f"table2-groups-{protocol}.json"
                _write_json(path, {"tests": [{"with": label, "group": group, "value": value, **test.to_json()}
                                             for (label, group, value), test in group_tests.items()]})
                written.append(path)
        if "table3" in targets:
            values: dict[str, dict[str, tuple[float, float, int]]] = {}
            for cell in layout.ablation:
                scores = [results[cell.label][s]["NDCG@10"] for s in range(seeds.table3)
                          if s in results.get(cell.label, {})]
                mean, std = tables.mean_and_std(scores)
                values.setdefault(cell.family, {})[cell.row] = (mean, std, len(scores))
            table = tables.table3(f"table3-{protocol}", f"Table 3 — {name}, ablation, test NDCG@10, {protocol}{note}",
                                  values, list(layout.ablation_rows))
            written += table.write(out)
    written += write_runs_csv(runs, out)
    seed0 = {run.label for run in runs if run.seed == 0}
    for figure, labels in (("figure2", layout.figure2), ("figure3", (layout.figure3,))):
        if figure not in targets:
            continue
        missing = [label for label in labels if label not in seed0]
        if missing:  # only in an interim report: otherwise every planned run exists by now
            log(f"{figure}: left out, waiting for the seed-0 run of {', '.join(missing)}")
        elif figure == "figure2":
            written += figure2(name, out, layout.figure2, figures, load_seed0)
        else:
            written += figure3(out, layout.figure3, figures, load_seed0)
    return written


def write_runs_csv(runs: Sequence[ReportedRun], out: Path) -> list[Path]:
    """Every run's test metrics per protocol and its training time: the raw material of all tables.

    ``fit_seconds`` is the last (re)start's time, ``training_seconds`` the epochs' time over all starts,
    ``trained_on`` the device (runs of one report may come from several machines). Runs of
    earlier invocations stay, unless run again.
    """
    rows = []
    for run in runs:
        for protocol, values in run.metrics["test"].items():
            rows.append({"label": run.label, "variant": run.variant, "seed": run.seed,
                         "protocol": protocol, **values, "fit_seconds": run.fit_seconds,
                         "training_seconds": run.training_seconds, "trained_on": run.trained_on})
    path = out / "runs.csv"
    existing = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    frame = pd.concat([existing, pd.DataFrame(rows)], ignore_index=True)
    if not frame.empty:
        frame = frame.drop_duplicates(subset=["variant", "seed", "protocol"], keep="last")
        frame = frame.sort_values(["variant", "protocol", "seed"])
    write_text_atomic(path, frame.to_csv(index=False))
    return [path]


def figure2(name: str, out: Path, labels: Sequence[str], settings: FigureSettings,
            load_seed0: ModelLoader) -> list[Path]:
    """The case study: recent history and each model's top-1 next item for a few users (seed 0)."""
    models, dataset = {}, None
    for label in labels:
        model, dataset = load_seed0(label)
        models[label] = model
    assert dataset is not None, "figure 2 needs at least one model"
    users = case_study(dataset, models, n_users=settings.case_study_users, n_recent=settings.case_study_recent,
                       seed=0)
    path = plot_case_study(users, out / "figure2-case-study.png",
                           title=f"{name}: recent history and each model's top-1 next item (seed 0)")
    summary = out / "figure2-case-study.json"
    _write_json(summary, [{"user": u.user, "history": [i.title for i in u.history], "target": u.target.title,
                           "predictions": {m: {"title": item.title, "hit": hit} for m, (item, hit) in
                                           u.predictions.items()}} for u in users])
    return [path, summary]


def figure3(out: Path, label: str, settings: FigureSettings, load_seed0: ModelLoader) -> list[Path]:
    """Attention similarity between user clusters of ``label``'s seed-0 run, and the elbow that chose them."""
    model, dataset = load_seed0(label)
    analysis = attention_analysis(dataset, model, n_clusters=settings.attention_clusters,
                                  set_size=settings.attention_set_size, seed=0)
    elbow = plot_elbow(analysis.k_values, analysis.inertias, analysis.elbow_k, out / "figure3-elbow.png")
    heatmap = plot_attention_heatmap(analysis, out / "figure3-attention.png")
    summary = out / "figure3-attention.json"
    _write_json(summary, analysis.to_json())
    return [elbow, heatmap, summary]


def devices_paragraph(runs_csv: Path) -> list[str]:
    """Which devices trained the runs of a report, and their summed training time (from runs.csv).

    A report's wall times count only what its invocations trained; runs trained elsewhere
    (another machine, an earlier work folder) are reused, so this says where they came from.
    """
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


def write_index(name: str, description: str, reports: Path, history: Sequence[Mapping[str, Any]]) -> Path:
    """``reports/README.md``: every table and figure present in the folder, on one page.

    ``history`` holds one entry per invocation, as ``reproduce-log.json`` keeps them
    (older entries may lack the keys added since).
    """
    lines = [f"# {name}: reproduction report", "", description, "",
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
    lines += ["", *devices_paragraph(reports / "runs.csv")]
    lines.append("")
    for table in ("table1", "table2", "table3"):  # each table, then its breakdown by target group
        for path in sorted(reports.glob(f"{table}-*.md"), key=lambda path: ("-groups-" in path.name, path.name)):
            lines += [path.read_text().strip(), ""]
    figures = [("figure2-case-study.png", "Figure 2: case study"), ("figure3-elbow.png", "Figure 3: elbow curve"),
               ("figure3-attention.png", "Figure 3: attention similarity between user clusters")]
    for file_name, caption in figures:
        if (reports / file_name).is_file():
            lines += [f"**{caption}**", "", f"![{caption}]({file_name})", ""]
    if (reports / "tuning.json").is_file():
        tuning = read_json(reports / "tuning.json")
        lines += ["**Tuning** (shared grid " + json.dumps(tuning.get("grid", {})) + ", seed "
                  f"{tuning.get('seed')}, chosen by {tuning.get('criterion')})", "",
                  "| model | trials (valid NDCG@10) | chosen |", "|---|---|---|"]
        for label, tuned in tuning.get("models", {}).items():
            trials = "; ".join(f"{t['values']} → {t['valid_ndcg@10']:.4f}" for t in tuned.get("trials", [])) or "–"
            lines.append(f"| {label} | {trials} | {tuned.get('chosen') or tuned.get('note', '')} |")
        lines.append("")
    path = reports / "README.md"
    write_text_atomic(path, "\n".join(lines))
    return path
