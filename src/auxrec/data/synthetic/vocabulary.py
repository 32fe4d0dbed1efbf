"""The synthetic shop's vocabulary: categories, colours, styles, price tiers, noise words and
image patterns.

Index positions in these tables are the latent attribute values; changing any entry changes
the generated data.
"""

from __future__ import annotations

import numpy as np

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
