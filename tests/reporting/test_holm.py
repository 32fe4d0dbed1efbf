"""Holm–Bonferroni adjustment and Table 2's row of adjusted p-values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from auxrec.exceptions import ConfigError
from auxrec.reporting.statistics import holm
from auxrec.reporting.tables import table2


def test_holm_by_hand() -> None:
    # sorted: .005 x4 = .02, .01 x3 = .03, .03 x2 = .06, .04 x1 = .04 -> max(.06, .04) = .06 (monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.02]) == pytest.approx([0.02])  # one test: unchanged
    assert holm([0.4, 0.3]) == pytest.approx([0.6, 0.6])  # .3 x2 = .6; .4 x1 = .4 -> .6
    assert holm([0.5, 0.6, 0.9]) == pytest.approx([1.0, 1.0, 1.0])  # capped at 1
    assert holm([0.01, 0.01]) == pytest.approx([0.02, 0.02])  # ties get one value, whatever their order
    assert holm([]).shape == (0,)


def test_holm_ignores_nan_and_keeps_it() -> None:
    adjusted = holm([0.01, math.nan, 0.04])
    assert math.isnan(adjusted[1])
    assert adjusted[[0, 2]] == pytest.approx([0.02, 0.04])  # m = 2, not 3
    assert np.isnan(holm([math.nan, math.nan])).all()


def test_holm_is_monotone_and_never_below_the_raw_p() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.2, size=12)
    adjusted = holm(p)
    order = np.argsort(p)
    assert (np.diff(adjusted[order]) >= 0).all() and (adjusted >= p).all() and (adjusted <= 1).all()


def test_holm_refuses_values_that_are_not_p_values() -> None:
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        holm([0.1, 1.5])
    with pytest.raises(ConfigError):
        holm([[0.1, 0.2]])


def test_table2_has_the_holm_row_over_its_pairs() -> None:
    per_seed = {"SASRec": {0: 0.40, 1: 0.41, 2: 0.42}, "SASRec+": {0: 0.43, 1: 0.45, 2: 0.44},
                "BERT4Rec": {0: 0.30, 1: 0.31, 2: 0.29}, "BERT4Rec+": {0: 0.31, 1: 0.30, 2: 0.30}}
    table, tests = table2("t2", "Table 2", per_seed, [("SASRec", "SASRec+"), ("BERT4Rec", "BERT4Rec+")])
    raw = [tests["SASRec+"].p, tests["BERT4Rec+"].p]
    assert raw[0] < raw[1]
    # two tests: the smaller p doubles, the larger is max(2 * smaller, larger)
    assert tests["SASRec+"].p_holm == pytest.approx(2 * raw[0])
    assert tests["BERT4Rec+"].p_holm == pytest.approx(max(2 * raw[0], raw[1]))
    row = "Holm-adjusted p (2 tests)"
    assert list(table.numbers.index).index(row) == list(table.numbers.index).index("p-value") + 1
    assert table.numbers.at[row, "SASRec+"] == pytest.approx(2 * raw[0])
    assert table.cells.at[row, "SASRec+"] == f"{2 * raw[0]:.2g}"
    assert f"| {row} |" in table.markdown() and row in table.numbers.to_csv()
    assert json.loads(json.dumps(tests["SASRec+"].to_json()))["p_holm"] == pytest.approx(2 * raw[0])


def test_table2_family_counts_only_the_pairs_present_and_tests_with_a_p_value() -> None:
    per_seed = {"SASRec": {0: 0.40, 1: 0.41, 2: 0.42}, "SASRec+": {0: 0.43, 1: 0.45, 2: 0.44},
                "BERT4Rec": {0: 0.30}, "BERT4Rec+": {0: 0.31}}  # one seed: no p-value
    table, tests = table2("t2", "Table 2", per_seed, [("SASRec", "SASRec+"), ("BERT4Rec", "BERT4Rec+"),
                                                      ("KeBERT4Rec", "KeBERT4Rec+")])
    assert "Holm-adjusted p (1 test)" in table.numbers.index
    assert tests["SASRec+"].p_holm == pytest.approx(tests["SASRec+"].p)
    assert math.isnan(tests["BERT4Rec+"].p_holm) and tests["BERT4Rec+"].to_json()["p_holm"] is None
    assert table.cells.at["Holm-adjusted p (1 test)", "BERT4Rec+"] == "–"


def test_a_test_outside_a_family_saves_no_holm_field() -> None:
    from auxrec.reporting.statistics import paired_t_test

    assert "p_holm" not in paired_t_test([0.1, 0.2, 0.3], [0.2, 0.2, 0.5]).to_json()
