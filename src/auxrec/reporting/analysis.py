"""The paper's qualitative analyses, as pure computations on already trained models.

- **Case study** (Figure 2): a few users' recent items, the item each model ranks first,
  and whether that is the item the user actually chose next.
- **Attention analysis** (Figure 3, Section 4.2): users clustered by behaviour with
  K-means (k read off an elbow curve), two disjoint random sets per cluster, the average
  SASRec(+) attention of each set, and the cosine similarity of set 1 × set 2. A block
  diagonal matrix means users who behave alike are attended to alike.

Nothing here trains a model or draws a figure (`auxrec.reporting.figures` renders).
scikit-learn (K-means, truncated SVD, TF-IDF) is imported lazily.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from auxrec.data.dataset import PreparedDataset, UserSequences
from auxrec.data.ids import PADDING_ID
from auxrec.evaluation.evaluator import history_mask, user_histories
from auxrec.exceptions import ConfigError
from auxrec.io import finite_or_none
from auxrec.models.contract import Recommender

TITLE_COLUMNS = ("title", "prod_name", "name")  # preferred display columns, before other text columns
ATTENTION_BATCH = 256


def _sklearn() -> Any:
    try:
        import sklearn
    except ImportError:
        raise ConfigError("the attention analysis needs scikit-learn: pip install scikit-learn") from None
    return sklearn


# -- case study ---------------------------------------------------------------------


@dataclass
class CaseStudyItem:
    item: int  # internal id
    title: str
    image_path: Path | None  # an existing file, or None


@dataclass
class CaseStudyUser:
    user: int
    history: list[CaseStudyItem]  # the most recent visible items, oldest first
    target: CaseStudyItem  # what the user actually chose next
    predictions: dict[str, tuple[CaseStudyItem, bool]]  # model label → (top-1 item, top-1 == target)


class _Catalogue:
    """Display title and image file of each internal item id."""

    def __init__(self, dataset: PreparedDataset) -> None:
        self.table = dataset.items.set_index("item")
        columns = self.table.columns
        text = [c for c in dataset.item_columns.text if c in columns]
        preferred = [c for c in TITLE_COLUMNS if c in columns]
        self.title_column = next(iter(preferred + text), None)
        image = dataset.item_columns.image
        self.image_column = image if image is not None and image in columns else None
        self.root = dataset.path

    @staticmethod
    def _present(value: object) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return bool(str(value).strip())

    def __call__(self, item: int) -> CaseStudyItem:
        row = self.table.loc[item]
        title = ""
        if self.title_column is not None and self._present(row[self.title_column]):
            title = " ".join(str(row[self.title_column]).split())
        if not title:
            title = f"item {row['original_id']}" if "original_id" in row.index else f"item {item}"
        image_path = None
        if self.image_column is not None and self._present(row[self.image_column]):
            path = Path(str(row[self.image_column]))
            if not path.is_absolute():  # loaders store absolute paths; be lenient with hand-made tables
                path = self.root / path
            image_path = path if path.is_file() else None
        return CaseStudyItem(int(item), title, image_path)


def _choose_users(
    evaluated: np.ndarray, lengths: np.ndarray, n_users: int, n_recent: int, rng: np.random.Generator
) -> np.ndarray:
    """Random evaluated users, those with at least ``n_recent`` visible items first."""
    long_enough = lengths >= n_recent
    chosen = rng.permutation(evaluated[long_enough])[:n_users]
    if len(chosen) < n_users:
        rest = rng.permutation(evaluated[~long_enough])[: n_users - len(chosen)]
        chosen = np.concatenate([chosen, rest])
    return chosen.astype(np.int64)


@torch.no_grad()
def top_items(model: Recommender, users: np.ndarray, history: UserSequences) -> np.ndarray:
    """Each user's top-1 item among all items, padding and the user's visible history excluded.

    The same convention as the ``full`` evaluation protocol (next *novel* item). Ties go to
    the lowest item id.
    """
    users = np.asarray(users, dtype=np.int64)
    was_training = isinstance(model, torch.nn.Module) and model.training
    if isinstance(model, torch.nn.Module):
        model.eval()
    try:
        scores = model.score(user_histories(model, history, users))
        scores = scores.float().cpu().clone()  # (B, n_items + 1), clone: PopRec returns a view
    finally:
        if was_training and isinstance(model, torch.nn.Module):
            model.train()
    scores[:, PADDING_ID] = -torch.inf
    scores[history_mask(history, users, scores.shape[1])] = -torch.inf
    return scores.argmax(dim=1).numpy().astype(np.int64)


def case_study(
    dataset: PreparedDataset,
    models: Mapping[str, Recommender],
    n_users: int = 2,
    n_recent: int = 6,
    split: str = "test",
    seed: int = 0,
    users: Sequence[int] | None = None,
) -> list[CaseStudyUser]:
    """Recent items, actual next item and each model's top-1 for a few users of ``split``.

    Users are drawn with ``numpy.random.default_rng(seed)`` among the evaluated users,
    preferring those with at least ``n_recent`` visible items, unless ``users`` is given.
    ``models`` maps a display label to a loaded model; its order is the panel order.
    """
    evaluated, targets = dataset.targets(split)
    history = dataset.history(split)
    target_of = dict(zip(evaluated.tolist(), targets.tolist(), strict=True))
    if users is None:
        rng = np.random.default_rng(seed)
        chosen = _choose_users(evaluated, history.lengths[evaluated], n_users, n_recent, rng)
    else:
        chosen = np.asarray(list(users), dtype=np.int64)
        unknown = [int(u) for u in chosen if int(u) not in target_of]
        if unknown:
            raise ConfigError(f"user(s) {unknown} have no {split} target; choose evaluated users")
    catalogue = _Catalogue(dataset)
    top = {label: top_items(model, chosen, history) for label, model in models.items()}
    result: list[CaseStudyUser] = []
    for row, user in enumerate(chosen.tolist()):
        target = catalogue(target_of[user])
        recent = history.of(user)[-n_recent:] if n_recent > 0 else history.of(user)[:0]
        predictions: dict[str, tuple[CaseStudyItem, bool]] = {}
        for label, items in top.items():
            predicted = int(items[row])
            predictions[label] = (catalogue(predicted), predicted == target.item)
        result.append(CaseStudyUser(user, [catalogue(int(i)) for i in recent], target, predictions))
    return result


# -- user behaviour and clustering --------------------------------------------------------


def user_behaviour_features(dataset: PreparedDataset, n_components: int = 20, seed: int = 0) -> np.ndarray:
    """(n_evaluated_users, d) behaviour vectors, rows in the order of ``dataset.targets("test")[0]``.

    The paper clusters users "by their behaviour" without saying how. We describe a user
    by *what they consumed*: the user × item count matrix of the test-visible history
    (training + validation items), TF-IDF weighted (sublinear tf, so repeat purchases do
    not dominate; idf, so blockbuster items say less than niche ones), projected to
    ``n_components`` dimensions with truncated SVD (LSA; clipped to what the matrix
    allows) and L2-normalised, so K-means compares taste rather than activity level.
    Nothing model-specific enters, so the clusters do not presuppose the attention result.
    """
    _sklearn()
    import scipy.sparse as sp
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfTransformer

    users, _ = dataset.targets("test")
    history = dataset.history("test")
    counts = sp.csr_matrix(
        (np.ones(len(history.items), np.float64), history.items.astype(np.int64), history.offsets),
        shape=(len(history.offsets) - 1, dataset.n_items + 1),
    )
    counts.sum_duplicates()
    matrix = TfidfTransformer(sublinear_tf=True).fit_transform(counts[users][:, 1:])  # padding column dropped
    rank = min(n_components, matrix.shape[0] - 1, matrix.shape[1] - 1)
    if rank >= 1:
        features = TruncatedSVD(n_components=rank, random_state=seed).fit_transform(matrix)
    else:  # one user or one item: nothing to reduce
        features = matrix.toarray()
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return np.asarray(features / np.maximum(norms, 1e-12), dtype=np.float64)


def knee(k_values: Sequence[int], inertias: Sequence[float]) -> int:
    """The k of the elbow: the point farthest from the chord joining the curve's end points.

    Both axes are first scaled to [0, 1], so the answer does not depend on the units of
    inertia (the "naive elbow" the paper mentions, made reproducible; cf. Kneedle,
    Satopää et al. 2011). A flat curve, or fewer than three points, gives the first k.
    """
    x = np.asarray(k_values, dtype=np.float64)
    y = np.asarray(inertias, dtype=np.float64)
    if len(x) < 3 or np.ptp(y) == 0 or np.ptp(x) == 0:
        return int(x[0])
    x = (x - x.min()) / np.ptp(x)
    y = (y - y.min()) / np.ptp(y)
    dx, dy = x[-1] - x[0], y[-1] - y[0]
    distance = np.abs(dx * (y[0] - y) - (x[0] - x) * dy) / math.hypot(dx, dy)
    return int(k_values[int(np.argmax(distance))])


def elbow(
    features: np.ndarray, k_values: Iterable[int] = range(1, 11), seed: int = 0
) -> tuple[list[int], list[float], int]:
    """K-means inertia for each k (those ≤ the number of rows) and the `knee` of that curve.

    Returns ``(k_values used, inertias, chosen k)``; K-means uses ``n_init=10`` and
    ``random_state=seed``.
    """
    _sklearn()
    from sklearn.cluster import KMeans

    features = np.asarray(features, dtype=np.float64)
    ks = sorted({int(k) for k in k_values if 1 <= int(k) <= len(features)})
    if not ks:
        raise ValueError(f"no k in k_values fits {len(features)} rows")
    inertias = [float(KMeans(n_clusters=k, n_init=10, random_state=seed).fit(features).inertia_) for k in ks]
    return ks, inertias, knee(ks, inertias)


# -- attention analysis ---------------------------------------------------------------------


@dataclass
class AttentionAnalysis:
    """Numbers behind the attention heatmap; clusters are ordered largest first (A, B, …).

    ``similarity[i][j]`` is the cosine of set 1 of cluster i and set 2 of cluster j (NaN
    when a set is empty). Raw cosines of non-negative attention maps all sit near 1, so
    ``centred_similarity`` first subtracts the mean vector of all sets, which shows the
    structure. A block diagonality is mean diagonal − mean off-diagonal.
    """

    k_values: list[int]
    inertias: list[float]
    elbow_k: int
    n_clusters: int
    cluster_sizes: list[int]
    set_sizes: list[tuple[int, int]]
    set_members: list[tuple[list[int], list[int]]]  # internal user ids of set 1 and set 2 per cluster
    similarity: list[list[float]]
    centred_similarity: list[list[float]]
    block_diagonality: float
    centred_block_diagonality: float
    block: int
    history_length: int
    # The same scores when users are assigned to the sets at random (same set sizes):
    # (mean, standard deviation) over `n_permutations` shuffles, and the share of shuffles
    # scoring at least the observed centred value (a permutation p-value).
    random_block_diagonality: tuple[float, float] = (math.nan, math.nan)
    random_centred_block_diagonality: tuple[float, float] = (math.nan, math.nan)
    centred_permutation_p: float = math.nan
    n_permutations: int = 0
    # Clusters of users with similar taste can also differ in how much they watched, and
    # mean attention over left-padded sequences depends on sequence length. So: each
    # cluster's median history length (capped at the model's), and the same baseline with
    # users shuffled only among users of similar length (deciles), which keeps every set's
    # length mix. A high p here means length alone could explain the block structure.
    cluster_median_history: list[float] = field(default_factory=list)
    length_matched_centred_block_diagonality: tuple[float, float] = (math.nan, math.nan)
    length_matched_centred_p: float = math.nan

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready values; NaN becomes None."""
        return dict(finite_or_none(asdict(self)))


def block_diagonality(matrix: np.ndarray | Sequence[Sequence[float]]) -> float:
    """Mean of the diagonal minus mean of the off-diagonal entries (NaN entries ignored)."""
    values = np.asarray(matrix, dtype=np.float64)
    if values.shape[0] < 2:
        return math.nan
    off = ~np.eye(len(values), dtype=bool)
    diagonal, off_diagonal = np.diag(values), values[off]
    if np.isnan(diagonal).all() or np.isnan(off_diagonal).all():
        return math.nan
    return float(np.nanmean(diagonal) - np.nanmean(off_diagonal))


def _cosine(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(n, L) × (m, L) → (n, m) cosine; NaN where a vector is missing or zero."""
    def unit(x: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(norms > 0, x / norms, np.nan)

    return unit(first) @ unit(second).T


@torch.no_grad()
def final_position_attention(
    model: Any, sequences: np.ndarray, block: int = -1, batch_size: int = ATTENTION_BATCH
) -> np.ndarray:
    """(B, L) attention from the last position (the one that predicts) to every position.

    Averaged over heads; left-padded sequences keep the most recent item in the last
    column, so rows of users with different lengths are aligned by recency.
    """
    rows = []
    for start in range(0, len(sequences), batch_size):
        weights = model.attention_weights(sequences[start : start + batch_size])[block]  # (B, h, L, L)
        rows.append(weights.mean(dim=1)[:, -1, :].double().cpu().numpy())  # (B, L)
    return np.concatenate(rows) if rows else np.zeros((0, sequences.shape[1]))


def attention_analysis(
    dataset: PreparedDataset,
    model: Any,
    n_clusters: int = 4,
    set_size: int = 100,
    seed: int = 0,
    block: int = -1,
    k_values: Iterable[int] = range(1, 11),
    n_permutations: int = 200,
) -> AttentionAnalysis:
    """Figure 3 of the paper for one SASRec(+)-style model (see the module docstring).

    Users (test split) are described by `user_behaviour_features`; the elbow curve is
    recorded for ``k_values``, but like the paper we cluster into ``n_clusters`` (capped at
    half the number of users, so every cluster can give two sets). Each cluster's users
    are shuffled (``default_rng(seed)``) and split into two disjoint sets of up to
    ``set_size``; a smaller cluster is halved. A set is the mean over its users of
    `final_position_attention` of block ``block`` on their test-visible histories.
    """
    if int(getattr(model, "history_length", 0)) <= 0 or not hasattr(model, "attention_weights"):
        raise ConfigError(f"{type(model).__name__} has no self-attention over histories; "
                          "the attention analysis needs a SASRec-style model")
    _sklearn()
    from sklearn.cluster import KMeans

    users, _ = dataset.targets("test")
    features = user_behaviour_features(dataset, seed=seed)
    k_values, inertias, elbow_k = elbow(features, k_values, seed)
    n = max(1, min(n_clusters, len(users) // 2))
    labels = KMeans(n_clusters=n, n_init=10, random_state=seed).fit_predict(features)
    order = np.argsort(-np.bincount(labels, minlength=n), kind="stable")  # A = largest cluster
    history = dataset.history("test")
    length = int(model.history_length)
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    members: list[tuple[list[int], list[int]]] = []
    for cluster in order:
        shuffled = rng.permutation(users[labels == cluster])
        half = min(set_size, len(shuffled) // 2)
        sizes.append(len(shuffled))
        first_set, second_set = shuffled[:half], shuffled[half : 2 * half]
        members.append((sorted(int(u) for u in first_set), sorted(int(u) for u in second_set)))
    # One pass over every selected user (sets are disjoint), then a mean per set.
    selected = np.array([u for pair in members for part in pair for u in part], dtype=np.int64)
    attention = final_position_attention(model, history.padded(selected, length), block)  # (n_selected, L)
    set_lengths = [(len(a), len(b)) for a, b in members]
    similarity, centred = _set_similarities(attention, set_lengths)
    # Baseline: how block-diagonal do random user groupings of the same sizes look?
    random_raw, random_centred = [], []
    for _ in range(n_permutations):
        shuffled_raw, shuffled_centred = _set_similarities(attention[rng.permutation(len(attention))], set_lengths)
        random_raw.append(block_diagonality(shuffled_raw))
        random_centred.append(block_diagonality(shuffled_centred))
    observed_centred = block_diagonality(centred)
    finite = [v for v in random_centred if math.isfinite(v)]
    # Drawn after the plain shuffles, so those stay what they were before this baseline existed.
    capped = np.minimum(history.lengths[selected], length)
    strata = np.digitize(capped, np.unique(np.quantile(capped, np.linspace(0, 1, 11)[1:-1])))
    groups = [np.flatnonzero(strata == stratum) for stratum in np.unique(strata)]
    matched_centred = []
    for _ in range(n_permutations):
        index = np.arange(len(selected))
        for positions in groups:
            index[positions] = positions[rng.permutation(len(positions))]
        matched_centred.append(block_diagonality(_set_similarities(attention[index], set_lengths)[1]))
    matched = [v for v in matched_centred if math.isfinite(v)]
    offsets = np.cumsum([0, *(a + b for a, b in set_lengths)])
    cluster_median = [float(np.median(capped[start:end])) if end > start else math.nan
                      for start, end in zip(offsets[:-1], offsets[1:], strict=True)]
    return AttentionAnalysis(
        k_values=k_values,
        inertias=inertias,
        elbow_k=elbow_k,
        n_clusters=n,
        cluster_sizes=sizes,
        set_sizes=[(len(a), len(b)) for a, b in members],
        set_members=members,
        similarity=similarity.tolist(),
        centred_similarity=centred.tolist(),
        block_diagonality=block_diagonality(similarity),
        centred_block_diagonality=block_diagonality(centred),
        block=block,
        history_length=length,
        random_block_diagonality=_mean_std(random_raw),
        random_centred_block_diagonality=_mean_std(random_centred),
        centred_permutation_p=((1 + sum(v >= observed_centred for v in finite)) / (1 + len(finite))
                               if finite and math.isfinite(observed_centred) else math.nan),
        n_permutations=n_permutations,
        cluster_median_history=cluster_median,
        length_matched_centred_block_diagonality=_mean_std(matched_centred),
        length_matched_centred_p=((1 + sum(v >= observed_centred for v in matched)) / (1 + len(matched))
                                  if matched and math.isfinite(observed_centred) else math.nan),
    )


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    finite = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return (math.nan, math.nan)
    return (float(finite.mean()), float(finite.std(ddof=1)) if finite.size > 1 else 0.0)


def _set_similarities(attention: np.ndarray, set_lengths: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Raw and centred cosine of set-1 × set-2 means; rows of ``attention`` are the sets' users in order."""
    n, length = len(set_lengths), attention.shape[1]
    first = np.full((n, length), np.nan)
    second = np.full((n, length), np.nan)
    start = 0
    for row, sizes in enumerate(set_lengths):
        for vectors, size in zip((first, second), sizes, strict=True):
            if size:
                vectors[row] = attention[start : start + size].mean(axis=0)
            start += size
    stacked = np.concatenate([first, second])
    present = ~np.isnan(stacked).any(axis=1)
    centre = stacked[present].mean(axis=0) if present.any() else np.zeros(length)
    return _cosine(first, second), _cosine(first - centre, second - centre)
