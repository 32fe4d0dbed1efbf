import numpy as np

from auxrec.evaluation.negatives import load_or_draw_negatives, negatives_path


def test_negatives_avoid_history_and_are_distinct(tiny_prepared):
    dataset = tiny_prepared
    for split in ("valid", "test"):
        sampled = load_or_draw_negatives(dataset, split, "uniform", seed=0, n_negatives=10)
        assert sampled.negatives.shape == (len(dataset.targets(split)[0]), 10)
        for user, row in zip(sampled.users, sampled.negatives):
            assert len(set(row.tolist())) == 10
            assert not set(row.tolist()) & set(dataset.all_sequences.of(int(user)).tolist())
            assert row.min() >= 1 and row.max() <= dataset.n_items


def test_same_seed_same_negatives_other_seed_differs(tiny_prepared):
    first = load_or_draw_negatives(tiny_prepared, "test", "uniform", seed=3, n_negatives=10)
    negatives_path(tiny_prepared, "uniform", 3).unlink()  # force a fresh draw
    again = load_or_draw_negatives(tiny_prepared, "test", "uniform", seed=3, n_negatives=10)
    other = load_or_draw_negatives(tiny_prepared, "test", "uniform", seed=4, n_negatives=10)
    assert np.array_equal(first.negatives, again.negatives)
    assert not np.array_equal(first.negatives, other.negatives)


def test_popularity_negatives_follow_training_counts(tiny_prepared):
    sampled = load_or_draw_negatives(tiny_prepared, "test", "popularity", seed=0, n_negatives=5)
    counts = tiny_prepared.train_item_counts
    assert (counts[sampled.negatives] > 0).all()


def test_saved_negatives_are_reused(tiny_prepared):
    load_or_draw_negatives(tiny_prepared, "test", "uniform", seed=9, n_negatives=10)
    path = negatives_path(tiny_prepared, "uniform", 9)
    stamp = path.stat().st_mtime_ns
    load_or_draw_negatives(tiny_prepared, "valid", "uniform", seed=9, n_negatives=10)
    assert path.stat().st_mtime_ns == stamp


def test_full_with_history_lets_history_items_compete(tiny_prepared):
    from auxrec.evaluation.evaluator import evaluate

    class HistoryLover:
        """Scores the user's own history highest: only matters when history competes."""

        name = "history-lover"
        history_length = 0

        def score(self, histories, candidates=None):
            import torch

            scores = torch.zeros((len(histories.users), tiny_prepared.n_items + 1))
            for row, user in enumerate(histories.users):
                scores[row, tiny_prepared.history("test").of(int(user))] = 10.0
            return scores

    excluded = evaluate(HistoryLover(), tiny_prepared, "test", "full", seed=0)
    competing = evaluate(HistoryLover(), tiny_prepared, "test", "full-with-history", seed=0)
    assert (competing.ranks >= excluded.ranks).all() and (competing.ranks > excluded.ranks).any()
