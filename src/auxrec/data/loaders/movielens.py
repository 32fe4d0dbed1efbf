"""MovieLens loaders: ML-100K (RecBole atomic or GroupLens files), ML-1M (``::`` files) and
the CSV releases (ML-20M, ML-25M, ml-latest)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auxrec.data.loaders._io import (
    check_source_dir,
    find_file,
    find_optional,
    image_column,
    read_csv_columns,
    read_header,
    require_columns,
    source_info,
    split_multi_label,
    split_title_year,
    to_object,
)
from auxrec.data.schema import ItemColumns, RawDataset
from auxrec.exceptions import DataError

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)  # fmt: skip

ML1M_OCCUPATIONS = {
    0: "other", 1: "academic/educator", 2: "artist", 3: "clerical/admin", 4: "college/grad student",
    5: "customer service", 6: "doctor/health care", 7: "executive/managerial", 8: "farmer",
    9: "homemaker", 10: "K-12 student", 11: "lawyer", 12: "programmer", 13: "retired",
    14: "sales/marketing", 15: "scientist", 16: "self-employed", 17: "technician/engineer",
    18: "tradesman/craftsman", 19: "unemployed", 20: "writer",
}  # fmt: skip

IMDB_NO_PLOT = "It looks like we don't have any Plot Summaries"
DETAILS_FILE = "movielens100k_details.json"
ML1M_MAPPING_FILE = "derived_ml100k_to_ml1m_movie_id.tsv"
N_CAST = 5
_UNKNOWN_TITLES = {"unknown", "unkonwn"}


# --------------------------------------------------------------------------- ML-100K


def load_movielens_100k(
    source: Path,
    images_dir: Path | str | None = None,
    details: bool | Path | str = True,
    details_max_year_gap: int | None = None,
) -> RawDataset:
    """Load MovieLens-100K from RecBole atomic files or the original GroupLens files.

    Parameters
    ----------
    source : Path
        Folder with ``ml-100k.inter`` / ``ml-100k.item`` / ``ml-100k.user`` (RecBole atomic
        files; any single ``*.inter`` is accepted) or ``u.data`` / ``u.item`` / ``u.user``
        (GroupLens). The RecBole files win when both are present.
    images_dir : Path, optional
        Folder of posters named ``<ML-1M MovieID>.jpg`` (through
        ``derived_ml100k_to_ml1m_movie_id.tsv``; without that file, ``<item>.jpg``). Default:
        ``source/images`` if it exists, else ``source/../ml-1m/images`` if it exists, else no
        image column. An explicit folder that does not exist is an error.
    details : bool or Path, default True
        Add IMDb text from ``movielens100k_details.json`` (looked up in ``source``; a path
        names the file): ``plot`` (its ``description``, IMDb's "no plot summary" placeholder
        dropped), ``cast`` (first 5 names) and ``director`` (categorical: first director).
        Silently skipped when the file is absent and ``details`` is True.
    details_max_year_gap : int, optional
        When set, drop the IMDb details of an item whose IMDb ``year`` differs from the
        MovieLens year by more than this many years, or whose MovieLens year is unknown
        (the scraper sometimes matched a remake: e.g. item 267 "unknown" got the 2011 film
        "Unknown"; with 2, 17 of the 1,591 records are dropped). Default: keep every record.

    Returns
    -------
    RawDataset
        Interactions ``user``, ``item`` (int64), ``timestamp``, ``rating``; items ``title``,
        ``plot``, ``cast`` (text), ``director`` (categorical), ``year`` (numeric, NaN when
        unknown), ``genres`` (multi-label), ``image_path``; users ``age``, ``gender``,
        ``occupation``, ``zip``.
    """
    name = "ml-100k"
    source = check_source_dir(Path(source), name)
    inter = find_optional(source, ["ml-100k.inter", "*.inter"], name, "interactions")
    if inter is not None:
        files, interactions, items, users = _read_recbole_100k(source, inter)
    elif (source / "u.data").is_file():
        files, interactions, items, users = _read_grouplens_100k(source)
    else:
        raise DataError(
            f"{name}: ratings file not found in {source} "
            "(expected ml-100k.inter (RecBole) or u.data (GroupLens))"
        )

    item_columns: dict[str, Any] = {
        "text": ["title"],
        "categorical": [],
        "numeric": ["year"],
        "multi_label": ["genres"],
        "image": None,
    }
    extra: dict[str, Any] = {}

    details_path = _details_path(source, details, name)
    if details_path is not None:
        files.append(details_path)
        found = _read_details(details_path, name)
        if details_max_year_gap is not None:
            ml_year = found["item"].map(items.set_index("item")["year"])
            keep = (found["imdb_year"] - ml_year).abs() <= details_max_year_gap
            keep |= found["imdb_year"].isna() & ml_year.notna()
            extra["details_dropped"] = int((~keep).sum())
            extra["details_max_year_gap"] = details_max_year_gap
            found = found[keep]
        items = items.merge(found.drop(columns="imdb_year"), on="item", how="left")
        for column in ("plot", "cast", "director"):
            items[column] = to_object(items[column])
        item_columns["text"] += ["plot", "cast"]
        item_columns["categorical"].append("director")
    extra["details"] = details_path is not None

    folder = _resolve_100k_images(source, images_dir, name)
    if folder is not None:
        mapping_path = source / ML1M_MAPPING_FILE
        if mapping_path.is_file():
            files.append(mapping_path)
            mapping = _read_ml1m_mapping(mapping_path, name)
            poster_ids = items["item"].map(mapping)
            ids = pd.Series(
                [None if pd.isna(v) else int(v) for v in poster_ids.tolist()], index=items.index, dtype=object
            )
            extra["image_ids"] = "ml1m_movie_id"
        else:
            ids = items["item"].astype(object)
            extra["image_ids"] = "item"
        items["image_path"] = image_column(ids, folder)
        item_columns["image"] = "image_path"
        extra["images_dir"] = str(folder.resolve())
    else:
        extra["images_dir"] = None

    return RawDataset(
        name=name,
        interactions=interactions,
        items=items.reset_index(drop=True),
        item_columns=ItemColumns(**{k: tuple(v) if isinstance(v, list) else v for k, v in item_columns.items()}),
        users=users,
        user_columns=("age", "gender", "occupation", "zip") if users is not None else (),
        source=source_info(name, source, files, **extra),
    )


def _read_atomic(path: Path, dataset: str) -> pd.DataFrame:
    """Read a RecBole atomic file (TSV, header ``name:type``), stripping the type suffixes."""
    header = read_header(path, dataset, sep="\t")
    names = [h.split(":", 1)[0] for h in header]
    try:
        frame = pd.read_csv(
            path, sep="\t", header=0, names=names, dtype=str, quoting=csv.QUOTE_NONE, engine="c",
            keep_default_na=False, na_values=[""],
        )  # fmt: skip
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{dataset}: cannot parse {path.name} ({path}): {exc}") from None
    return frame


def _int_column(values: pd.Series, dataset: str, column: str, path: Path) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() & values.notna() | (numbers.notna() & (numbers % 1 != 0))
    if bad.any() or numbers.isna().any():
        example = values[bad | numbers.isna()].iloc[0]
        raise DataError(f"{dataset}: column {column!r} in {path.name} holds a non-integer value {example!r}")
    return numbers.to_numpy().astype(np.int64)


def _read_recbole_100k(
    source: Path, inter: Path
) -> tuple[list[Path], pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    name = "ml-100k"
    files = [inter]
    raw = _read_atomic(inter, name)
    require_columns(raw.columns, ["user_id", "item_id", "rating", "timestamp"], inter, name)
    interactions = pd.DataFrame(
        {
            "user": _int_column(raw["user_id"], name, "user_id", inter),
            "item": _int_column(raw["item_id"], name, "item_id", inter),
            "timestamp": _int_column(raw["timestamp"], name, "timestamp", inter),
            "rating": pd.to_numeric(raw["rating"], errors="coerce").astype("float64"),
        }
    )

    item_path = find_file(source, [inter.with_suffix(".item").name, "*.item"], name, "item")
    files.append(item_path)
    raw_items = _read_atomic(item_path, name)
    require_columns(raw_items.columns, ["item_id", "movie_title", "release_year", "class"], item_path, name)
    title = raw_items["movie_title"].astype(object)
    year = pd.to_numeric(raw_items["release_year"], errors="coerce").astype("float64")
    # Quirk: a title like "... III: ... (1995)" was mis-split by RecBole (release_year "V"):
    # take the year from the title when the column has none.
    split_title, split_year = split_title_year(raw_items["movie_title"].fillna(""))
    fix = year.isna() & split_year.notna()
    title = title.where(~fix, split_title)
    year = year.where(~fix, split_year)
    items = pd.DataFrame(
        {
            "item": _int_column(raw_items["item_id"], name, "item_id", item_path),
            "title": _clean_titles(title),
            "year": year,
            "genres": split_multi_label(raw_items["class"], " "),
        }
    )

    users = None
    user_path = find_optional(source, [inter.with_suffix(".user").name, "*.user"], name, "user")
    if user_path is not None:
        files.append(user_path)
        raw_users = _read_atomic(user_path, name)
        require_columns(raw_users.columns, ["user_id", "age", "gender", "occupation", "zip_code"], user_path, name)
        users = pd.DataFrame(
            {
                "user": _int_column(raw_users["user_id"], name, "user_id", user_path),
                "age": pd.to_numeric(raw_users["age"], errors="coerce").astype("float64"),
                "gender": to_object(raw_users["gender"]),
                "occupation": to_object(raw_users["occupation"]),
                "zip": to_object(raw_users["zip_code"]),
            }
        )
    return files, interactions, items, users


def _read_grouplens_100k(source: Path) -> tuple[list[Path], pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    name = "ml-100k"
    data = source / "u.data"
    files = [data]
    try:
        interactions = pd.read_csv(
            data, sep="\t", header=None, names=["user", "item", "rating", "timestamp"],
            dtype={"user": "int64", "item": "int64", "rating": "float64", "timestamp": "int64"}, engine="c",
        )  # fmt: skip
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{name}: cannot parse {data.name} ({data}): {exc}") from None
    interactions = interactions[["user", "item", "timestamp", "rating"]]

    item_path = find_file(source, ["u.item"], name, "item")
    files.append(item_path)
    genres = list(ML100K_GENRES)
    genre_path = source / "u.genre"
    if genre_path.is_file():
        files.append(genre_path)
        lines = [ln for ln in genre_path.read_text(encoding="latin-1").splitlines() if ln.strip()]
        parsed = sorted((int(ln.rsplit("|", 1)[1]), ln.rsplit("|", 1)[0]) for ln in lines)
        genres = [g for _, g in parsed]
    names = ["item", "title", "release_date", "video_release_date", "imdb_url", *genres]
    try:
        raw = pd.read_csv(
            item_path, sep="|", header=None, names=names, encoding="latin-1", dtype=str,
            quoting=csv.QUOTE_NONE, engine="c", keep_default_na=False, na_values=[""],
        )  # fmt: skip
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{name}: cannot parse {item_path.name} ({item_path}): {exc}") from None
    title, year = split_title_year(raw["title"].fillna(""))
    release_year = pd.to_numeric(raw["release_date"].str[-4:], errors="coerce")
    year = year.where(year.notna(), release_year).astype("float64")
    flags = raw[genres].fillna("0").to_numpy() == "1"
    genre_array = np.array(genres, dtype=object)
    items = pd.DataFrame(
        {
            "item": _int_column(raw["item"], name, "item", item_path),
            "title": _clean_titles(title),
            "year": year,
            "genres": pd.Series([list(genre_array[row]) for row in flags], dtype=object),
        }
    )

    users = None
    user_path = source / "u.user"
    if user_path.is_file():
        files.append(user_path)
        raw_users = pd.read_csv(
            user_path, sep="|", header=None, names=["user", "age", "gender", "occupation", "zip"],
            dtype=str, encoding="latin-1", engine="c",
        )  # fmt: skip
        users = pd.DataFrame(
            {
                "user": _int_column(raw_users["user"], name, "user", user_path),
                "age": pd.to_numeric(raw_users["age"], errors="coerce").astype("float64"),
                "gender": to_object(raw_users["gender"]),
                "occupation": to_object(raw_users["occupation"]),
                "zip": to_object(raw_users["zip"]),
            }
        )
    return files, interactions, items, users


def _clean_titles(titles: pd.Series) -> pd.Series:
    """Object series of stripped titles; the "unknown" placeholder title (item 267) → None."""
    cleaned = [t.strip() if isinstance(t, str) else None for t in to_object(titles).tolist()]
    cleaned = [None if t is not None and t.lower() in _UNKNOWN_TITLES else t for t in cleaned]
    return to_object(pd.Series(cleaned, index=titles.index, dtype=object))


def _details_path(source: Path, details: bool | Path | str, dataset: str) -> Path | None:
    if details is False or details is None:
        return None
    if details is True:
        path = source / DETAILS_FILE
        return path if path.is_file() else None
    path = Path(details)
    if not path.is_file():
        raise DataError(f"{dataset}: details file {path} not found")
    return path


def _read_details(path: Path, dataset: str) -> pd.DataFrame:
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{dataset}: {path.name} is not valid JSON: {exc}") from None
    if not isinstance(records, list):
        raise DataError(f"{dataset}: {path.name} must hold a JSON array of movie records")
    rows = []
    for record in records:
        if not isinstance(record, dict) or record.get("movie_id") is None:
            continue
        description = record.get("description")
        plot = description.strip() if isinstance(description, str) else None
        if not plot or plot.startswith(IMDB_NO_PLOT):
            plot = None
        directors = _names(record.get("director"))
        cast = _names(record.get("cast"))[:N_CAST]
        rows.append(
            {
                "item": int(record["movie_id"]),
                "plot": plot,
                "cast": ", ".join(cast) if cast else None,
                "director": directors[0] if directors else None,
                "imdb_year": pd.to_numeric(record.get("year"), errors="coerce"),
            }
        )
    frame = pd.DataFrame(rows, columns=["item", "plot", "cast", "director", "imdb_year"])
    frame["item"] = frame["item"].astype("int64")
    frame["imdb_year"] = frame["imdb_year"].astype("float64")
    return frame.drop_duplicates("item", keep="first")


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [v.strip() for v in value if isinstance(v, str) and v.strip()]


def _resolve_100k_images(source: Path, images_dir: Path | str | None, dataset: str) -> Path | None:
    if images_dir is not None:
        folder = Path(images_dir)
        if not folder.is_dir():
            raise DataError(f"{dataset}: images_dir {folder} is not a folder")
        return folder
    for candidate in (source / "images", source.parent / "ml-1m" / "images"):
        if candidate.is_dir():
            return candidate
    return None


def _read_ml1m_mapping(path: Path, dataset: str) -> dict[int, int]:
    header = read_header(path, dataset, sep="\t")
    require_columns(header, ["ml100k_item_id", "ml1m_movie_id"], path, dataset)
    frame = pd.read_csv(
        path, sep="\t", usecols=["ml100k_item_id", "ml1m_movie_id"], dtype="int64", quoting=csv.QUOTE_NONE
    )
    return dict(zip(frame["ml100k_item_id"].tolist(), frame["ml1m_movie_id"].tolist(), strict=True))


# --------------------------------------------------------------------------- ML-1M


def _read_double_colon(path: Path, names: list[str], dtypes: dict[str, str], dataset: str) -> pd.DataFrame:
    """Read a ``a::b::c`` file of simple fields with the C engine (``:`` separator, every other field).

    Columns named in ``dtypes`` are parsed as numbers (``int64`` or ``float64``); the
    others stay strings.
    """
    usecols = [2 * i for i in range(len(names))]
    try:
        frame = pd.read_csv(
            path, sep=":", header=None, usecols=usecols, names=list(range(2 * len(names) - 1)),
            dtype={2 * i: (dtypes[n] if dtypes.get(n) == "float64" else None if n in dtypes else str)
                   for i, n in enumerate(names)},
            encoding="latin-1", engine="c", quoting=csv.QUOTE_NONE, keep_default_na=False, na_values=[""],
        )  # fmt: skip
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{dataset}: cannot parse {path.name} ({path}): {message}") from None
    frame.columns = names
    for column, dtype in dtypes.items():
        if dtype == "int64" and not pd.api.types.is_integer_dtype(frame[column]):
            frame[column] = _int_column(frame[column].astype(object), dataset, column, path)
        frame[column] = frame[column].astype(dtype)
    return frame


def load_movielens_1m(source: Path) -> RawDataset:
    """Load MovieLens-1M ``::``-separated files.

    Parameters
    ----------
    source : Path
        Folder with a ratings file (``ratings.dat``, ``ratings.dat.gz`` or a single
        ``ratings*.dat[.gz]``, ``UserID::MovieID::Rating::Timestamp``), ``movies.dat``
        (latin-1, ``MovieID::Title (Year)::Genre|Genre``), optional ``users.dat``
        (``UserID::Gender::Age::Occupation::Zip``) and optional ``images/<MovieID>.jpg``.

    Returns
    -------
    RawDataset
        Interactions with int64 ids and ``rating``; items ``title`` (text, year removed),
        ``year`` (numeric), ``genres`` (multi-label), ``image_path`` (when ``images/``
        exists); users ``gender``, ``age`` (the ML-1M age-bucket code), ``occupation``
        (name of the ML-1M occupation code), ``zip``.
    """
    name = "ml-1m"
    source = check_source_dir(Path(source), name)
    ratings_path = find_file(
        source, ["ratings.dat", "ratings.dat.gz", "ratings*.dat", "ratings*.dat.gz"], name, "ratings"
    )
    files = [ratings_path]
    interactions = _read_double_colon(
        ratings_path, ["user", "item", "rating", "timestamp"],
        {"user": "int64", "item": "int64", "rating": "float64", "timestamp": "int64"}, name,
    )[["user", "item", "timestamp", "rating"]]  # fmt: skip

    movies_path = find_file(source, ["movies.dat"], name, "movies")
    files.append(movies_path)
    items = _read_ml1m_movies(movies_path, name)
    item_columns = ItemColumns(text=("title",), numeric=("year",), multi_label=("genres",))
    images = source / "images"
    if images.is_dir():
        items["image_path"] = image_column(items["item"].astype(object), images)
        item_columns = ItemColumns(text=("title",), numeric=("year",), multi_label=("genres",), image="image_path")

    users = None
    users_path = source / "users.dat"
    if users_path.is_file():
        files.append(users_path)
        raw = _read_double_colon(users_path, ["user", "gender", "age", "occupation", "zip"], {}, name)
        occupation = pd.to_numeric(raw["occupation"], errors="coerce")
        users = pd.DataFrame(
            {
                "user": _int_column(raw["user"], name, "UserID", users_path),
                "gender": to_object(raw["gender"]),
                "age": pd.to_numeric(raw["age"], errors="coerce").astype("float64"),
                "occupation": to_object(occupation.map(ML1M_OCCUPATIONS).where(occupation.notna(), None)),
                "zip": to_object(raw["zip"]),
            }
        )
    return RawDataset(
        name=name,
        interactions=interactions,
        items=items,
        item_columns=item_columns,
        users=users,
        user_columns=("gender", "age", "occupation", "zip") if users is not None else (),
        source=source_info(name, source, files, images_dir=str(images.resolve()) if images.is_dir() else None),
    )


def _read_ml1m_movies(path: Path, dataset: str) -> pd.DataFrame:
    ids, titles, genres = [], [], []
    with path.open(encoding="latin-1") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("::")
            if len(parts) != 3 or not parts[0].strip().isdigit():
                raise DataError(
                    f"{dataset}: line {number} of {path.name} is not 'MovieID::Title (Year)::Genres': {line[:80]!r}"
                )
            ids.append(int(parts[0]))
            titles.append(parts[1])
            genres.append(parts[2])
    title, year = split_title_year(pd.Series(titles, dtype=object))
    return pd.DataFrame(
        {
            "item": np.asarray(ids, dtype=np.int64),
            "title": title,
            "year": year,
            "genres": split_multi_label(pd.Series(genres, dtype=object), "|"),
        }
    ).drop_duplicates("item", keep="first").reset_index(drop=True)


# --------------------------------------------------------------------------- ML-20M / ML-25M CSV


def load_movielens_csv(source: Path, *, name: str = "movielens-csv") -> RawDataset:
    """Load a MovieLens CSV release (ML-20M, ML-25M, ml-latest).

    Parameters
    ----------
    source : Path
        Folder with ``ratings.csv`` (``userId,movieId,rating,timestamp``), ``movies.csv``
        (``movieId,title,genres``, genres ``|``-joined), optional ``links.csv``
        (``movieId,imdbId,tmdbId``), optional ``tags.csv`` (``userId,movieId,tag,timestamp``)
        and optional ``images/<movieId>.jpg``.
    name : str, default "movielens-csv"
        Dataset name and ``source["format"]`` (the registry passes ``ml-20m`` / ``ml-25m``).

    Returns
    -------
    RawDataset
        Interactions with int64 ids and ``rating``; items ``title`` (text, year removed),
        ``tags`` (text: the item's distinct tags joined by ", "; only with ``tags.csv``),
        ``year`` (numeric), ``genres`` (multi-label; "(no genres listed)" → []),
        ``image_path`` (when ``images/`` exists) and, with ``links.csv``, undeclared id
        columns ``imdb_id`` / ``tmdb_id`` (strings; one value per movie, so no role).
    """
    source = check_source_dir(Path(source), name)
    ratings_path = find_file(source, ["ratings.csv"], name, "ratings")
    interactions = read_csv_columns(
        ratings_path, ["userId", "movieId", "rating", "timestamp"], name,
        dtype={"userId": "int64", "movieId": "int64", "rating": "float64", "timestamp": "int64"},
    ).rename(columns={"userId": "user", "movieId": "item"})[["user", "item", "timestamp", "rating"]]  # fmt: skip
    files = [ratings_path]

    movies_path = find_file(source, ["movies.csv"], name, "movies")
    files.append(movies_path)
    movies = read_csv_columns(
        movies_path, ["movieId", "title", "genres"], name, dtype={"movieId": "int64", "title": str, "genres": str}
    )
    title, year = split_title_year(movies["title"].fillna(""))
    genres = movies["genres"].where(movies["genres"] != "(no genres listed)", None)
    items = pd.DataFrame(
        {
            "item": movies["movieId"].astype("int64"),
            "title": to_object(title),
            "year": year,
            "genres": split_multi_label(genres, "|"),
        }
    )
    text = ["title"]

    tags_path = source / "tags.csv"
    if tags_path.is_file():
        files.append(tags_path)
        tags = read_csv_columns(tags_path, ["movieId", "tag"], name, dtype={"movieId": "int64", "tag": str})
        tags = tags[tags["tag"].notna()]
        tags = tags.assign(tag=tags["tag"].str.strip())
        tags = tags[tags["tag"] != ""]
        tags = tags.assign(key=tags["tag"].str.lower()).drop_duplicates(["movieId", "key"])
        joined = tags.groupby("movieId", sort=False)["tag"].agg(", ".join)
        items["tags"] = to_object(items["item"].map(joined))
        text.append("tags")

    links_path = source / "links.csv"
    if links_path.is_file():
        files.append(links_path)
        links = read_csv_columns(
            links_path, ["movieId", "imdbId", "tmdbId"], name, dtype={"movieId": "int64", "imdbId": str, "tmdbId": str}
        ).drop_duplicates("movieId")
        links = links.set_index("movieId")
        items["imdb_id"] = to_object(items["item"].map(links["imdbId"]))
        items["tmdb_id"] = to_object(items["item"].map(links["tmdbId"]))

    images = source / "images"
    image = None
    if images.is_dir():
        items["image_path"] = image_column(items["item"].astype(object), images)
        image = "image_path"
    items = items.drop_duplicates("item", keep="first").reset_index(drop=True)
    return RawDataset(
        name=name,
        interactions=interactions,
        items=items,
        item_columns=ItemColumns(text=tuple(text), numeric=("year",), multi_label=("genres",), image=image),
        source=source_info(name, source, files, images_dir=str(images.resolve()) if images.is_dir() else None),
    )
