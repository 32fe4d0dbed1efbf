"""A fusion that starts as the ID-only model (issue 13, item 3).

With ``aux_init="zero"`` or a gate, SASRec+/BERT4Rec+ at initialisation compute exactly
SASRec's/BERT4Rec's function (same seed: the fusion is built after every id-side weight),
the auxiliary term still learns from the first step, modality dropout acts only in
training, and the options are validated where settings are resolved.
"""

import numpy as np
import pandas as pd
import pytest
import torch

from auxrec.config import resolve_config
from auxrec.data.dataset import PreparedDataset
from auxrec.data.prepare import prepare_dataset, write_prepared
from auxrec.data.schema import RawDataset
from auxrec.exceptions import ConfigError
from auxrec.features.item_features import ItemFeatures
from auxrec.models.base import UserHistories
from auxrec.models.bert4rec import BERT4Rec, BERT4RecConfig
from auxrec.models.fusion import AuxiliaryFusion
from auxrec.models.sasrec import SASRec, SASRecConfig

MODELS = {"sasrec": (SASRec, SASRecConfig), "bert4rec": (BERT4Rec, BERT4RecConfig)}
MAX_LENGTH = 10
# Every option that must start at exactly zero, alone and combined.
STARTS_AT_ZERO = {
    "zero": {"aux_init": "zero"},
    "zero-norm": {"aux_init": "zero", "aux_norm": True},
    "zero-dropout": {"aux_init": "zero", "aux_dropout": 0.3},
    "scalar-gate": {"aux_gate": "scalar"},
    "scalar-gate-norm": {"aux_gate": "scalar", "aux_norm": True, "aux_dropout": 0.3},
    "modality-gate": {"aux_gate": "modality"},
    "zero-modality-gate": {"aux_init": "zero", "aux_gate": "modality", "aux_weight_decay": 0.1},
}


@pytest.fixture(scope="module")
def tiny_prepared(tmp_path_factory):
    """40 users who each stay near one part of 150 items, prepared once for this module (read only)."""
    rng = np.random.default_rng(0)
    rows = []
    for user in range(40):
        centre = (user * 11) % 150
        items = (centre + rng.integers(-3, 4, size=int(rng.integers(4, 16)))) % 150 + 1
        rows += [(user, int(item), t) for t, item in enumerate(items)]
    raw = RawDataset("fusion-gate", pd.DataFrame(rows, columns=["user", "item", "timestamp"]))
    folder = tmp_path_factory.mktemp("fusion-gate") / "prepared"
    return PreparedDataset.load(write_prepared(prepare_dataset(raw), folder))


def features_for(n_items, seed=0):
    rng = np.random.default_rng(seed)
    return ItemFeatures({"text": rng.normal(size=(n_items + 1, 6)).astype(np.float32),
                         "tabular": rng.normal(size=(n_items + 1, 4)).astype(np.float32)})


def build(model_name, dataset, features=None, seed=0, **options):
    model_class, config_class = MODELS[model_name]
    torch.manual_seed(seed)
    config = config_class(max_length=MAX_LENGTH, hidden_dim=16, n_heads=2, ffn_dim=32, **options)
    return model_class(config, n_users=dataset.n_users, n_items=dataset.n_items, item_features=features)


def histories(dataset, n=8):
    users = dataset.targets("test")[0][:n]
    return UserHistories(users, dataset.history("test").padded(users, MAX_LENGTH))


def one_batch(model, dataset, seed=0):
    units, _ = model.training_units(dataset)
    return model.make_batch(dataset, units[:32], np.random.default_rng(seed))


@pytest.mark.parametrize("fusion", ["concat", "sum"])
@pytest.mark.parametrize("options", list(STARTS_AT_ZERO.values()), ids=list(STARTS_AT_ZERO))
@pytest.mark.parametrize("model_name", list(MODELS))
def test_plus_model_scores_exactly_as_the_id_model_at_initialisation(model_name, options, fusion,
                                                                     tiny_prepared):
    """Input and output side (``aux_on_output``): the auxiliary term is exactly 0 on both."""
    plain = build(model_name, tiny_prepared).eval()
    plus = build(model_name, tiny_prepared, features_for(tiny_prepared.n_items), aux_fusion=fusion,
                 aux_on_output=True, **options).eval()
    batch = histories(tiny_prepared)
    assert torch.equal(plus.score(batch), plain.score(batch))
    candidates = np.tile(np.arange(1, 8), (len(batch.users), 1))
    assert torch.equal(plus.score(batch, candidates), plain.score(batch, candidates))
    if not options.get("aux_dropout"):  # modality dropout draws from torch's RNG, shifting dropout's masks
        plain.train(), plus.train()
        training_batch = one_batch(plain, tiny_prepared)
        torch.manual_seed(1)
        expected = plain.loss(training_batch)
        torch.manual_seed(1)
        assert torch.equal(plus.loss(training_batch), expected)


@pytest.mark.parametrize("model_name", list(MODELS))
def test_paper_init_does_perturb_the_id_model(model_name, tiny_prepared):
    """The identity above is not vacuous: the paper's random projection changes the scores."""
    plain = build(model_name, tiny_prepared).eval()
    plus = build(model_name, tiny_prepared, features_for(tiny_prepared.n_items)).eval()
    assert plus.config.aux_init == "paper" and plus.fusion.gate is None and plus.fusion.norm is None
    batch = histories(tiny_prepared)
    assert not torch.equal(plus.score(batch), plain.score(batch))


@pytest.mark.parametrize("fusion", ["concat", "sum"])
@pytest.mark.parametrize("options", list(STARTS_AT_ZERO.values()), ids=list(STARTS_AT_ZERO))
@pytest.mark.parametrize("model_name", list(MODELS))
def test_gradients_reach_the_fusion_in_one_step(model_name, options, fusion, tiny_prepared):
    model = build(model_name, tiny_prepared, features_for(tiny_prepared.n_items), aux_fusion=fusion,
                  aux_on_output=True, **options)
    assert torch.equal(model.fusion.all_items(), torch.zeros_like(model.fusion.all_items()))
    optimiser = torch.optim.AdamW(model.parameter_groups(0.0), lr=1e-2)
    model.train()
    model.loss(one_batch(model, tiny_prepared)).backward()
    optimiser.step()
    model.eval()
    with torch.no_grad():
        moved = model.fusion.all_items()[1:]  # (n_items, d); row 0 is padding
    assert moved.abs().sum(dim=1).gt(0).float().mean() > 0.9  # items get a non-zero auxiliary vector


def test_modality_dropout_only_in_training_whole_modalities_and_seeded():
    features = features_for(40)
    torch.manual_seed(0)
    fusion = AuxiliaryFusion.from_features(features, "concat", 8, modality_dropout=0.5)
    torch.manual_seed(0)
    reference = AuxiliaryFusion.from_features(features, "concat", 8)
    items = torch.arange(1, 41)
    fusion.eval(), reference.eval()
    assert torch.equal(fusion(items), reference(items))  # inference: no dropout, no rescaling

    fusion.train()
    fusion.generator = torch.Generator().manual_seed(3)
    first = fusion.fused_input(items)  # (40, 6 + 4)
    full = reference.fused_input(items)
    for block in (slice(0, 6), slice(6, 10)):  # each modality is either dropped whole or kept, scaled 1/(1-p)
        dropped = first[:, block].eq(0).all(dim=1)
        kept = torch.isclose(first[:, block], 2 * full[:, block]).all(dim=1)
        assert (dropped | kept).all() and dropped.any() and kept.any()
    fusion.generator = torch.Generator().manual_seed(3)
    assert torch.equal(fusion.fused_input(items), first)  # the same generator state → the same draw
    assert not torch.equal(fusion.fused_input(items), first)  # a later batch draws afresh
    with fusion.batch():  # one batch: input and output side share the draw
        assert torch.equal(fusion.fused_input(items), fusion.fused_input(torch.arange(41))[1:])
        assert torch.allclose(fusion(items), fusion.all_items()[1:], atol=1e-6)
    assert fusion._keep is None


@pytest.mark.parametrize("model_name", list(MODELS))
def test_modality_dropout_leaves_inference_unchanged(model_name, tiny_prepared):
    features = features_for(tiny_prepared.n_items)
    without = build(model_name, tiny_prepared, features, aux_on_output=True).eval()
    with_dropout = build(model_name, tiny_prepared, features, aux_on_output=True, aux_dropout=0.5).eval()
    batch = histories(tiny_prepared)
    assert torch.equal(with_dropout.score(batch), without.score(batch))
    with_dropout.train()
    training_batch = one_batch(with_dropout, tiny_prepared)
    torch.manual_seed(5)
    first = with_dropout.loss(training_batch)
    torch.manual_seed(5)
    assert torch.equal(with_dropout.loss(training_batch), first)  # seeded: reproducible
    torch.manual_seed(5)
    without.train()
    assert not torch.equal(without.loss(training_batch), first)  # and it does drop something


def test_parameter_groups_decay_only_the_fusion(tiny_prepared):
    features = features_for(tiny_prepared.n_items)
    plain = build("sasrec", tiny_prepared, features)
    (group,) = plain.parameter_groups(0.01)  # no aux_weight_decay: today's single group
    assert group["weight_decay"] == 0.01
    assert [id(p) for p in group["params"]] == [id(p) for p in plain.parameters()]

    model = build("sasrec", tiny_prepared, features, aux_gate="scalar", aux_norm=True, aux_weight_decay=0.5)
    rest, fusion = model.parameter_groups(0.0)
    assert {id(p) for p in fusion["params"]} == {id(p) for p in model.fusion.parameters()}
    assert len(rest["params"]) + len(fusion["params"]) == len(list(model.parameters()))
    assert (rest["weight_decay"], fusion["weight_decay"]) == (0.0, 0.5)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimiser = torch.optim.AdamW(model.parameter_groups(0.0), lr=0.1)
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimiser.step()  # zero gradients: only decoupled decay moves a parameter
    for name, parameter in model.named_parameters():
        factor = 1 - 0.1 * 0.5 if name.startswith("fusion.") else 1.0
        assert torch.allclose(parameter, before[name] * factor), name


@pytest.mark.parametrize("model_name", list(MODELS))
def test_saved_model_with_fusion_options_reloads(model_name, tiny_prepared, tmp_path):
    model = build(model_name, tiny_prepared, features_for(tiny_prepared.n_items), aux_fusion="sum",
                  aux_gate="scalar", aux_norm=True, aux_on_output=True, aux_dropout=0.2)
    with torch.no_grad():
        model.fusion.gate.fill_(0.3)
    model.eval().save(tmp_path / "model")
    loaded = MODELS[model_name][0].load(tmp_path / "model")
    assert loaded.config == model.config
    batch = histories(tiny_prepared)
    assert torch.equal(loaded.score(batch), model.score(batch))


@pytest.mark.parametrize("config_class", [SASRecConfig, BERT4RecConfig])
@pytest.mark.parametrize(
    ("settings", "field"),
    [({"aux_init": "random"}, "aux_init"), ({"aux_gate": "vector"}, "aux_gate"),
     ({"aux_norm": "maybe"}, "aux_norm"),
     ({"aux_dropout": "1.0"}, "aux_dropout"), ({"aux_dropout": -0.1}, "aux_dropout"),
     ({"aux_weight_decay": -1}, "aux_weight_decay"), ({"aux_weight_decay": "nan"}, "aux_weight_decay")],
)
def test_config_rejects_bad_fusion_options(config_class, settings, field):
    with pytest.raises(ConfigError, match=field):
        resolve_config(config_class, [("--set", settings)])


@pytest.mark.parametrize("config_class", [SASRecConfig, BERT4RecConfig])
def test_config_rejects_a_modality_gate_with_norm_and_accepts_command_line_strings(config_class):
    with pytest.raises(ConfigError, match="aux_norm"):
        resolve_config(config_class, [("--set", {"aux_gate": "modality", "aux_norm": "true"})])
    config, sources = resolve_config(config_class, [("--set", {
        "aux_init": "zero", "aux_gate": "scalar", "aux_norm": "true", "aux_dropout": "0.2",
        "aux_weight_decay": "0.1",
    })])
    chosen = (config.aux_init, config.aux_gate, config.aux_norm, config.aux_dropout, config.aux_weight_decay)
    assert chosen == ("zero", "scalar", True, 0.2, 0.1)
    assert sources["aux_gate"] == "--set"
    default, _ = resolve_config(config_class, [])
    assert (default.aux_init, default.aux_gate, default.aux_norm, default.aux_dropout,
            default.aux_weight_decay) == ("paper", "none", False, 0.0, None)


# -- id dropout (aux_id_dropout): in training an item is sometimes its content alone, as a cold
# item is. Only in training and with item features; whole id rows zeroed, not rescaled (a
# dropped item looks exactly like a never-seen one), the same rows on the input and the output
# side of one batch; never BERT4Rec's [MASK] row; seeded; p = 0 leaves the model as it was.

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
