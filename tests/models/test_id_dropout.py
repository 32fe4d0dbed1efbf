"""Id dropout (``aux_id_dropout``): in training, an item is sometimes its content alone, as a cold item is.

What it must do: act only in training and only with item features; zero whole id rows (not
rescaled, so a dropped item looks exactly like a never-seen one), the same rows on the input
and the output side of one batch; never touch BERT4Rec's [MASK] row; be seeded; and leave a
model without it (p = 0) exactly as it was.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from auxrec.models.bert4rec import BERT4Rec, BERT4RecConfig
from auxrec.models.sasrec import SASRec, SASRecConfig
from tests.models import test_fusion_gate
from tests.models.test_fusion_gate import build, features_for, histories, one_batch

tiny_prepared = test_fusion_gate.tiny_prepared  # the module-scoped fixture: 40 users, 150 items

MODELS = {"sasrec": (SASRec, SASRecConfig), "bert4rec": (BERT4Rec, BERT4RecConfig)}


@pytest.mark.parametrize("model_name", list(MODELS))
def test_id_dropout_zeroes_whole_id_rows_on_both_sides_of_one_batch(model_name, tiny_prepared):
    model = build(model_name, tiny_prepared, features_for(tiny_prepared.n_items), aux_id_dropout=0.5).train()
    n = model.n_items
    ids = model.item_embedding.weight
    content = model.fusion.all_items()[: n + 1].detach()
    with model.fusion_batch():
        keep = model._id_keep
        assert keep is not None and keep.shape == (model.n_embeddings, 1)
        table = model.output_embeddings().detach()
        dropped = keep[1: n + 1, 0].eq(0)
        assert 0.3 < dropped.float().mean() < 0.7  # about half of the items, whole rows
        assert torch.allclose(table[1:][dropped], content[1:][dropped])  # content alone, as a cold item
        assert torch.allclose(table[1:][~dropped], (ids[1: n + 1] + content[1:])[~dropped])  # not rescaled
        items = torch.arange(1, n + 1)
        assert torch.allclose(model.output_rows(items), table[1:], atol=1e-6)  # the output side's rows
        assert torch.equal(model.id_rows(items), ids[1: n + 1] * keep[1: n + 1])  # the input side's, same draw
        if model_name == "bert4rec":
            assert keep[model.mask_id, 0] == 1  # [MASK] is not an item: never dropped
    assert model._id_keep is None


@pytest.mark.parametrize("model_name", list(MODELS))
def test_id_dropout_only_in_training_and_seeded(model_name, tiny_prepared):
    features = features_for(tiny_prepared.n_items)
    without = build(model_name, tiny_prepared, features).eval()
    with_dropout = build(model_name, tiny_prepared, features, aux_id_dropout=0.3).eval()
    batch = histories(tiny_prepared)
    assert torch.equal(with_dropout.score(batch), without.score(batch))  # inference: every id as trained

    training_batch = one_batch(with_dropout, tiny_prepared)
    with_dropout.train(), without.train()
    torch.manual_seed(5)
    first = with_dropout.loss(training_batch)
    torch.manual_seed(5)
    assert torch.equal(with_dropout.loss(training_batch), first)  # seeded: reproducible
    torch.manual_seed(5)
    assert not torch.equal(without.loss(training_batch), first)  # and it does drop something
    first.backward()
    assert with_dropout.item_embedding.weight.grad is not None


@pytest.mark.parametrize("model_name", list(MODELS))
def test_id_dropout_does_nothing_without_item_features(model_name, tiny_prepared):
    plain = build(model_name, tiny_prepared).train()
    asked = build(model_name, tiny_prepared, aux_id_dropout=0.5).train()
    training_batch = one_batch(plain, tiny_prepared)
    torch.manual_seed(1)
    expected = plain.loss(training_batch)
    torch.manual_seed(1)
    assert torch.equal(asked.loss(training_batch), expected)


@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_config_rejects_an_id_dropout_outside_zero_to_one(value):
    from auxrec.config import resolve_config
    from auxrec.exceptions import ConfigError

    with pytest.raises(ConfigError, match="aux_id_dropout"):
        resolve_config(SASRecConfig, [("--set", {"aux_id_dropout": value})])


def test_sampled_softmax_sees_the_same_dropped_rows(tiny_prepared):
    model = build("sasrec", tiny_prepared, features_for(tiny_prepared.n_items), aux_id_dropout=0.5,
                  loss="sampled", n_negatives=20).train()
    batch = model.make_batch(tiny_prepared, model.training_units(tiny_prepared)[0][:16], np.random.default_rng(0))
    torch.manual_seed(2)
    loss = model.loss(batch)
    assert torch.isfinite(loss)
    torch.manual_seed(2)
    assert torch.equal(model.loss(batch), loss)
