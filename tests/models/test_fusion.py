"""Summation fusion is a different function family from concatenation (issue 13)."""

import numpy as np
import pytest
import torch
from torch import nn

from auxrec.experiments.runs import seeded
from auxrec.features.item_features import ItemFeatures
from auxrec.models.fusion import AuxiliaryFusion, pca_alignment
from auxrec.models.sasrec import SASRec, SASRecConfig

N_ITEMS = 30
DIMS = {"text": 6, "image": 5, "tabular": 4}


def random_features(dims=DIMS, seed=0, n_items=N_ITEMS):
    rng = np.random.default_rng(seed)
    return ItemFeatures({name: rng.normal(size=(n_items + 1, dim)).astype(np.float32)
                         for name, dim in dims.items()})


def linears(module):
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def test_sum_has_exactly_one_linear_on_the_common_width():
    with seeded(0):
        fusion = AuxiliaryFusion.from_features(random_features(), "sum", width=8)
    (projection,) = linears(fusion)
    assert projection.in_features == min(DIMS.values()) and projection.out_features == 8
    assert sum(p.numel() for p in fusion.parameters()) == 4 * 8 + 8
    assert all(getattr(fusion, f"features_{n}").shape == (N_ITEMS + 1, 4) for n in DIMS)
    assert fusion.dims() == DIMS  # the encoders' widths, for save/load placeholders


def test_sum_output_depends_only_on_the_sum_of_aligned_vectors():
    with seeded(0):
        fusion = AuxiliaryFusion.from_features(random_features(), "sum", width=8)
    items = torch.arange(1, N_ITEMS + 1)
    before = fusion(items)
    delta = torch.randn(N_ITEMS, 4)
    with torch.no_grad():
        fusion.features_text[1:] += delta  # +δ on one modality, −δ on another: same sum
        fusion.features_image[1:] -= delta
    assert torch.allclose(fusion(items), before, atol=1e-5)
    # ... and it does depend on that sum.
    with torch.no_grad():
        fusion.features_tabular[1:] += delta
    assert not torch.allclose(fusion(items), before, atol=1e-3)


def test_concat_output_changes_under_the_same_perturbation():
    with seeded(0):
        features = random_features(dims={"text": 4, "image": 4})
        fusion = AuxiliaryFusion.from_features(features, "concat", width=8)
    items = torch.arange(1, N_ITEMS + 1)
    before = fusion(items)
    delta = torch.randn(N_ITEMS, 4)
    with torch.no_grad():
        fusion.features_text[1:] += delta
        fusion.features_image[1:] -= delta
    assert not torch.allclose(fusion(items), before, atol=1e-3)
    # Two modalities are two separate input blocks of the one map: no summation.
    assert linears(fusion)[0].in_features == 8


def test_pca_alignment_is_deterministic_centred_unit_mean_norm_and_keeps_absent_rows_zero():
    rng = np.random.default_rng(1)
    matrix = (rng.normal(size=(N_ITEMS + 1, 6)) * np.array([5, 3, 2, 1, 0.5, 0.1]) + 7).astype(np.float32)
    present = np.ones(N_ITEMS + 1, bool)
    present[[0, 4, 9]] = False
    aligned = pca_alignment(matrix, present, 3)
    assert aligned.shape == (N_ITEMS + 1, 3) and aligned.dtype == np.float32
    assert (aligned[~present] == 0).all()
    assert np.allclose(aligned[present].mean(axis=0), 0, atol=1e-5)  # centred on the present items
    assert np.isclose(np.linalg.norm(aligned[present], axis=1).mean(), 1, atol=1e-5)
    variances = aligned[present].var(axis=0)
    assert (np.diff(variances) <= 1e-6).all()  # coordinate k = k-th direction of largest variance
    # Invariant to the modality's scale, offset and a reordering of its columns (fixed signs).
    other = pca_alignment(matrix[:, ::-1] * 3 - 2, present, 3)
    assert np.allclose(aligned, other, atol=1e-4)
    assert np.array_equal(aligned, pca_alignment(matrix, present, 3))


def test_pca_alignment_of_rank_deficient_data_pads_with_zero_columns():
    matrix = np.zeros((6, 5), np.float32)
    matrix[1:3] = np.arange(5, dtype=np.float32)  # two present items: rank 1 after centring
    matrix[2] *= 2
    present = np.array([False, True, True, False, False, False])
    aligned = pca_alignment(matrix, present, 4)
    assert np.abs(aligned[1:3, 0]).min() > 0.5 and (aligned[:, 1:] == 0).all()
    assert (pca_alignment(np.zeros((6, 5), np.float32), np.zeros(6, bool), 4) == 0).all()


def test_missing_modality_rows_stay_zero_under_sum():
    features = random_features()
    features.present["image"][5] = False
    features = ItemFeatures(features.matrices, features.present)
    fusion = AuxiliaryFusion.from_features(features, "sum", width=8)
    assert (fusion.features_image[5] == 0).all() and (fusion.features_image[0] == 0).all()
    assert (fusion.features_text[5] != 0).any()


@pytest.mark.parametrize("mode", ["concat", "sum"])
def test_saved_fusion_model_reloads_without_features(mode, tmp_path):
    with seeded(0):
        model = SASRec(SASRecConfig(max_length=10, aux_fusion=mode, aux_on_output=True), n_users=3,
                       n_items=N_ITEMS, item_features=random_features()).eval()
    model.save(tmp_path / "model")
    loaded = SASRec.load(tmp_path / "model")
    assert loaded.fusion is not None and loaded.fusion.mode == mode
    for name in DIMS:
        buffer = f"features_{name}"
        assert torch.equal(getattr(loaded.fusion, buffer), getattr(model.fusion, buffer))
    sequences = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    with torch.no_grad():
        assert torch.equal(model.user_states(sequences), loaded.user_states(sequences))
        assert torch.equal(model.output_embeddings(), loaded.output_embeddings())


def test_concat_keeps_its_parameters_and_numbers():
    """concat is unchanged by the new summation: one map of the rescaled concatenation."""
    features = random_features()
    with seeded(0):
        fusion = AuxiliaryFusion.from_features(features, "concat", width=8)
    (projection,) = linears(fusion)
    with seeded(0):
        reference = nn.Linear(sum(DIMS.values()), 8)  # the same initialisation order
    assert torch.equal(projection.weight, reference.weight)
    scaled = [m / np.linalg.norm(m[1:], axis=1).mean() for m in features.matrices.values()]
    expected = reference(torch.from_numpy(np.concatenate(scaled, axis=1)).float())
    assert torch.allclose(fusion.all_items(), expected, atol=1e-5)
