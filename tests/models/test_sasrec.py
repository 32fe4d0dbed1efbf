"""SASRec's training positions: a real input item and its real next item, nothing else (issue 13)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from auxrec.data.ids import PADDING_ID
from auxrec.experiments.runs import seeded
from auxrec.models.sasrec import SASRec, SASRecConfig

MAX_LENGTH = 5  # shorter than many tiny users' histories, so full windows occur too


def model_for(dataset, loss="ce"):
    with seeded(0):
        return SASRec(SASRecConfig(max_length=MAX_LENGTH, hidden_dim=16, ffn_dim=16, dropout=0.0, loss=loss),
                      n_users=dataset.n_users, n_items=dataset.n_items).eval()


def test_loss_positions_are_exactly_the_real_inputs_aligned_with_their_next_item(tiny_prepared):
    model = model_for(tiny_prepared)
    users, _ = model.training_units(tiny_prepared)
    batch = model.make_batch(tiny_prepared, users, np.random.default_rng(0))
    counted = model.loss_positions(batch)
    lengths = tiny_prepared.train_sequences.lengths[users]
    assert (lengths > MAX_LENGTH + 1).any() and (lengths < MAX_LENGTH).any()  # both cases are exercised
    assert int(counted.sum()) == int((np.minimum(lengths, MAX_LENGTH + 1) - 1).sum())
    assert torch.equal(counted, batch["inputs"] != PADDING_ID)  # no position with a padding input
    for row, user in enumerate(users):
        window = tiny_prepared.train_sequences.of(int(user))[-(MAX_LENGTH + 1):]
        assert batch["inputs"][row][counted[row]].tolist() == window[:-1].tolist()
        assert batch["targets"][row][counted[row]].tolist() == window[1:].tolist()  # target = next item


def test_ce_loss_is_the_mean_over_exactly_those_positions(tiny_prepared):
    model = model_for(tiny_prepared)
    users, _ = model.training_units(tiny_prepared)
    batch = model.make_batch(tiny_prepared, users[:16], np.random.default_rng(0))
    with torch.no_grad():
        hidden, _ = model.encode(batch["inputs"])
        logits = hidden @ model.item_embedding.weight[1:].T  # (B, L, n_items)
        expected = [F.cross_entropy(logits[row, col], batch["targets"][row, col] - 1)
                    for row, col in zip(*np.nonzero((batch["inputs"] != PADDING_ID).numpy()))]
        assert torch.allclose(model.loss(batch), torch.stack(expected).mean(), atol=1e-5)


def test_bce_loss_ignores_the_padding_input_position(tiny_prepared):
    model = model_for(tiny_prepared, loss="bce")
    users, _ = model.training_units(tiny_prepared)
    short = users[tiny_prepared.train_sequences.lengths[users] <= MAX_LENGTH][:8]  # have a padding input
    batch = model.make_batch(tiny_prepared, short, np.random.default_rng(0))
    with torch.no_grad():
        reference = model.loss(batch)
        changed = dict(batch)
        counted = model.loss_positions(batch)
        # Negatives (and targets) at positions that do not count can be anything.
        changed["negatives"] = torch.where(counted, batch["negatives"], 1 + batch["negatives"] % 3)
        assert torch.equal(model.loss(changed), reference)
        first = (batch["inputs"] == PADDING_ID) & (batch["targets"] != PADDING_ID)
        # Rows shorter than the (trimmed) batch have one position predicting their first
        # item from padding; it is not trained.
        assert first.sum(1).le(1).all() and first.any()
        assert not (first & counted).any()


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_a_user_with_two_items_trains_one_position(loss, tiny_prepared):
    model = model_for(tiny_prepared, loss)
    users, _ = model.training_units(tiny_prepared)
    two = users[tiny_prepared.train_sequences.lengths[users] == 2]
    assert len(two)
    batch = model.make_batch(tiny_prepared, two[:1], np.random.default_rng(0))
    assert model.loss_positions(batch).sum() == 1
