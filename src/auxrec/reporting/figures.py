"""PNG figures of the qualitative analyses (`auxrec.reporting.analysis`).

matplotlib is an optional dependency (``auxrec[plots]``) and is imported inside each
function. Figures are drawn on an explicit Agg canvas, never through pyplot, so nothing
global (backend, open figures) changes. Every PNG is written to a temporary file in the
target folder and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from auxrec.exceptions import ConfigError
from auxrec.features.image import read_rgb
from auxrec.io import atomic_output
from auxrec.reporting.analysis import AttentionAnalysis, CaseStudyItem, CaseStudyUser

HIT_COLOUR = "#1a9641"
MISS_COLOUR = "#d7191c"
THUMBNAIL_SIDE = 256


def _new_figure(width: float, height: float, layout: str | None = None) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("figures need matplotlib: pip install 'auxrec[plots]'") from None
    figure = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: Path | str, dpi: int = 150) -> Path:
    path = Path(path)
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png", dpi=dpi, bbox_inches="tight")
    return path


def cluster_label(index: int) -> str:
    """A, B, …, Z, then C26, C27, …"""
    return chr(ord("A") + index) if index < 26 else f"C{index}"


# -- case study ---------------------------------------------------------------------


def _thumbnail(item: CaseStudyItem) -> np.ndarray | None:
    """The item's image shrunk to fit THUMBNAIL_SIDE², or None when absent or unreadable."""
    if item.image_path is None:
        return None
    image = read_rgb(item.image_path)  # never raises: a corrupt file gives None
    if image is None:
        return None
    image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    return np.asarray(image)


def _short(text: str, width: int, lines: int) -> str:
    return "\n".join(textwrap.wrap(text, width=width, max_lines=lines, placeholder="…")) or text[:width]


def _draw_item(axes: Any, item: CaseStudyItem, heading: str, colour: str = "black") -> None:
    picture = _thumbnail(item)
    if picture is not None:
        axes.imshow(picture)
        axes.set_xlabel(_short(item.title, 18, 2), fontsize=6)
    else:
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1)
        axes.set_facecolor("#d9d9d9")
        axes.text(0.5, 0.5, _short(item.title, 16, 6), ha="center", va="center", fontsize=7, wrap=True)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(heading, fontsize=7, color=colour)
    for spine in axes.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(2.0 if colour != "black" else 0.5)


def plot_case_study(users: Sequence[CaseStudyUser], path: Path | str, title: str = "") -> Path:
    """One row per user: recent items → actual next item, then each model's top-1 (hit/miss)."""
    if not users:
        raise ValueError("no users to plot")
    n_history = max(len(u.history) for u in users)
    labels = list(dict.fromkeys(label for u in users for label in u.predictions))
    n_columns = n_history + 2 + len(labels)  # history, arrow, actual next, one per model
    figure = _new_figure(1.5 * n_columns, 2.0 * len(users) + (0.4 if title else 0.0))
    grid = figure.add_gridspec(len(users), n_columns, wspace=0.25, hspace=0.6)
    for row, user in enumerate(users):
        offset = n_history - len(user.history)  # right-align short histories
        for column in range(n_history):
            axes = figure.add_subplot(grid[row, column])
            if column < offset:
                axes.axis("off")
                continue
            position = len(user.history) - (column - offset)
            _draw_item(axes, user.history[column - offset], f"t−{position}")
        arrow = figure.add_subplot(grid[row, n_history])
        arrow.axis("off")
        arrow.annotate("", xy=(0.9, 0.5), xytext=(0.1, 0.5), xycoords="axes fraction",
                       arrowprops={"arrowstyle": "-|>", "lw": 2, "color": "#555555"})
        arrow.text(0.5, 0.7, f"user {user.user}", ha="center", fontsize=7, transform=arrow.transAxes)
        _draw_item(figure.add_subplot(grid[row, n_history + 1]), user.target, "actual next")
        for k, label in enumerate(labels):
            axes = figure.add_subplot(grid[row, n_history + 2 + k])
            if label not in user.predictions:
                axes.axis("off")
                continue
            item, hit = user.predictions[label]
            colour = HIT_COLOUR if hit else MISS_COLOUR
            _draw_item(axes, item, f"{label}: {'hit' if hit else 'miss'}", colour)
    if title:
        figure.suptitle(title, fontsize=10)
    # Posters are photographs, which PNG compresses poorly: at 150 dpi two users' rows passed
    # 1 MB. 110 dpi keeps titles readable at a little over half the size.
    return _save(figure, path, dpi=110)


# -- elbow and attention -------------------------------------------------------------


def plot_elbow(k_values: Sequence[int], inertias: Sequence[float], chosen_k: int, path: Path | str) -> Path:
    """K-means inertia against k, the chosen elbow marked."""
    figure = _new_figure(4.5, 3.2)
    axes = figure.add_subplot()
    axes.plot(list(k_values), list(inertias), marker="o", color="#2b83ba")
    axes.axvline(chosen_k, linestyle="--", color="#d7191c", label=f"elbow k = {chosen_k}")
    axes.set_xlabel("number of clusters k")
    axes.set_ylabel("K-means inertia")
    axes.set_xticks(list(k_values))
    axes.legend(fontsize=8)
    return _save(figure, path)


def _score(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:+.3f}"


def _heatmap(figure: Any, axes: Any, matrix: np.ndarray, heading: str, centred: bool) -> None:
    labels = [cluster_label(i) for i in range(len(matrix))]
    finite = matrix[np.isfinite(matrix)]
    if centred:
        vmin, vmax, colours = -1.0, 1.0, "RdBu_r"
    else:  # raw cosines crowd near 1: stretch the colour scale over the values present
        low = float(finite.min()) if finite.size else 0.0
        high = float(finite.max()) if finite.size else 1.0
        vmin, vmax, colours = low, high if high > low else low + 1e-6, "viridis"
    image = axes.imshow(np.ma.masked_invalid(matrix), cmap=colours, vmin=vmin, vmax=vmax)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    for i in range(len(matrix)):
        for j in range(len(matrix)):
            value = matrix[i, j]
            if not math.isfinite(value):
                axes.text(j, i, "n/a", ha="center", va="center", fontsize=8)
                continue
            dark = abs(value) > 0.6 if centred else value < (vmin + vmax) / 2
            axes.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=8,
                      color="white" if dark else "black")
    axes.set_xticks(range(len(labels)), labels)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("set 2 of cluster")
    axes.set_ylabel("set 1 of cluster")
    axes.set_title(heading, fontsize=9)


def plot_attention_heatmap(analysis: AttentionAnalysis, path: Path | str) -> Path:
    """Raw cosine similarity (as in the paper) and the centred one, side by side."""
    figure = _new_figure(10.5, 4.6, layout="constrained")
    raw, centred = figure.subplots(1, 2)
    _heatmap(figure, raw, np.asarray(analysis.similarity, dtype=np.float64),
             f"cosine of mean attention\nblock-diagonality {_score(analysis.block_diagonality)}", False)
    _heatmap(figure, centred, np.asarray(analysis.centred_similarity, dtype=np.float64),
             f"centred cosine\nblock-diagonality {_score(analysis.centred_block_diagonality)}", True)
    sizes = ", ".join(f"{cluster_label(i)} {a}+{b}" for i, (a, b) in enumerate(analysis.set_sizes))
    baseline = ""
    if analysis.n_permutations:
        raw_mean, raw_std = analysis.random_block_diagonality
        centred_mean, centred_std = analysis.random_centred_block_diagonality
        baseline = (f"\nrandom groupings ({analysis.n_permutations}×): raw {raw_mean:+.3f} ± {raw_std:.3f}, "
                    f"centred {centred_mean:+.3f} ± {centred_std:.3f}; permutation p (centred) "
                    f"{analysis.centred_permutation_p:.3f}")
        if math.isfinite(analysis.length_matched_centred_p):
            matched_mean, matched_std = analysis.length_matched_centred_block_diagonality
            baseline += (f"\nlength-matched shuffles: centred {matched_mean:+.3f} ± {matched_std:.3f}, "
                         f"p {analysis.length_matched_centred_p:.3f}")
    if analysis.cluster_median_history:
        sizes += "; median history " + ", ".join(
            f"{cluster_label(i)} {m:.0f}" for i, m in enumerate(analysis.cluster_median_history))
    figure.suptitle(f"users per set: {sizes}{baseline}", fontsize=8)
    return _save(figure, path)
