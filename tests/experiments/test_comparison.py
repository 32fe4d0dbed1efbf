"""`auxrec compare`: variants found from the runs themselves, paired by seed, tested, Holm-adjusted.

The run folders here are written by hand with the files the comparison reads (config.json,
metrics.json, breakdown.json), so that every number in the expected results is known.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from auxrec.cli import USER_ERROR_EXIT_CODE, app
from auxrec.exceptions import RunError
from auxrec.experiments.comparison import compare, load_run_for_comparison

runner = CliRunner()
BASE = {0: (0.40, 0.10), 1: (0.42, 0.11), 2: (0.41, 0.09)}  # seed → (sampled, full) NDCG@10
PLUS = {0: (0.45, 0.10), 1: (0.46, 0.12), 2: (0.47, 0.10)}


def write_run(folder, seed, sampled, full, *, aux=False, fingerprint="abc", dropout=0.2, finished=True,
              cold=(0.0, 0.01)):
    folder.mkdir(parents=True)
    model_config = {"dropout": dropout, "max_length": 50}
    if aux:
        model_config["aux_on_output"] = True
    config = {"model": "sasrec", "model_config": model_config, "training": {"batch_size": 128, "progress": False},
              "seed": seed, "data": {"path": "unused", "fingerprint": fingerprint},
              "item_features": {"text": {"source": "basic-text", "dim": 8}} if aux else {}}
    (folder / "config.json").write_text(json.dumps(config))
    if not finished:
        return folder
    metrics = {"test": {p: {"NDCG@10": v, "HR@10": 2 * v} for p, v in (("sampled", sampled), ("full", full))}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    breakdown = {"test": {"sampled": {"all": {"all": {"NDCG@10": sampled, "HR@10": 2 * sampled, "users": 10}},
                                      "target": {"warm": {"NDCG@10": sampled + 0.1, "HR@10": 0.5, "users": 7},
                                                 "cold": {"NDCG@10": cold[0], "HR@10": 0.0, "users": 3}}}}}
    (folder / "breakdown.json").write_text(json.dumps(breakdown))
    return folder


@pytest.fixture
def two_variants(tmp_path):
    runs = [write_run(tmp_path / f"sasrec-s{s}", s, *BASE[s]) for s in BASE]
    runs += [write_run(tmp_path / f"plus-s{s}", s, *PLUS[s], aux=True, cold=(0.1 + s / 100, 0.0)) for s in PLUS]
    return runs


def test_variants_are_found_from_the_runs_and_compared_seed_by_seed(two_variants):
    result = compare([load_run_for_comparison(run) for run in two_variants])
    assert result.baseline == "sasrec" and list(result.variants) == ["sasrec", "sasrec+text"]
    assert [(row.protocol, row.group) for row in result.rows] == [("sampled", "all"), ("full", "all")]
    for row, column in zip(result.rows, (0, 1), strict=True):
        without = [BASE[s][column] for s in (0, 1, 2)]
        with_aux = [PLUS[s][column] for s in (0, 1, 2)]
        expected = stats.ttest_rel(with_aux, without)
        assert row.test.n == 3 and row.seeds == (0, 1, 2)
        assert row.test.mean_difference == pytest.approx(np.mean(with_aux) - np.mean(without))
        assert row.test.p == pytest.approx(expected.pvalue)
    ps = sorted(row.test.p for row in result.rows)
    assert min(row.test.p_holm for row in result.rows) == pytest.approx(min(1, 2 * ps[0]))


def test_only_shared_seeds_are_paired_and_the_first_run_names_the_baseline(tmp_path):
    runs = [write_run(tmp_path / f"plus-s{s}", s, *PLUS[s], aux=True) for s in (0, 1, 2)]
    runs += [write_run(tmp_path / f"sasrec-s{s}", s, 0.4 + s / 50, 0.1) for s in (1, 2, 3)]
    result = compare([load_run_for_comparison(run) for run in runs], protocols=["sampled"])
    assert result.baseline == "sasrec+text"
    assert result.rows[0].seeds == (1, 2) and result.rows[0].test.n == 2


def test_target_groups_come_from_the_breakdowns(two_variants):
    result = compare([load_run_for_comparison(run) for run in two_variants], protocols=["sampled"], by_group=True)
    cold = next(row for row in result.rows if (row.group, row.value) == ("target", "cold"))
    assert cold.users == 3
    assert cold.test.mean_without == pytest.approx(0.0) and cold.test.mean_with == pytest.approx(0.11)
    with pytest.raises(RunError, match="groups hold"):
        compare([load_run_for_comparison(run) for run in two_variants], metric="MAP", by_group=True)


def test_a_setting_that_differs_names_the_variant(tmp_path):
    runs = [write_run(tmp_path / f"a-s{s}", s, 0.4 + s / 100, 0.1) for s in (0, 1)]
    runs += [write_run(tmp_path / f"b-s{s}", s, 0.5 - s / 100, 0.1, dropout=0.5) for s in (0, 1)]
    result = compare([load_run_for_comparison(run) for run in runs])
    assert list(result.variants) == ["sasrec", "sasrec (dropout=0.5)"]


@pytest.mark.parametrize("problem", ["other data", "same seed twice", "one variant", "unfinished", "protocol"])
def test_comparisons_that_would_mean_something_else_are_refused(tmp_path, problem):
    runs = [write_run(tmp_path / f"a-s{s}", s, 0.4, 0.1) for s in (0, 1)]
    if problem == "other data":
        runs.append(write_run(tmp_path / "b-s0", 0, 0.5, 0.1, aux=True, fingerprint="other"))
        message = "different data"
    elif problem == "same seed twice":
        runs.append(write_run(tmp_path / "a-again-s0", 0, 0.5, 0.1))
        message = "same seed 0"
    elif problem == "one variant":
        message = "same variant"
    elif problem == "unfinished":
        runs.append(write_run(tmp_path / "b-s0", 0, 0.5, 0.1, aux=True, finished=False))
        message = "has not finished"
    else:
        runs.append(write_run(tmp_path / "b-s0", 0, 0.5, 0.1, aux=True))
        with pytest.raises(RunError, match="popularity"):
            compare([load_run_for_comparison(run) for run in runs], protocols=["popularity"])
        return
    with pytest.raises(RunError, match=message):
        compare([load_run_for_comparison(run) for run in runs])


def test_cli_prints_the_table_and_writes_csv_and_json(two_variants, tmp_path):
    out = tmp_path / "comparison.csv"
    result = runner.invoke(app, ["compare", *map(str, two_variants), "--by-group", "--out", str(out)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "sasrec+text against sasrec" in result.output and "target: cold" in result.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("candidate,protocol,group,value,metric,n,users")
    assert len(lines) == 1 + 3 + 1  # sampled: all, warm, cold; full: all
    assert ".0" in result.output and "…" not in result.output
    narrow = runner.invoke(app, ["compare", *map(str, two_variants), "--by-group"], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0, narrow.output
    assert "…" not in narrow.output  # no number cut short: one line per row instead of a squeezed table
    assert "sampled, target: cold (" in narrow.output and "Holm" in narrow.output
    as_json = tmp_path / "comparison.json"
    assert runner.invoke(app, ["compare", *map(str, two_variants), "--out", str(as_json)]).exit_code == 0
    assert json.loads(as_json.read_text())["baseline"] == "sasrec"


def test_cli_user_mistakes_are_one_line(two_variants, tmp_path):
    bad_out = runner.invoke(app, ["compare", *map(str, two_variants), "--out", str(tmp_path / "x.txt")])
    assert bad_out.exit_code == USER_ERROR_EXIT_CODE and "Traceback" not in bad_out.output
    not_a_run = runner.invoke(app, ["compare", str(tmp_path), str(two_variants[0])])
    assert not_a_run.exit_code == USER_ERROR_EXIT_CODE and "not an auxrec run" in not_a_run.output
