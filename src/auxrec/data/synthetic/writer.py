"""The public entry points: `generate` (in memory), `source_spec` and `write_synthetic`
(generic source format on disk) with their Parquet helpers."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from auxrec.data.schema import RawDataset
from auxrec.data.synthetic.catalogue import ITEM_COLUMNS, _build_catalogue, _Catalogue, _item_table
from auxrec.data.synthetic.config import SyntheticConfig
from auxrec.data.synthetic.images import _write_images
from auxrec.data.synthetic.users import _user_chunks
from auxrec.io import check_output_folder, mark_output


def generate(config: SyntheticConfig, image_dir: Path | None = None) -> RawDataset:
    """The whole dataset in memory (meant for small configs).

    Interactions: ``user``, ``item``, ``timestamp`` (int64 seconds) and ``rating`` when
    ``config.ratings``, sorted by user then time. The item table has the declared columns
    (`ITEM_COLUMNS`) plus the latent columns described in the package docstring;
    ``image_path`` is None unless ``image_dir`` is given and ``config.images`` is set, in
    which case the PNGs are written there and ``image_path`` holds their absolute paths.
    """
    cat = _build_catalogue(config)
    items = _item_table(config, cat)
    chunks = list(_user_chunks(config, cat))
    interactions = pd.DataFrame({
        "user": np.concatenate([c.user for c in chunks]),
        "item": np.concatenate([c.item for c in chunks]),
        "timestamp": np.concatenate([c.timestamp for c in chunks]),
    })
    if config.ratings:
        interactions["rating"] = np.concatenate([c.rating for c in chunks if c.rating is not None])
    users = pd.concat([c.users for c in chunks], ignore_index=True)
    if image_dir is not None and config.images:
        folder = Path(image_dir).resolve()
        _write_images(config, cat, folder)
        items["image_path"] = [str(folder / f"{i}.png") for i in items["item"].tolist()]
    dataset = RawDataset(
        name=config.dataset_name,
        interactions=interactions,
        items=items,
        item_columns=ITEM_COLUMNS,
        users=users,
        user_columns=("segment",),
        source={"format": "synthetic", "config": asdict(config)},
    )
    dataset.validate()
    return dataset


def source_spec(config: SyntheticConfig) -> dict[str, Any]:
    """The ``auxrec-source.json`` content that `write_synthetic` writes for ``config``."""
    items: dict[str, Any] = {
        "path": "items.parquet", "item": "item_id", "text": ["title", "description"],
        "categorical": ["category", "colour", "style"], "numeric": ["price", "weight"],
        "multi_label": ["tags"],
    }
    if config.images:
        items["image"] = "image"
        items["image_root"] = "images"
    return {
        "name": config.dataset_name,
        "interactions": {
            "path": "interactions.parquet", "user": "user_id", "item": "item_id", "timestamp": "ts",
            "rating": "rating" if config.ratings else None, "timestamp_unit": "s",
            "user_dtype": "int", "item_dtype": "int",
        },
        "items": items,
    }


def _interaction_schema(config: SyntheticConfig) -> Any:

    columns = [("user_id", pa.int64()), ("item_id", pa.int64()), ("ts", pa.int64())]
    if config.ratings:
        columns.append(("rating", pa.float64()))
    return pa.schema(columns)


def _strings(values: pd.Series) -> Any:
    """A pyarrow string array with missing values (None or NaN) as nulls."""

    return pa.array([None if pd.isna(v) else str(v) for v in values.tolist()], pa.string())


def _write_items(config: SyntheticConfig, cat: _Catalogue, folder: Path) -> None:

    items = _item_table(config, cat)
    arrays = {
        "item_id": pa.array(items["item"].to_numpy(), pa.int64()),
        "title": pa.array(items["title"].tolist(), pa.string()),
        "description": pa.array(items["description"].tolist(), pa.string()),
        "category": _strings(items["category"]),
        "colour": _strings(items["colour"]),
        "style": _strings(items["style"]),
        "price": pa.array(items["price"].to_numpy(), pa.float64()),
        "weight": pa.array(items["weight"].to_numpy(), pa.float64(), from_pandas=True),
        "tags": pa.array(items["tags"].tolist(), pa.list_(pa.string())),
    }
    if config.images:
        arrays["image"] = pa.array([f"{i}.png" for i in items["item"].tolist()], pa.string())
    pq.write_table(pa.table(arrays), folder / "items.parquet")
    latent = pa.table({
        "item_id": arrays["item_id"],
        "category": pa.array(items["latent_category"].tolist(), pa.string()),
        "colour": pa.array(items["latent_colour"].tolist(), pa.string()),
        "style": pa.array(items["latent_style"].tolist(), pa.string()),
        "price_tier": pa.array(items["latent_price_tier"].to_numpy(), pa.int64()),
        "popularity": pa.array(items["popularity"].to_numpy(), pa.float64()),
    })
    pq.write_table(latent, folder / "latent" / "items.parquet")


def write_synthetic(config: SyntheticConfig, out_dir: Path, progress: bool = False,
                    overwrite: bool = False) -> Path:
    """Write ``config``'s dataset to ``out_dir`` in auxrec's generic source format.

    Files: ``interactions.parquet`` (``user_id``, ``item_id``, ``ts`` int64 and ``rating``
    float64 when enabled), ``items.parquet`` (``item_id`` + item columns, ``tags`` as
    list<string>, ``image`` file names when images are on), ``images/<item_id>.png``,
    ``auxrec-source.json`` and the latent truth in ``latent/`` (``items.parquet``,
    ``users.parquet``, ``config.json``). Users are streamed in chunks, so memory stays
    bounded. Everything is written to a temporary sibling folder that is renamed to
    ``out_dir`` at the end. An existing non-empty ``out_dir`` is an error unless
    ``overwrite``. Returns ``out_dir``.
    """

    out_dir = Path(out_dir)
    check_output_folder(out_dir, "generated", overwrite)  # never replaces a folder auxrec did not generate
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        (tmp / "latent").mkdir(parents=True)
        mark_output(tmp, "generated")
        cat = _build_catalogue(config)
        _write_items(config, cat, tmp)
        if config.images:
            _write_images(config, cat, tmp / "images")

        schema = _interaction_schema(config)
        user_schema = pa.schema([
            ("user_id", pa.int64()), ("segment", pa.string()), ("favourite_colour", pa.string()),
            ("price_tier", pa.int64()), ("preferred_categories", pa.list_(pa.string())),
        ])
        n_chunks = (config.n_users + config.users_per_chunk - 1) // config.users_per_chunk
        with pq.ParquetWriter(tmp / "interactions.parquet", schema) as writer, \
                pq.ParquetWriter(tmp / "latent" / "users.parquet", user_schema) as user_writer:
            for chunk in tqdm(_user_chunks(config, cat), total=n_chunks, disable=not progress,
                              desc=f"{config.dataset_name} users", unit="chunk"):
                columns = [pa.array(chunk.user, pa.int64()), pa.array(chunk.item, pa.int64()),
                           pa.array(chunk.timestamp, pa.int64())]
                if chunk.rating is not None:
                    columns.append(pa.array(chunk.rating, pa.float64()))
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
                u = chunk.users
                user_writer.write_table(pa.Table.from_arrays([
                    pa.array(u["user"].to_numpy(), pa.int64()),
                    pa.array(u["segment"].tolist(), pa.string()),
                    pa.array(u["favourite_colour"].tolist(), pa.string()),
                    pa.array(u["price_tier"].to_numpy(), pa.int64()),
                    pa.array(u["preferred_categories"].tolist(), pa.list_(pa.string())),
                ], schema=user_schema))
        (tmp / "latent" / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
        # The source description last: a folder with it is complete.
        (tmp / "auxrec-source.json").write_text(json.dumps(source_spec(config), indent=2) + "\n")
        if out_dir.exists():
            trash = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            out_dir.rename(trash)
            tmp.rename(out_dir)
            shutil.rmtree(trash)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
