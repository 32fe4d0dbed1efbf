"""H&M Personalized Fashion Recommendations (Kaggle) loader: full files or the samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from auxrec.data.loaders._io import (
    check_source_dir,
    dates_to_seconds,
    find_file,
    find_optional,
    read_csv_columns,
    read_header,
    source_info,
    to_object,
)
from auxrec.data.schema import InteractionAggregate, ItemColumns, RawDataset

NAME = "hm"
ARTICLE_ID_LENGTH = 10
TEXT_COLUMNS = ("prod_name", "detail_desc")
CATEGORICAL_COLUMNS = (
    "product_type_name",
    "product_group_name",
    "graphical_appearance_name",
    "colour_group_name",
    "perceived_colour_value_name",
    "perceived_colour_master_name",
    "department_name",
    "index_name",
    "index_group_name",
    "section_name",
    "garment_group_name",
)
CUSTOMER_NUMERIC = ("FN", "Active", "age")
CUSTOMER_CATEGORICAL = ("club_member_status", "fashion_news_frequency", "postal_code")


def load_hm(source: Path, items_with_metadata_only: bool = False) -> RawDataset:
    """Load H&M transactions, article metadata, customers and image paths.

    Parameters
    ----------
    source : Path
        Folder with ``transactions_train_sample.csv`` or ``transactions_train.csv``
        (``t_dat,customer_id,article_id,price,sales_channel_id``), ``articles_train_sample.csv``
        or ``articles.csv``, optional ``customers_sample.csv`` or ``customers.csv`` and optional
        ``images/<article_id[:3]>/<article_id>.jpg``.
    items_with_metadata_only : bool, default False
        Drop the transactions on articles that have no row in the articles file; the number
        dropped is recorded in ``source["dropped_interactions"]``.

    Returns
    -------
    RawDataset
        Interactions ``user`` (customer_id string), ``item`` (10-digit article_id string;
        ids written without their leading zeros are zero-padded back), ``timestamp`` (the
        day's midnight UTC), no rating, and, when the file has prices, ``price`` (the
        transaction's price, float64, NaN if blank); exact duplicate rows (same-day repeat
        purchases) are kept. Items (one row per article of the articles file): text
        ``prod_name``, ``detail_desc``; categorical: the eleven ``*_name`` attribute
        columns; ``image_path`` (expected path, whether or not the file exists) when
        ``images/`` exists. Numeric ``price`` is declared but *not* computed here: it is an
        `InteractionAggregate` (mean of the interaction ``price``) that
        `auxrec.data.prepare.prepare_dataset` computes from the training interactions only,
        so validation and test purchases do not leak into the item feature (NaN for
        articles without a training purchase). Users: ``FN``, ``Active``, ``age`` (floats),
        ``club_member_status``, ``fashion_news_frequency``, ``postal_code``.
    """
    source = check_source_dir(Path(source), NAME)
    tx_path = find_file(source, ["transactions_train_sample.csv", "transactions_train.csv"], NAME, "transactions")
    tx = read_csv_columns(
        tx_path,
        ["t_dat", "customer_id", "article_id"],
        NAME,
        dtype={"t_dat": str, "customer_id": str, "article_id": str, "price": "float64"},
        optional=["price"],
    )
    interactions = pd.DataFrame(
        {
            "user": tx["customer_id"],
            "item": _pad_article_ids(tx["article_id"]),
            "timestamp": dates_to_seconds(tx["t_dat"], NAME, "t_dat", tx_path),
        }
    )
    files = [tx_path]

    articles_path = find_file(source, ["articles_train_sample.csv", "articles.csv"], NAME, "articles")
    files.append(articles_path)
    wanted = ["article_id", *TEXT_COLUMNS, *CATEGORICAL_COLUMNS]
    articles = read_csv_columns(articles_path, wanted, NAME, dtype={c: str for c in wanted})
    items = pd.DataFrame({"item": _pad_article_ids(articles["article_id"])})
    for column in (*TEXT_COLUMNS, *CATEGORICAL_COLUMNS):
        items[column] = to_object(articles[column])
    items = items[items["item"].notna()].drop_duplicates("item", keep="first").reset_index(drop=True)

    numeric: tuple[str, ...] = ()
    aggregates: tuple[InteractionAggregate, ...] = ()
    if "price" in tx.columns:
        # Kept per transaction; the item's price is aggregated after the split (train only).
        interactions["price"] = tx["price"].to_numpy(dtype="float64")
        numeric = ("price",)
        aggregates = (InteractionAggregate(column="price", source="price", how="mean"),)

    image = None
    images = source / "images"
    if images.is_dir():
        root = str(images.resolve())
        items["image_path"] = pd.Series(
            [f"{root}/{i[:3]}/{i}.jpg" for i in items["item"].tolist()], index=items.index, dtype=object
        )
        image = "image_path"

    extra: dict[str, object] = {"items_with_metadata_only": items_with_metadata_only}
    if items_with_metadata_only:
        keep = interactions["item"].isin(items["item"]).to_numpy()
        extra["dropped_interactions"] = int((~keep).sum())
        interactions = interactions[keep].reset_index(drop=True)

    users = None
    user_columns: tuple[str, ...] = ()
    customers_path = find_optional(source, ["customers_sample.csv", "customers.csv"], NAME, "customers")
    if customers_path is not None:
        files.append(customers_path)
        header = read_header(customers_path, NAME)
        numeric_cols = [c for c in CUSTOMER_NUMERIC if c in header]
        categorical_cols = [c for c in CUSTOMER_CATEGORICAL if c in header]
        customers = read_csv_columns(
            customers_path,
            ["customer_id"],
            NAME,
            dtype={"customer_id": str, **{c: "float64" for c in numeric_cols}, **{c: str for c in categorical_cols}},
            optional=[*numeric_cols, *categorical_cols],
        )
        users = pd.DataFrame({"user": customers["customer_id"]})
        for column in (*numeric_cols, *categorical_cols):
            users[column] = customers[column] if column in numeric_cols else to_object(customers[column])
        users = users.drop_duplicates("user", keep="first").reset_index(drop=True)
        user_columns = tuple(c for c in header if c in (*numeric_cols, *categorical_cols))
        users = users[["user", *user_columns]]

    return RawDataset(
        name=NAME,
        interactions=interactions,
        items=items,
        item_columns=ItemColumns(text=TEXT_COLUMNS, categorical=CATEGORICAL_COLUMNS, numeric=numeric, image=image),
        users=users,
        user_columns=user_columns,
        source=source_info(NAME, source, files, **extra),
        item_aggregates=aggregates,
    )


def _pad_article_ids(ids: pd.Series) -> pd.Series:
    """Article ids as 10-character strings (restores leading zeros lost by int round-trips)."""
    ids = ids.str.strip()
    lengths = ids.str.len()
    if len(ids) and np.nanmin(lengths.to_numpy(dtype="float64", na_value=np.nan)) < ARTICLE_ID_LENGTH:
        ids = ids.str.zfill(ARTICLE_ID_LENGTH)
    return ids
