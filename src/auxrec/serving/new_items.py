"""Items that arrived after training, made recommendable without retraining (`auxrec add-items`).

A new item has no interactions, so no learnt id embedding; what a model knows of it is
its content. SASRec+ and BERT4Rec+ runs (trained with item features) take new items:

- **the content** enters as for every item: on the input side always, and among the
  candidates too when the run was trained with ``aux_on_output`` (``E_item + W·k``), which
  is what ranks a new item;
- **the id embedding** is zero by default; ``neighbours=N`` borrows instead the
  similarity-weighted mean of the id embeddings of the N trained items closest in stored
  content (cosine). Measured on synthetic data (docs/serving.md, "Items added after
  training"), borrowing ranked new items *worse* on an ``aux_on_output`` run and only
  slightly better than nothing on an input-side-only run, so it is off by default, and an
  input-side-only run without it is refused (its new items would all score the same).

Runs without item features (and PopRec, BPR, TransRec) know nothing of a new item and say so.

The new items are encoded with the run's own encoders, fitted on the run's dataset (the
basic text, image and tabular encoders; pretrained ``auxrec embed`` caches and
``--features`` files cannot be extended here and are refused with the reason), and
scaled or aligned exactly as the fusion stored the dataset's items. They are kept in
``RUN/added_items/`` (``items.parquet``, ``features.npz``), which `auxrec.load_run`
applies; the run's trained files and metrics are never touched, so evaluation is unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from auxrec.data.dataset import PreparedDataset
from auxrec.exceptions import ConfigError, DataError
from auxrec.experiments.runs import load_run as load_run_parts
from auxrec.features.attributes import same_as_basic
from auxrec.features.basic import basic_features_of_new_items, basic_item_features
from auxrec.models.content_neighbours import content_neighbours
from auxrec.models.fusion import stored_feature_rows

ADDED_FOLDER = "added_items"
ID_COLUMNS = ("item_id", "item", "id", "original_id")


@dataclass(frozen=True)
class AddedItems:
    """What ``RUN/added_items`` holds: the new items' rows and their stored feature rows."""

    items: pd.DataFrame  # original_id plus the item columns, in the order of their new ids
    rows: dict[str, np.ndarray]  # modality → (len(items), stored width)
    neighbours: np.ndarray  # (len(items), K) internal ids of the trained items closest in content
    weights: np.ndarray  # (len(items), K) their weights in the borrowed id embedding (rows sum to 1 or 0)

    @classmethod
    def load(cls, run_dir: Path) -> AddedItems | None:
        folder = Path(run_dir) / ADDED_FOLDER
        if not folder.is_dir():
            return None
        try:
            items = pd.read_parquet(folder / "items.parquet")
            with np.load(folder / "features.npz") as stored:
                rows = {name: stored[name] for name in stored.files}
            with np.load(folder / "neighbours.npz") as stored:
                neighbours, weights = stored["ids"], stored["weights"]
        except (OSError, ValueError, KeyError) as error:
            raise DataError(f"{folder} is damaged ({str(error).splitlines()[0]}); delete it and run "
                            "`auxrec add-items` again") from None
        return cls(items, rows, neighbours, weights)

    def apply_to(self, model: Any) -> None:
        model.add_items({name: torch.from_numpy(rows) for name, rows in self.rows.items()},
                        torch.from_numpy(self.neighbours), torch.from_numpy(self.weights))


@dataclass(frozen=True)
class AddSummary:
    added: int
    total_added: int
    coverage: dict[str, int]  # modality → new items that have it

    def __str__(self) -> str:
        covered = ", ".join(f"{name} {count:,}/{self.added:,}" for name, count in self.coverage.items())
        return (f"added {self.added:,} items ({self.total_added:,} added to this run in all); "
                f"content found: {covered}")


def read_new_items(path: Path, dataset: PreparedDataset, already_added: pd.DataFrame | None) -> pd.DataFrame:
    """The new items table: ``original_id`` (text) plus the dataset's item columns found in it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; --items takes a .csv or .parquet file of new items")
    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)
        elif path.suffix.lower() == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        else:
            raise DataError(f"{path}: --items takes a .csv or .parquet file")
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"{path} cannot be read ({str(error).splitlines()[0]})") from None
    id_column = next((c for c in ID_COLUMNS if c in frame.columns), None)
    if id_column is None:
        raise DataError(f"{path} has no item id column; name it one of {', '.join(ID_COLUMNS)}")
    if frame.empty:
        raise DataError(f"{path} has no rows")
    ids = frame[id_column]
    if ids.isna().any():
        raise DataError(f"{path}: row {int(np.flatnonzero(ids.isna())[0]) + 1} has no item id")
    ids = ids.map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
    if ids.str.contains("\x00", regex=False).any():
        raise DataError(f"{path}: an item id contains a NUL byte")
    duplicated = ids[ids.duplicated()].unique().tolist()
    if duplicated:
        raise DataError(f"{path} lists item id(s) {', '.join(map(repr, duplicated[:5]))} more than once")
    known = set(dataset.items["original_id"].astype(str))
    if already_added is not None:
        known |= set(already_added["original_id"])
    clashes = [i for i in ids if i in known]
    if clashes:
        raise DataError(f"item id(s) {', '.join(map(repr, clashes[:5]))} are already in this run's catalogue; "
                        "add-items takes items the run does not know")
    columns = [c for c in dataset.item_columns.all_columns() if c in frame.columns]
    if not columns:
        raise DataError(f"{path} has none of the dataset's item columns ({', '.join(dataset.item_columns.all_columns())}); "
                        "new items need content (text, an image or attributes) to be recommended")
    new = frame[columns].copy()
    image = dataset.item_columns.image
    if image in new.columns:  # relative image paths are relative to the items file
        new[image] = new[image].map(lambda p: p if not isinstance(p, str) or not p or os.path.isabs(p)
                                    else str((path.parent / p).resolve()))
    new.insert(0, "original_id", ids.to_numpy())
    return new.reset_index(drop=True)


def _stored_rows(model: Any, dataset: PreparedDataset, modality: str, vectors: np.ndarray,
                 present: np.ndarray) -> np.ndarray:
    """The new items' rows as the fusion stores them, fitted on the dataset's items like the fusion's own."""
    fusion = model.fusion
    original = basic_item_features(dataset, [modality])
    matrix, matrix_present = original.matrices[modality], original.present[modality]
    stored_now = getattr(fusion, f"features_{modality}")[: dataset.n_items + 1].cpu().numpy()
    if not np.allclose(stored_feature_rows(fusion.mode, fusion.common_width, matrix, matrix_present), stored_now,
                       atol=1e-5):
        raise ConfigError(f"the basic {modality} encoder no longer gives the vectors this run was trained on "
                          "(auxrec or the data changed since), so new items would not match; retrain the run")
    return stored_feature_rows(fusion.mode, fusion.common_width, matrix, matrix_present, vectors, present)


def add_items(run_dir: Path, items_path: Path, neighbours: int = 0) -> AddSummary:
    """Encode the items in ``items_path`` with the run's encoders and keep them in ``RUN/added_items``.

    ``neighbours``: how many content-nearest trained items lend their id embeddings (0: none).
    """
    if neighbours < 0:
        raise ConfigError(f"--neighbours must be 0 or more, not {neighbours}")
    run_dir = Path(run_dir)
    config, model, dataset = load_run_parts(run_dir)
    previous = AddedItems.load(run_dir)
    if previous is not None:
        previous.apply_to(model)
    sources = {name: info.get("source", "") for name, info in (config.get("item_features") or {}).items()}
    if not sources or model.feature_dims() is None:
        model.add_items({}, None, None)  # the model's own refusal names why (no content)
    if not model.config.aux_on_output and neighbours == 0:
        raise ConfigError(f"this {config['model']} run was trained with content on the input side only, so a new "
                          "item (no learnt id embedding) would score the same as every other new item; train with "
                          "--set aux_on_output=true, or borrow id embeddings from content neighbours with "
                          "--neighbours N (weak in our measurements: docs/serving.md)")
    not_basic = {name: source for name, source in sources.items() if not same_as_basic(name, source)}
    if not_basic:
        raise ConfigError("new items can only be encoded with the basic encoders for now; this run read "
                          + ", ".join(f"{name} from {source}" for name, source in not_basic.items())
                          + " (embed the new items yourself and retrain, or train with the basic encoders)")
    new = read_new_items(items_path, dataset, previous.items if previous is not None else None)
    vectors, present = basic_features_of_new_items(dataset, new, list(sources))
    rows = {name: _stored_rows(model, dataset, name, vectors[name], present[name]) for name in sources}
    ids, weights = content_neighbours(model.fusion, dataset.train_item_counts, rows, neighbours)
    model.add_items({name: torch.from_numpy(r) for name, r in rows.items()}, torch.from_numpy(ids),
                    torch.from_numpy(weights))  # refuses models that cannot
    if previous is not None:
        if previous.neighbours.shape[1] != ids.shape[1]:
            raise ConfigError(f"this run's earlier added items borrowed from {previous.neighbours.shape[1]} "
                              f"neighbours; add these with --neighbours {previous.neighbours.shape[1]} too")
        new = pd.concat([previous.items, new], ignore_index=True)
        rows = {name: np.concatenate([previous.rows[name], r]) for name, r in rows.items()}
        ids, weights = np.concatenate([previous.neighbours, ids]), np.concatenate([previous.weights, weights])
    _write(run_dir, AddedItems(new, rows, ids, weights))
    added = len(new) - (len(previous.items) if previous is not None else 0)
    return AddSummary(added, len(new), {name: int(p.sum()) for name, p in present.items()})


def _write(run_dir: Path, added: AddedItems) -> None:
    """Replace ``RUN/added_items`` as a whole: a staged folder renamed into place."""
    final = run_dir / ADDED_FOLDER
    staging = run_dir / f".{ADDED_FOLDER}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    added.items.astype({"original_id": str}).to_parquet(staging / "items.parquet", index=False)
    np.savez(staging / "features.npz", **added.rows)
    np.savez(staging / "neighbours.npz", ids=added.neighbours, weights=added.weights)
    (staging / "manifest.json").write_text(json.dumps({"items": len(added.items),
                                                       "modalities": sorted(added.rows)}, indent=2))
    retired = run_dir / f".{ADDED_FOLDER}.old"
    if final.exists():
        os.replace(final, retired)
    os.replace(staging, final)
    shutil.rmtree(retired, ignore_errors=True)


def remove_added_items(run_dir: Path) -> int:
    """Forget every added item of a run (even a damaged record of them); returns how many there were."""
    folder = Path(run_dir) / ADDED_FOLDER
    if not folder.is_dir():
        return 0
    try:
        count = len(pd.read_parquet(folder / "items.parquet"))
    except (OSError, ValueError):
        count = 0
    shutil.rmtree(folder)
    return count
