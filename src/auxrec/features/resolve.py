"""Which item features a run uses, and where each modality comes from.

Order of sources for a modality: a file the user gave (``--features NAME=PATH``), then
the basic built-in encoder (`auxrec.features.basic`). The encoder issue adds pretrained
encoders with a cache in between. The description of each modality's source is recorded
in the run's config so results always say which encoder produced them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from auxrec.data.dataset import PreparedDataset
from auxrec.features.basic import basic_item_features
from auxrec.features.item_features import ItemFeatures, load_feature_file


def resolve_item_features(
    dataset: PreparedDataset, modalities: Sequence[str], feature_files: Mapping[str, Path] | None = None
) -> ItemFeatures | None:
    if not modalities:
        return None
    feature_files = dict(feature_files or {})
    matrices, present, descriptions = {}, {}, {}
    built_in = [m for m in modalities if m not in feature_files]
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
