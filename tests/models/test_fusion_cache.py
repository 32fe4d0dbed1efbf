"""The fusion's inference table: every item's projected content, computed once in eval mode.

It must never change a score: what the memo returns is exactly (``torch.equal``) what
computing the table afresh gives, and it is recomputed when items are added, after
training, and after any change to a parameter or feature row.
"""

import numpy as np
import pytest
import torch

from auxrec.experiments.runs import seeded
from auxrec.features.item_features import ItemFeatures
from auxrec.models.base import UserHistories
from auxrec.models.bert4rec import BERT4Rec, BERT4RecConfig
from auxrec.models.sasrec import SASRec, SASRecConfig

N_ITEMS = 40
DIMS = {"text": 6, "image": 5, "tabular": 4}
OPTIONS = {
    "concat": {},
    "sum": {"aux_fusion": "sum"},
    "norm+scalar gate": {"aux_norm": True, "aux_gate": "scalar", "aux_init": "zero"},
    "modality gate": {"aux_gate": "modality"},
}


def features(n_rows: int = N_ITEMS + 1, seed: int = 0) -> ItemFeatures:
    rng = np.random.default_rng(seed)
    return ItemFeatures({name: rng.normal(size=(n_rows, dim)).astype(np.float32)
                         for name, dim in DIMS.items()})


def build(model_class=SASRec, config_class=SASRecConfig, aux_on_output=True, **options):
    config = config_class(max_length=12, hidden_dim=16, aux_on_output=aux_on_output, **options)
    with seeded(0):
        model = model_class(config, n_users=5, n_items=N_ITEMS, item_features=features())
    if model.fusion.gate is not None:  # open the gates, which start closed, so content counts
        with torch.no_grad():
            model.fusion.gate.fill_(0.7)
    return model.eval()


def histories(model) -> UserHistories:
    rng = np.random.default_rng(1)
    sequences = rng.integers(1, model.n_items + 1, size=(6, 12))
    sequences[0, :11] = 0  # one item only: a lookup too small for the projection's batched kernel
    sequences[1, :5] = 0
    return UserHistories(np.arange(1, 7), sequences)


def scores_without_memo(model) -> torch.Tensor:
    model.fusion.memoise_inference_table = False
    try:
        return model.score(histories(model))
    finally:
        model.fusion.memoise_inference_table = True


def per_position_scores(model) -> torch.Tensor:
    """The training-time computation (content projected per looked-up position), in eval mode."""
    with torch.enable_grad():
        states = model.user_states(torch.as_tensor(histories(model).sequences))
        return (states @ model.output_embeddings().T).detach()


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
@pytest.mark.parametrize("aux_on_output", [True, False], ids=["output side", "input side"])
def test_the_memo_changes_no_score(options, aux_on_output):
    model = build(aux_on_output=aux_on_output, **options)
    first = model.score(histories(model))
    memo = model.fusion._inference_memo
    assert memo is not None
    again = model.score(histories(model))
    assert model.fusion._inference_memo is memo  # reused, not recomputed
    assert torch.equal(first, again)
    assert torch.equal(first, scores_without_memo(model))
    assert model.fusion._inference_memo is memo
    # The table is the per-position computation up to float rounding (kernels differ by batch size).
    torch.testing.assert_close(first, per_position_scores(model), rtol=0, atol=1e-5)


def test_bert4rec_uses_the_same_memo():
    model = build(BERT4Rec, BERT4RecConfig)
    first = model.score(histories(model))
    assert model.fusion._inference_memo is not None
    assert torch.equal(first, scores_without_memo(model))


def test_training_and_gradients_never_use_the_memo():
    model = build()
    items = torch.arange(1, N_ITEMS + 1)
    with torch.no_grad():
        model.fusion(items)
    assert model.fusion._inference_memo is not None
    assert model.fusion(items).requires_grad  # autograd on: computed per position, with gradients
    model.train()
    assert model.fusion._inference_memo is None
    with torch.no_grad():
        model.fusion(items)
    assert model.fusion._inference_memo is None


def test_added_items_refresh_the_memo():
    model = build()
    model.score(histories(model))
    assert model.fusion._inference_memo is not None
    new_rows = features(n_rows=3, seed=5)
    stored = {name: torch.from_numpy(rows) for name, rows in new_rows.matrices.items()}
    model.add_items(stored)  # appends 3 rows to every feature buffer
    assert model.fusion._inference_memo is None
    scores = model.score(histories(model))
    assert scores.shape == (6, N_ITEMS + 4)
    assert torch.equal(scores, scores_without_memo(model))
    torch.testing.assert_close(scores, per_position_scores(model), rtol=0, atol=1e-5)
    # a new item has no id embedding: its candidate vector is its projected content alone
    projected = model.fusion._project(model.fusion.fused_input(torch.tensor([N_ITEMS + 1])))
    torch.testing.assert_close(model.item_vectors()[N_ITEMS + 1], projected[0], rtol=0, atol=1e-6)


def test_a_training_step_refreshes_the_memo():
    model = build()
    before = model.score(histories(model))
    model.train()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    sequences = torch.as_tensor(histories(model).sequences)
    model.user_states(sequences).pow(2).sum().backward()
    optimiser.step()
    model.eval()
    after = model.score(histories(model))
    assert not torch.equal(before, after)
    assert torch.equal(after, scores_without_memo(model))


def test_a_parameter_or_feature_changed_in_place_refreshes_the_memo():
    model = build()
    before = model.score(histories(model))
    with torch.no_grad():  # still in eval mode: no train() call announces the change
        model.fusion.projection.weight.mul_(2)
    doubled = model.score(histories(model))
    assert not torch.equal(before, doubled)
    assert torch.equal(doubled, scores_without_memo(model))
    with torch.no_grad():
        model.fusion.features_text[1:].add_(1.0)
    assert torch.equal(model.score(histories(model)), scores_without_memo(model))
    model.load_state_dict(build().state_dict())
    assert torch.equal(model.score(histories(model)), before)
