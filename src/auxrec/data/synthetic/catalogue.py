"""The latent item catalogue (attributes, popularity, sampling structures) and the
observable item table rendered from it (text, tabular columns, tags, latent truth)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from auxrec.data.schema import ItemColumns
from auxrec.data.synthetic.config import SyntheticConfig
from auxrec.data.synthetic.vocabulary import (
    _CATEGORIES,
    _COLOURS,
    _FILLERS,
    _NOISE_TAGS,
    _NOISE_WORDS,
    _STYLES,
    _TIER_FACTORS,
)


@dataclass
class _Catalogue:
    """Latent item attributes, indexed by internal index ``i`` (item id ``ids[i]``)."""

    ids: np.ndarray  # int64, a permutation of 1..n_items
    category: np.ndarray  # int64
    colour: np.ndarray
    style: np.ndarray
    tier: np.ndarray
    popularity: np.ndarray  # float64, sums to 1 within each category
    # Sampling structures: items ordered by (category, colour); cumulative weights.
    order: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    cum: np.ndarray = field(default_factory=lambda: np.empty(0))
    cell_lo: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # (C, K+1)


def _build_catalogue(config: SyntheticConfig) -> _Catalogue:
    rng = np.random.default_rng([config.seed, 0])
    n, n_cat = config.n_items, config.n_categories
    category = rng.permutation(np.arange(n, dtype=np.int64) % n_cat)
    colour = rng.integers(0, len(_COLOURS), n)
    style = rng.integers(0, len(_STYLES), n)
    tier = rng.choice(3, size=n, p=[0.3, 0.5, 0.2])
    ids = rng.permutation(n).astype(np.int64) + 1
    # Within-category Zipf popularity from a random rank.
    rank = np.empty(n, dtype=np.int64)
    noise = rng.random(n)
    by_cat = np.lexsort((noise, category))
    counts = np.bincount(category, minlength=n_cat)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[by_cat] = np.arange(n) - np.repeat(starts, counts)
    weight = 1.0 / (rank + 1.0 + config.zipf_offset) ** config.zipf_exponent
    popularity = weight / np.bincount(category, weights=weight, minlength=n_cat)[category]

    order = np.lexsort((colour, category))
    cum = np.cumsum(popularity[order])
    n_col = len(_COLOURS)
    cell_counts = np.bincount(category * n_col + colour, minlength=n_cat * n_col)
    cell_lo = np.concatenate([[0], np.cumsum(cell_counts)]).astype(np.int64)
    # cell_lo[c * K + k] .. cell_lo[c * K + k + 1] is cell (c, k); category c spans
    # cell_lo[c * K] .. cell_lo[(c + 1) * K].
    return _Catalogue(ids, category, colour, style, tier, popularity, order, cum, cell_lo)


def _noisy_labels(rng: np.random.Generator, values: np.ndarray, names: list[str],
                  config: SyntheticConfig) -> list[str | None]:
    u = rng.random(len(values))
    random_values = rng.integers(0, len(names), len(values))
    observed = np.where(u < config.missing_rate + config.noise_rate, random_values, values)
    missing = u < config.missing_rate
    return [None if m else names[v] for v, m in zip(observed.tolist(), missing.tolist())]


def _item_table(config: SyntheticConfig, cat: _Catalogue) -> pd.DataFrame:
    """The item table in item-id order: declared columns, ``image_path`` (None) and latent columns."""
    rng = np.random.default_rng([config.seed, 1])
    n = config.n_items
    categories = _CATEGORIES[: config.n_categories]
    cat_names = [c[0] for c in categories]
    col_names = [c[0] for c in _COLOURS]
    sty_names = [s[0] for s in _STYLES]

    # Observable tabular columns.
    category_obs = _noisy_labels(rng, cat.category, cat_names, config)
    colour_obs = _noisy_labels(rng, cat.colour, col_names, config)
    style_obs = _noisy_labels(rng, cat.style, sty_names, config)
    base_price = np.array([c[3] for c in categories])[cat.category]
    style_factor = np.array([s[2] for s in _STYLES])[cat.style]
    price = np.round(base_price * style_factor * _TIER_FACTORS[cat.tier] * rng.lognormal(0.0, 0.25, n), 2)
    base_weight = np.array([c[4] for c in categories])[cat.category]
    weight = np.round(base_weight * rng.lognormal(0.0, 0.3, n), 3)
    weight[rng.random(n) < config.missing_rate] = np.nan

    # Text: which words to swap for random ones, and the random choices, drawn in bulk.
    swap = rng.random((n, 4)) < config.text_noise_rate  # shade, style, noun, adjective
    rand_cat = rng.integers(0, config.n_categories, (n, 2))
    rand_col = rng.integers(0, len(_COLOURS), n)
    rand_sty = rng.integers(0, len(_STYLES), (n, 2))
    pick = rng.integers(0, 1 << 30, (n, 6))
    n_noise_words = rng.poisson(1.0, n)
    noise_words = rng.integers(0, len(_NOISE_WORDS), (n, 3))
    keep_tag = rng.random((n, 3)) < 0.7
    n_noise_tags = np.minimum(rng.poisson(0.7, n), 3)
    noise_tags = rng.integers(0, len(_NOISE_TAGS), (n, 3))

    titles: list[str] = []
    descriptions: list[str] = []
    tags: list[list[str]] = []
    for i in range(n):
        c, k, s = int(cat.category[i]), int(cat.colour[i]), int(cat.style[i])
        sw = swap[i]
        p = pick[i]
        shade_colour = int(rand_col[i]) if sw[0] else k
        title_style = int(rand_sty[i, 0]) if sw[1] else s
        noun_cat = int(rand_cat[i, 0]) if sw[2] else c
        adj_style = int(rand_sty[i, 1]) if sw[3] else s
        shades = _COLOURS[shade_colour][2]
        shade = shades[p[0] % len(shades)]
        nouns = categories[noun_cat][1]
        noun = nouns[p[1] % len(nouns)]
        titles.append(f"{shade.capitalize()} {_STYLES[title_style][0]} {noun}")
        adjectives = _STYLES[adj_style][1]
        adjective = adjectives[p[2] % len(adjectives)]
        desc_nouns = categories[int(rand_cat[i, 1]) if sw[2] else c][1]
        desc_noun = desc_nouns[p[3] % len(desc_nouns)]
        extra = " ".join(_NOISE_WORDS[w] for w in noise_words[i, : min(int(n_noise_words[i]), 3)].tolist())
        extra = f"{extra} " if extra else ""
        descriptions.append(
            f"{adjective.capitalize()} {extra}{desc_noun} in {shade} {_STYLES[adj_style][0]}, "
            f"from our {categories[c][2]} range. {_FILLERS[p[4] % len(_FILLERS)]}"
        )
        informative = (categories[c][2], col_names[k], sty_names[s])
        item_tags = [t for t, keep in zip(informative, keep_tag[i]) if keep]
        for t in noise_tags[i, : int(n_noise_tags[i])].tolist():
            if _NOISE_TAGS[t] not in item_tags:
                item_tags.append(_NOISE_TAGS[t])
        tags.append(item_tags)

    table = pd.DataFrame({
        "item": cat.ids,
        "title": titles,
        "description": descriptions,
        "category": category_obs,
        "colour": colour_obs,
        "style": style_obs,
        "price": price,
        "weight": weight,
        "tags": tags,
        "image_path": pd.array([None] * n, dtype=object),
        "latent_category": [cat_names[v] for v in cat.category.tolist()],
        "latent_colour": [col_names[v] for v in cat.colour.tolist()],
        "latent_style": [sty_names[v] for v in cat.style.tolist()],
        "latent_price_tier": cat.tier.astype(np.int64),
        "popularity": cat.popularity,
    })
    return table.sort_values("item", kind="stable").reset_index(drop=True)


ITEM_COLUMNS = ItemColumns(
    text=("title", "description"),
    categorical=("category", "colour", "style"),
    numeric=("price", "weight"),
    multi_label=("tags",),
    image="image_path",
)
_LATENT_ITEM_COLUMNS = ("latent_category", "latent_colour", "latent_style", "latent_price_tier", "popularity")
