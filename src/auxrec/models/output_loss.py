"""Full-softmax cross-entropy over the catalogue, computed in row chunks with its gradient fused in.

``chunked_cross_entropy(hidden, items, targets)`` is ``F.cross_entropy(hidden @ items.T,
targets)`` (mean over rows) as a value and as gradients of ``hidden`` and ``items``, without
ever holding the (N, n_items) logits of all N positions. Why not the two-line version:

- **Memory.** ``F.cross_entropy`` over ``hidden @ items.T`` keeps the logits, the
  log-probabilities and, in backward, two more N × n_items tensors (the NLL's zero-filled
  gradient and log-softmax's). At ML-100K's 11k positions per step that is 4 × 75 MB; at a
  million items it would be 4 × 44 GB for the same step. Here a chunk of ``rows`` positions
  holds one rows × n_items block, so memory is bounded by the chunk, not the catalogue.
- **Time.** Each chunk's block is still in cache when it is turned into the gradient in
  place (softmax − one-hot, divided by N) and multiplied out into both gradients, so the
  forward does all the work: three matrix products per chunk and one exp pass, instead of
  ~8 passes over four freshly allocated (and, above glibc's mmap threshold, page-faulted)
  N × n_items tensors. The backward only scales the stored gradients by the incoming one.
  Measured in benchmarks/README.md ("Where an epoch's time goes").

The arithmetic is the same function; only the order of float sums differs (the item
gradient is accumulated chunk by chunk, log-sum-exp per row as torch does it), so results
match ``F.cross_entropy`` to float tolerance, not bit for bit (tests/models/test_output_loss.py).
Gradients are computed in the forward only when something asks for them (training); under
``torch.no_grad`` the function is a memory-bounded loss value.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

#: Target size of one chunk's (rows × n_items) float32 block. Alone on the machine, blocks of
#: ~2 MiB (a core's L2) were fastest for ML-100K's 1,682 items; on a 2-core machine shared
#: with other jobs every chunk's parallel operators wait for a descheduled thread, so fewer,
#: larger chunks (16 MiB: ~2,500 rows, 4-5 chunks per SASRec step at length 200) are safer.
CHUNK_BYTES = 16 * 2**20
#: Never fewer rows per chunk than this (a huge catalogue then costs rows × n_items × 4 bytes).
MIN_CHUNK_ROWS = 32


def chunk_rows(n_items: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Rows per chunk so that one rows × n_items float32 block is about ``chunk_bytes``."""
    return max(MIN_CHUNK_ROWS, chunk_bytes // (4 * max(n_items, 1)))


class _ChunkedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, items: torch.Tensor, targets: torch.Tensor,
                rows: int) -> torch.Tensor:
        # under (CUDA's bf16) autocast the logits and the in-place softmax gradient stay float32
        with torch.autocast(hidden.device.type, enabled=False):
            return _ChunkedCrossEntropy._forward(ctx, hidden, items, targets, rows)

    @staticmethod
    def _forward(ctx: Any, hidden: torch.Tensor, items: torch.Tensor, targets: torch.Tensor,
                 rows: int) -> torch.Tensor:
        n = hidden.shape[0]
        want_hidden, want_items = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        hidden32, items32 = hidden.float(), items.float()
        grad_hidden = torch.empty_like(hidden32) if want_hidden else None
        grad_items = torch.zeros_like(items32) if want_items else None
        total = hidden32.new_zeros(())
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            block_hidden = hidden32[start:stop]
            block = block_hidden @ items32.T  # (rows, n_items) logits
            rows_here = torch.arange(stop - start, device=block.device)
            chunk_targets = targets[start:stop]
            log_normaliser = torch.logsumexp(block, dim=1)  # (rows,)
            total += (log_normaliser - block[rows_here, chunk_targets]).sum()
            if not (want_hidden or want_items):
                continue
            # d loss / d logits = (softmax − one-hot) / N, built in place in the logits' memory
            block.sub_(log_normaliser[:, None]).exp_()
            block[rows_here, chunk_targets] -= 1.0
            block.div_(n)
            if grad_hidden is not None:
                torch.mm(block, items32, out=grad_hidden[start:stop])
            if grad_items is not None:
                grad_items.addmm_(block.T, block_hidden)
        ctx.save_for_backward(
            grad_hidden.to(hidden.dtype) if grad_hidden is not None else None,
            grad_items.to(items.dtype) if grad_items is not None else None,
        )
        return total / n

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_hidden, grad_items = ctx.saved_tensors
        return (grad_hidden * grad_output if grad_hidden is not None else None,
                grad_items * grad_output if grad_items is not None else None, None, None)


def chunked_cross_entropy(hidden: torch.Tensor, items: torch.Tensor, targets: torch.Tensor,
                          rows: int | None = None) -> torch.Tensor:
    """Mean cross-entropy of ``hidden`` (N, d) scored against ``items`` (n_items, d); ``targets`` (N,) index ``items``.

    Equal to ``F.cross_entropy((hidden @ items.T).float(), targets)`` up to float rounding,
    with memory bounded by ``rows`` × n_items (default `chunk_rows`).
    """
    if hidden.shape[0] == 0:  # nothing to chunk: F.cross_entropy's own answer for an empty batch (NaN)
        return F.cross_entropy(hidden @ items.T, targets)
    return _ChunkedCrossEntropy.apply(hidden, items, targets, rows or chunk_rows(items.shape[0]))
