"""Tabular item embeddings read off an XGBoost regressor fitted to training ratings.

Steps (DESIGN §2, deviations marked):

1. **Item feature rows.** Categorical columns one-hot (each column's ``max_categories``
   most frequent values; NaN or a rare value → all zeros), multi-label columns multi-hot,
   numeric columns as they are (NaN stays NaN: XGBoost learns where missing values go),
   plus item statistics from the *training split only*: ``log1p`` training popularity and
   the item's mean training rating (explicit data). Attributes describe items, not
   targets, so vocabularies come from the whole item table; no validation or test
   interaction is read.
2. **Rows and target.** One row per training interaction (``split == "train"``), the
   item's feature row as input, the rating as target. Implicit data (no ``rating``)
   has target 1 for every interaction; a constant target grows trees without a single
   split, so *deviation*: as many negative rows (target 0, items drawn uniformly with the
   seed) are added, turning the target into "was this item interacted with".
   Above ``max_rows`` rows a seeded sample keeps the cost bounded.
3. **Model choice.** 70% of the rows fit; on them, 4-fold cross-validation over
   `PARAM_GRID` picks the setting with the least mean absolute error (logged with every
   candidate); it is refitted on the 70% and its MAE on the held-out 30% is logged. The
   mean rating statistic is computed from the 70% only, so the held-out MAE is honest.
4. **Embedding.** For each item, the leaf it reaches in every tree (``pred_leaf``),
   one-hot over all leaves, reduced by truncated SVD to ``dim`` continuous values
   (He et al., 2014 use the same leaf encoding). Chosen over per-feature contributions
   (``pred_contribs``) because (a) the size is fixed and small whatever the vocabulary,
   whereas contributions have one mostly-zero column per one-hot value; (b) two items are
   close exactly when the trees route them alike, i.e. when the fitted model treats them
   as similar, including interactions between features. Singular vector signs are fixed
   (largest entry positive) so the result is a deterministic function of the seed.

An item has a tabular vector (present) when it has metadata and at least one non-missing
attribute; others get zeros. On two cores OpenMP's busy-waiting threads slowed small fits
10–50×, so `fit_tabular_embedding` sets ``OMP_WAIT_POLICY=PASSIVE`` when the user has not
set it (before xgboost is first imported) and uses ``n_jobs`` threads (default 1).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from auxrec.data.dataset import PreparedDataset
from auxrec.exceptions import ConfigError, DataError
from auxrec.features.basic import no_tabular_attributes

logger = logging.getLogger(__name__)

# Small grid (4 settings): depth × number of trees, learning rate fixed.
PARAM_GRID: dict[str, list[Any]] = {"max_depth": [3, 6], "n_estimators": [50, 150]}


@dataclass(frozen=True)
class TabularConfig:
    dim: int = 64  # SVD components (fewer when there are fewer leaves or items)
    fit_fraction: float = 0.7  # rows used to fit; the rest measure the held-out MAE
    folds: int = 4
    learning_rate: float = 0.1
    max_categories: int = 64  # one-hot width per categorical column
    max_rows: int | None = 300_000  # training rows kept (seeded sample) to bound the cost
    n_jobs: int = 1  # XGBoost threads; 1 is fastest on a shared 2-core machine
    seed: int = 0
    grid: dict[str, list[Any]] = field(default_factory=lambda: {k: list(v) for k, v in PARAM_GRID.items()})


@dataclass
class TabularReport:
    description: str
    cv: list[dict[str, Any]]  # one entry per grid setting: params, mean MAE
    chosen: dict[str, Any]
    holdout_mae: float
    n_rows: int
    implicit: bool
    feature_names: list[str]


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def item_attributes(dataset: PreparedDataset, max_categories: int = 64) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Attribute matrix ``(n_items + 1, n_features)`` (row 0 padding), names, and which items have any.

    NaN marks a missing numeric value; one-hot blocks use 0/1 with all-zero for missing.
    """
    items = dataset.items
    spec = dataset.item_columns
    ids = items["item"].to_numpy()
    n_rows = dataset.n_items + 1
    blocks: list[np.ndarray] = []
    names: list[str] = []
    observed = np.zeros(n_rows, bool)
    for column, multi in [(c, False) for c in spec.categorical] + [(c, True) for c in spec.multi_label]:
        if column not in items.columns:
            continue
        values = [
            [] if _missing(v) else ([str(x) for x in v] if multi and isinstance(v, list | tuple | np.ndarray) else [str(v)])
            for v in items[column].tolist()
        ]
        counts = pd.Series([x for vs in values for x in vs], dtype=object).value_counts()
        vocabulary = sorted(counts.index, key=lambda x: (-counts[x], x))[:max_categories]
        index = {v: k for k, v in enumerate(vocabulary)}
        block = np.zeros((n_rows, len(vocabulary)), np.float32)
        for item, vs in zip(ids, values):
            observed[item] |= bool(vs)
            for x in vs:
                if x in index:
                    block[item, index[x]] = 1.0
        blocks.append(block)
        names += [f"{column}={v}" for v in vocabulary]
    for column in spec.numeric:
        if column not in items.columns:
            continue
        block = np.full((n_rows, 1), np.nan, np.float32)
        block[ids, 0] = pd.to_numeric(items[column], errors="coerce").to_numpy(np.float64)
        observed |= ~np.isnan(block[:, 0])
        blocks.append(block)
        names.append(column)
    if "has_metadata" in items.columns:
        has_metadata = np.zeros(n_rows, bool)
        has_metadata[ids] = items["has_metadata"].to_numpy(bool)
        observed &= has_metadata
    observed[0] = False
    matrix = np.concatenate(blocks, axis=1) if blocks else np.zeros((n_rows, 0), np.float32)
    return matrix, names, observed


def _training_rows(dataset: PreparedDataset) -> tuple[np.ndarray, np.ndarray, bool]:
    """(items, targets, implicit) of the training interactions only."""
    frame = dataset.interactions
    train = (frame["split"] == "train").to_numpy()
    items = frame["item"].to_numpy()[train].astype(np.int64)
    implicit = "rating" not in frame.columns or frame["rating"][train].isna().all()
    if implicit:
        return items, np.ones(len(items), np.float32), True
    ratings = frame["rating"].to_numpy(np.float64)[train]
    keep = ~np.isnan(ratings)
    return items[keep], ratings[keep].astype(np.float32), False


def _statistics(n_rows: int, items: np.ndarray, targets: np.ndarray, implicit: bool) -> tuple[np.ndarray, list[str]]:
    counts = np.bincount(items, minlength=n_rows).astype(np.float64)
    columns = [np.log1p(counts)]
    names = ["log_train_popularity"]
    if not implicit:
        sums = np.bincount(items, weights=targets, minlength=n_rows)
        with np.errstate(invalid="ignore", divide="ignore"):
            columns.append(np.where(counts > 0, sums / counts, np.nan))
        names.append("train_mean_rating")
    return np.stack(columns, axis=1).astype(np.float32), names


def _import_xgboost() -> Any:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # only effective before OpenMP starts; see module doc
    try:
        import xgboost
    except ImportError:
        raise ConfigError("the tabular encoder needs XGBoost: pip install 'auxrec[tabular]' (xgboost-cpu)") from None
    return xgboost


def _fit(xgb: Any, features: np.ndarray, targets: np.ndarray, params: dict[str, Any], config: TabularConfig) -> Any:
    booster_params = {
        "objective": "reg:squarederror", "tree_method": "hist", "max_depth": params["max_depth"],
        "eta": config.learning_rate, "seed": config.seed, "nthread": config.n_jobs, "verbosity": 0,
    }
    return xgb.train(booster_params, xgb.DMatrix(features, label=targets, nthread=config.n_jobs),
                     num_boost_round=params["n_estimators"])


def _mae(xgb: Any, booster: Any, features: np.ndarray, targets: np.ndarray, n_jobs: int) -> float:
    return float(np.abs(booster.predict(xgb.DMatrix(features, nthread=n_jobs)) - targets).mean())


def _leaf_svd(leaves: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """Truncated SVD of the one-hot leaf matrix: ``(n, trees)`` leaf ids → ``(n, dim)``."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.linalg import svds

    n, trees = leaves.shape
    codes = np.zeros_like(leaves, dtype=np.int64)
    offset = 0
    for t in range(trees):  # renumber each tree's leaves 0..k-1, then place trees side by side
        _, codes[:, t] = np.unique(leaves[:, t], return_inverse=True)
        codes[:, t] += offset
        offset = int(codes[:, t].max()) + 1
    one_hot = csr_matrix((np.ones(n * trees), (np.repeat(np.arange(n), trees), codes.ravel())), shape=(n, offset))
    k = min(dim, min(one_hot.shape) - 1)
    if k < 1:
        return np.zeros((n, dim), np.float32)
    v0 = np.random.default_rng(seed).standard_normal(min(one_hot.shape))
    u, s, _ = svds(one_hot, k=k, v0=v0, random_state=seed)
    order = np.argsort(-s)
    u, s = u[:, order], s[order]
    signs = np.sign(u[np.abs(u).argmax(axis=0), np.arange(k)])  # fix each component's sign
    out = np.zeros((n, dim), np.float32)
    out[:, :k] = u * s * signs
    return out


def fit_tabular_embedding(
    dataset: PreparedDataset, config: TabularConfig | None = None, log: Callable[[str], None] | None = None
) -> tuple[np.ndarray, np.ndarray, TabularReport]:
    """``(matrix (n_items + 1, dim), present, report)`` for ``dataset``; deterministic given ``config.seed``."""
    config = config or TabularConfig()
    say = log or logger.info
    xgb = _import_xgboost()
    rng = np.random.default_rng(config.seed)
    n_rows = dataset.n_items + 1
    attributes, attribute_names, present = item_attributes(dataset, config.max_categories)
    if not present.any():
        raise no_tabular_attributes(dataset)

    items, targets, implicit = _training_rows(dataset)
    if len(items) == 0:
        raise DataError(f"{dataset.name} has no training interactions to fit the tabular encoder on")
    if implicit:  # see module doc: negatives make the target non-constant
        negatives = rng.integers(1, n_rows, size=len(items))
        items = np.concatenate([items, negatives])
        targets = np.concatenate([targets, np.zeros(len(negatives), np.float32)])
    if config.max_rows is not None and len(items) > config.max_rows:
        keep = np.sort(rng.choice(len(items), size=config.max_rows, replace=False))
        items, targets = items[keep], targets[keep]
    order = rng.permutation(len(items))
    n_fit = max(round(config.fit_fraction * len(items)), min(len(items), config.folds))
    fit_rows, held_rows = order[:n_fit], order[n_fit:]

    # Statistics from the fitting rows only (implicit negatives are not interactions).
    real = targets[fit_rows] > 0 if implicit else np.ones(len(fit_rows), bool)
    statistics, statistic_names = _statistics(n_rows, items[fit_rows][real], targets[fit_rows][real], implicit)
    features = np.concatenate([attributes, statistics], axis=1)  # (n_items + 1, n_features)
    names = attribute_names + statistic_names

    x_fit, y_fit = features[items[fit_rows]], targets[fit_rows]
    folds = np.array_split(rng.permutation(len(fit_rows)), config.folds)
    grid = [dict(zip(config.grid, values)) for values in itertools.product(*config.grid.values())]
    results = []
    for params in grid:
        errors = []
        for k in range(config.folds):
            train_part = np.concatenate([f for j, f in enumerate(folds) if j != k])
            booster = _fit(xgb, x_fit[train_part], y_fit[train_part], params, config)
            errors.append(_mae(xgb, booster, x_fit[folds[k]], y_fit[folds[k]], config.n_jobs))
        results.append({**params, "cv_mae": float(np.mean(errors))})
        say(f"tabular: {params} → {config.folds}-fold CV MAE {np.mean(errors):.4f}")
    best = min(results, key=lambda r: r["cv_mae"])
    chosen = {k: best[k] for k in config.grid}
    booster = _fit(xgb, x_fit, y_fit, chosen, config)
    holdout = (_mae(xgb, booster, features[items[held_rows]], targets[held_rows], config.n_jobs)
               if len(held_rows) else float("nan"))
    say(f"tabular: chose {chosen} (CV MAE {best['cv_mae']:.4f}); held-out MAE on {len(held_rows):,} rows {holdout:.4f}")

    leaves = booster.predict(xgb.DMatrix(features[1:], nthread=config.n_jobs), pred_leaf=True)  # (n_items, trees)
    leaves = np.asarray(leaves).reshape(dataset.n_items, -1)
    matrix = np.zeros((n_rows, config.dim), np.float32)
    matrix[1:] = _leaf_svd(leaves, config.dim, config.seed)
    matrix[~present] = 0.0
    description = (f"xgboost-leaves-svd (target {'implicit 1/0' if implicit else 'rating'}, "
                   f"{chosen}, {config.dim}-d)")
    report = TabularReport(description, results, chosen, holdout, len(items), implicit, names)
    return matrix, present, report


def config_params(config: TabularConfig) -> dict[str, Any]:
    return asdict(config)  # n_jobs included: float sums in histograms may depend on threads


class TabularEmbedder:
    """`auxrec embed`'s tabular encoder (`auxrec.features.registry`): XGBoost leaves, reduced by SVD."""

    def __init__(self, config: TabularConfig) -> None:
        self.config = config
        self.description = f"xgboost-leaves-svd ({config.dim}-d, seed {config.seed})"

    def cache_key(self) -> dict[str, Any]:
        return {"encoder": {"encoder": "xgboost-leaves-svd", **config_params(self.config)}}

    def embed(self, dataset: PreparedDataset, context: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        matrix, present, tabular = fit_tabular_embedding(dataset, self.config, context.log)
        return matrix, present, {"description": tabular.description, "cv": tabular.cv, "chosen": tabular.chosen,
                                 "holdout_mae": tabular.holdout_mae, "feature_names": tabular.feature_names}


def tabular_embedder(spec: str, context: Any, dataset: PreparedDataset) -> TabularEmbedder:
    """The registry's factory (one tabular encoder; ``context.tabular_config`` sets it up)."""
    return TabularEmbedder(context.tabular_config or TabularConfig())
