"""Drawing dropout noise ahead on a second thread changes no number, whatever happens between batches."""

from __future__ import annotations

import copy
import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch

from auxrec.experiments.runs import build_model, seeded
from auxrec.models import lookup
from auxrec.models.dropout_noise import DropoutReplay, NoisePrefetcher, NoiseSite, replaying_dropout
from auxrec.training.trainer import epoch_batches


@pytest.fixture
def two_threads():
    """The prefetcher runs only where the job has a second intra-op thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _forward(replay: DropoutReplay, x: torch.Tensor, p: float = 0.2) -> torch.Tensor:
    """Two sites visited by two groups of rows, as `counted_states` does."""
    outputs = []
    with replaying_dropout(replay):
        for rows in (torch.tensor([0, 2]), torch.tensor([1, 3])):
            replay.start_group(rows, x.shape[1])
            first = replay.apply(x[rows], p, positional=(1,))
            outputs.append(replay.apply(first * 2, p, positional=(1,)))
    replay.finish()
    return torch.cat(outputs)


def _batches(prefetcher: NoisePrefetcher | None, shapes, foreign_draw_before=()):
    torch.manual_seed(3)
    results = []
    for step, (rows, length) in enumerate(shapes):
        if step in foreign_draw_before:
            torch.rand(5)  # someone else draws from the global generator between two batches
        x = torch.ones(rows, length, 3)
        results.append(_forward(DropoutReplay(rows, length, prefetcher), x))
    return results, torch.get_rng_state()


@pytest.mark.parametrize(("shapes", "foreign"), [
    ([(4, 5)] * 6, ()),                               # every batch alike: hits after the first
    ([(4, 5), (4, 5), (4, 3), (4, 5), (4, 5)], ()),   # a shorter batch between
    ([(4, 5)] * 5, (2, 3)),                           # another draw from the global generator between
])
def test_drawing_ahead_gives_the_noise_drawn_in_place(two_threads, shapes, foreign):
    want, want_state = _batches(None, shapes, foreign)
    prefetcher = NoisePrefetcher()
    got, got_state = _batches(prefetcher, shapes, foreign)
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)
    assert torch.equal(got_state, want_state)  # the global stream left exactly where it would be
    assert prefetcher.hits >= 2
    if shapes[2] != shapes[0] or foreign:
        assert prefetcher.misses >= 1


def test_noise_site_draws_what_f_dropout_draws():
    torch.manual_seed(0)
    x = torch.ones(6, 7)
    want = torch.nn.functional.dropout(x, 0.3, training=True)
    torch.manual_seed(0)
    assert torch.equal(x * NoiseSite((6, 7), 1 - 0.3, torch.float32).draw(), want)


def test_one_thread_does_not_draw_ahead(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    prefetcher = NoisePrefetcher()
    _batches(prefetcher, [(4, 5)] * 3)
    assert prefetcher.pending is None and prefetcher.hits == 0


def test_stops_after_misses_in_a_row(two_threads):
    prefetcher = NoisePrefetcher()
    _batches(prefetcher, [(4, 5)] + [(4, 5)] * 6, foreign_draw_before=range(1, 7))
    assert prefetcher.misses == NoisePrefetcher.misses_before_stopping and not prefetcher.active


def test_copies_start_afresh(two_threads):
    prefetcher = NoisePrefetcher()
    _batches(prefetcher, [(4, 5)] * 2)
    assert prefetcher.pending is not None
    for fresh in (copy.deepcopy(prefetcher), pickle.loads(pickle.dumps(prefetcher))):
        assert fresh.pending is None and fresh.hits == 0


@pytest.mark.parametrize("name", ["sasrec", "bert4rec"])
def test_training_steps_identical_with_and_without_drawing_ahead(name, tiny_prepared, two_threads):
    def steps(draw_ahead: bool):
        _, config_class = lookup(name)
        with seeded(0):
            model = build_model(name, replace(config_class(), max_length=30), tiny_prepared, ())[0]
        model.train()
        if not draw_ahead:
            model.noise_prefetcher.misses_before_stopping = 0
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        torch.manual_seed(5)
        losses = []
        for _ in range(2):  # two epochs: the smaller last batch and the epoch boundary between
            for batch in epoch_batches(model, tiny_prepared, 16, np.random.default_rng(0)):
                optimizer.zero_grad()
                loss = model.loss(batch)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
        return losses, [p.detach().clone() for p in model.parameters()], model.noise_prefetcher
    want, want_weights, _ = steps(False)
    got, got_weights, prefetcher = steps(True)
    assert got == want
    assert all(torch.equal(g, w) for g, w in zip(got_weights, want_weights, strict=True))
    assert prefetcher.hits > 0  # BERT4Rec draws its masks while batching (numpy): drawn ahead too


def test_a_failed_draw_ahead_falls_back_to_drawing_in_place(two_threads, monkeypatch):
    want, want_state = _batches(None, [(4, 5)] * 3)
    prefetcher = NoisePrefetcher()

    def fails(*_):
        raise MemoryError("no room for the next batch's noise")

    monkeypatch.setattr("auxrec.models.dropout_noise._draw_ahead", fails)
    got, got_state = _batches(prefetcher, [(4, 5)] * 3)
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True)) and torch.equal(got_state, want_state)
