"""`SyntheticConfig`, everything that determines a synthetic dataset, and its `PRESETS`."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from auxrec.data.synthetic.vocabulary import MAX_CATEGORIES
from auxrec.exceptions import ConfigError


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
        """The named preset (``tiny``, ``small``, ``ml20m``, ``catalog1m``), optionally with fields replaced."""
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
    # A shop with a 1M-item catalogue (benchmarks/scale.py): 500,000 users, short sequences
    # (mean 24, min 5), ~12M interactions. Popularity is heavy-tailed (the top 1% of items
    # get ~23% of the interactions, the top 10% ~50%, the median item 6) but its tail is
    # flat enough (exponent 0.7, not ml20m's 2.2) that ~97-98% of the items occur. `prepare`
    # keeps only items that occur, so the catalogue is 2^20 items: ~1.02M remain prepared.
    # Generation takes ~40 s and 1.5 GB; preparation a few minutes.
    "catalog1m": SyntheticConfig(
        name="catalog1m", n_users=500_000, n_items=2**20, n_categories=24, mean_sequence_length=24.0,
        min_sequence_length=5, max_sequence_length=1_000, length_sigma=1.0, zipf_exponent=0.7,
        zipf_offset=0.0, images=False, image_size=32,
    ),
}
