"""Tests of the dataset loaders: tiny files written into tmp_path, plus the shared datasets."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auxrec.data.loaders import LOADERS, load_dataset
from auxrec.data.loaders.amazon import load_amazon, parse_price
from auxrec.data.loaders.generic import load_generic
from auxrec.data.loaders.hm import load_hm
from auxrec.data.loaders.movielens import load_movielens_1m, load_movielens_100k, load_movielens_csv
from auxrec.exceptions import ConfigError, DataError

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
NOT_SHARED = "../shared/data/{} not present (shared datasets are only on the project's machines)"


def shared(folder: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not (SHARED_DATA / folder).exists(), reason=NOT_SHARED.format(folder))


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


def write_gz(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(text)
    return path


# --------------------------------------------------------------------------- registry


def test_registry_names() -> None:
    assert set(LOADERS) == {"ml-100k", "ml-1m", "ml-20m", "ml-25m", "hm", "amazon", "generic", "synthetic"}
    assert LOADERS["synthetic"] is LOADERS["generic"]


def test_unknown_dataset_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown dataset 'nope'; known: ml-100k, ml-1m"):
        load_dataset("nope", tmp_path)


def test_missing_source_folder_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("ml-1m", tmp_path / "absent")


def test_unknown_option_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no option"):
        load_dataset("hm", tmp_path, colour=True)


# --------------------------------------------------------------------------- ML-100K


def _grouplens_100k(folder: Path) -> Path:
    write(folder / "u.data", "1\t10\t4\t881250949\n2\t20\t3\t881250950\n1\t20\t5\t881250949\n")
    flags_toy = ["0"] * 19
    flags_toy[3] = flags_toy[5] = "1"  # Animation, Comedy
    flags_unknown = ["1"] + ["0"] * 18
    write(
        folder / "u.item",
        "10|Café Society (1995)|01-Jan-1995||http://imdb|" + "|".join(flags_toy) + "\n"
        "20|unknown||||" + "|".join(flags_unknown) + "\n",
        encoding="latin-1",
    )
    write(folder / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
    return folder


def test_movielens_100k_grouplens_files(tmp_path: Path) -> None:
    source = _grouplens_100k(tmp_path / "ml-100k")
    raw = load_movielens_100k(source)
    raw.validate()
    inter = raw.interactions
    assert list(inter.columns) == ["user", "item", "timestamp", "rating"]
    assert inter["user"].tolist() == [1, 2, 1] and inter["item"].dtype == np.int64
    assert inter["rating"].dtype == np.float64 and inter["timestamp"].dtype == np.int64
    items = raw.items.set_index("item")
    assert items.loc[10, "title"] == "Café Society" and items.loc[10, "year"] == 1995
    assert items.loc[10, "genres"] == ["Animation", "Comedy"]
    assert items.loc[20, "title"] is None and np.isnan(items.loc[20, "year"])
    assert items.loc[20, "genres"] == ["unknown"]
    assert raw.item_columns.image is None and "plot" not in raw.items.columns
    assert raw.users is not None and raw.users["age"].tolist() == [24.0, 53.0]
    assert raw.user_columns == ("age", "gender", "occupation", "zip")
    assert raw.source["format"] == "ml-100k" and raw.source["files"] == ["u.data", "u.item", "u.user"]


def test_movielens_100k_recbole_details_and_images(tmp_path: Path) -> None:
    source = tmp_path / "ml-100k"
    write(
        source / "ml-100k.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t1\t3\t881250949\n2\t2\t4\t881250950\n",
    )
    write(
        source / "ml-100k.item",
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "1\tToy Story\t1995\tAnimation Children's Comedy\n"
        "2\tLand Before Time III: The Time of the Great Giving (1995)\tV\tAnimation Children's\n",
    )
    details = [
        {"movie_id": 1, "description": "A cowboy doll.", "director": ["John Lasseter", "X"], "cast": list("ABCDEFG")},
        {"movie_id": 2, "description": "It looks like we don't have any Plot Summaries for this title yet.\nBe",
         "director": [], "cast": []},
    ]  # fmt: skip
    write(source / "movielens100k_details.json", json.dumps(details))
    write(source / "derived_ml100k_to_ml1m_movie_id.tsv", "ml100k_item_id\tml100k_title_year\tml1m_movie_id\tml1m_title\n1\tToy Story (1995)\t1\tToy Story (1995)\n")
    (tmp_path / "ml-1m" / "images").mkdir(parents=True)  # the default fallback images folder
    raw = load_movielens_100k(source)
    raw.validate()
    items = raw.items.set_index("item")
    assert items.loc[2, "title"] == "Land Before Time III: The Time of the Great Giving"
    assert items.loc[2, "year"] == 1995.0
    assert items.loc[1, "plot"] == "A cowboy doll." and items.loc[2, "plot"] is None
    assert items.loc[1, "director"] == "John Lasseter" and items.loc[1, "cast"] == "A, B, C, D, E"
    expected = str((tmp_path / "ml-1m" / "images" / "1.jpg").resolve())
    assert items.loc[1, "image_path"] == expected and items.loc[2, "image_path"] is None
    assert raw.item_columns.text == ("title", "plot", "cast")
    assert raw.item_columns.categorical == ("director",) and raw.item_columns.image == "image_path"
    assert raw.users is None
    without = load_movielens_100k(source, details=False, images_dir=None)
    assert "plot" not in without.items.columns
    with pytest.raises(DataError, match="images_dir"):
        load_movielens_100k(source, images_dir=tmp_path / "nowhere")


def test_movielens_100k_missing_ratings(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"ml-100k: ratings file not found in .*u\.data"):
        load_movielens_100k(tmp_path)


@shared("ml-100k")
def test_movielens_100k_shared() -> None:
    raw = load_dataset("ml-100k", SHARED_DATA / "ml-100k")
    inter = raw.interactions
    assert len(inter) == 100_000 and inter["user"].nunique() == 943 and inter["item"].nunique() == 1_682
    items = raw.items
    assert len(items) == 1_682
    assert int(items["plot"].notna().sum()) == 1_540
    assert int(items["genres"].map(len).gt(0).sum()) == 1_682
    assert items.loc[items["item"] == 1412, "year"].item() == 1995.0
    if (SHARED_DATA / "ml-1m" / "images").exists():
        paths = items["image_path"].dropna()
        assert len(paths) == 1_623
        assert sum(Path(p).exists() for p in paths) == 1_620
    assert raw.users is not None and len(raw.users) == 943


# --------------------------------------------------------------------------- ML-1M


ML1M_RATINGS = "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"
ML1M_MOVIES = (
    "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
    "661::Star Wars: Episode IV - A New Hope (1977)::Action|Sci-Fi\n"
    "3575::Défense (1998)::Comedy\n"
)


@pytest.mark.parametrize("gz", [False, True])
def test_movielens_1m(tmp_path: Path, gz: bool) -> None:
    if gz:
        write_gz(tmp_path / "ratings_users1-2.dat.gz", ML1M_RATINGS)
    else:
        write(tmp_path / "ratings.dat", ML1M_RATINGS)
    write(tmp_path / "movies.dat", ML1M_MOVIES, encoding="latin-1")
    write(tmp_path / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072-1234\n")
    (tmp_path / "images").mkdir()
    raw = load_movielens_1m(tmp_path)
    raw.validate()
    inter = raw.interactions
    assert inter["item"].tolist() == [1193, 661, 1193] and inter["timestamp"].tolist()[0] == 978300760
    assert inter["rating"].tolist() == [5.0, 3.0, 4.0]
    items = raw.items.set_index("item")
    assert items.loc[661, "title"] == "Star Wars: Episode IV - A New Hope"
    assert items.loc[661, "genres"] == ["Action", "Sci-Fi"] and items.loc[661, "year"] == 1977
    assert items.loc[3575, "title"] == "Défense"
    assert items.loc[661, "image_path"] == str((tmp_path / "images" / "661.jpg").resolve())
    assert raw.users is not None
    users = raw.users.set_index("user")
    assert users.loc[1, "occupation"] == "K-12 student" and users.loc[2, "zip"] == "70072-1234"
    assert raw.source["files"][0] == ("ratings_users1-2.dat.gz" if gz else "ratings.dat")


def test_movielens_1m_missing_ratings(tmp_path: Path) -> None:
    write(tmp_path / "movies.dat", ML1M_MOVIES)
    with pytest.raises(DataError, match=r"ml-1m: ratings file not found in .*ratings\.dat or ratings\.dat\.gz"):
        load_movielens_1m(tmp_path)


@shared("ml-1m")
def test_movielens_1m_shared() -> None:
    raw = load_dataset("ml-1m", SHARED_DATA / "ml-1m")
    inter = raw.interactions
    assert len(inter) == 487_650 and inter["user"].nunique() == 2_999 and inter["item"].nunique() == 3_615
    assert inter.iloc[0].tolist() == [1, 1193, 978300760, 5.0]
    assert len(raw.items) == 3_883 and raw.items["year"].notna().all()
    assert raw.users is not None and len(raw.users) == 6_040


# --------------------------------------------------------------------------- ML-20M / 25M


def _movielens_csv(folder: Path) -> Path:
    write(folder / "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,4.0,1112484676\n2,2,5.0,974820889\n")
    write(
        folder / "movies.csv",
        "movieId,title,genres\n"
        '2,"American President, The (1995)",Comedy|Drama|Romance\n'
        "29,City of Lost Children (1995),Adventure|Drama\n"
        "99,Untitled,(no genres listed)\n",
    )
    write(folder / "links.csv", "movieId,imdbId,tmdbId\n2,0112346,9087\n29,0112682,\n")
    write(folder / "tags.csv", 'userId,movieId,tag,timestamp\n1,2,politics,1\n2,2,Politics,2\n2,2,"funny, warm",3\n')
    return folder


@pytest.mark.parametrize("name", ["ml-20m", "ml-25m"])
def test_movielens_csv(tmp_path: Path, name: str) -> None:
    source = _movielens_csv(tmp_path)
    raw = load_dataset(name, source)
    inter = raw.interactions
    assert list(inter.columns) == ["user", "item", "timestamp", "rating"]
    assert inter["item"].tolist() == [2, 29, 2] and inter["rating"].tolist() == [3.5, 4.0, 5.0]
    items = raw.items.set_index("item")
    assert items.loc[2, "title"] == "American President, The" and items.loc[2, "year"] == 1995
    assert items.loc[2, "genres"] == ["Comedy", "Drama", "Romance"] and items.loc[99, "genres"] == []
    assert np.isnan(items.loc[99, "year"]) and items.loc[99, "title"] == "Untitled"
    assert items.loc[2, "tags"] == "politics, funny, warm" and items.loc[29, "tags"] is None
    assert items.loc[2, "imdb_id"] == "0112346" and items.loc[29, "tmdb_id"] is None
    assert raw.item_columns.text == ("title", "tags") and raw.item_columns.image is None
    assert raw.source["format"] == name and raw.name == name


def test_movielens_csv_missing_column(tmp_path: Path) -> None:
    source = _movielens_csv(tmp_path)
    write(source / "ratings.csv", "userId,movieId,rating\n1,2,3.5\n")
    with pytest.raises(DataError, match=r"'timestamp' missing from ratings\.csv"):
        load_movielens_csv(source)


# --------------------------------------------------------------------------- H&M


HM_ARTICLE_COLUMNS = (
    "article_id,product_code,prod_name,product_type_no,product_type_name,product_group_name,"
    "graphical_appearance_no,graphical_appearance_name,colour_group_code,colour_group_name,"
    "perceived_colour_value_id,perceived_colour_value_name,perceived_colour_master_id,"
    "perceived_colour_master_name,department_no,department_name,index_code,index_name,index_group_no,"
    "index_group_name,section_no,section_name,garment_group_no,garment_group_name,detail_desc"
)


def _hm(folder: Path) -> Path:
    write(
        folder / "transactions_train_sample.csv",
        "t_dat,customer_id,article_id,price,sales_channel_id\n"
        "2018-09-20,c1,0111565001,0.02,2\n"
        "2018-09-20,c1,0111565001,0.02,2\n"
        "2018-09-21,c2,0999999001,0.04,1\n",
    )
    write(
        folder / "articles_train_sample.csv",
        HM_ARTICLE_COLUMNS + "\n"
        '0111565001,111565,20 den 1p Stockings,304,Underwear Tights,Socks & Tights,1010016,Solid,9,Black,4,Dark,5,'
        'Black,3608,Tights basic,B,Lingeries/Tights,1,Ladieswear,62,"Womens Nightwear, Socks & Tigh",1021,'
        'Socks and Tights,"Semi shiny nylon stockings, 20 denier."\n',
    )
    write(folder / "customers_sample.csv", "customer_id,FN,Active,club_member_status,fashion_news_frequency,age,postal_code\nc1,1.0,,ACTIVE,NONE,21.0,p1\nc2,,,ACTIVE,Regularly,33.0,p2\n")
    (folder / "images" / "011").mkdir(parents=True)
    return folder


def test_hm(tmp_path: Path) -> None:
    raw = load_dataset("hm", _hm(tmp_path))
    inter = raw.interactions
    assert list(inter.columns) == ["user", "item", "timestamp", "price"]  # price per transaction
    assert inter["item"].tolist() == ["0111565001", "0111565001", "0999999001"]  # duplicates kept
    assert inter["price"].tolist() == [0.02, 0.02, 0.04]
    assert inter["timestamp"].tolist() == [1537401600, 1537401600, 1537488000]
    items = raw.items.set_index("item")
    assert items.loc["0111565001", "section_name"] == "Womens Nightwear, Socks & Tigh"
    # The item price is no longer aggregated over all transactions by the loader (that leaked
    # validation/test prices); preparation computes it from training rows only.
    assert "price" not in items.columns and raw.item_columns.numeric == ("price",)
    assert [(a.column, a.source, a.how) for a in raw.item_aggregates] == [("price", "price", "mean")]
    assert items.loc["0111565001", "image_path"] == str((tmp_path / "images" / "011" / "0111565001.jpg").resolve())
    assert raw.item_columns.text == ("prod_name", "detail_desc") and len(raw.item_columns.categorical) == 11
    assert raw.users is not None and raw.users["user"].tolist() == ["c1", "c2"]
    assert "age" in raw.user_columns
    filtered = load_hm(tmp_path, items_with_metadata_only=True)
    assert len(filtered.interactions) == 2 and filtered.source["dropped_interactions"] == 1


def test_hm_restores_leading_zeros(tmp_path: Path) -> None:
    source = _hm(tmp_path)
    write(source / "transactions_train_sample.csv", "t_dat,customer_id,article_id,price,sales_channel_id\n2020-01-01,c1,111565001,0.1,1\n")
    raw = load_hm(source)
    assert raw.interactions["item"].tolist() == ["0111565001"]


def test_hm_missing_articles(tmp_path: Path) -> None:
    source = _hm(tmp_path)
    (source / "articles_train_sample.csv").unlink()
    with pytest.raises(DataError, match="hm: articles file not found"):
        load_hm(source)


@shared("hm-fashion-sample")
def test_hm_shared() -> None:
    raw = load_dataset("hm", SHARED_DATA / "hm-fashion-sample")
    inter = raw.interactions
    assert len(inter) == 31_662 and inter["user"].nunique() == 1_364 and inter["item"].nunique() == 17_033
    assert inter["item"].str.len().eq(10).all() and inter["item"].str.startswith("0").all()
    items = raw.items
    with_meta = items[items["item"].isin(inter["item"])]
    assert len(with_meta) == 4_116
    assert sum(Path(p).exists() for p in with_meta["image_path"]) == 4_116
    assert int(with_meta["detail_desc"].notna().sum()) == 4_109
    filtered = load_hm(SHARED_DATA / "hm-fashion-sample", items_with_metadata_only=True)
    assert len(filtered.interactions) == 9_925 and filtered.interactions["user"].nunique() == 1_037


# --------------------------------------------------------------------------- Amazon


REVIEWS = [
    {"overall": 5.0, "reviewerID": "U1", "asin": "0000031852", "unixReviewTime": 1441324800, "style": {"Size:": " L"}},
    {"overall": 3.0, "reviewerID": "U2", "asin": "B000K2PJ4K", "unixReviewTime": 1441411200, "reviewText": "ok"},
    {"overall": 4.0, "reviewerID": "U1", "asin": "B000K2PJ4K", "unixReviewTime": 1441324800},
]


def test_amazon_json_lines_gz_with_meta(tmp_path: Path) -> None:
    write_gz(tmp_path / "Fashion.json.gz", "\n".join(json.dumps(r) for r in REVIEWS) + "\n")
    meta = [
        {"asin": "0000031852", "title": "Girls <b>Ballet</b> Tutu", "description": ["Soft", "tulle"],
         "brand": "Boutique", "price": "$3.99 - $9.99", "category": ["Clothing", "Girls"], "imageURL": []},
        {"asin": "B000K2PJ4K", "title": "Shoe", "description": "One shoe", "brand": "", "price": "$12.99"},
        {"asin": "ZZZ", "title": "never reviewed"},
    ]  # fmt: skip
    write_gz(tmp_path / "meta_Fashion.json.gz", "\n".join(json.dumps(m) for m in meta) + "\n")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "B000K2PJ4K.png").write_bytes(b"")
    raw = load_amazon(tmp_path)
    raw.validate()
    inter = raw.interactions
    assert inter["item"].tolist() == ["0000031852", "B000K2PJ4K", "B000K2PJ4K"]
    assert inter["user"].tolist() == ["U1", "U2", "U1"] and inter["rating"].tolist() == [5.0, 3.0, 4.0]
    items = raw.items.set_index("item")
    assert sorted(items.index) == ["0000031852", "B000K2PJ4K"]
    assert items.loc["0000031852", "title"] == "Girls Ballet Tutu"
    assert items.loc["0000031852", "description"] == "Soft tulle"
    assert items.loc["0000031852", "price"] == pytest.approx(6.99)
    assert items.loc["0000031852", "category"] == ["Clothing", "Girls"]
    assert items.loc["B000K2PJ4K", "brand"] is None and items.loc["B000K2PJ4K", "category"] == []
    assert items.loc["B000K2PJ4K", "image_path"].endswith("B000K2PJ4K.png")
    assert items.loc["0000031852", "image_path"] is None
    assert raw.item_columns.multi_label == ("category",) and raw.item_columns.numeric == ("price",)
    assert raw.source["files"] == ["Fashion.json.gz", "meta_Fashion.json.gz"]


def test_amazon_json_array_without_meta(tmp_path: Path) -> None:
    write(tmp_path / "AMAZON_FASHION_5.json", "  [" + ",\n".join(json.dumps(r) for r in REVIEWS) + "]")
    raw = load_dataset("amazon", tmp_path)
    assert raw.interactions["timestamp"].tolist() == [1441324800, 1441411200, 1441324800]
    assert list(raw.items.columns) == ["item"] and raw.item_columns.all_columns() == []


def test_amazon_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="amazon: reviews file not found"):
        load_amazon(tmp_path)
    write(tmp_path / "a.json", json.dumps(REVIEWS[0]))
    write(tmp_path / "b.jsonl", json.dumps(REVIEWS[0]))
    with pytest.raises(DataError, match="several reviews files"):
        load_amazon(tmp_path)
    assert len(load_amazon(tmp_path, reviews="b.jsonl").interactions) == 1


def test_parse_price() -> None:
    assert parse_price("$12.99") == 12.99 and parse_price("$1,299.00") == 1299.0
    assert np.isnan(parse_price(".a-section{display:none}")) and np.isnan(parse_price(None))


@shared("amazon-fashion-2018-5core")
def test_amazon_shared() -> None:
    raw = load_dataset("amazon", SHARED_DATA / "amazon-fashion-2018-5core")
    inter = raw.interactions
    assert len(inter) == 3_176 and inter["user"].nunique() == 406 and inter["item"].nunique() == 31
    assert len(raw.items) == 31


# --------------------------------------------------------------------------- generic


def _generic_schema(**overrides: object) -> dict[str, object]:
    schema: dict[str, object] = {
        "name": "my-data",
        "interactions": {"path": "interactions.csv", "user": "user_id", "item": "item_id", "timestamp": "ts",
                         "rating": None, "timestamp_unit": "s", "user_dtype": "int", "item_dtype": "int",
                         "separator": ","},
        "items": {"path": "items.parquet", "item": "item_id", "text": ["title"], "categorical": ["color"],
                  "numeric": ["price"], "multi_label": ["tags"], "multi_label_separator": "|",
                  "image": "image", "image_root": "images"},
        "users": {"path": "users.csv", "user": "user_id", "columns": ["age"]},
    }  # fmt: skip
    schema.update(overrides)
    return schema


def _generic(folder: Path, schema: dict[str, object] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "interactions.csv", "user_id,item_id,ts\n1,10,100\n2,11,90\n1,11,100\n")
    pd.DataFrame(
        {
            "item_id": [10, 11],
            "title": ["red shoe", None],
            "color": ["red", "blue"],
            "price": [1.5, 2.0],
            "tags": [["a", "b"], []],
            "image": ["10.jpg", "/abs/11.png"],
        }
    ).to_parquet(folder / "items.parquet")
    write(folder / "users.csv", "user_id,age,other\n1,30,x\n2,40,y\n")
    write(folder / "auxrec-source.json", json.dumps(schema or _generic_schema()))
    return folder


def test_generic_csv_and_parquet(tmp_path: Path) -> None:
    source = _generic(tmp_path / "g")
    raw = load_dataset("synthetic", source)
    assert raw.name == "my-data"
    inter = raw.interactions
    assert list(inter.columns) == ["user", "item", "timestamp"]
    assert inter["user"].dtype == np.int64 and inter["item"].tolist() == [10, 11, 11]
    assert inter["timestamp"].tolist() == [100, 90, 100]
    items = raw.items.set_index("item")
    assert items.loc[10, "tags"] == ["a", "b"] and items.loc[11, "tags"] == []
    assert items.loc[11, "title"] is None and items.loc[10, "price"] == 1.5
    assert items.loc[10, "image"] == str((source / "images" / "10.jpg").resolve())
    assert items.loc[11, "image"] is None  # outside the image folder: refused unless allowed (issue 16)
    allowed = load_dataset("synthetic", source, allow_absolute_image_paths=True).items.set_index("item")
    assert allowed.loc[11, "image"] == "/abs/11.png"
    assert raw.item_columns.to_dict() == {
        "text": ["title"], "categorical": ["color"], "numeric": ["price"], "multi_label": ["tags"], "image": "image"
    }  # fmt: skip
    assert raw.users is not None and list(raw.users.columns) == ["user", "age"] and raw.user_columns == ("age",)
    assert raw.source["files"] == ["auxrec-source.json", "interactions.csv", "items.parquet", "users.csv"]


def test_generic_tsv_items_datetime_and_string_ids(tmp_path: Path) -> None:
    folder = tmp_path / "g"
    write(folder / "events.tsv", "u\ti\twhen\tstars\n007\tA\t2018-09-20\t4\n008\tB\t2018-09-21 12:00:00\t5\n")
    write(folder / "items.csv", "i,genres\nA,x|y\nB,\n")
    schema = {
        "interactions": {"path": "events.tsv", "user": "u", "item": "i", "timestamp": "when", "rating": "stars",
                         "timestamp_unit": "datetime"},
        "items": {"path": "items.csv", "item": "i", "multi_label": ["genres"]},
    }  # fmt: skip
    write(folder / "auxrec-source.json", json.dumps(schema))
    raw = load_generic(folder)
    inter = raw.interactions
    assert inter["user"].tolist() == ["007", "008"]
    assert inter["timestamp"].tolist() == [1537401600, 1537401600 + 86400 + 12 * 3600]
    assert inter["rating"].tolist() == [4.0, 5.0]
    assert raw.items is not None and raw.items["genres"].tolist() == [["x", "y"], []]
    assert raw.name == "g"


def test_generic_millisecond_parquet_single_file(tmp_path: Path) -> None:
    pd.DataFrame({"user": ["a", "b"], "item": ["x", "y"], "t": [1_500_000_000_999, 1_500_000_001_000]}).to_parquet(
        tmp_path / "events.parquet"
    )
    write(tmp_path / "spec.json", json.dumps({"interactions": {"timestamp": "t", "timestamp_unit": "ms"}}))
    raw = load_generic(tmp_path / "events.parquet", schema=tmp_path / "spec.json")
    assert raw.interactions["timestamp"].tolist() == [1_500_000_000, 1_500_000_001]


def test_generic_defaults_without_schema(tmp_path: Path) -> None:
    write(tmp_path / "interactions.csv", "user,item,timestamp,rating\nu1,i1,5,1.0\nu1,i2,6,2.5\n")
    raw = load_dataset("generic", tmp_path)
    assert raw.interactions["rating"].tolist() == [1.0, 2.5] and raw.items is None
    assert raw.interactions["user"].tolist() == ["u1", "u1"]


def test_generic_int_declared_but_strings(tmp_path: Path) -> None:
    source = _generic(tmp_path / "g")
    write(source / "interactions.csv", "user_id,item_id,ts\nabc,10,100\n")
    message = (
        "generic: column 'user_id' in interactions.csv was declared int but holds non-integer values such as 'abc'"
    )
    with pytest.raises(DataError, match=message):
        load_generic(source)


def test_generic_missing_column(tmp_path: Path) -> None:
    source = _generic(tmp_path / "g")
    write(source / "users.csv", "user_id,years\n1,30\n")
    with pytest.raises(DataError, match=r"column 'age' missing from users\.csv"):
        load_generic(source)


def test_generic_missing_file(tmp_path: Path) -> None:
    source = _generic(tmp_path / "g")
    (source / "items.parquet").unlink()
    with pytest.raises(DataError, match=r"generic: items file .*items\.parquet not found"):
        load_generic(source)


def test_generic_unknown_schema_key(tmp_path: Path) -> None:
    schema = _generic_schema()
    schema["interactions"] = {**schema["interactions"], "timestmp_unit": "s"}  # type: ignore[dict-item]
    source = _generic(tmp_path / "g", schema)
    with pytest.raises(DataError, match=r"field 'interactions\.timestmp_unit': unknown key") as info:
        load_generic(source)
    assert "\n" not in str(info.value)


def test_generic_bad_schema_value(tmp_path: Path) -> None:
    schema = _generic_schema()
    schema["interactions"] = {**schema["interactions"], "timestamp_unit": "hours"}  # type: ignore[dict-item]
    with pytest.raises(DataError, match=r"field 'interactions\.timestamp_unit'"):
        load_generic(_generic(tmp_path / "g", schema))
