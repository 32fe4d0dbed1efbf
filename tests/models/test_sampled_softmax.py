"""The sampled softmax (``loss="sampled"``) of SASRec and BERT4Rec: what it computes, what it never builds.

- it trains on the synthetic shop to a full-ranking NDCG@10 near full softmax's;
- no tensor of positions × catalogue items exists in its forward or backward pass;
- each sampled item's logit is lowered by log Q(j), its expected count in the sample (the logQ correction);
- the draws are distinct, so a sample of the whole catalogue is exactly full softmax;
- a draw of a position's own target (an accidental hit) is no negative there;
- full softmax stays the default, and runs saved before the setting existed read as it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from auxrec.data.dataset import PreparedDataset
from auxrec.data.ids import PADDING_ID
from auxrec.evaluation.evaluator import evaluate
from auxrec.experiments.run_folder import with_later_defaults
from auxrec.experiments.runs import seeded
from auxrec.features.item_features import ItemFeatures
from auxrec.models.bert4rec import BERT4Rec, BERT4RecConfig
from auxrec.models.sasrec import SASRec, SASRecConfig
from auxrec.training.config import TrainingConfig
from auxrec.training.trainer import fit

MODELS = {"sasrec": (SASRec, SASRecConfig), "bert4rec": (BERT4Rec, BERT4RecConfig)}


def build(name: str, dataset: PreparedDataset, features: ItemFeatures | None = None,
          **settings: object) -> SASRec | BERT4Rec:
    model_class, config_class = MODELS[name]
    config = config_class(**{"max_length": 20, "hidden_dim": 16, "ffn_dim": 16, "dropout": 0.0, **settings})
    with seeded(0):
        return model_class(config, n_users=dataset.n_users, n_items=dataset.n_items, item_features=features)


def first_batch(model: SASRec | BERT4Rec, dataset: PreparedDataset,
                rows: int = 16) -> dict[str, torch.Tensor]:
    units, _ = model.training_units(dataset)
    return model.make_batch(dataset, units[:rows], np.random.default_rng(0))


def counted_positions(model: SASRec | BERT4Rec, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    if isinstance(model, SASRec):
        return model.loss_positions(batch)
    return batch["targets"] != PADDING_ID


def expected_loss(model: SASRec | BERT4Rec, batch: dict[str, torch.Tensor],
                  log_q: torch.Tensor) -> torch.Tensor:
    """The sampled softmax written out position by position, ``log_q`` lowering each sampled logit."""
    hidden, _ = model.encode(batch["inputs"])
    counted = counted_positions(model, batch)
    items = model.output_embeddings()
    sampled = batch["sampled_items"]
    terms = []
    for state, target in zip(hidden[counted], batch["targets"][counted]):
        negatives = [float(state @ items[j]) - float(log_q[k]) for k, j in enumerate(sampled) if j != target]
        logits = torch.tensor([float(state @ items[target]), *negatives])
        terms.append(-torch.log_softmax(logits, 0)[0])
    return torch.stack(terms).mean()


@pytest.mark.parametrize("name", MODELS)
def test_full_softmax_stays_the_default_and_old_configs_read_as_it(name, tiny_prepared):
    model_class, config_class = MODELS[name]
    assert config_class().loss == "ce"
    saved = {"max_length": 20, "hidden_dim": 16}  # as a run saved before loss / n_negatives existed
    completed = with_later_defaults(saved, config_class)
    assert completed["loss"] == "ce" and completed["n_negatives"] == 1000
    revisions = model_class.revisions
    assert revisions(config_class(**completed), False) == revisions(config_class(), False)
    # The default draws nothing more from the training generator, so its batches are unchanged.
    assert set(first_batch(build(name, tiny_prepared), tiny_prepared)) == {"inputs", "targets"}


@pytest.mark.parametrize("with_content", [False, True], ids=["ids", "content-on-output"])
@pytest.mark.parametrize("name", MODELS)
def test_loss_is_the_corrected_softmax_over_target_and_draws(name, with_content, tiny_prepared):
    features = None
    if with_content:  # candidates are id + projected content: the rows of output_embeddings
        rng = np.random.default_rng(0)
        features = ItemFeatures({"text": rng.normal(size=(tiny_prepared.n_items + 1, 6)).astype(np.float32)})
    model = build(name, tiny_prepared, features, loss="sampled", n_negatives=12,
                  aux_on_output=with_content).eval()
    batch = first_batch(model, tiny_prepared)
    assert batch["sampled_items"].shape == (12,)
    assert 1 <= int(batch["sampled_items"].min())
    assert int(batch["sampled_items"].max()) <= tiny_prepared.n_items
    log_q = torch.full((12,), math.log(12 / tiny_prepared.n_items))  # uniform: Q(j) = K / n_items
    with torch.no_grad():
        assert torch.allclose(model.loss(batch), expected_loss(model, batch, log_q), atol=1e-5)
        # The correction matters: without it the same draws give another loss.
        assert not torch.allclose(model.loss(batch), expected_loss(model, batch, torch.zeros(12)), atol=1e-3)


@pytest.mark.parametrize("name", MODELS)
def test_a_sample_of_the_whole_catalogue_is_full_softmax(name, tiny_prepared):
    full = build(name, tiny_prepared).eval()
    sampled = build(name, tiny_prepared, loss="sampled", n_negatives=10 * tiny_prepared.n_items).eval()
    batch = first_batch(sampled, tiny_prepared)
    assert sorted(batch["sampled_items"].tolist()) == list(range(1, tiny_prepared.n_items + 1))  # distinct
    with torch.no_grad():
        assert torch.allclose(sampled.loss(batch), full.loss(batch), atol=1e-5)


def test_log_q_is_taken_per_item_so_another_proposal_changes_only_it(tiny_prepared, monkeypatch):
    model = build("sasrec", tiny_prepared, loss="sampled", n_negatives=12).eval()
    batch = first_batch(model, tiny_prepared)
    per_item = torch.linspace(-3.0, 1.0, 12)  # as a popularity proposal would give
    monkeypatch.setattr(model, "log_expected_draws", lambda sampled: per_item)
    with torch.no_grad():
        assert torch.allclose(model.loss(batch), expected_loss(model, batch, per_item), atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_an_accidental_hit_is_not_a_negative(name, tiny_prepared):
    model = build(name, tiny_prepared, loss="sampled", n_negatives=1).eval()
    batch = first_batch(model, tiny_prepared, rows=1)
    counted = counted_positions(model, batch)
    target = batch["targets"][counted][-1]
    # One position whose only draw is its own target: nothing competes, so the loss is 0.
    only = {key: value[:, -1:] if value.dim() == 2 else value for key, value in batch.items()}
    only["targets"] = torch.full_like(only["targets"], int(target))
    if isinstance(model, BERT4Rec):
        only["inputs"] = torch.full_like(only["inputs"], model.mask_id)
    else:
        only["inputs"] = batch["inputs"][:, -1:]
    only["sampled_items"] = torch.tensor([int(target)])
    with torch.no_grad():
        assert float(model.loss(only)) == 0.0
        # Another item in the same place competes: the loss is positive.
        only["sampled_items"] = torch.tensor([int(target) % tiny_prepared.n_items + 1])
        assert float(model.loss(only)) > 0.0


class CatalogueWideTensors(TorchDispatchMode):
    """The largest tensor an operation (forward or backward) makes with a dimension of n_items or more."""

    def __init__(self, n_items: int) -> None:
        super().__init__()
        self.n_items = n_items
        self.largest: tuple[int, tuple[int, ...]] = (0, ())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, tuple | list) else (out,):
            if (isinstance(tensor, torch.Tensor) and tensor.dim() and max(tensor.shape) >= self.n_items
                    and tensor.numel() > self.largest[0]):
                self.largest = (tensor.numel(), tuple(tensor.shape))
        return out


@pytest.fixture
def wide_catalogue(raw_factory, tmp_path: Path) -> PreparedDataset:
    """~500 items, more than a batch has positions: a tensor as long as the catalogue is about items."""
    from auxrec.data.prepare import prepare_dataset, write_prepared

    raw = raw_factory(n_users=120, n_items=3000)
    return PreparedDataset.load(write_prepared(prepare_dataset(raw), tmp_path / "wide"))


@pytest.mark.parametrize("name", MODELS)
def test_no_positions_by_items_tensor_is_built(name, wide_catalogue):
    """Only the item table (and its gradient) spans the catalogue; full softmax's logits would too."""
    n_items = wide_catalogue.n_items
    for loss in ("ce", "sampled"):
        model = build(name, wide_catalogue, loss=loss, n_negatives=5).train()
        batch = first_batch(model, wide_catalogue, rows=16)
        assert batch["inputs"].numel() < n_items
        n_positions = int(counted_positions(model, batch).sum())
        with CatalogueWideTensors(n_items) as spy:
            model.loss(batch).backward()
        if loss == "ce":  # the spy sees full softmax's (positions, n_items) logits
            assert spy.largest[0] >= n_positions * n_items > model.item_embedding.weight.numel()
        else:
            assert spy.largest[0] <= model.item_embedding.weight.numel(), spy.largest


def test_logits_are_positions_by_one_plus_draws(tiny_prepared, monkeypatch):
    model = build("sasrec", tiny_prepared, loss="sampled", n_negatives=7)
    batch = first_batch(model, tiny_prepared)
    shapes = []
    real_cross_entropy = F.cross_entropy

    def recording(logits, *args, **kwargs):  # type: ignore[no-untyped-def]
        shapes.append(tuple(logits.shape))
        return real_cross_entropy(logits, *args, **kwargs)

    monkeypatch.setattr("auxrec.models.sequence_transformer.F.cross_entropy", recording)
    model.loss(batch)
    assert shapes == [(int(model.loss_positions(batch).sum()), 1 + 7)]


@pytest.fixture(scope="module")
def synthetic_shop(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    from auxrec.data.loaders import load_dataset
    from auxrec.data.prepare import prepare_dataset, write_prepared
    from auxrec.data.synthetic import SyntheticConfig, write_synthetic

    root: Path = tmp_path_factory.mktemp("sampled-softmax")
    source = write_synthetic(SyntheticConfig.preset("tiny"), root / "source")
    prepared = write_prepared(prepare_dataset(load_dataset("synthetic", source)), root / "prepared")
    return PreparedDataset.load(prepared)


@pytest.mark.parametrize("name", MODELS)
def test_sampled_softmax_trains_about_as_well_as_full_softmax(name, synthetic_shop):
    """A quarter of the catalogue per batch; full-ranking NDCG@10 near full softmax's, far above chance."""
    training = TrainingConfig(epochs=40, batch_size=16, learning_rate=5e-3, patience=40, eval_every=40,
                              validation_protocol="full", progress=False)
    ndcg = {}
    for loss in ("ce", "sampled"):
        model = build(name, synthetic_shop, loss=loss, n_negatives=synthetic_shop.n_items // 4, hidden_dim=32,
                      ffn_dim=32, dropout=0.2)
        with seeded(0):
            fit(model, synthetic_shop, training, 0)
        ndcg[loss] = evaluate(model, synthetic_shop, "test", "full", seed=0).metrics["NDCG@10"]
    chance = float(np.mean(1 / np.log2(np.arange(2, 12)))) * 10 / synthetic_shop.n_items  # a random ranking
    assert ndcg["sampled"] > 3 * chance, ndcg
    assert ndcg["sampled"] > 0.75 * ndcg["ce"], ndcg
