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

Modules
-------
``vocabulary`` (the attribute and word tables), ``config`` (`SyntheticConfig`,
`PRESETS`), ``catalogue`` (latent item attributes and the item table), ``images``
(image rendering), ``users`` (category transitions and user chunks) and ``writer``
(`generate`, `source_spec`, `write_synthetic` and the Parquet helpers).
"""

from __future__ import annotations

from auxrec.data.synthetic.catalogue import ITEM_COLUMNS as ITEM_COLUMNS
from auxrec.data.synthetic.config import PRESETS, SyntheticConfig
from auxrec.data.synthetic.images import render_item_images
from auxrec.data.synthetic.vocabulary import MAX_CATEGORIES as MAX_CATEGORIES
from auxrec.data.synthetic.writer import generate, source_spec as source_spec, write_synthetic

__all__ = [
    "PRESETS",
    "SyntheticConfig",
    "generate",
    "render_item_images",
    "write_synthetic",
]
