"""Case study, elbow and attention analysis on tiny data, and the PNG figures."""

from pathlib import Path

import numpy as np
import pytest

from auxrec.data.dataset import PreparedDataset
from auxrec.data.prepare import prepare_dataset, write_prepared
from auxrec.experiments.runs import seeded
from auxrec.models.poprec import PopRec, PopRecConfig
from auxrec.models.sasrec import SASRec, SASRecConfig
from auxrec.reporting.analysis import (
    AttentionAnalysis,
    CaseStudyItem,
    CaseStudyUser,
    attention_analysis,
    block_diagonality,
    case_study,
    elbow,
    knee,
    user_behaviour_features,
)
from auxrec.training.config import TrainingConfig
from auxrec.training.trainer import fit

pytest.importorskip("sklearn")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
K_FEW = range(1, 4)  # a short elbow curve keeps the K-means fits, and the tests, fast


def tiny_sasrec(dataset: PreparedDataset, seed: int = 0) -> SASRec:
    with seeded(seed):
        return SASRec(SASRecConfig(max_length=20, hidden_dim=16), n_users=dataset.n_users,
                      n_items=dataset.n_items).eval()


def tiny_models(dataset: PreparedDataset) -> dict[str, object]:
    poprec = PopRec(PopRecConfig(), n_users=dataset.n_users, n_items=dataset.n_items)
    fit(poprec, dataset, TrainingConfig(), seed=0)
    return {"SASRec": tiny_sasrec(dataset), "PopRec": poprec}


# -- case study ---------------------------------------------------------------------


def test_case_study_users_histories_and_predictions(tiny_prepared):
    models = tiny_models(tiny_prepared)
    result = case_study(tiny_prepared, models, n_users=3, n_recent=4, seed=1)
    evaluated, targets = tiny_prepared.targets("test")
    target_of = dict(zip(evaluated.tolist(), targets.tolist()))
    history = tiny_prepared.history("test")
    assert len(result) == 3
    assert len({u.user for u in result}) == 3
    for user in result:
        seen = history.of(user.user)
        assert len(seen) >= 4  # enough long users exist, so they are preferred
        assert [i.item for i in user.history] == seen[-4:].tolist()
        assert user.target.item == target_of[user.user]
        assert list(user.predictions) == ["SASRec", "PopRec"]
        for item, hit in user.predictions.values():
            assert 1 <= item.item <= tiny_prepared.n_items
            assert item.item not in set(seen.tolist())
            assert hit == (item.item == user.target.item)
        assert user.target.title.startswith("item ")  # the tiny table's title column
        assert user.target.image_path is None


def test_case_study_is_deterministic_and_takes_given_users(tiny_prepared):
    models = tiny_models(tiny_prepared)
    first = case_study(tiny_prepared, models, n_users=2, seed=5)
    assert first == case_study(tiny_prepared, models, n_users=2, seed=5)
    chosen = [int(u) for u in tiny_prepared.targets("test")[0][:2]]
    given = case_study(tiny_prepared, models, users=chosen)
    assert [u.user for u in given] == chosen


def test_case_study_hit_flag_when_the_target_is_top(tiny_prepared):
    """A PopRec whose counts make one user's target the most popular item must report a hit."""
    evaluated, targets = tiny_prepared.targets("test")
    user, target = int(evaluated[0]), int(targets[0])
    if target in set(tiny_prepared.history("test").of(user).tolist()):
        pytest.skip("target already in history")
    rigged = PopRec(PopRecConfig(), n_users=tiny_prepared.n_users, n_items=tiny_prepared.n_items)
    fit(rigged, tiny_prepared, TrainingConfig(), seed=0)
    rigged.item_counts_[target] = 1e6
    [result] = case_study(tiny_prepared, {"rigged": rigged}, users=[user])
    item, hit = result.predictions["rigged"]
    assert item.item == target and hit


# -- features and elbow ---------------------------------------------------------------


def test_user_behaviour_features_are_unit_rows(tiny_prepared):
    features = user_behaviour_features(tiny_prepared, n_components=5)
    assert features.shape == (len(tiny_prepared.targets("test")[0]), 5)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(features, user_behaviour_features(tiny_prepared, n_components=5))


def test_elbow_finds_three_blobs():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.concatenate([c + rng.normal(scale=0.3, size=(30, 2)) for c in centres])
    k_values, inertias, chosen = elbow(points, range(1, 11), seed=0)
    assert k_values == list(range(1, 11))
    assert len(inertias) == 10 and inertias[0] > inertias[2]
    assert chosen == 3


def test_knee_edge_cases():
    assert knee([1, 2], [5.0, 1.0]) == 1
    assert knee([1, 2, 3], [2.0, 2.0, 2.0]) == 1
    assert knee([1, 2, 3, 4], [10.0, 2.0, 1.5, 1.0]) == 2


def test_block_diagonality():
    assert block_diagonality([[1.0, 0.0], [0.0, 1.0]]) == pytest.approx(1.0)
    assert np.isnan(block_diagonality([[1.0]]))


# -- attention analysis ----------------------------------------------------------------


def test_attention_analysis_shapes_disjoint_sets_and_determinism(tiny_prepared):
    model = tiny_sasrec(tiny_prepared)
    analysis = attention_analysis(tiny_prepared, model, n_clusters=4, set_size=3, seed=0, k_values=K_FEW)
    n_users = len(tiny_prepared.targets("test")[0])
    assert analysis.n_clusters == 4
    assert np.asarray(analysis.similarity).shape == (4, 4)
    assert np.asarray(analysis.centred_similarity).shape == (4, 4)
    assert sum(analysis.cluster_sizes) == n_users
    assert analysis.cluster_sizes == sorted(analysis.cluster_sizes, reverse=True)
    everyone: list[int] = []
    for (first, second), (n1, n2), size in zip(analysis.set_members, analysis.set_sizes,
                                               analysis.cluster_sizes):
        assert (len(first), len(second)) == (n1, n2)
        assert n1 == n2 == min(3, size // 2)
        everyone += first + second
    assert len(everyone) == len(set(everyone))  # disjoint within and across clusters
    assert np.all(np.abs(np.asarray(analysis.similarity)) <= 1.0 + 1e-9)  # every set is non-empty here
    again = attention_analysis(tiny_prepared, model, n_clusters=4, set_size=3, seed=0, k_values=K_FEW)
    assert analysis == again
    assert analysis.set_members != attention_analysis(tiny_prepared, model, n_clusters=4, set_size=3,
                                                      seed=1, k_values=K_FEW).set_members
    as_json = analysis.to_json()
    assert as_json["n_clusters"] == 4 and len(as_json["similarity"]) == 4
    # The random-grouping baseline: same set sizes, users shuffled across sets.
    assert analysis.n_permutations == 200
    assert all(np.isfinite(analysis.random_centred_block_diagonality))
    assert 0 < analysis.centred_permutation_p <= 1
    # The length-matched baseline and each cluster's median (capped) history length.
    assert len(analysis.cluster_median_history) == 4
    assert all(1 <= m <= analysis.history_length for m in analysis.cluster_median_history)
    assert all(np.isfinite(analysis.length_matched_centred_block_diagonality))
    assert 0 < analysis.length_matched_centred_p <= 1


def test_length_matched_shuffles_keep_each_sets_lengths():
    """If attention depends only on length, length-matched shuffles reproduce the observed score."""
    from auxrec.reporting.analysis import _set_similarities, block_diagonality

    rng = np.random.default_rng(0)
    lengths = np.repeat([5, 10, 20, 40], 20)  # four "clusters" that differ only in length
    attention = np.stack([np.r_[np.zeros(40 - n), np.full(n, 1.0 / n)] for n in lengths])
    attention += rng.normal(0, 1e-3, attention.shape)
    observed = block_diagonality(_set_similarities(attention, [(10, 10)] * 4)[1])
    index = np.arange(80)
    for block in range(4):  # shuffle within each length stratum only
        index[block * 20:(block + 1) * 20] = block * 20 + rng.permutation(20)
    matched = block_diagonality(_set_similarities(attention[index], [(10, 10)] * 4)[1])
    assert observed > 0.5 and abs(matched - observed) < 0.1


def test_random_groupings_score_near_zero_block_diagonality():
    from auxrec.reporting.analysis import _set_similarities, block_diagonality

    rng = np.random.default_rng(0)
    attention = rng.dirichlet(np.ones(12), size=80)  # one attention row per user, no cluster structure
    scores = [block_diagonality(_set_similarities(attention[rng.permutation(80)], [(10, 10)] * 4)[1])
              for _ in range(200)]
    assert abs(np.mean(scores)) < 0.1


def test_attention_analysis_caps_clusters_on_few_users(raw_factory, tmp_path):
    dataset = PreparedDataset.load(write_prepared(prepare_dataset(raw_factory(n_users=6)), tmp_path / "few"))
    n_users = len(dataset.targets("test")[0])
    analysis = attention_analysis(dataset, tiny_sasrec(dataset), n_clusters=4, set_size=100)
    assert analysis.n_clusters == n_users // 2 < 4  # every cluster could give two sets
    assert np.asarray(analysis.similarity).shape == (analysis.n_clusters,) * 2
    assert max(analysis.k_values) <= n_users


def test_attention_analysis_rejects_models_without_attention(tiny_prepared):
    from auxrec.exceptions import ConfigError

    poprec = PopRec(PopRecConfig(), n_users=tiny_prepared.n_users, n_items=tiny_prepared.n_items)
    with pytest.raises(ConfigError, match="SASRec"):
        attention_analysis(tiny_prepared, poprec)


# -- figures -----------------------------------------------------------------------------


def is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0 and path.read_bytes()[:8] == PNG_MAGIC


def test_plot_case_study_survives_corrupt_and_real_images(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    from auxrec.reporting.figures import plot_case_study

    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not a jpeg at all" * 10)
    good = tmp_path / "good.png"
    Image.new("RGB", (40, 60), (200, 30, 30)).save(good)
    items = [CaseStudyItem(1, "A movie with a rather long title (1999)", corrupt),
             CaseStudyItem(2, "Poster", good), CaseStudyItem(3, "No image", None)]
    users = [
        CaseStudyUser(7, items, items[2], {"SASRec+": (items[1], False), "PopRec": (items[2], True)}),
        CaseStudyUser(8, items[:1], items[0], {"SASRec+": (items[0], True)}),  # shorter history, fewer models
    ]
    out = plot_case_study(users, tmp_path / "figs" / "case.png", title="case study")
    assert out == tmp_path / "figs" / "case.png" and is_png(out)
    assert [p.name for p in out.parent.iterdir()] == ["case.png"]  # no temporary left behind


def test_plot_case_study_from_real_analysis(tiny_prepared, tmp_path):
    pytest.importorskip("matplotlib")
    from auxrec.reporting.figures import plot_case_study

    users = case_study(tiny_prepared, tiny_models(tiny_prepared), n_users=2)
    assert is_png(plot_case_study(users, tmp_path / "case.png"))


def test_plot_elbow_and_heatmap(tmp_path):
    pytest.importorskip("matplotlib")
    from auxrec.reporting.figures import plot_attention_heatmap, plot_elbow

    assert is_png(plot_elbow([1, 2, 3, 4], [10.0, 3.0, 2.0, 1.8], 2, tmp_path / "elbow.png"))
    similarity = [[0.99, 0.97, float("nan")], [0.96, 0.995, 0.97], [0.95, 0.96, 0.99]]
    centred = [[0.8, -0.2, float("nan")], [-0.1, 0.7, -0.3], [-0.4, 0.1, 0.9]]
    analysis = AttentionAnalysis(
        k_values=[1, 2, 3], inertias=[3.0, 2.0, 1.5], elbow_k=2, n_clusters=3, cluster_sizes=[10, 6, 2],
        set_sizes=[(5, 5), (3, 3), (1, 0)], set_members=[([1], [2])] * 3, similarity=similarity,
        centred_similarity=centred, block_diagonality=block_diagonality(similarity),
        centred_block_diagonality=block_diagonality(centred), block=-1, history_length=20,
    )
    assert analysis.to_json()["similarity"][0][2] is None
    assert is_png(plot_attention_heatmap(analysis, tmp_path / "attention.png"))
