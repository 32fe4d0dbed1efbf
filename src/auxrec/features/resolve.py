"""Which item features a run uses, and where each modality comes from.

Order of sources for a modality: a file the user gave (``--features NAME=PATH``), then
the pretrained embeddings ``auxrec embed`` cached in the prepared folder (the entry it
selected last, see `auxrec.features.cache`; used only while it is valid for this data),
then the basic built-in encoder (`auxrec.features.basic`). The description of each
modality's source is recorded in the run's config so results always say which encoder
produced them: ``file:PATH``, ``cache:<encoder>`` or ``basic-<modality>``. A cache entry
that exists but is stale or corrupt is reported with a warning and not used.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from auxrec.data.dataset import PreparedDataset
from auxrec.features.basic import basic_item_features
from auxrec.features.cache import FeatureCache
from auxrec.features.item_features import ItemFeatures, load_feature_file
from auxrec.features.registry import MODALITIES

logger = logging.getLogger(__name__)
CACHEABLE = MODALITIES  # `auxrec embed` caches every content modality


def resolve_item_features(
    dataset: PreparedDataset, modalities: Sequence[str], feature_files: Mapping[str, Path] | None = None
) -> ItemFeatures | None:
    if not modalities:
        return None
    feature_files = dict(feature_files or {})
    matrices, present, descriptions = {}, {}, {}
    cache = FeatureCache(dataset.path)
    for name in modalities:
        if name in feature_files or name not in CACHEABLE or name in matrices:
            continue
        found, why = cache.current(name, dataset.fingerprint, dataset.n_items + 1)
        if found is not None:
            matrices[name], present[name] = found.matrix, found.present
            descriptions[name] = f"cache:{found.description}"
        elif why != "not embedded":
            logger.warning("%s: not using the cached embeddings (%s); falling back to the basic encoder", name, why)
    built_in = [m for m in modalities if m not in feature_files and m not in matrices]
    if built_in:
        basic = basic_item_features(dataset, built_in)
        matrices.update(basic.matrices)
        present.update(basic.present)
        descriptions.update(basic.descriptions)
    for name, path in feature_files.items():
        if name in modalities:
            matrices[name], present[name] = load_feature_file(Path(path), dataset.items)
            descriptions[name] = f"file:{Path(path).resolve()}"
    ordered = list(dict.fromkeys(modalities))
    return ItemFeatures({m: matrices[m] for m in ordered}, {m: present[m] for m in ordered},
                        {m: descriptions[m] for m in ordered})
