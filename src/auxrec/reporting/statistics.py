"""Paired significance tests over seeded runs (the paper's Table 2).

Runs with the same seed share their initial state of the data pipeline and their sampled
evaluation negatives, so a model and its ``+`` variant are compared seed by seed with a
paired t-test (`scipy.stats.ttest_rel`), not as two independent samples. Table 2 tests
several pairs at once, so `holm` adjusts their p-values for multiple comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

import numpy as np
from scipy import stats

from auxrec.exceptions import ConfigError
from auxrec.io import finite_or_none

K = TypeVar("K")


@dataclass(frozen=True)
class PairedTest:
    """``with_aux`` against ``without`` over the same seeds."""

    n: int
    mean_without: float
    mean_with: float
    std_without: float  # sample standard deviation (ddof=1), as the paper reports
    std_with: float
    dof: int
    t: float
    p: float  # two-sided
    mean_difference: float  # with - without
    ci_low: float  # confidence interval of the mean difference
    ci_high: float
    confidence: float
    p_holm: float | None = None  # Holm-adjusted p within a family of tests (`holm`); None = not adjusted

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        if self.p_holm is None:  # saved reports from before the adjustment keep their exact form
            del values["p_holm"]
        return dict(finite_or_none(values))


def paired_t_test(without: Sequence[float], with_aux: Sequence[float], confidence: float = 0.95) -> PairedTest:
    """Two-sided paired t-test of ``with_aux - without`` and its confidence interval.

    With fewer than two pairs, or identical differences (zero variance), t and p are NaN
    and the interval collapses to the mean difference: nothing can be concluded.
    """
    a = np.asarray(without, dtype=np.float64)
    b = np.asarray(with_aux, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ConfigError(f"paired test needs two equally long lists of values, got {a.shape} and {b.shape}")
    n = int(a.size)
    differences = b - a
    mean_difference = float(differences.mean()) if n else math.nan
    t = p = math.nan
    low = high = mean_difference
    # Differences equal up to rounding (e.g. 0.2-0.1 vs 0.3-0.2) have no variance to test.
    if n >= 2 and float(differences.std(ddof=1)) > 1e-12 * max(1.0, float(np.abs(differences).max())):
        result = stats.ttest_rel(b, a)
        t, p = float(result.statistic), float(result.pvalue)
        half_width = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * differences.std(ddof=1) / math.sqrt(n))
        low, high = mean_difference - half_width, mean_difference + half_width
    return PairedTest(
        n=n, mean_without=float(a.mean()) if n else math.nan, mean_with=float(b.mean()) if n else math.nan,
        std_without=float(a.std(ddof=1)) if n >= 2 else math.nan, std_with=float(b.std(ddof=1)) if n >= 2 else math.nan,
        dof=max(n - 1, 0), t=t, p=p, mean_difference=mean_difference, ci_low=low, ci_high=high, confidence=confidence,
    )


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the order given.

    With the m non-NaN p-values sorted ascending, p_(1) <= ... <= p_(m), the adjusted
    value of p_(i) is ``min(1, max_{j <= i} (m - j + 1) * p_(j))``: step-down, monotone in
    the raw p-values, capped at 1. Rejecting where the adjusted value is below α controls
    the family-wise error rate at α for any dependence between the tests. NaN p-values
    (tests that could not be run) are not counted in m and stay NaN.
    """
    values = np.asarray(p_values, dtype=np.float64)
    if values.ndim != 1:
        raise ConfigError(f"holm needs a flat list of p-values, got shape {values.shape}")
    finite = ~np.isnan(values)
    outside = values[finite & ((values < 0) | (values > 1))]
    if outside.size:
        raise ConfigError(f"p-values must lie in [0, 1]; got {outside[0]}")
    adjusted = np.full(values.shape, math.nan)
    present = np.flatnonzero(finite)
    order = present[np.argsort(values[present], kind="stable")]
    m = len(order)
    steps = (m - np.arange(m)) * values[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(steps))
    return adjusted


def with_holm(tests: Mapping[K, PairedTest]) -> dict[K, PairedTest]:
    """The tests of one family with ``p_holm`` set (`holm` over their p-values; NaN where no test ran)."""
    adjusted = holm([test.p for test in tests.values()])
    return {key: replace(test, p_holm=float(p)) for (key, test), p in zip(tests.items(), adjusted, strict=True)}
