"""The chunked, gradient-fused cross-entropy is F.cross_entropy up to float rounding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from auxrec.models.output_loss import CHUNK_BYTES, MIN_CHUNK_ROWS, chunk_rows, chunked_cross_entropy


def _inputs(n: int, n_items: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, 16, generator=generator).requires_grad_()
    items = (0.5 * torch.randn(n_items, 16, generator=generator)).requires_grad_()
    targets = torch.randint(0, n_items, (n,), generator=generator)
    return hidden, items, targets


def _value_and_grads(loss_fn, hidden, items, targets):
    hidden.grad = items.grad = None
    loss = loss_fn(hidden, items, targets)
    (3.0 * loss).backward()  # a non-unit upstream gradient must scale the stored ones
    return loss.detach(), hidden.grad.clone(), items.grad.clone()


@pytest.mark.parametrize(("n", "n_items", "rows"), [(1, 5, None), (37, 11, 32), (300, 50, 64), (257, 1000, None)])
def test_matches_cross_entropy_value_and_gradients(n, n_items, rows):
    hidden, items, targets = _inputs(n, n_items)
    expected = _value_and_grads(lambda h, w, t: F.cross_entropy(h @ w.T, t), hidden, items, targets)
    fused = _value_and_grads(lambda h, w, t: chunked_cross_entropy(h, w, t, rows), hidden, items, targets)
    for want, got in zip(expected, fused):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_chunking_does_not_change_the_result_beyond_rounding():
    hidden, items, targets = _inputs(500, 40)
    one_piece = _value_and_grads(lambda h, w, t: chunked_cross_entropy(h, w, t, 500), hidden, items, targets)
    chunked = _value_and_grads(lambda h, w, t: chunked_cross_entropy(h, w, t, 33), hidden, items, targets)
    for want, got in zip(one_piece, chunked):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_items_through_a_view_and_a_sum_get_their_gradient():
    # as in SASRec: the candidates are rows 1.. of (embedding table + content term)
    hidden, items, targets = _inputs(64, 21)
    content = torch.randn(21, 16).requires_grad_()
    table = items + content
    chunked_cross_entropy(hidden, table[1:], targets % 20).backward()
    reference_items, reference_content = items.detach().clone().requires_grad_(), content.detach().clone().requires_grad_()
    F.cross_entropy(hidden.detach() @ (reference_items + reference_content)[1:].T, targets % 20).backward()
    torch.testing.assert_close(items.grad, reference_items.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(content.grad, reference_content.grad, rtol=1e-5, atol=1e-6)
    assert items.grad[0].abs().sum() == 0  # the padding row is never a candidate


def test_without_gradients_it_is_only_the_value():
    hidden, items, targets = _inputs(50, 9)
    with torch.no_grad():
        value = chunked_cross_entropy(hidden, items, targets, 32)
    torch.testing.assert_close(value, F.cross_entropy(hidden @ items.T, targets).detach())


def test_chunk_rows_bounds_the_block():
    assert chunk_rows(1_682) * 1_682 * 4 <= CHUNK_BYTES < (chunk_rows(1_682) + 1) * 1_682 * 4
    assert chunk_rows(10**6) == MIN_CHUNK_ROWS


def test_autocast_keeps_the_loss_in_float32():
    # the trainer runs CUDA in bf16 autocast; the logits and their gradient must not drop to bf16
    hidden, items, targets = _inputs(40, 7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = chunked_cross_entropy(hidden, items, targets, 32)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, F.cross_entropy(hidden @ items.T, targets), rtol=1e-5, atol=1e-6)
