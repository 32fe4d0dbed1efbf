"""Item image rendering: colour as hue, style as saturation/brightness, category as pattern."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from auxrec.data.synthetic.catalogue import _build_catalogue, _Catalogue
from auxrec.data.synthetic.config import SyntheticConfig
from auxrec.data.synthetic.vocabulary import _COLOURS, _PATTERN_FREQUENCIES, _PATTERN_KINDS, _STYLES

_IMAGE_BATCH = 1024


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

    Image.fromarray(array).save(path, format="PNG")


def _write_images(config: SyntheticConfig, cat: _Catalogue, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for b in range(_n_image_batches(config)):
        images = _render_batch(config, cat, b)
        for j, image in enumerate(images):
            _save_png(image, folder / f"{b * _IMAGE_BATCH + j + 1}.png")
