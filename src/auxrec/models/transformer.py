"""Transformer building blocks shared by SASRec and BERT4Rec (and their + variants).

Kept in one place on purpose: both models differ only in direction (causal or
bidirectional), activation and training objective, which are constructor arguments here.

Sequences are **left-padded** (most recent item in the last column). Attention masks let
a real position attend to real positions (and, for causal models, only earlier ones);
padded positions attend to themselves only, which avoids all-masked rows (NaN) while
never letting a real position see padding.

**Length groups** (`length_groups`, `DropoutReplay`). Padding is wasted work: in a batch of
128 ML-100K users at length 200 about half of the positions (and more of the L × L attention)
are padding, because one long history sets the width of all. On CPU, training encodes a
batch as a few groups of rows of similar length, each trimmed to its own longest history
(`SequenceTransformer.counted_states`): the same positions with the same inputs, so the same
function of the weights, in ~1.7× less time per step on one thread. Dropout stays exactly
the one the whole batch would draw (`auxrec.models.dropout_noise`): each dropout site draws
the noise of the whole (B, L) batch the first time any group reaches it, so the random stream
is consumed in the order and amount of the unsplit forward, and every group multiplies by its
rows and columns of that noise. What changes is only the order of float sums (softmax over fewer masked keys,
matrix products of fewer rows), so results match the unsplit computation to float rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from auxrec.data.ids import PADDING_ID
from auxrec.models.dropout_noise import SequenceDropout, dropout


def attention_mask(sequences: torch.Tensor, causal: bool) -> torch.Tensor:
    """(B, L) item ids → (B, 1, L, L) boolean mask, True = may attend."""
    length = sequences.shape[1]
    real_keys = (sequences != PADDING_ID)[:, None, None, :]  # (B, 1, 1, L)
    diagonal = torch.eye(length, dtype=torch.bool, device=sequences.device)  # (L, L)
    allowed = real_keys | diagonal
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=sequences.device).tril()
    return allowed


def trim_padding(sequences: torch.Tensor) -> torch.Tensor:
    """Drop leading columns that are padding in every row (less work, same result)."""
    real_columns = (sequences != PADDING_ID).any(dim=0)
    if not bool(real_columns.any()):
        return sequences[:, -1:]
    first = int(real_columns.float().argmax())
    return sequences[:, first:]


def length_groups(sequences: torch.Tensor, groups: int) -> list[torch.Tensor]:
    """Row indices of ``sequences`` (B, L) in up to ``groups`` groups of similar real length.

    Rows are sorted by their number of non-padding items (stably) and cut into groups of
    equal row count, so each group's longest history is close to its shortest.
    """
    lengths = (sequences != PADDING_ID).sum(dim=1)
    order = torch.sort(lengths, stable=True).indices
    return [part for part in torch.tensor_split(order, min(groups, len(order))) if len(part)]


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, width: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if width % n_heads:
            raise ValueError(f"hidden width {width} is not divisible by {n_heads} heads")
        self.n_heads = n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, return_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, width = x.shape
        head_dim = width // self.n_heads
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, head_dim).permute(2, 0, 3, 1, 4)  # (B, h, L, hd)
        if return_weights:  # explicit path, for analysis only
            logits = (q @ k.transpose(-2, -1)) / math.sqrt(head_dim)  # (B, h, L, L)
            weights = logits.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            y = weights @ v
        elif self.training and self.dropout > 0 and x.device.type == "cpu":
            # SDPA has no fused CPU kernel with dropout and runs its math fallback. These are that
            # fallback's operations in its order (bit-identical outputs, gradients and RNG draws) less its
            # per-block bool → float mask conversion and `_safe_softmax`'s all-masked-row check (no row is:
            # each position sees itself): ~4% faster steps on one thread (benchmarks/README.md, "Where an
            # epoch's time goes"). Not on GPUs: their fused kernels do dropout.
            weights = None
            scale = math.sqrt(1 / math.sqrt(head_dim))  # SDPA multiplies q and k by this each
            logits = torch.matmul(q * scale, k.transpose(-2, -1) * scale)
            logits.add_(torch.where(mask, 0.0, -math.inf))
            y = dropout(logits.softmax(dim=-1), self.dropout, True, positional=(2, 3)) @ v  # (B, h, L, L) weights
        else:
            weights = None
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                               dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(batch, length, width)
        return self.out(y), weights


class TransformerBlock(nn.Module):
    """Self-attention + point-wise feed-forward, each with residual, dropout and LayerNorm."""

    def __init__(self, width: int, n_heads: int, ffn_width: int, dropout: float, activation: str,
                 norm_first: bool) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.attention = MultiHeadSelfAttention(width, n_heads, dropout)
        self.attention_norm = nn.LayerNorm(width)
        self.ffn = nn.Sequential(
            nn.Linear(width, ffn_width),
            nn.ReLU() if activation == "relu" else nn.GELU(),
            SequenceDropout(dropout),
            nn.Linear(ffn_width, width),
        )
        self.ffn_norm = nn.LayerNorm(width)
        self.dropout = SequenceDropout(dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, return_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.norm_first:
            attended, weights = self.attention(self.attention_norm(x), mask, return_weights)
            x = x + self.dropout(attended)
            x = x + self.dropout(self.ffn(self.ffn_norm(x)))
        else:
            attended, weights = self.attention(x, mask, return_weights)
            x = self.attention_norm(x + self.dropout(attended))
            x = self.ffn_norm(x + self.dropout(self.ffn(x)))
        return x, weights


def reverse_positions(sequences: torch.Tensor) -> torch.Tensor:
    """Position ids counted from the most recent item (0 = last column).

    With left padding and per-batch trimming, the column index of an item changes from
    batch to batch; its distance from the end does not.
    """
    length = sequences.shape[1]
    return torch.arange(length - 1, -1, -1, device=sequences.device).expand_as(sequences)
