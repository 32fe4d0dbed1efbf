"""Table rendering and the paired t-test (pure functions, no training)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from auxrec.evaluation.metrics import METRIC_NAMES
from auxrec.reporting.statistics import paired_t_test
from auxrec.reporting.tables import table1, table2, table3


def test_paired_t_test_matches_scipy_and_its_interval_holds_the_mean() -> None:
    rng = np.random.default_rng(0)
    without = rng.normal(0.45, 0.01, size=10)
    with_aux = without + rng.normal(0.02, 0.005, size=10)
    test = paired_t_test(without, with_aux)
    reference = stats.ttest_rel(with_aux, without)
    assert test.t == pytest.approx(reference.statistic)
    assert test.p == pytest.approx(reference.pvalue)
    assert test.dof == 9 and test.n == 10
    assert test.ci_low < test.mean_difference < test.ci_high
    assert test.std_with == pytest.approx(np.std(with_aux, ddof=1))


def test_paired_t_test_without_variance_concludes_nothing() -> None:
    test = paired_t_test([0.1, 0.2], [0.2, 0.3])  # identical differences
    assert math.isnan(test.t) and math.isnan(test.p)
    assert test.to_json()["p"] is None
    with pytest.raises(Exception, match="equally long"):
        paired_t_test([0.1], [0.1, 0.2])


def test_table1_marks_top_two_per_row_and_improvement_over_best_baseline(tmp_path: Path) -> None:
    means = {"PopRec": dict.fromkeys(METRIC_NAMES, 0.1), "SASRec": dict.fromkeys(METRIC_NAMES, 0.4),
             "SASRec+": dict.fromkeys(METRIC_NAMES, 0.5)}
    table = table1("t1", "Table 1", means, baselines=["PopRec", "SASRec"])
    assert table.numbers.loc["NDCG@10", "Improve (%)"] == pytest.approx(25.0)
    markdown = table.markdown()
    assert "**0.5000**" in markdown and "_0.4000_" in markdown and "+25.0 %" in markdown
    assert "\\textbf{0.5000}" in table.latex() and "\\underline{0.4000}" in table.latex()
    paths = table.write(tmp_path)
    assert sorted(p.suffix for p in paths) == [".csv", ".md", ".tex"]
    assert "SASRec+" in (tmp_path / "t1.csv").read_text()


def test_table2_and_table3_shapes() -> None:
    per_seed = {"SASRec": {0: 0.40, 1: 0.41, 2: 0.42}, "SASRec+": {0: 0.43, 1: 0.45, 2: 0.44}}
    table, tests = table2("t2", "Table 2", per_seed, [("SASRec", "SASRec+"), ("BERT4Rec", "BERT4Rec+")])
    assert list(table.numbers.columns) == ["SASRec", "SASRec+"]  # missing pair left out
    assert tests["SASRec+"].n == 3 and tests["SASRec+"].p < 0.05
    rows = ["(1) Text", "(2) Image"]
    ablation = table3("t3", "Table 3", {"SASRec+": {"(1) Text": (0.5, 0.01, 2), "(2) Image": (0.4, 0.0, 2)}}, rows)
    assert ablation.numbers.shape == (2, 1)
    assert "**0.50000 ± 0.01000**" in ablation.markdown()


def _breakdown(all_: float, novel: float, repeated: float | None) -> dict:
    return {"all": {"all": {"NDCG@10": all_, "HR@10": 0.0, "users": 10}},
            "history": {"novel": {"NDCG@10": novel, "HR@10": 0.0, "users": 8},
                        "repeated": {"NDCG@10": repeated, "HR@10": 0.0, "users": 2 if repeated is not None else 0}}}


def test_group_tables_show_where_a_lead_comes_from_and_adjust_every_group_test_together() -> None:
    """A model that leads overall only through repeated targets is visibly behind on novel ones."""
    from auxrec.reporting.statistics import holm
    from auxrec.reporting.tables import table1_groups, table2_groups

    per_seed = {"BPR": {0: _breakdown(0.30, 0.05, 1.30), 1: _breakdown(0.32, 0.07, 1.32)},
                "SASRec": {0: _breakdown(0.20, 0.15, 0.40), 1: _breakdown(0.22, 0.16, 0.46)},
                "SASRec+": {0: _breakdown(0.25, 0.20, 0.45), 1: _breakdown(0.26, 0.22, 0.42)}}
    table = table1_groups("t1g", "groups", per_seed)
    assert list(table.numbers.index) == ["all (10 users)", "history: novel (8 users)", "history: repeated (2 users)"]
    assert table.numbers.at["all (10 users)", "BPR"] == pytest.approx(0.31)
    assert ("all (10 users)", "BPR") in table.best and ("history: novel (8 users)", "SASRec+") in table.best
    assert "0.3100 ± 0.0141" in table.markdown()

    pairs = [("SASRec", "SASRec+")]
    table, tests = table2_groups("t2g", "groups", per_seed, pairs)
    assert set(tests) == {("SASRec+", "all", "all"), ("SASRec+", "history", "novel"), ("SASRec+", "history", "repeated")}
    assert tests["SASRec+", "history", "novel"].mean_difference == pytest.approx(0.055)
    expected = holm([test.p for test in tests.values()])  # one family: every group of every pair
    assert [test.p_holm for test in tests.values()] == pytest.approx(list(expected))
    assert "SASRec+ − SASRec" in table.cells.columns

    # a group empty in every run is left out rather than shown as NaN
    empty = {label: {seed: _breakdown(0.2, 0.2, None) for seed in (0, 1)} for label in ("SASRec", "SASRec+")}
    assert len(table1_groups("t", "c", empty).numbers) == 2
