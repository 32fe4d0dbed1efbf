"""Users and their sequences: the sparse category Markov matrix and user chunks (preferences,
item walks, timestamps, ratings)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from auxrec.data.synthetic.catalogue import _Catalogue
from auxrec.data.synthetic.config import SyntheticConfig
from auxrec.data.synthetic.vocabulary import _CATEGORIES, _COLOURS

_T0 = 1_262_304_000  # 2010-01-01T00:00:00Z


def _transitions(config: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """Sparse Markov matrix: successors (C, d) and their cumulative probabilities (C, d)."""
    rng = np.random.default_rng([config.seed, 4])
    n_cat, degree = config.n_categories, config.transition_out_degree
    successors = np.argsort(rng.random((n_cat, n_cat)), axis=1)[:, :degree]
    probs = rng.dirichlet(np.full(degree, 0.7), size=n_cat)
    return successors.astype(np.int64), np.cumsum(probs, axis=1)


def _pick(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row-wise categorical draw: index of the first cumulative value above ``u``."""
    return np.minimum((cum < u[:, None]).sum(axis=1), cum.shape[1] - 1)


@dataclass
class _UserChunk:
    users: pd.DataFrame  # user, segment, favourite_colour, price_tier, preferred_categories
    user: np.ndarray  # int64 per interaction
    item: np.ndarray  # int64 item ids per interaction
    timestamp: np.ndarray  # int64
    rating: np.ndarray | None  # float64
    latent_category: np.ndarray  # int64 per interaction (for diagnostics)


def _user_chunks(config: SyntheticConfig, cat: _Catalogue) -> Iterator[_UserChunk]:
    successors, succ_cum = _transitions(config)
    n_cat, n_col = config.n_categories, len(_COLOURS)
    cat_names = [c[0] for c in _CATEGORIES[:n_cat]]
    col_names = [c[0] for c in _COLOURS]
    extra_mean = config.mean_sequence_length - config.min_sequence_length
    for chunk, first in enumerate(range(0, config.n_users, config.users_per_chunk)):
        rng = np.random.default_rng([config.seed, 2, chunk])
        n = min(config.users_per_chunk, config.n_users - first)
        user_ids = np.arange(first + 1, first + n + 1, dtype=np.int64)
        # User attributes.
        k = config.n_preferred_categories
        preferred = np.argsort(rng.random((n, n_cat)), axis=1)[:, :k]
        pref_w = rng.dirichlet(np.ones(k), size=n)
        top = np.argsort(-pref_w, axis=1, kind="stable")
        preferred = np.take_along_axis(preferred, top, axis=1)
        pref_cum = np.cumsum(np.take_along_axis(pref_w, top, axis=1), axis=1)
        fav_colour = rng.integers(0, n_col, n)
        user_tier = rng.choice(3, size=n, p=[0.3, 0.5, 0.2])
        if extra_mean > 0:
            sigma = config.length_sigma
            extra = rng.lognormal(np.log(extra_mean) - sigma**2 / 2, sigma, n)
        else:
            extra = np.zeros(n)
        lengths = np.minimum(config.min_sequence_length + np.round(extra).astype(np.int64),
                             config.max_sequence_length)
        start = _T0 + np.floor(rng.random(n) * config.time_span_days * 86400).astype(np.int64)

        # Walk all users' sequences in parallel, longest first so the active users are a prefix.
        by_len = np.argsort(-lengths, kind="stable")
        len_sorted = lengths[by_len]
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        off_sorted = offsets[by_len]
        total = int(lengths.sum())
        seq_cat = np.empty(total, dtype=np.int64)
        seq_pos = np.empty(total, dtype=np.int64)  # position in cat.order
        p_cum_s, p_cat_s, fav_s = pref_cum[by_len], preferred[by_len], fav_colour[by_len]
        current = np.zeros(n, dtype=np.int64)
        n_active_at = np.searchsorted(-len_sorted, -np.arange(int(len_sorted[0])), side="left")
        # n_active_at[t] = number of users with length > t (len_sorted is non-increasing).
        for t in range(int(len_sorted[0])):
            m = int(n_active_at[t])
            u = rng.random((m, 4))
            from_pref = _pick(p_cum_s[:m], u[:, 0])
            pref_next = p_cat_s[np.arange(m), from_pref]
            if t == 0:
                nxt = pref_next
            else:
                prev = current[:m]
                trans_next = successors[prev, _pick(succ_cum[prev], u[:, 1])]
                nxt = np.where(u[:, 2] < config.preference_mix, pref_next, trans_next)
            current[:m] = nxt
            # Item within the category (or the favourite-colour cell of it) by popularity.
            cell = nxt * n_col + fav_s[:m]
            use_cell = (u[:, 3] < config.colour_affinity) & (cat.cell_lo[cell + 1] > cat.cell_lo[cell])
            lo = np.where(use_cell, cat.cell_lo[cell], cat.cell_lo[nxt * n_col])
            hi = np.where(use_cell, cat.cell_lo[cell + 1], cat.cell_lo[(nxt + 1) * n_col])
            base_lo = np.where(lo > 0, cat.cum[np.maximum(lo - 1, 0)], 0.0)
            base_hi = cat.cum[hi - 1]
            target = base_lo + rng.random(m) * (base_hi - base_lo)
            pos = np.clip(np.searchsorted(cat.cum, target, side="right"), lo, hi - 1)
            where = off_sorted[:m] + t
            seq_cat[where] = nxt
            seq_pos[where] = pos
        internal = cat.order[seq_pos]
        user_rep = np.repeat(user_ids, lengths)
        local = np.repeat(np.arange(n), lengths)

        gaps = np.floor(rng.exponential(config.mean_gap_seconds, total)).astype(np.int64) + 1
        gaps[rng.random(total) < config.tie_rate] = 0
        gaps[offsets] = 0
        csum = np.cumsum(gaps)
        timestamp = start[local] + csum - csum[np.repeat(offsets, lengths)]

        rating = None
        if config.ratings:
            score = 3.0 + rng.normal(0.0, 0.7, total)
            score += 1.0 * (cat.colour[internal] == fav_colour[local])
            score += 0.7 * (preferred[local] == seq_cat[:, None]).any(axis=1)
            score -= 0.6 * np.abs(cat.tier[internal] - user_tier[local])
            rating = np.clip(np.round(score), 1.0, 5.0)

        users = pd.DataFrame({
            "user": user_ids,
            "segment": [cat_names[c] for c in preferred[:, 0].tolist()],
            "favourite_colour": [col_names[c] for c in fav_colour.tolist()],
            "price_tier": user_tier.astype(np.int64),
            "preferred_categories": [[cat_names[c] for c in row] for row in preferred.tolist()],
        })
        yield _UserChunk(users, user_rep, cat.ids[internal], timestamp, rating, seq_cat)
