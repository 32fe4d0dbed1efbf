"""Content on the output side (``aux_on_output``) for SASRec+ and BERT4Rec+ (issue 13).

An item that never occurs in a training sequence has an id embedding that no positive
example ever pulled towards a user; with ``aux_on_output`` its score still follows its
content.
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from auxrec.data.dataset import PreparedDataset
from auxrec.data.prepare import prepare_dataset, write_prepared
from auxrec.data.schema import RawDataset
from auxrec.experiments.runs import seeded
from auxrec.features.item_features import ItemFeatures
from auxrec.models.base import UserHistories
from auxrec.models.bert4rec import BERT4Rec, BERT4RecConfig
from auxrec.models.sasrec import SASRec, SASRecConfig
from auxrec.training.config import TrainingConfig
from auxrec.training.trainer import fit

N_GROUPS, WARM, COLD, SPAN = 4, 15, 2, 20  # group g owns original ids g*20+1 .. g*20+17
MAX_LENGTH = 8


def group_of_original(original: np.ndarray) -> np.ndarray:
    return (original - 1) // SPAN


@pytest.fixture(scope="module")
def cold_start(tmp_path_factory) -> tuple[PreparedDataset, ItemFeatures, np.ndarray, np.ndarray]:
    """Users stay inside one group of items; the group's 'cold' items are only ever test targets.

    Returns the dataset, content features (text and tabular, both saying the group), the
    internal ids of the cold items and every item's group.
    """
    rng = np.random.default_rng(0)
    rows = []
    for user in range(160):
        group = user % N_GROUPS
        items = list(rng.choice(np.arange(group * SPAN + 1, group * SPAN + WARM + 1), size=7, replace=False))
        if user < N_GROUPS * COLD:  # one user per cold item: its test target
            items.append(group * SPAN + WARM + 1 + user // N_GROUPS)
        rows += [(user, int(item), t) for t, item in enumerate(items)]
    raw = RawDataset("cold-start", pd.DataFrame(rows, columns=["user", "item", "timestamp"]))
    folder = tmp_path_factory.mktemp("cold") / "p"
    dataset = PreparedDataset.load(write_prepared(prepare_dataset(raw), folder))
    original = np.zeros(dataset.n_items + 1, np.int64)
    table = dataset.items.set_index("item")["original_id"].astype(int)
    original[table.index] = table.to_numpy()
    groups = group_of_original(original)
    onehot = np.eye(N_GROUPS)[groups]  # (n_rows, 4)
    # Two modalities of different widths, each the group in its own coordinates plus item noise.
    text = np.concatenate([onehot, 0.1 * rng.normal(size=(len(groups), 4))], axis=1)
    tabular = onehot @ rng.normal(size=(N_GROUPS, 6)) + 0.1 * rng.normal(size=(len(groups), 6))
    text[0] = tabular[0] = 0
    cold = np.flatnonzero((original - 1) % SPAN >= WARM)[1:]  # row 0 (padding) is not an item
    features = ItemFeatures({"text": text.astype(np.float32), "tabular": tabular.astype(np.float32)})
    return dataset, features, cold, groups


def build(model_name, dataset, features, aux_on_output=True, fusion="concat"):
    classes = {"sasrec": (SASRecConfig, SASRec), "bert4rec": (BERT4RecConfig, BERT4Rec)}
    config_class, model_class = classes[model_name]
    config = config_class(max_length=MAX_LENGTH, hidden_dim=32, dropout=0.1, aux_on_output=aux_on_output,
                          aux_fusion=fusion)
    with seeded(0):
        return model_class(config, n_users=dataset.n_users, n_items=dataset.n_items, item_features=features)


# Summation is run on one modality: the two modalities here say the same thing in unrelated
# coordinates, and their PCA-aligned sum nearly maps two groups onto one direction (the
# information summation may lose, by design; see `auxrec.models.fusion`).
@pytest.mark.parametrize(("fusion", "modalities"), [("concat", ("text", "tabular")), ("sum", ("text",))],
                         ids=["concat", "sum"])
@pytest.mark.parametrize("model_name", ["sasrec", "bert4rec"])
def test_never_seen_items_are_scored_by_their_content(model_name, fusion, modalities, cold_start):
    dataset, features, cold, groups = cold_start
    assert len(cold) == N_GROUPS * COLD
    assert not np.isin(cold, dataset.train_sequences.items).any()  # never in a training sequence
    model = build(model_name, dataset, features.select(modalities), fusion=fusion)
    with seeded(0):
        fit(model, dataset, TrainingConfig(epochs=10, batch_size=64, learning_rate=5e-3, patience=10,
                                          eval_every=10, validation_protocol="full", progress=False), 0)
    users = dataset.targets("test")[0]
    histories = dataset.history("test")
    assert not np.isin(cold, histories.padded(users, MAX_LENGTH)).any()  # nor in any scored history
    scores = model.score(UserHistories(users, histories.padded(users, MAX_LENGTH)))  # (U, n_items + 1)
    user_groups = np.array([groups[histories.of(int(u))[-1]] for u in users])
    matching = groups[cold][None, :] == user_groups[:, None]  # (U, n_cold)
    cold_scores = scores[:, cold].numpy()
    # Two never-seen items with different content get different scores ...
    different = groups[cold] != groups[cold[0]]
    assert (np.abs(cold_scores[:, different] - cold_scores[:, :1]) > 1e-4).all()
    # ... and the ones whose content matches the user's history rank above the others.
    mean_matching = (cold_scores * matching).sum(1) / matching.sum(1)
    mean_other = (cold_scores * ~matching).sum(1) / (~matching).sum(1)
    assert (mean_matching > mean_other).mean() > 0.9


def test_content_reaches_the_output_only_when_asked(cold_start):
    """The output table of a never-seen item moves with its content iff ``aux_on_output``."""
    dataset, features, cold, _ = cold_start
    for aux_on_output in (True, False):
        model = build("bert4rec", dataset, features, aux_on_output).eval()
        with torch.no_grad():
            before = model.output_embeddings()[cold[0]].clone()
            model.fusion.features_tabular[cold[0]] += 1
            after = model.output_embeddings()[cold[0]]
        assert torch.equal(before, after) != aux_on_output
        assert model.output_embeddings().shape == (dataset.n_items + 1, 32)  # never a [MASK] row


@pytest.mark.parametrize("model_name", ["sasrec", "bert4rec"])
def test_items_without_training_interactions_train_with_a_zero_id_embedding_then_borrow_one(model_name, cold_start):
    """aux_unseen_items="content" (the default): never-seen items are their content alone through training;
    with aux_unseen_id_neighbours=K, at its end each borrows the similarity-weighted mean id row of its K
    trained nearest neighbours in content (0 keeps the zero row)."""
    from auxrec.models.content_neighbours import content_neighbours

    dataset, features, cold, _ = cold_start
    training = TrainingConfig(epochs=3, batch_size=64, learning_rate=5e-3, weight_decay=0.1, patience=10,
                              eval_every=3, validation_protocol="full", progress=False)
    rows, models = {}, {}
    for setting, neighbours in (("content", 0), ("content", 3), ("id", 3), ("content", "auto")):
        model = build(model_name, dataset, features)
        model.config = dataclasses.replace(model.config, aux_unseen_items=setting,
                                           aux_unseen_id_neighbours=neighbours)
        with seeded(0):
            fit(model, dataset, training, 0)
        rows[setting, neighbours] = model.item_embedding.weight.detach()
        models[setting, neighbours] = model
    assert models["content", 0].training_finish is None and models["id", 3].training_finish is None
    assert models["content", 3].training_finish == {"aux_unseen_id_neighbours": 3, "items": len(cold)}
    warm = np.setdiff1d(np.arange(1, dataset.n_items + 1), cold)
    assert torch.count_nonzero(rows["content", 0][cold]) == 0
    assert (rows["content", 0][warm].abs().sum(1) > 0).all()
    assert (rows["id", 3][cold].abs().sum(1) > 0).all()
    # borrowing changes the never-seen rows only, and only after training (same weights otherwise)
    assert torch.equal(rows["content", 3][warm], rows["content", 0][warm])
    fusion = models["content", 3].fusion
    stored = {name: getattr(fusion, f"features_{name}")[torch.as_tensor(cold)].numpy() for name in fusion.names}
    trained = np.flatnonzero(dataset.train_item_counts > 0)
    ids, weights = content_neighbours(fusion, dataset.train_item_counts, stored, 3)
    assert ids.shape == (len(cold), 3) and np.isin(ids, trained).all()
    assert np.allclose(weights.sum(1), 1)
    expected = (torch.from_numpy(weights)[..., None] * rows["content", 0][torch.as_tensor(ids)]).sum(1)
    assert torch.allclose(rows["content", 3][cold], expected, atol=1e-6)
    assert (rows["content", 3][cold].abs().sum(1) > 0).all()
    # "auto": the count validation chose (0 included) is the one applied, and the log says what each measured
    finish = models["content", "auto"].training_finish
    chosen = finish["aux_unseen_id_neighbours"]
    assert chosen in (0, 1, 3, 10) and set(finish["validation"]) == {1, 3, 10}
    assert torch.equal(rows["content", "auto"][warm], rows["content", 0][warm])
    ids, weights = content_neighbours(fusion, dataset.train_item_counts, stored, chosen)
    expected = (torch.from_numpy(weights)[..., None] * rows["content", 0][torch.as_tensor(ids)]).sum(1)
    assert torch.allclose(rows["content", "auto"][cold], expected, atol=1e-6)


def test_the_neighbour_count_changes_the_model_only_on_a_significant_validation_gain():
    from auxrec.models.content_neighbours import choose_neighbour_count

    rng = np.random.default_rng(0)
    baseline = rng.uniform(size=400)
    noise = rng.normal(scale=0.4, size=400)
    noise -= noise.mean()  # the gains below are then exactly the means written
    per_count = {0: baseline,
                 1: baseline + 0.005 + noise,  # a small gain lost in per-user noise
                 3: baseline + 0.02 + 0.02 * noise,  # a smaller mean than 10's, but a certain one
                 10: baseline + 0.03 + noise}
    chosen, measured = choose_neighbour_count(lambda count: per_count[count])
    assert chosen == 3
    assert measured[10]["gain"] > measured[3]["gain"] > 0
    assert measured[3]["gain"] > 1.96 * measured[3]["standard_error"]
    assert choose_neighbour_count(lambda count: baseline - 0.01 * (count > 0))[0] == 0  # losses: keep zero rows
    assert choose_neighbour_count(lambda count: baseline)[0] == 0  # ties too
    chosen, measured = choose_neighbour_count(lambda count: np.zeros(0))  # no validation users
    assert chosen == 0 and measured[1] == {"gain": None, "standard_error": None}  # JSON-safe, no NaN or inf


def test_content_neighbours_are_the_closest_trained_items_by_cosine():
    """A query equal in direction to one candidate's content borrows from it first; weights are the
    positive similarities normalised to 1; nothing similar at all gives zero weights."""
    from types import SimpleNamespace

    from auxrec.models.content_neighbours import content_neighbours

    table = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    fusion = SimpleNamespace(names=("text",), features_text=table)
    train_item_counts = np.array([0, 5, 2, 1, 0])  # item 4 has no training interaction: never a neighbour
    ids, weights = content_neighbours(fusion, train_item_counts, {"text": np.array([[2.0, 0.1], [-1.0, 0.0]])}, 2)
    assert ids[0].tolist() == [1, 3]
    cosines = np.array([2 / np.hypot(2, .1), 2.1 / np.hypot(2, .1) / np.sqrt(2)])
    assert np.allclose(weights[0], cosines / cosines.sum())
    assert np.allclose(weights[1], 0)  # opposite to every candidate: borrows nothing
    ids, weights = content_neighbours(fusion, train_item_counts, {"text": np.ones((2, 2))}, 0)
    assert ids.shape == weights.shape == (2, 0)


def test_fewer_neighbours_taken_from_a_larger_search_equal_a_search_for_fewer():
    """finish_training searches once for the largest count tried; each smaller count is its prefix."""
    from types import SimpleNamespace

    from auxrec.models.content_neighbours import content_neighbours, nearest_of

    rng = np.random.default_rng(0)
    fusion = SimpleNamespace(names=("text",), features_text=torch.from_numpy(rng.normal(size=(30, 4))))
    counts = np.r_[0, rng.integers(0, 3, size=29)]
    queries = {"text": rng.normal(size=(7, 4))}
    found = content_neighbours(fusion, counts, queries, 10)
    for count in (0, 1, 3, 10):
        ids, weights = nearest_of(*found, count)
        expected_ids, expected_weights = content_neighbours(fusion, counts, queries, count)
        assert np.array_equal(ids, expected_ids) and np.allclose(weights, expected_weights)


def test_runs_saved_before_the_setting_read_as_the_id_behaviour_they_had():
    from auxrec.experiments.run_folder import with_later_defaults

    saved = dataclasses.asdict(SASRecConfig())
    del saved["aux_unseen_items"], saved["aux_unseen_id_neighbours"]
    assert with_later_defaults(saved, SASRecConfig)["aux_unseen_items"] == "id"
    assert SASRecConfig().aux_unseen_items == "content"
    assert with_later_defaults(saved, SASRecConfig)["aux_unseen_id_neighbours"] == 0  # they kept zero rows
    assert SASRecConfig().aux_unseen_id_neighbours == "auto"


def test_an_id_only_run_is_compared_without_the_fusion_settings():
    """A fusion default changed later must not make a finished SASRec (no item features) another run."""
    from auxrec.experiments.run_folder import RunSettings, current_revisions

    saved_config = dataclasses.asdict(SASRecConfig())
    del saved_config["aux_unseen_items"]  # saved before the setting existed
    saved = {"model": "sasrec", "seed": 0, "model_config": {**saved_config, "aux_on_output": True},
             "training": dataclasses.asdict(TrainingConfig()), "item_features": {},
             "revisions": current_revisions("sasrec", dataclasses.asdict(SASRecConfig()), False)}
    wanted = RunSettings("sasrec", 0, dataclasses.asdict(SASRecConfig()), dataclasses.asdict(TrainingConfig()), ())
    assert wanted.matches(saved, epochs_trained=3)
    with_features = RunSettings("sasrec", 0, dataclasses.asdict(SASRecConfig()),
                                dataclasses.asdict(TrainingConfig()), ("text",))
    saved_plus = {**saved, "model_config": saved_config, "item_features": {"text": {}},
                  "revisions": current_revisions("sasrec", dataclasses.asdict(SASRecConfig()), True)}
    assert not with_features.matches(saved_plus, epochs_trained=3)  # aux_unseen_items: id then, content now
    saved_plus["model_config"] = {**saved_config, "aux_unseen_items": "content"}
    assert with_features.matches(saved_plus, epochs_trained=3)


@pytest.mark.parametrize(("model_name", "loss"), [("sasrec", "ce"), ("sasrec", "sampled"), ("sasrec", "bce"),
                                                  ("bert4rec", "ce"), ("bert4rec", "sampled")])  # no bce in BERT4Rec
def test_items_without_training_interactions_are_not_training_negatives(model_name, loss, cold_start):
    """aux_unseen_negatives=False (the default): the training loss never sees a never-trained item.

    No training target pulls such an item up, so as a negative it is only ever pushed down; with
    content on the output side that teaches the model to bury exactly the cold items' content.
    Changing their content must therefore leave every training loss as it is, and they are never
    drawn as negatives; with aux_unseen_negatives=True (the earlier behaviour) the loss moves.
    """
    dataset, features, cold, _ = cold_start
    values = {}
    for negatives in (False, True):
        model = build(model_name, dataset, features)
        model.config = dataclasses.replace(model.config, aux_unseen_negatives=negatives, loss=loss, n_negatives=30)
        model.prepare_training(dataset)
        model.eval()  # no dropout: the two losses differ only through the cold items' content
        units, _ = model.training_units(dataset)
        batch = model.make_batch(dataset, units[:64], np.random.default_rng(0))
        drawn = batch.get("sampled_items", batch.get("negatives"))
        if drawn is not None and not negatives:
            assert not np.isin(drawn.numpy(), cold).any()
        before = model.loss(batch).item()
        with torch.no_grad():
            for name in model.fusion.names:
                getattr(model.fusion, f"features_{name}")[torch.as_tensor(cold)] += 5.0
        model.fusion.clear_inference_table()
        values[negatives] = (before, model.loss(batch).item())
    assert values[False][0] == pytest.approx(values[False][1], abs=1e-6)
    if loss == "ce":  # sampled and bce draw a few items: the cold ones may not be among them
        assert values[True][0] != pytest.approx(values[True][1], abs=1e-4)
    if drawn is not None:
        assert np.isin(drawn.numpy(), cold).any() or loss == "bce"


def test_runs_saved_before_aux_unseen_negatives_read_as_the_negatives_they_had():
    from auxrec.experiments.run_folder import with_later_defaults

    saved = dataclasses.asdict(SASRecConfig())
    del saved["aux_unseen_negatives"]
    assert with_later_defaults(saved, SASRecConfig)["aux_unseen_negatives"] is True
    assert SASRecConfig().aux_unseen_negatives is False


def test_the_choice_is_told_in_one_line_whatever_validation_measured():
    from auxrec.models.content_neighbours import describe_choice

    chosen = {"aux_unseen_id_neighbours": 1, "items": 725,
              "validation": {"1": {"gain": 0.0051, "standard_error": 0.0027},
                             "3": {"gain": 0.0012, "standard_error": None},  # one validation user
                             "10": {"gain": None, "standard_error": None}}}  # none
    line = describe_choice(chosen)
    assert line.startswith("725 items without training interactions: id rows borrowed from 1 content neighbour,")
    assert "K=1: +0.0051 ± 0.0027" in line and "K=3: –" in line and "K=10: –" in line
    assert "kept at zero" in describe_choice({**chosen, "aux_unseen_id_neighbours": 0})
    assert describe_choice({"aux_unseen_id_neighbours": 3, "items": 1}).endswith("from 3 content neighbours")
    assert "no validation" in describe_choice({"aux_unseen_id_neighbours": 0, "items": 2, "validation": None})
