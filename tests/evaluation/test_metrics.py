import math

import numpy as np
import pytest

from auxrec.evaluation.metrics import METRIC_NAMES, average_precision, hit_at_k, ndcg_at_k, summarize


def test_hit_rate_by_hand():
    ranks = np.array([1, 3, 5, 6, 11])
    assert hit_at_k(ranks, 1).tolist() == [1, 0, 0, 0, 0]
    assert hit_at_k(ranks, 5).tolist() == [1, 1, 1, 0, 0]
    assert hit_at_k(ranks, 10).tolist() == [1, 1, 1, 1, 0]


def test_ndcg_by_hand():
    ranks = np.array([1, 2, 3, 10, 11])
    expected = [1.0, 1 / math.log2(3), 1 / math.log2(4), 1 / math.log2(11), 0.0]
    assert ndcg_at_k(ranks, 10) == pytest.approx(expected)
    assert ndcg_at_k(ranks, 5) == pytest.approx([1.0, 1 / math.log2(3), 0.5, 0.0, 0.0])


def test_map_is_mean_reciprocal_rank():
    assert average_precision(np.array([1, 2, 4])) == pytest.approx([1.0, 0.5, 0.25])


def test_summarize_names_and_means():
    summary = summarize(np.array([1, 2, 20]))
    assert tuple(summary) == METRIC_NAMES
    assert summary["HR@1"] == pytest.approx(1 / 3)
    assert summary["HR@10"] == pytest.approx(2 / 3)
    assert summary["NDCG@10"] == pytest.approx((1 + 1 / math.log2(3)) / 3)
    assert summary["MAP"] == pytest.approx((1 + 0.5 + 0.05) / 3)


def test_ranks_must_be_one_based():
    with pytest.raises(ValueError):
        hit_at_k(np.array([0, 1]), 5)
