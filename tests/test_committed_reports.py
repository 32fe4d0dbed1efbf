"""The reports committed under reports/ agree with their own saved per-run results.

The training runs behind them live outside the repository (hours of CPU or a borrowed GPU),
but each report folder keeps every run's metrics (runs.csv) and Table 2's per-seed values
(table2-*.json). These tests recompute the tables from those, as `auxrec reproduce` would
when it re-renders from saved runs, so a hand-edited or stale report fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

REPORTS = Path(__file__).resolve().parents[1] / "reports"
TABLE2 = sorted(REPORTS.glob("*/table2-*.json"))
TABLE1 = sorted(REPORTS.glob("*/table1-*.csv"))


@pytest.mark.parametrize("path", TABLE2, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_table2_statistics_follow_from_its_per_seed_values(path: Path) -> None:
    saved = json.loads(path.read_text())
    per_seed = saved["per_seed_ndcg@10"]
    for with_aux, test in saved["tests"].items():
        without = with_aux.rstrip("+")
        seeds = sorted(set(per_seed[without]) & set(per_seed[with_aux]), key=int)
        a = np.array([per_seed[without][s] for s in seeds])
        b = np.array([per_seed[with_aux][s] for s in seeds])
        assert test["n"] == len(seeds) and test["dof"] == len(seeds) - 1
        assert test["mean_without"] == pytest.approx(a.mean()) and test["mean_with"] == pytest.approx(b.mean())
        assert test["mean_difference"] == pytest.approx((b - a).mean())
        if len(seeds) > 1 and np.std(b - a) > 0:
            result = stats.ttest_rel(b, a)
            assert test["t"] == pytest.approx(result.statistic) and test["p"] == pytest.approx(result.pvalue)
            low, high = result.confidence_interval(test["confidence"])
            assert (test["ci_low"], test["ci_high"]) == (pytest.approx(low), pytest.approx(high))


@pytest.mark.parametrize("path", TABLE2, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_table2_per_seed_values_are_the_runs_metrics(path: Path) -> None:
    protocol = path.stem.split("-", 1)[1]
    runs = pd.read_csv(path.parent / "runs.csv")
    runs = runs[runs["protocol"] == protocol].set_index(["label", "seed"])["NDCG@10"]
    for label, values in json.loads(path.read_text())["per_seed_ndcg@10"].items():
        for seed, value in values.items():
            assert runs[(label, int(seed))] == pytest.approx(value, abs=1e-12)


@pytest.mark.parametrize("path", TABLE1, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_table1_is_the_mean_of_its_runs(path: Path) -> None:
    protocol = path.stem.split("-", 1)[1]
    table = pd.read_csv(path).set_index("metric")
    runs = pd.read_csv(path.parent / "runs.csv")
    runs = runs[runs["protocol"] == protocol]
    seeds = int(path.with_suffix(".md").read_text().split("(", 1)[1].split(" seed")[0])
    for label in table.columns.drop("Improve (%)"):
        chosen = runs[(runs["label"] == label) & (runs["seed"] < seeds)]
        assert len(chosen) == seeds or "interim" in path.with_suffix(".md").read_text()
        for metric in table.index:
            assert table.loc[metric, label] == pytest.approx(chosen[metric].mean(), abs=1e-12)


def test_every_dataset_has_tables_and_figures_under_both_protocols() -> None:
    for dataset in ("ml-100k", "ml-1m", "hm"):
        folder = REPORTS / dataset
        for table in ("table1", "table2", "table3"):
            for protocol in ("sampled", "full"):
                assert (folder / f"{table}-{protocol}.md").is_file(), f"{dataset}: {table}-{protocol}"
        for figure in ("figure2-case-study.png", "figure3-attention.png", "figure3-elbow.png"):
            assert (folder / figure).is_file(), f"{dataset}: {figure}"
