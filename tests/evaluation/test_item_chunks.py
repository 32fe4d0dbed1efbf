"""Full ranking a range of items at a time: the ranks of one piece, ties included, in bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from auxrec.evaluation.evaluator import ITEM_CHUNK, evaluate, history_mask, user_histories
from auxrec.evaluation.ranking import (
    count_per_row,
    item_ranges,
    rank_among_all,
    rank_among_item_ranges,
    top_k_among_item_ranges,
)
from auxrec.experiments.runs import seeded
from auxrec.models.bpr import BPR, BPRConfig
from auxrec.models.poprec import PopRec, PopRecConfig
from auxrec.models.sasrec import SASRec, SASRecConfig
from auxrec.training.config import TrainingConfig
from auxrec.training.trainer import fit

CHUNKS = (1, 7, 64, ITEM_CHUNK)
PROTOCOLS = ("full", "full-with-history")


def ranks_in_one_piece(model, dataset, split: str, exclude_history: bool) -> np.ndarray:
    """The full ranking as it was before chunks: one ``score`` call per batch, `rank_among_all`."""
    users, targets = dataset.targets(split)
    history = dataset.history(split)
    scores = model.score(user_histories(model, history, users)).float()
    excluded = history_mask(history, users, scores.shape[1]) if exclude_history else None
    return rank_among_all(scores, targets, excluded)


@pytest.fixture
def trained_sasrec(tiny_prepared):
    dataset = tiny_prepared
    with seeded(0):
        model = SASRec(SASRecConfig(max_length=20, hidden_dim=16, ffn_dim=16), n_users=dataset.n_users,
                       n_items=dataset.n_items)
        fit(model, dataset, TrainingConfig(epochs=3, batch_size=16, eval_every=3, validation_protocol="full",
                                           progress=False), 0)
    return model.eval(), dataset


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_chunked_ranks_equal_the_ranks_in_one_piece(protocol, trained_sasrec):
    model, dataset = trained_sasrec
    before = ranks_in_one_piece(model, dataset, "test", exclude_history=protocol == "full")
    for item_chunk in CHUNKS:
        result = evaluate(model, dataset, "test", protocol, seed=0, batch_size=11, item_chunk=item_chunk)
        assert np.array_equal(result.ranks, before), item_chunk


def test_ties_rank_the_same_in_chunks(trained_sasrec):
    """Half the catalogue, targets included, gets one item vector: exact ties across chunk borders."""
    model, dataset = trained_sasrec
    tied = torch.arange(1, dataset.n_items + 1)[::2]
    with torch.no_grad():
        model.item_embedding.weight[tied] = 0.0
        model.item_embedding.weight[tied, 0] = 1.0  # score = the state's first coordinate, exactly
    _, targets = dataset.targets("test")
    tied_targets = np.isin(targets, tied.numpy())
    assert tied_targets.sum() > 5
    before = ranks_in_one_piece(model, dataset, "test", exclude_history=True)
    for item_chunk in CHUNKS:
        result = evaluate(model, dataset, "test", "full", seed=0, item_chunk=item_chunk)
        assert np.array_equal(result.ranks, before), item_chunk
    # pessimistic: a tied target ranks below every tied competitor outside the user's history
    assert (before[tied_targets] > len(tied) / 2).all()


@pytest.mark.parametrize("model_class, config_class", [(PopRec, PopRecConfig), (BPR, BPRConfig)])
def test_models_without_item_ranges_are_chunked_through_candidates(model_class, config_class, tiny_prepared,
                                                                    monkeypatch):
    """PopRec's counts tie a lot; a catalogue beyond one chunk is scored through ``score``'s candidates."""
    with seeded(0):
        model = model_class(config_class(), n_users=tiny_prepared.n_users, n_items=tiny_prepared.n_items)
        fit(model, tiny_prepared, TrainingConfig(epochs=1, progress=False, validation_protocol="full"), 0)
    widest = []
    score = model.score

    def recording(histories, candidates=None):  # type: ignore[no-untyped-def]
        result = score(histories, candidates)
        widest.append(result.shape[1])
        return result

    monkeypatch.setattr(model, "score", recording)
    before = evaluate(model, tiny_prepared, "test", "full", seed=0).ranks
    assert widest == [tiny_prepared.n_items + 1]  # within one chunk: one call, as ever
    widest.clear()
    chunked = evaluate(model, tiny_prepared, "test", "full", seed=0, item_chunk=16).ranks
    assert max(widest) <= 16
    if model_class is PopRec:  # integer counts: exactly the same scores whichever way
        assert np.array_equal(chunked, before)
    else:  # a candidates dot product may round differently from the matrix product in the last bit
        assert np.abs(chunked - before).max() <= 1


def test_sequence_models_score_each_item_range_once_and_no_wider(trained_sasrec, monkeypatch):
    model, dataset = trained_sasrec
    widths: list[int] = []
    make_scorer = model.item_range_scorer

    def recording(histories):  # type: ignore[no-untyped-def]
        scorer = make_scorer(histories)

        def scores(start: int, stop: int) -> torch.Tensor:
            widths.append(stop - start)
            return scorer(start, stop)

        return scores

    monkeypatch.setattr(model, "item_range_scorer", recording)
    monkeypatch.setattr(model, "score", lambda *args: pytest.fail("the full matrix was scored"))
    users = len(dataset.targets("test")[0])
    evaluate(model, dataset, "test", "full", seed=0, batch_size=users, item_chunk=32)
    n_ranges = len(item_ranges(dataset.n_items + 1, 32))
    assert max(widths) <= 32
    # each range once, plus a second look at the ranges holding targets (at most all but the one in hand)
    assert n_ranges <= len(widths) <= 2 * n_ranges - 1
    widths.clear()
    evaluate(model, dataset, "test", "full", seed=0, batch_size=users)
    assert widths == [dataset.n_items + 1]  # a catalogue within one chunk is scored once


def test_range_ranks_equal_one_piece_ranks_with_ties_nan_and_exclusions():
    rng = np.random.default_rng(0)
    scores = torch.from_numpy(rng.integers(0, 4, size=(30, 41)).astype(np.float32))  # many ties
    scores[3, :] = torch.nan
    scores[4, 5] = torch.nan
    targets = rng.integers(1, 41, size=30)
    targets[4] = 5  # a NaN target ranks last
    excluded = torch.from_numpy(rng.random((30, 41)) < 0.2)
    for mask in (None, excluded):
        before = rank_among_all(scores, targets, mask)
        for item_chunk in (1, 2, 5, 40, 41, 100):
            ranks = rank_among_item_ranges(
                lambda start, stop: scores[:, start:stop], 41, item_chunk, targets,
                None if mask is None else (lambda start, stop: mask[:, start:stop]))  # noqa: B023
            assert np.array_equal(ranks, before), item_chunk


def test_top_k_in_ranges_is_the_top_k_of_the_whole_row():
    rng = np.random.default_rng(1)
    scores = torch.from_numpy(rng.integers(0, 6, size=(8, 50)).astype(np.float32))
    excluded = torch.from_numpy(rng.random((8, 50)) < 0.3)
    expected = scores.clone()
    expected[:, 0] = -torch.inf
    expected[excluded] = -torch.inf
    # best first, equal scores by lower item id
    order = torch.from_numpy(np.lexsort((np.arange(50)[None].repeat(8, 0), -expected.numpy()), axis=1))[:, :5]
    for item_chunk in (1, 3, 7, 50):
        values, items = top_k_among_item_ranges(lambda start, stop: scores[:, start:stop], 50, item_chunk, 5,
                                                lambda start, stop: excluded[:, start:stop])
        assert torch.equal(items, order) and torch.equal(values, expected.gather(1, order)), item_chunk
    values, items = top_k_among_item_ranges(lambda start, stop: scores[:, start:stop], 3, 2, 5)
    assert items.shape == (8, 3) and torch.isinf(values[:, -1]).all()  # padding only ever last


def test_item_chunk_must_be_positive(tiny_prepared):
    with pytest.raises(Exception, match="item_chunk"):
        evaluate(PopRec(PopRecConfig(), n_users=1, n_items=tiny_prepared.n_items), tiny_prepared, "test",
                 "full", seed=0, item_chunk=0)


def test_count_per_row_counts_like_a_sum():
    mask = torch.from_numpy(np.random.default_rng(2).random((7, 300)) < 0.4)
    assert torch.equal(count_per_row(mask), mask.sum(dim=1))
    assert count_per_row(mask).dtype == torch.long
    assert count_per_row(torch.zeros(0, 5, dtype=torch.bool)).shape == (0,)
