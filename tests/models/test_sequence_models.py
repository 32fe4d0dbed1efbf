"""SASRec causality, BERT4Rec masking, fusion shapes, and features on the output side."""

import itertools

import numpy as np
import pytest
import torch

from auxrec.data.ids import PADDING_ID
from auxrec.experiments.runs import seeded
from auxrec.features.item_features import ItemFeatures
from auxrec.models.bert4rec import BERT4Rec, BERT4RecConfig
from auxrec.models.fusion import AuxiliaryFusion
from auxrec.models.sasrec import SASRec, SASRecConfig
from auxrec.models.transformer import attention_mask
from auxrec.training.config import TrainingConfig
from auxrec.training.trainer import epoch_batches, fit

N_ITEMS = 30


def random_features(n_items=N_ITEMS, dims=None, seed=0):
    dims = dims or {"text": 6, "image": 5, "tabular": 4}
    rng = np.random.default_rng(seed)
    return ItemFeatures({name: rng.normal(size=(n_items + 1, dim)).astype(np.float32) for name, dim in dims.items()})


def test_sasrec_is_causal():
    with seeded(0):
        model = SASRec(SASRecConfig(max_length=10, dropout=0.0), n_users=1, n_items=N_ITEMS).eval()
    sequence = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8]])
    changed = sequence.clone()
    changed[0, 6:] = torch.tensor([20, 21])  # change only the last two items
    with torch.no_grad():
        hidden, _ = model.encode(sequence)
        hidden_changed, _ = model.encode(changed)
    assert torch.allclose(hidden[0, :6], hidden_changed[0, :6], atol=1e-6)
    assert not torch.allclose(hidden[0, 6:], hidden_changed[0, 6:])


def test_padding_does_not_leak_into_real_positions():
    with seeded(0):
        model = SASRec(SASRecConfig(max_length=10, dropout=0.0), n_users=1, n_items=N_ITEMS).eval()
    short = torch.tensor([[3, 4, 5]])
    padded = torch.tensor([[0, 0, 0, 3, 4, 5]])
    with torch.no_grad():
        assert torch.allclose(model.encode(short)[0][0], model.encode(padded)[0][0, 3:], atol=1e-5)


def test_attention_mask_rows_never_empty():
    sequences = torch.tensor([[0, 0, 1, 2], [1, 2, 3, 4]])
    for causal in (True, False):
        mask = attention_mask(sequences, causal)
        assert mask.any(dim=-1).all()
        assert not mask[0, 0, 2:, :2].any()  # real positions never attend to padding
    assert not attention_mask(sequences, True)[1, 0, 0, 1]  # causal: no look-ahead


def test_attention_weights_are_retrievable():
    with seeded(0):
        model = SASRec(SASRecConfig(max_length=10), n_users=1, n_items=N_ITEMS)
    weights = model.attention_weights(np.array([[0, 1, 2, 3]]))
    assert len(weights) == 2 and weights[0].shape == (1, 1, 4, 4)
    assert torch.allclose(weights[0].sum(-1), torch.ones(1, 1, 4))
    assert weights[0][0, 0, 1, 2] == 0  # causal


def test_bert4rec_masking(tiny_prepared):
    with seeded(0):
        model = BERT4Rec(BERT4RecConfig(max_length=20, mask_probability=0.3), n_users=tiny_prepared.n_users,
                         n_items=tiny_prepared.n_items)
    batch = next(epoch_batches(model, tiny_prepared, 16, np.random.default_rng(0)))
    inputs, targets = batch["inputs"], batch["targets"]
    masked = inputs == model.mask_id
    assert masked.any(dim=1).all()  # at least one masked item per sequence
    assert torch.equal(masked, targets != PADDING_ID)  # targets exactly at masked positions
    assert (targets[masked] >= 1).all() and (targets[masked] <= tiny_prepared.n_items).all()
    share = masked.sum() / (inputs != PADDING_ID).sum()
    assert 0.15 < float(share) < 0.6
    # Inference appends [MASK] after the history.
    sequences = torch.tensor([[0, 1, 2, 3]])
    state = model.user_states(sequences)
    assert state.shape == (1, model.config.hidden_dim)


@pytest.mark.parametrize("mode", ["concat", "sum"])
@pytest.mark.parametrize("subset", [s for r in (1, 2, 3) for s in itertools.combinations(("text", "image", "tabular"), r)])
def test_fusion_shapes_for_every_subset(mode, subset):
    features = random_features().select(list(subset))
    fusion = AuxiliaryFusion.from_features(features, mode, width=8)
    out = fusion(torch.tensor([[1, 2, 3], [0, 4, 5]]))
    assert out.shape == (2, 3, 8)
    assert fusion.all_items().shape == (N_ITEMS + 1, 8)


def test_missing_modality_is_zero_and_flagged():
    matrix = np.ones((N_ITEMS + 1, 3), np.float32)
    present = np.ones(N_ITEMS + 1, bool)
    present[5] = False
    features = ItemFeatures({"image": matrix}, {"image": present})
    assert (features.matrices["image"][5] == 0).all()
    assert (features.matrices["image"][0] == 0).all() and not features.present["image"][0]
    assert features.coverage()["image"] == (N_ITEMS - 1, N_ITEMS)


def test_features_change_the_input_embedding():
    with seeded(0):
        plain = SASRec(SASRecConfig(max_length=10), n_users=1, n_items=N_ITEMS)
    with seeded(0):
        plus = SASRec(SASRecConfig(max_length=10), n_users=1, n_items=N_ITEMS, item_features=random_features())
    sequence = torch.tensor([[1, 2, 3]])
    assert not torch.allclose(plain.embed(sequence), plus.embed(sequence))
    assert torch.allclose(plain.item_embedding.weight, plus.item_embedding.weight)


def test_unseen_item_with_matching_features_scores_above_a_random_one(tmp_path):
    """With features on the output side, an item never seen in training is ranked by its features."""
    import pandas as pd

    from auxrec.data.dataset import PreparedDataset
    from auxrec.data.prepare import prepare_dataset, write_prepared
    from auxrec.data.schema import RawDataset

    rng = np.random.default_rng(0)
    n_groups, per_group = 4, 30  # items 1..120, group = (item - 1) // 30
    rows = []
    for user in range(200):
        group = user % n_groups
        # Each user stays inside one group; the last item of each group is never consumed.
        items = rng.choice(np.arange(group * per_group + 1, (group + 1) * per_group), size=8, replace=False)
        rows += [(user, int(item), t) for t, item in enumerate(items)]
    raw = RawDataset("groups", pd.DataFrame(rows, columns=["user", "item", "timestamp"]))
    dataset = PreparedDataset.load(write_prepared(prepare_dataset(raw), tmp_path / "p"))
    # Group one-hot features keyed by *original* id; include the unseen items as extra rows.
    n_rows = dataset.n_items + 1
    originals = dataset.items.set_index("item")["original_id"].astype(int)
    group_of = np.zeros(n_rows, int)
    group_of[originals.index] = (originals.to_numpy() - 1) // per_group
    onehot = np.eye(n_groups, dtype=np.float32)[group_of]
    onehot[0] = 0
    features = ItemFeatures({"tabular": onehot})
    with seeded(0):
        model = SASRec(SASRecConfig(max_length=10, aux_on_output=True), n_users=dataset.n_users,
                       n_items=dataset.n_items, item_features=features)
        fit(model, dataset, TrainingConfig(epochs=30, batch_size=64, learning_rate=5e-3, patience=30,
                                          eval_every=30, progress=False, validation_protocol="full"), 0)
    # Make a "new" item: reset a rarely seen item's id embedding to zero, i.e. never trained.
    counts = dataset.train_item_counts
    new_item = int(np.flatnonzero(group_of == 0)[np.argmin(counts[group_of == 0])])
    with torch.no_grad():
        model.item_embedding.weight[new_item] = 0
    histories = dataset.history("test")
    users = np.array([u for u in dataset.targets("test")[0] if group_of[histories.of(int(u))[-1]] == 0])
    from auxrec.models.base import UserHistories

    scores = model.score(UserHistories(users, histories.padded(users, 10)))
    other_group = np.flatnonzero(group_of == 2)
    assert (scores[:, new_item] > scores[:, other_group].mean(dim=1)).float().mean() > 0.9
