"""CPU training on length groups is the whole batch's computation: same loss, gradients and dropout draws."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from auxrec.data.ids import PADDING_ID
from auxrec.experiments.runs import build_model, seeded
from auxrec.models import lookup
from auxrec.models.transformer import length_groups
from auxrec.training.trainer import epoch_batches


def _model(name, dataset, aux=(), **settings):
    _, config_class = lookup(name)
    with seeded(0):
        model = build_model(name, replace(config_class(), max_length=30, **settings), dataset, aux)[0]
    model.train()
    return model


def _loss_and_gradients(model, batch, groups, monkeypatch):
    monkeypatch.setattr(type(model), "training_length_groups", groups)
    torch.manual_seed(7)
    model.zero_grad()
    loss = model.loss(batch)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None], torch.get_rng_state()


@pytest.mark.parametrize(("name", "aux", "settings"), [
    ("sasrec", (), {}),
    ("sasrec", (), {"loss": "bce"}),
    ("sasrec", ("text", "tabular"), {"aux_dropout": 0.3}),  # modality dropout: torch RNG too
    ("bert4rec", (), {"n_heads": 2}),
    ("bert4rec", ("text",), {"loss": "sampled", "n_negatives": 20}),
])
def test_groups_give_the_whole_batch_result(name, aux, settings, tiny_prepared, monkeypatch):
    model = _model(name, tiny_prepared, aux, **settings)
    batch = next(iter(epoch_batches(model, tiny_prepared, 32, np.random.default_rng(0))))
    lengths = (batch["inputs"] != PADDING_ID).sum(1)
    assert lengths.min() < batch["inputs"].shape[1] / 2  # the groups really trim something
    whole, whole_grads, whole_rng = _loss_and_gradients(model, batch, 1, monkeypatch)
    grouped, grouped_grads, grouped_rng = _loss_and_gradients(model, batch, 4, monkeypatch)
    # dropout with a different mask would move the loss by far more than rounding
    torch.testing.assert_close(grouped, whole, rtol=1e-5, atol=1e-6)
    assert len(grouped_grads) == len(whole_grads)
    for got, want in zip(grouped_grads, whole_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    assert torch.equal(grouped_rng, whole_rng)  # the random stream consumed exactly as without groups


def test_length_groups_sort_rows_by_length_and_cover_the_batch():
    sequences = torch.tensor([[0, 0, 5], [1, 2, 3], [0, 4, 4], [0, 0, 0], [7, 8, 9]])
    groups = length_groups(sequences, 2)
    assert sorted(torch.cat(groups).tolist()) == [0, 1, 2, 3, 4]
    assert groups[0].tolist() == [3, 0, 2]  # lengths 0, 1, 2 (stable), then the full rows
    assert length_groups(sequences[:1], 4)[0].tolist() == [0]


def test_evaluation_and_gpu_paths_do_not_group(tiny_prepared, monkeypatch):
    model = _model("sasrec", tiny_prepared)
    model.eval()
    batch = next(iter(epoch_batches(model, tiny_prepared, 32, np.random.default_rng(0))))
    counted = model.loss_positions(batch)
    states, targets = model.counted_states(batch["inputs"], counted, batch["targets"])
    hidden, _ = model.encode(batch["inputs"])
    assert torch.equal(states, hidden[counted]) and torch.equal(targets, batch["targets"][counted])
