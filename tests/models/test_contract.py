"""The contract every registered model must keep, run over the whole registry."""

import numpy as np
import pytest
import torch

from auxrec.evaluation.evaluator import evaluate
from auxrec.experiments.runs import build_model, seeded
from auxrec.models import REGISTRY, lookup
from auxrec.models.contract import Recommender, UserHistories
from auxrec.training.config import TrainingConfig
from auxrec.training.trainer import epoch_batches, fit

FAST = TrainingConfig(epochs=3, batch_size=64, learning_rate=1e-2, patience=5, progress=False)


# Every registered model, plus the "+" variants (the same classes built with item features).
VARIANTS = [(name, ()) for name in sorted(REGISTRY)] + [
    (name, ("text", "tabular")) for name in sorted(REGISTRY) if REGISTRY[name][0].uses_item_features
]
IDS = [name + ("+" if aux else "") for name, aux in VARIANTS]


def built(name, dataset, seed=0, aux=()):
    _, config_class = lookup(name)
    with seeded(seed):
        return build_model(name, config_class(), dataset, aux)[0]


def fitted(name, dataset, seed=0, aux=()):
    model = built(name, dataset, seed, aux)
    with seeded(seed):
        return fit(model, dataset, FAST, seed)


def histories_for(model, dataset, n=5):
    users, _ = dataset.targets("test")
    users = users[:n]
    length = model.history_length
    sequences = dataset.history("test").padded(users, length) if length else np.zeros((n, 0), np.int64)
    return UserHistories(users, sequences)


@pytest.mark.parametrize(("name", "aux"), VARIANTS, ids=IDS)
def test_score_shapes(name, aux, tiny_prepared):
    model = fitted(name, tiny_prepared, aux=aux)
    assert isinstance(model, Recommender)
    histories = histories_for(model, tiny_prepared)
    full = model.score(histories)
    assert full.shape == (5, tiny_prepared.n_items + 1)
    candidates = np.tile(np.arange(1, 8), (5, 1))
    sampled = model.score(histories, candidates)
    assert sampled.shape == (5, 7)
    # candidate scores agree with the full score row
    assert torch.allclose(sampled, full[:, 1:8], atol=1e-5)


@pytest.mark.parametrize(("name", "aux"), VARIANTS, ids=IDS)
def test_seeded_determinism(name, aux, tiny_prepared):
    first = fitted(name, tiny_prepared, seed=1, aux=aux)
    second = fitted(name, tiny_prepared, seed=1, aux=aux)
    histories = histories_for(first, tiny_prepared)
    assert torch.equal(first.score(histories), second.score(histories))


@pytest.mark.parametrize(("name", "aux"), VARIANTS, ids=IDS)
def test_save_load_round_trip(name, aux, tiny_prepared, tmp_path):
    model = fitted(name, tiny_prepared, aux=aux)
    model.save(tmp_path / "model")
    model_class, _ = lookup(name)
    loaded = model_class.load(tmp_path / "model")
    histories = histories_for(model, tiny_prepared)
    assert torch.equal(model.score(histories), loaded.score(histories))


@pytest.mark.parametrize(("name", "aux"), [v for v in VARIANTS if issubclass(REGISTRY[v[0]][0], torch.nn.Module)],
                         ids=[i for v, i in zip(VARIANTS, IDS) if issubclass(REGISTRY[v[0]][0], torch.nn.Module)])
def test_loss_decreases(name, aux, tiny_prepared):
    model = built(name, tiny_prepared, aux=aux)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    losses = []
    # Dropout and BERT4Rec's masks draw from torch's global RNG: seeded, so the outcome does not
    # depend on which tests ran before this one in the same pytest-xdist worker.
    with seeded(0):
        for _ in range(15):
            epoch = []
            for batch in epoch_batches(model, tiny_prepared, 64, rng):
                optimizer.zero_grad()
                loss = model.loss(batch)
                loss.backward()
                optimizer.step()
                epoch.append(float(loss.detach()))
            losses.append(np.mean(epoch))
    assert losses[-1] < losses[0]


def test_poprec_scores_training_counts(tiny_prepared):
    model = fitted("poprec", tiny_prepared)
    scores = model.score(histories_for(model, tiny_prepared))
    assert torch.equal(scores[0], torch.as_tensor(tiny_prepared.train_item_counts, dtype=torch.float32))


def test_constant_scorer_gets_worst_rank(tiny_prepared):
    class Constant:
        name = "constant"
        history_length = 0

        def score(self, histories, candidates=None):
            n = candidates.shape[1] if candidates is not None else tiny_prepared.n_items + 1
            return torch.zeros((len(histories.users), n))

    result = evaluate(Constant(), tiny_prepared, "test", "sampled", seed=0)
    assert result.metrics["HR@10"] == 0.0
    assert (result.ranks == 101).all() or (result.ranks == result.ranks.max()).all()


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_capabilities_are_declared_and_true(name):
    """Capabilities are class attributes (never sniffed): check them against what the class does."""
    import inspect

    model_class, _ = REGISTRY[name]
    takes_features = "item_features" in inspect.signature(model_class.__init__).parameters
    assert model_class.uses_item_features == takes_features
    assert set(model_class.required_features) <= {"keywords", "text", "image", "tabular"}
    assert model_class.relative_cost >= 1
    assert model_class.trainable == hasattr(model_class, "loss")
