import numpy as np
import torch

from auxrec.evaluation.ranking import rank_among_all, rank_first_column


def test_sampled_rank_counts_better_candidates():
    scores = np.array([[0.5, 0.1, 0.9, 0.2], [0.9, 0.1, 0.2, 0.3]])
    assert rank_first_column(scores).tolist() == [2, 1]


def test_ties_are_pessimistic():
    # A constant scorer must get the worst rank, never a lucky one.
    assert rank_first_column(np.zeros((3, 101))).tolist() == [101, 101, 101]
    assert rank_first_column(np.array([[1.0, 1.0, 0.0]])).tolist() == [2]


def test_nan_target_ranks_last():
    assert rank_first_column(np.array([[np.nan, 0.1, 0.2]])).tolist() == [3]


def test_full_rank_ignores_padding_and_excluded_history():
    # columns: 0 = padding, items 1..5
    scores = torch.tensor([[100.0, 0.1, 0.5, 0.9, 0.3, 0.2]])
    assert rank_among_all(scores, np.array([2])).tolist() == [2]  # only item 3 beats it
    excluded = torch.zeros_like(scores, dtype=torch.bool)
    excluded[0, 3] = True
    assert rank_among_all(scores, np.array([2]), excluded).tolist() == [1]


def test_full_rank_never_excludes_the_target_and_ties_pessimistic():
    scores = torch.zeros((1, 6))
    excluded = torch.zeros_like(scores, dtype=torch.bool)
    excluded[0, 2] = True  # the target itself is in the history
    assert rank_among_all(scores, np.array([2]), excluded).tolist() == [5]
