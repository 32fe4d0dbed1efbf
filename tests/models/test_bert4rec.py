"""BERT4Rec inference: the history is followed by one [MASK], whose state scores (issue 13)."""

import numpy as np
import pytest
import torch

from auxrec.experiments.runs import seeded
from auxrec.models.base import UserHistories
from auxrec.models.bert4rec import BERT4Rec, BERT4RecConfig

N_ITEMS = 30


def model_with(max_length):
    with seeded(0):
        return BERT4Rec(BERT4RecConfig(max_length=max_length, hidden_dim=16, ffn_dim=32, dropout=0.0),
                        n_users=3, n_items=N_ITEMS).eval()


def test_scores_come_from_the_state_of_an_appended_mask():
    model = model_with(max_length=6)
    sequences = np.array([[0, 0, 0, 3, 4, 5], [0, 0, 7, 8, 9, 10]])
    scores = model.score(UserHistories(np.array([1, 2]), sequences))
    mask = model.mask_id
    by_hand = torch.tensor([[0, 0, 3, 4, 5, mask], [0, 7, 8, 9, 10, mask]])  # last 5 items + [MASK]
    with torch.no_grad():
        hidden, _ = model.encode(by_hand)
        expected = hidden[:, -1] @ model.item_embedding.weight[: N_ITEMS + 1].T
    assert torch.allclose(scores, expected, atol=1e-5)
    assert scores.shape == (2, N_ITEMS + 1)  # the [MASK] row is never a candidate


def test_a_full_history_keeps_its_last_max_length_minus_one_items():
    model = model_with(max_length=4)
    history = torch.tensor([[11, 12, 13, 14]])  # exactly max_length items
    with torch.no_grad():
        state = model.user_states(history)
        hidden, _ = model.encode(torch.tensor([[12, 13, 14, model.mask_id]]))
        assert torch.allclose(state, hidden[:, -1], atol=1e-6)
        # The oldest item falls out: it does not change the state.
        assert torch.allclose(state, model.user_states(torch.tensor([[20, 12, 13, 14]])), atol=1e-6)
        # A shorter history is extended, not cut.
        hidden, _ = model.encode(torch.tensor([[13, 14, model.mask_id]]))
        assert torch.allclose(model.user_states(torch.tensor([[0, 0, 13, 14]])), hidden[:, -1], atol=1e-5)


@pytest.mark.parametrize("max_length", [1, 2])
def test_very_short_windows_stay_within_the_position_table(max_length):
    model = model_with(max_length)
    kept = [7][: max_length - 1]  # max_length 1: the [MASK] alone
    with torch.no_grad():
        state = model.user_states(torch.tensor([[5, 6, 7]]))
        hidden, _ = model.encode(torch.tensor([[*kept, model.mask_id]]))
    assert torch.allclose(state, hidden[:, -1], atol=1e-6)
