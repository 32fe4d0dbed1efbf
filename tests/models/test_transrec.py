"""TransRec: scoring contract, dependence on the previous item, and that it learns transitions."""

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from auxrec.data.dataset import PreparedDataset
from auxrec.data.ids import PADDING_ID
from auxrec.data.prepare import prepare_dataset, write_prepared
from auxrec.data.schema import RawDataset
from auxrec.experiments.runs import seeded
from auxrec.models.base import UserHistories
from auxrec.models.transrec import TransRec, TransRecConfig, unit_ball
from auxrec.training.config import TrainingConfig
from auxrec.training.trainer import epoch_batches, fit

FAST = TrainingConfig(epochs=3, batch_size=64, learning_rate=1e-2, patience=5, progress=False)


def fitted(dataset, seed=0, config=TransRecConfig(), training=FAST):
    with seeded(seed):
        model = TransRec(config, n_users=dataset.n_users, n_items=dataset.n_items)
        return fit(model, dataset, training, seed)


def histories_for(dataset, n=5):
    users, _ = dataset.targets("test")
    users = users[:n]
    return UserHistories(users, dataset.history("test").padded(users, 1))


def test_shapes_and_candidate_consistency(tiny_prepared):
    model = fitted(tiny_prepared)
    histories = histories_for(tiny_prepared)
    full = model.score(histories)
    assert full.shape == (5, tiny_prepared.n_items + 1)
    candidates = np.stack([np.random.default_rng(u).permutation(np.arange(1, tiny_prepared.n_items + 1))[:20]
                           for u in range(5)])
    sampled = model.score(histories, candidates)
    assert sampled.shape == (5, 20)
    assert torch.allclose(sampled, torch.gather(full, 1, torch.from_numpy(candidates)), atol=1e-5)


def test_score_matches_the_definition(tiny_prepared):
    """β_j − ||unit(γ_i) + t + t_u − unit(γ_j)||², computed naively."""
    model = fitted(tiny_prepared)
    histories = histories_for(tiny_prepared)
    points = unit_ball(model.item_embedding.weight.detach())
    users = torch.from_numpy(histories.users)
    anchor = points[torch.from_numpy(histories.sequences[:, -1])] + model.global_translation.detach() \
        + model.user_translation.weight.detach()[users]
    expected = model.item_bias.weight.detach().T - ((anchor[:, None, :] - points[None]) ** 2).sum(-1)
    assert torch.allclose(model.score(histories), expected, atol=1e-4)


def test_unit_ball_clamps_only_long_vectors():
    vectors = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    assert torch.allclose(unit_ball(vectors), torch.tensor([[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]]))


def test_score_depends_on_the_previous_item(tiny_prepared):
    model = fitted(tiny_prepared)
    histories = histories_for(tiny_prepared)
    changed = histories.sequences.copy()
    changed[:, -1] = changed[:, -1] % tiny_prepared.n_items + 1  # a different previous item
    other = model.score(UserHistories(histories.users, changed))
    assert not torch.allclose(model.score(histories), other)
    # An empty history (padding) starts from the origin and still gives finite scores.
    empty = model.score(UserHistories(histories.users, np.full_like(changed, PADDING_ID)))
    assert torch.isfinite(empty).all()
    # Only the last column is read.
    longer = np.concatenate([np.ones_like(changed), histories.sequences], axis=1)
    assert torch.equal(model.score(UserHistories(histories.users, longer)), model.score(histories))


def test_training_pairs_are_consecutive_and_negatives_are_not_positives(tiny_prepared):
    model = TransRec(TransRecConfig(), n_users=tiny_prepared.n_users, n_items=tiny_prepared.n_items)
    sequences = tiny_prepared.train_sequences
    batches = list(epoch_batches(model, tiny_prepared, 64, np.random.default_rng(0)))
    n_pairs = int(np.maximum(sequences.lengths - 1, 0).sum())
    assert sum(len(b["users"]) for b in batches) == n_pairs
    for batch in batches:
        for user, previous, positive, negative in zip(*(batch[k].numpy() for k in
                                                        ("users", "previous", "positives", "negatives"))):
            history = sequences.of(int(user))
            starts = np.flatnonzero(history[:-1] == previous)
            assert (history[starts + 1] == positive).any()
            assert negative not in history


def test_seeded_determinism(tiny_prepared):
    histories = histories_for(tiny_prepared)
    first, second = fitted(tiny_prepared, seed=1), fitted(tiny_prepared, seed=1)
    assert torch.equal(first.score(histories), second.score(histories))


def test_save_load_round_trip(tiny_prepared, tmp_path):
    model = fitted(tiny_prepared)
    model.save(tmp_path / "model")
    loaded = TransRec.load(tmp_path / "model")
    assert loaded.config == model.config
    histories = histories_for(tiny_prepared)
    assert torch.equal(model.score(histories), loaded.score(histories))


# That TransRec's loss decreases is `tests/models/test_contract.py::test_loss_decreases[transrec]`.


# -- learning: every user walks a cycle 1 → 2 → … → k → 1 ---------------------------
N_CYCLES, CYCLE_LENGTH, USERS_PER_CYCLE, SEQUENCE_LENGTH = 6, 25, 10, 12  # 150 items


def cycle_dataset(path: Path) -> PreparedDataset:
    """Disjoint cycles over item ranges; user k of a cycle starts at an evenly spaced
    offset, so together the users' training parts cover every transition of the cycle."""
    rows = []
    for cycle in range(N_CYCLES):
        for k in range(USERS_PER_CYCLE):
            user = f"u{cycle}-{k}"
            start = k * CYCLE_LENGTH // USERS_PER_CYCLE
            for step in range(SEQUENCE_LENGTH):
                item = cycle * CYCLE_LENGTH + (start + step) % CYCLE_LENGTH + 1
                rows.append((user, item, 1_000_000 + step))
    raw = RawDataset(name="cycles", interactions=pd.DataFrame(rows, columns=["user", "item", "timestamp"]))
    return PreparedDataset.load(write_prepared(prepare_dataset(raw), path))


def successor(item: int) -> int:
    cycle, position = divmod(item - 1, CYCLE_LENGTH)
    return cycle * CYCLE_LENGTH + (position + 1) % CYCLE_LENGTH + 1


def test_learns_the_cycle(tmp_path):
    """After a, the top item is a + 1, with the items already walked excluded (as full
    ranking excludes the history). Without that exclusion the walked items compete too;
    S-BPR never contrasts them (a user's positives are never its negatives)."""
    dataset = cycle_dataset(tmp_path / "cycles")
    assert dataset.n_items == N_CYCLES * CYCLE_LENGTH  # original item ids 1..150 map to themselves
    training = TrainingConfig(epochs=25, batch_size=64, learning_rate=5e-3, patience=25, progress=False)
    model = fitted(dataset, seed=0, training=training)
    correct, total, covered = 0, 0, set()
    for user in range(1, dataset.n_users + 1):
        walk = dataset.train_sequences.of(user).astype(np.int64)
        steps = len(walk) - 1
        scores = model.score(UserHistories(np.full(steps, user), walk[:-1, None]))
        scores[:, PADDING_ID] = -torch.inf
        for step in range(steps):
            scores[step, torch.from_numpy(walk[: step + 1])] = -torch.inf
            assert walk[step + 1] == successor(int(walk[step]))
        correct += int((scores.argmax(1).numpy() == walk[1:]).sum())
        total += steps
        covered.update(walk[:-1].tolist())
    assert covered == set(range(1, dataset.n_items + 1))  # every item a is asked about
    assert correct / total >= 0.9, correct / total
