"""Synthetic multimodal sequential-recommendation data whose side information matters.

The generator builds a shop whose items have *latent* attributes and whose users walk
through the catalogue following those attributes, then renders the attributes as the
side information auxrec models consume (text, tabular columns, tags and images). Item
ids alone are a weak signal: there are many items, popularity within a category is
Zipf-like so most items are rarely seen, and what comes next depends on the *category*
of the current item - which an item's features reveal even when its id embedding has
barely been trained.

Generative model
----------------
1. **Items.** Item ``i`` gets a latent category (balanced over ``n_categories``), a
   colour (8), a style/material (6), a price tier (3) and a popularity weight
   ``1 / (rank + zipf_offset)**zipf_exponent`` from a random rank within its category. Item ids are a
   random permutation of ``1..n_items``, so ids say nothing about attributes.
2. **Rendering.** ``title`` ("Crimson wool jacket") and ``description`` (category noun,
   style adjectives, colour shade, group word, filler sentences and noise words); each
   word is swapped for a random one with probability ``text_noise_rate``. Tabular:
   ``category``/``colour``/``style`` copy the latent value but are missing with
   probability ``missing_rate`` and replaced by a random value with probability
   ``noise_rate`` (no column is a perfect id); ``price`` = category base price x style
   factor x tier factor x log-normal noise; ``weight`` (kg) = category base x log-normal
   noise (missing with ``missing_rate``). ``tags``: the category's group, colour and
   style words, each kept with probability 0.7, plus Poisson(0.7) noise tags.
   Images (``image_size`` square RGB PNG): hue = colour (+ jitter), saturation/brightness
   = style, pattern (stripes in 4 orientations, checks, dots, rings, frame; 3 spatial
   frequencies) = category, random phase and pixel noise.
3. **Users.** Each user prefers ``n_preferred_categories`` categories (Dirichlet
   weights), has a favourite colour and a price tier. Sequence length is
   ``min_sequence_length`` + log-normal with the configured mean, capped at
   ``max_sequence_length``.
4. **Sequences.** The first category comes from the user's preference; afterwards the
   next category follows a sparse Markov matrix (each category has
   ``transition_out_degree`` successors with Dirichlet weights) with probability
   ``1 - preference_mix``, else the user's preference. Within the category the item is
   drawn by popularity, restricted to the user's favourite colour with probability
   ``colour_affinity``. Timestamps increase per user (exponential gaps, ties with
   probability ``tie_rate``).
5. **Ratings** (optional): ``3 + 1`` if the colour is the user's favourite, ``+0.7`` if
   the category is preferred, ``-0.6`` per price-tier step away from the user's, plus
   Gaussian noise, rounded and clipped to 1..5.

Where the latent truth lives
----------------------------
`generate` returns a `RawDataset` whose item table carries, besides the declared
columns, the undeclared columns ``latent_category``, ``latent_colour``, ``latent_style``
(names, always present and never noisy), ``latent_price_tier`` (0..2) and
``popularity`` (within-category sampling probability). Its user table has ``segment``
(the user's top category, declared as a user column) and the undeclared
``favourite_colour``, ``price_tier`` and ``preferred_categories``. `write_synthetic`
writes the same truth to ``latent/items.parquet`` and ``latent/users.parquet`` next to
the generic-format files, which never contain latent columns.

Determinism: every random draw comes from ``numpy.random.default_rng`` seeded with
``[seed, stream, ...]`` (one stream for items, one per chunk of users, one per batch of
images), so the same config gives identical DataFrames and byte-identical files, and
`generate` and `write_synthetic` produce the same data. Users are generated in chunks of
``users_per_chunk`` (part of the config, because it fixes which draws go where), which
keeps `write_synthetic` in bounded memory even for the ``ml20m`` preset.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auxrec.data.schema import ItemColumns, RawDataset
from auxrec.exceptions import ConfigError, DataError
from auxrec.io import check_output_folder, mark_output

__all__ = [
    "PRESETS",
    "SyntheticConfig",
    "generate",
    "render_item_images",
    "write_synthetic",
]

# ---------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------

# (name, nouns, group tag, base price, base weight in kg)
_CATEGORIES: tuple[tuple[str, tuple[str, ...], str, float, float], ...] = (
    ("jacket", ("jacket", "coat", "parka"), "outerwear", 120.0, 1.2),
    ("sweater", ("sweater", "jumper", "pullover"), "knitwear", 60.0, 0.6),
    ("shirt", ("shirt", "blouse", "tunic"), "tops", 35.0, 0.25),
    ("trousers", ("trousers", "chinos", "slacks"), "bottoms", 55.0, 0.5),
    ("boots", ("boots", "booties"), "footwear", 110.0, 1.5),
    ("bag", ("bag", "tote", "satchel"), "bags", 75.0, 0.8),
    ("scarf", ("scarf", "shawl"), "accessories", 25.0, 0.2),
    ("watch", ("watch", "wristwatch"), "jewellery", 150.0, 0.1),
    ("skirt", ("skirt", "kilt"), "bottoms", 40.0, 0.35),
    ("sneakers", ("sneakers", "trainers"), "footwear", 80.0, 0.9),
    ("hat", ("hat", "cap", "beanie"), "headwear", 22.0, 0.15),
    ("cushion", ("cushion", "pillow"), "home", 30.0, 0.6),
    ("dress", ("dress", "gown"), "dresses", 70.0, 0.4),
    ("sandals", ("sandals", "slides"), "footwear", 35.0, 0.5),
    ("backpack", ("backpack", "rucksack"), "bags", 65.0, 1.0),
    ("gloves", ("gloves", "mittens"), "accessories", 20.0, 0.1),
    ("wallet", ("wallet", "purse"), "small goods", 30.0, 0.12),
    ("belt", ("belt", "strap"), "accessories", 28.0, 0.2),
    ("socks", ("socks", "stockings"), "hosiery", 8.0, 0.05),
    ("sunglasses", ("sunglasses", "shades"), "eyewear", 90.0, 0.05),
    ("umbrella", ("umbrella", "parasol"), "rainwear", 25.0, 0.4),
    ("blanket", ("blanket", "throw"), "home", 55.0, 1.5),
    ("lamp", ("lamp", "lantern"), "lighting", 45.0, 1.8),
    ("mug", ("mug", "cup"), "kitchen", 12.0, 0.35),
)
MAX_CATEGORIES = len(_CATEGORIES)

# (name, hue in degrees, shades used in titles)
_COLOURS: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("red", 0.0, ("crimson", "scarlet", "ruby", "cherry")),
    ("orange", 28.0, ("amber", "tangerine", "rust", "apricot")),
    ("yellow", 55.0, ("mustard", "lemon", "golden", "saffron")),
    ("green", 120.0, ("olive", "emerald", "sage", "forest")),
    ("teal", 175.0, ("turquoise", "aqua", "teal", "cyan")),
    ("blue", 220.0, ("navy", "cobalt", "azure", "sapphire")),
    ("purple", 275.0, ("violet", "plum", "lilac", "indigo")),
    ("pink", 325.0, ("rose", "blush", "magenta", "fuchsia")),
)

# (name, adjectives, price factor, image saturation, image brightness of the pattern)
_STYLES: tuple[tuple[str, tuple[str, ...], float, float, float], ...] = (
    ("wool", ("cosy", "warm", "knitted"), 1.4, 0.45, 0.80),
    ("cotton", ("soft", "breathable", "casual"), 1.0, 0.60, 0.90),
    ("leather", ("rugged", "polished", "sturdy"), 2.0, 0.75, 0.60),
    ("denim", ("faded", "washed", "classic"), 1.1, 0.50, 0.70),
    ("linen", ("airy", "light", "relaxed"), 1.2, 0.30, 0.95),
    ("silk", ("smooth", "lustrous", "elegant"), 1.8, 0.90, 0.85),
)

_TIER_FACTORS = np.array([0.6, 1.0, 1.8])
_NOISE_TAGS = (
    "new", "sale", "gift", "bestseller", "eco", "limited", "handmade", "vegan",
    "unisex", "travel", "summer", "winter", "online only", "clearance",
)
_NOISE_WORDS = (
    "premium", "vintage", "modern", "urban", "retro", "essential", "iconic", "minimal",
    "bold", "everyday", "signature", "heritage", "studio", "weekend", "original",
)
_FILLERS = (
    "A customer favourite.",
    "Perfect for weekends.",
    "Ships in recycled packaging.",
    "Pairs well with almost anything.",
    "Designed in small batches.",
    "Easy to care for.",
    "Limited stock available.",
    "Made to last for years.",
)
_PATTERN_KINDS = ("hstripes", "vstripes", "diagonal", "antidiagonal", "checks", "dots", "rings", "frame")
_PATTERN_FREQUENCIES = (2.5, 4.0, 6.0)

_T0 = 1_262_304_000  # 2010-01-01T00:00:00Z
_IMAGE_BATCH = 1024

# ---------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that determines a synthetic dataset; equal configs give equal data.

    Sizes:
        name: dataset name suffix; the dataset is called ``synthetic-<name>``.
        n_users, n_items: numbers of users and items (ids ``1..n``).
        n_categories: latent categories, at most 24 (each has its own image pattern).
        mean_sequence_length: mean interactions per user before the cap.
        min_sequence_length: every user has at least this many interactions.
        max_sequence_length: cap on a user's interactions.
        length_sigma: log-normal sigma of ``length - min_sequence_length`` (tail weight).
    Behaviour:
        n_preferred_categories: categories each user prefers.
        transition_out_degree: successors of each category in the sparse Markov matrix.
        preference_mix: probability that the next category comes from the user's
            preference instead of the Markov transition.
        colour_affinity: probability that the item is drawn among the user's favourite
            colour within the chosen category.
        zipf_exponent, zipf_offset: within-category popularity is proportional to
            ``1 / (rank + zipf_offset)**zipf_exponent`` (rank 1, 2, ...; Zipf-Mandelbrot).
        mean_gap_seconds: mean time between a user's consecutive interactions.
        tie_rate: probability that an interaction has the same timestamp as the previous.
        time_span_days: users start uniformly within this many days after 2010-01-01.
    Observation noise:
        missing_rate: probability that a categorical value (and weight) is missing.
        noise_rate: probability that a categorical value is replaced by a random one.
        text_noise_rate: probability that a word of the title/description that names an
            attribute is swapped for a random one of the same kind.
        image_noise: standard deviation of per-pixel noise (0..1 scale).
    Output:
        images: render item images (written by `write_synthetic`; `generate` only
            writes them when given ``image_dir``).
        image_size: side of the square RGB images in pixels.
        ratings: add a ``rating`` column (1..5).
        seed: seed of every random draw.
        users_per_chunk: users generated together; part of the data's identity.
    """

    name: str = "custom"
    n_users: int = 1_500
    n_items: int = 1_500
    n_categories: int = 16
    mean_sequence_length: float = 32.0
    min_sequence_length: int = 5
    max_sequence_length: int = 2_000
    length_sigma: float = 0.8
    n_preferred_categories: int = 3
    transition_out_degree: int = 3
    preference_mix: float = 0.3
    colour_affinity: float = 0.4
    zipf_exponent: float = 1.2
    zipf_offset: float = 0.0
    mean_gap_seconds: float = 6 * 3600.0
    tie_rate: float = 0.01
    time_span_days: float = 3 * 365.0
    missing_rate: float = 0.08
    noise_rate: float = 0.05
    text_noise_rate: float = 0.1
    image_noise: float = 0.05
    images: bool = True
    image_size: int = 32
    ratings: bool = True
    seed: int = 0
    users_per_chunk: int = 4_096

    def __post_init__(self) -> None:
        def fail(message: str) -> None:
            raise ConfigError(f"synthetic config {self.name!r}: {message}")

        for name in ("n_users", "n_items", "min_sequence_length", "users_per_chunk",
                     "n_preferred_categories", "transition_out_degree"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                fail(f"{name} must be a positive integer, got {value!r}")
        if not 1 <= self.n_categories <= MAX_CATEGORIES:
            fail(f"n_categories must be between 1 and {MAX_CATEGORIES}, got {self.n_categories}")
        if self.n_items < self.n_categories:
            fail(f"n_items ({self.n_items}) must be at least n_categories ({self.n_categories})")
        if self.n_preferred_categories > self.n_categories:
            fail("n_preferred_categories cannot exceed n_categories")
        if self.transition_out_degree > self.n_categories:
            fail("transition_out_degree cannot exceed n_categories")
        if not self.mean_sequence_length >= self.min_sequence_length:
            fail("mean_sequence_length must be at least min_sequence_length")
        if self.max_sequence_length < self.min_sequence_length:
            fail("max_sequence_length must be at least min_sequence_length")
        for name in ("preference_mix", "colour_affinity", "tie_rate", "missing_rate", "noise_rate",
                     "text_noise_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                fail(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.missing_rate + self.noise_rate > 1.0:
            fail("missing_rate + noise_rate must not exceed 1")
        for name in ("length_sigma", "zipf_exponent", "zipf_offset", "image_noise"):
            if getattr(self, name) < 0:
                fail(f"{name} must not be negative")
        if self.mean_gap_seconds < 1 or self.time_span_days < 0:
            fail("mean_gap_seconds must be >= 1 and time_span_days >= 0")
        if not 8 <= self.image_size <= 512:
            fail(f"image_size must be between 8 and 512, got {self.image_size}")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            fail(f"seed must be a non-negative integer, got {self.seed!r}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SyntheticConfig:
        """The named preset (``tiny``, ``small``, ``ml20m``), optionally with fields replaced."""
        if name not in PRESETS:
            raise ConfigError(f"unknown synthetic preset {name!r}; choose one of: {', '.join(PRESETS)}")
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown synthetic config field(s): {', '.join(unknown)}")
        return replace(PRESETS[name], **overrides)

    @property
    def dataset_name(self) -> str:
        return f"synthetic-{self.name}"


PRESETS: dict[str, SyntheticConfig] = {
    # Tests: 60 users, 80 items, ~700 interactions, a few milliseconds without images.
    "tiny": SyntheticConfig(
        name="tiny", n_users=60, n_items=80, n_categories=6, mean_sequence_length=12.0,
        min_sequence_length=5, max_sequence_length=60, images=False, image_size=16,
        n_preferred_categories=2, transition_out_degree=2,
    ),
    # Quickstart: 1,500 users, 2,000 items, ~48k interactions, 32x32 images.
    "small": SyntheticConfig(
        name="small", n_users=1_500, n_items=2_000, n_categories=16, mean_sequence_length=32.0,
        min_sequence_length=5, max_sequence_length=400, images=True, image_size=32,
    ),
    # MovieLens-20M scale: 138,493 users, 26,744 items, ~20M interactions, min 20 per user.
    "ml20m": SyntheticConfig(
        name="ml20m", n_users=138_493, n_items=26_744, n_categories=20, mean_sequence_length=144.4,
        min_sequence_length=20, max_sequence_length=5_000, length_sigma=1.1, zipf_exponent=2.2,
        zipf_offset=15.0, images=False, image_size=32,
    ),
}

# ---------------------------------------------------------------------------------------
# Items
# ---------------------------------------------------------------------------------------


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

# ---------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV (h in [0, 1)) to RGB floats in [0, 1]; returns shape (*h.shape, 3)."""
    h6 = (h % 1.0) * 6.0
    sector = np.floor(h6).astype(np.int64) % 6
    f = h6 - np.floor(h6)
    p = v * (1.0 - s)
    q = v * (1.0 - s * f)
    t = v * (1.0 - s * (1.0 - f))
    choices_r = (v, q, p, p, t, v)
    choices_g = (t, v, v, q, p, p)
    choices_b = (p, p, t, v, v, q)
    conditions = [sector == i for i in range(6)]
    return np.stack([np.select(conditions, choices_r), np.select(conditions, choices_g),
                     np.select(conditions, choices_b)], axis=-1)


def _pattern_masks(kind: int, freq: float, phase: np.ndarray, size: int) -> np.ndarray:
    """Binary pattern masks (n, size, size) in {0, 1} for one pattern kind."""
    grid = (np.arange(size) + 0.5) / size
    y = grid[None, :, None]
    x = grid[None, None, :]
    ph = phase[:, None, None]
    name = _PATTERN_KINDS[kind]
    if name == "hstripes":
        value = np.sin(2 * np.pi * (freq * y + ph)) > 0
    elif name == "vstripes":
        value = np.sin(2 * np.pi * (freq * x + ph)) > 0
    elif name == "diagonal":
        value = np.sin(2 * np.pi * (freq * (x + y) / 1.4 + ph)) > 0
    elif name == "antidiagonal":
        value = np.sin(2 * np.pi * (freq * (x - y) / 1.4 + ph)) > 0
    elif name == "checks":
        value = (np.floor(freq * x + ph) + np.floor(freq * y + ph)) % 2 == 0
    elif name == "dots":
        dx = (freq * x + ph) % 1.0 - 0.5
        dy = (freq * y + ph) % 1.0 - 0.5
        value = dx**2 + dy**2 < 0.09
    elif name == "rings":
        r = np.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2)
        value = np.sin(2 * np.pi * (freq * r + ph)) > 0
    else:  # frame: solid fill with a border whose width depends on the frequency
        border = 0.5 / freq
        inside = (x > border) & (x < 1 - border) & (y > border) & (y < 1 - border)
        value = np.broadcast_to(inside, (len(phase), size, size))
    return np.broadcast_to(value, (len(phase), size, size)).astype(np.float64)


def _render_batch(config: SyntheticConfig, cat: _Catalogue, batch: int) -> np.ndarray:
    """Images of the items with ids ``batch*1024+1 .. (batch+1)*1024``, uint8 (n, S, S, 3)."""
    rng = np.random.default_rng([config.seed, 3, batch])
    inverse = np.empty(config.n_items, dtype=np.int64)
    inverse[cat.ids - 1] = np.arange(config.n_items)
    index = inverse[batch * _IMAGE_BATCH: (batch + 1) * _IMAGE_BATCH]
    n, size = len(index), config.image_size
    category, colour, style = cat.category[index], cat.colour[index], cat.style[index]
    phase = rng.random(n)
    hue_jitter = rng.normal(0.0, 6.0, n)
    pixel_noise = rng.normal(0.0, config.image_noise, (n, size, size, 3))
    mask = np.empty((n, size, size))
    kinds = category % len(_PATTERN_KINDS)
    freqs = np.asarray(_PATTERN_FREQUENCIES)[(category // len(_PATTERN_KINDS)) % len(_PATTERN_FREQUENCIES)]
    for kind in range(len(_PATTERN_KINDS)):
        for f in _PATTERN_FREQUENCIES:
            sel = np.flatnonzero((kinds == kind) & (freqs == f))
            if len(sel):
                mask[sel] = _pattern_masks(kind, f, phase[sel], size)
    hue = ((np.array([c[1] for c in _COLOURS])[colour] + hue_jitter) / 360.0)[:, None, None]
    sat = np.array([s[3] for s in _STYLES])[style][:, None, None]
    bright = np.array([s[4] for s in _STYLES])[style][:, None, None]
    value = np.where(mask > 0.5, bright, 0.35 * bright)
    rgb = _hsv_to_rgb(np.broadcast_to(hue, value.shape), np.broadcast_to(sat, value.shape), value)
    rgb = np.clip(rgb + pixel_noise, 0.0, 1.0)
    return np.round(rgb * 255.0).astype(np.uint8)


def _n_image_batches(config: SyntheticConfig) -> int:
    return (config.n_items + _IMAGE_BATCH - 1) // _IMAGE_BATCH


def render_item_images(config: SyntheticConfig) -> np.ndarray:
    """All item images as uint8 ``(n_items, image_size, image_size, 3)``, row ``j`` = item id ``j+1``.

    Identical to the PNGs `write_synthetic` writes. Memory is ``n_items * size**2 * 3``
    bytes, so meant for small configs.
    """
    cat = _build_catalogue(config)
    return np.concatenate([_render_batch(config, cat, b) for b in range(_n_image_batches(config))])


def _save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(array).save(path, format="PNG")


def _write_images(config: SyntheticConfig, cat: _Catalogue, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for b in range(_n_image_batches(config)):
        images = _render_batch(config, cat, b)
        for j, image in enumerate(images):
            _save_png(image, folder / f"{b * _IMAGE_BATCH + j + 1}.png")


# ---------------------------------------------------------------------------------------
# Users and sequences
# ---------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------


def generate(config: SyntheticConfig, image_dir: Path | None = None) -> RawDataset:
    """The whole dataset in memory (meant for small configs).

    Interactions: ``user``, ``item``, ``timestamp`` (int64 seconds) and ``rating`` when
    ``config.ratings``, sorted by user then time. The item table has the declared columns
    (`ITEM_COLUMNS`) plus the latent columns described in the module docstring;
    ``image_path`` is None unless ``image_dir`` is given and ``config.images`` is set, in
    which case the PNGs are written there and ``image_path`` holds their absolute paths.
    """
    cat = _build_catalogue(config)
    items = _item_table(config, cat)
    chunks = list(_user_chunks(config, cat))
    interactions = pd.DataFrame({
        "user": np.concatenate([c.user for c in chunks]),
        "item": np.concatenate([c.item for c in chunks]),
        "timestamp": np.concatenate([c.timestamp for c in chunks]),
    })
    if config.ratings:
        interactions["rating"] = np.concatenate([c.rating for c in chunks if c.rating is not None])
    users = pd.concat([c.users for c in chunks], ignore_index=True)
    if image_dir is not None and config.images:
        folder = Path(image_dir).resolve()
        _write_images(config, cat, folder)
        items["image_path"] = [str(folder / f"{i}.png") for i in items["item"].tolist()]
    dataset = RawDataset(
        name=config.dataset_name,
        interactions=interactions,
        items=items,
        item_columns=ITEM_COLUMNS,
        users=users,
        user_columns=("segment",),
        source={"format": "synthetic", "config": asdict(config)},
    )
    dataset.validate()
    return dataset


def source_spec(config: SyntheticConfig) -> dict[str, Any]:
    """The ``auxrec-source.json`` content that `write_synthetic` writes for ``config``."""
    items: dict[str, Any] = {
        "path": "items.parquet", "item": "item_id", "text": ["title", "description"],
        "categorical": ["category", "colour", "style"], "numeric": ["price", "weight"],
        "multi_label": ["tags"],
    }
    if config.images:
        items["image"] = "image"
        items["image_root"] = "images"
    return {
        "name": config.dataset_name,
        "interactions": {
            "path": "interactions.parquet", "user": "user_id", "item": "item_id", "timestamp": "ts",
            "rating": "rating" if config.ratings else None, "timestamp_unit": "s",
            "user_dtype": "int", "item_dtype": "int",
        },
        "items": items,
    }


def _interaction_schema(config: SyntheticConfig) -> Any:
    import pyarrow as pa

    columns = [("user_id", pa.int64()), ("item_id", pa.int64()), ("ts", pa.int64())]
    if config.ratings:
        columns.append(("rating", pa.float64()))
    return pa.schema(columns)


def _strings(values: pd.Series) -> Any:
    """A pyarrow string array with missing values (None or NaN) as nulls."""
    import pyarrow as pa

    return pa.array([None if pd.isna(v) else str(v) for v in values.tolist()], pa.string())


def _write_items(config: SyntheticConfig, cat: _Catalogue, folder: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    items = _item_table(config, cat)
    arrays = {
        "item_id": pa.array(items["item"].to_numpy(), pa.int64()),
        "title": pa.array(items["title"].tolist(), pa.string()),
        "description": pa.array(items["description"].tolist(), pa.string()),
        "category": _strings(items["category"]),
        "colour": _strings(items["colour"]),
        "style": _strings(items["style"]),
        "price": pa.array(items["price"].to_numpy(), pa.float64()),
        "weight": pa.array(items["weight"].to_numpy(), pa.float64(), from_pandas=True),
        "tags": pa.array(items["tags"].tolist(), pa.list_(pa.string())),
    }
    if config.images:
        arrays["image"] = pa.array([f"{i}.png" for i in items["item"].tolist()], pa.string())
    pq.write_table(pa.table(arrays), folder / "items.parquet")
    latent = pa.table({
        "item_id": arrays["item_id"],
        "category": pa.array(items["latent_category"].tolist(), pa.string()),
        "colour": pa.array(items["latent_colour"].tolist(), pa.string()),
        "style": pa.array(items["latent_style"].tolist(), pa.string()),
        "price_tier": pa.array(items["latent_price_tier"].to_numpy(), pa.int64()),
        "popularity": pa.array(items["popularity"].to_numpy(), pa.float64()),
    })
    pq.write_table(latent, folder / "latent" / "items.parquet")


def write_synthetic(config: SyntheticConfig, out_dir: Path, progress: bool = False,
                    overwrite: bool = False) -> Path:
    """Write ``config``'s dataset to ``out_dir`` in auxrec's generic source format.

    Files: ``interactions.parquet`` (``user_id``, ``item_id``, ``ts`` int64 and ``rating``
    float64 when enabled), ``items.parquet`` (``item_id`` + item columns, ``tags`` as
    list<string>, ``image`` file names when images are on), ``images/<item_id>.png``,
    ``auxrec-source.json`` and the latent truth in ``latent/`` (``items.parquet``,
    ``users.parquet``, ``config.json``). Users are streamed in chunks, so memory stays
    bounded. Everything is written to a temporary sibling folder that is renamed to
    ``out_dir`` at the end. An existing non-empty ``out_dir`` is an error unless
    ``overwrite``. Returns ``out_dir``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    out_dir = Path(out_dir)
    check_output_folder(out_dir, "generated", overwrite)  # never replaces a folder auxrec did not generate
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        (tmp / "latent").mkdir(parents=True)
        mark_output(tmp, "generated")
        cat = _build_catalogue(config)
        _write_items(config, cat, tmp)
        if config.images:
            _write_images(config, cat, tmp / "images")

        schema = _interaction_schema(config)
        user_schema = pa.schema([
            ("user_id", pa.int64()), ("segment", pa.string()), ("favourite_colour", pa.string()),
            ("price_tier", pa.int64()), ("preferred_categories", pa.list_(pa.string())),
        ])
        n_chunks = (config.n_users + config.users_per_chunk - 1) // config.users_per_chunk
        with pq.ParquetWriter(tmp / "interactions.parquet", schema) as writer, \
                pq.ParquetWriter(tmp / "latent" / "users.parquet", user_schema) as user_writer:
            for chunk in tqdm(_user_chunks(config, cat), total=n_chunks, disable=not progress,
                              desc=f"{config.dataset_name} users", unit="chunk"):
                columns = [pa.array(chunk.user, pa.int64()), pa.array(chunk.item, pa.int64()),
                           pa.array(chunk.timestamp, pa.int64())]
                if chunk.rating is not None:
                    columns.append(pa.array(chunk.rating, pa.float64()))
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
                u = chunk.users
                user_writer.write_table(pa.Table.from_arrays([
                    pa.array(u["user"].to_numpy(), pa.int64()),
                    pa.array(u["segment"].tolist(), pa.string()),
                    pa.array(u["favourite_colour"].tolist(), pa.string()),
                    pa.array(u["price_tier"].to_numpy(), pa.int64()),
                    pa.array(u["preferred_categories"].tolist(), pa.list_(pa.string())),
                ], schema=user_schema))
        (tmp / "latent" / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
        # The source description last: a folder with it is complete.
        (tmp / "auxrec-source.json").write_text(json.dumps(source_spec(config), indent=2) + "\n")
        if out_dir.exists():
            trash = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            out_dir.rename(trash)
            tmp.rename(out_dir)
            shutil.rmtree(trash)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
