"""Bad feature inputs through the real CLI (issue 16): one clear line and exit code 2, or a
counted "no image" — never a traceback, never a silently wrong run, never a changed input.

Cases run the CLI out of process (a traceback must not reach stderr), on a tiny synthetic
dataset with images generated and prepared once for the module; a case that changes the
data works on its own copy. The ``auxrec train`` cases run together in one subprocess
(`auxrec_batch`: each keeps its own stderr and exit code; torch is imported once, which
is most of a failing ``train``'s time); the ``auxrec prepare`` cases run one process each.

(a) ``--features`` files: NaN, inf, |x| > 1e6, no coverage, duplicate ids, NUL in an id.
(b) a decompression-bomb image: the item is without an image, counted in one warning.
(c) image paths leading outside the image folder: refused (missing, counted; all → error).
(d) CJK, Arabic, emoji text: non-zero basic text vectors; ASCII tokens unchanged.
(e) truncated / corrupt Parquet in a prepared folder: one line naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from auxrec.data.dataset import PreparedDataset
from auxrec.exceptions import DataError

USER_ERROR = 2
# A small, fast training: only the inputs are under test.
TRAIN = ["--epochs", "1", "--no-progress", "--protocol", "full", "--max-len", "20", "--hidden-dim", "16",
         "--n-blocks", "1", "--n-heads", "1"]
ENV = {**os.environ, "COLUMNS": "200"}


def auxrec(*args: object) -> subprocess.CompletedProcess[str]:
    """``python -m auxrec ARGS`` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "auxrec", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=ENV)


# Runs command lines through `auxrec.cli.main` one after the other in ONE subprocess, each
# with its own stdout, stderr and exit code as ``python -m auxrec ...`` gives them: an
# uncaught exception prints its traceback to that stderr and exits 1.
_BATCH = """
import io, json, sys, traceback

class Route(io.TextIOBase):  # writes go to the current case's buffer (logging keeps its stream)
    target = None
    def writable(self): return True
    def write(self, text): return self.target.write(text)
    def isatty(self): return False

out, err = Route(), Route()
sys.stdout, sys.stderr = out, err
from auxrec.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out.target, err.target = io.StringIO(), io.StringIO()
    sys.argv = ["auxrec", *argv]
    try:
        main()
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
        if not isinstance(exit.code, int | None):
            print(exit.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    results.append({"args": argv, "returncode": code, "stdout": out.target.getvalue(),
                    "stderr": err.target.getvalue()})
with open(RESULTS, "w") as handle:
    json.dump(results, handle)
"""


def auxrec_batch(command_lines: list[list[object]], results: Path) -> list[subprocess.CompletedProcess[str]]:
    """Each command line's result, as if it had run alone as ``python -m auxrec ...``."""
    script = _BATCH.replace("RESULTS", repr(str(results)))
    argvs = [[str(a) for a in line] for line in command_lines]
    done = subprocess.run([sys.executable, "-c", script, json.dumps(argvs)], capture_output=True, text=True,
                          timeout=600, env=ENV)
    assert done.returncode == 0, done.stderr
    finished = [subprocess.CompletedProcess(r["args"], r["returncode"], r["stdout"], r["stderr"])
                for r in json.loads(results.read_text())]
    if os.environ.get("AUXREC_STDERR_LOG"):  # see conftest.py: the suite's stderr, for `grep -c Traceback`
        with Path(os.environ["AUXREC_STDERR_LOG"]).open("a", encoding="utf-8") as log:
            log.writelines(f"$ {result.args}\n{result.stderr}\n" for result in finished)
    return finished


def snapshot(*paths: Path) -> dict[str, str]:
    """sha256 of every file under ``paths`` (a symlink by its target, never followed)."""
    digests = {}
    for root in paths:
        for path in sorted([root] if root.is_file() else root.rglob("*")):
            if path.is_symlink():
                digests[str(path)] = "link:" + os.readlink(path)
            elif path.is_file():
                digests[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == USER_ERROR, (result.returncode, result.stderr)
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def assert_no_run(runs: Path) -> None:
    """Nothing at all in the runs folder: no finished run and no partial one."""
    assert not runs.exists() or not any(runs.iterdir()), list(runs.iterdir())


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny synthetic preset with images: ``source`` (generated) and ``prepared``."""
    root = tmp_path_factory.mktemp("feature-inputs")
    source, prepared = root / "source", root / "prepared"
    done = auxrec("generate", "--preset", "tiny", "--images", "--out", source)
    assert done.returncode == 0, done.stderr
    done = auxrec("prepare", "synthetic", "--source", source, "--out", prepared)
    assert done.returncode == 0, done.stderr
    kept = set(pd.read_parquet(prepared / "items.parquet")["original_id"].astype(str))
    assert {str(k) for k in range(1, 13)} <= kept, "the cases below edit source items 1-12: all must be kept"
    config = root / "config.json"  # 71 items: too few for 100 sampled negatives, so validate on full ranking
    config.write_text(json.dumps({"training": {"validation_protocol": "full"}}))
    return {"source": source, "prepared": prepared, "config": config}


def copy_source(data: dict[str, Path], into: Path) -> Path:
    return Path(shutil.copytree(data["source"], into / "source", symlinks=True))


# --------------------------------------------------------------------------- inputs of the train cases


def feature_file(kind: str, ids: list[str], folder: Path) -> tuple[Path, list[Path], tuple[str, ...]]:
    """(a) A feature file with one ``kind`` of defect: (file, its files, expected message fragments)."""
    vectors = np.random.default_rng(0).normal(size=(len(ids), 4)).astype(np.float32)
    ids = list(ids)
    expected: tuple[str, ...]
    if kind == "nan":
        vectors[5, 2] = np.nan
        expected = ("vectors[5, 2]", repr(ids[5]), "not a number")
    elif kind == "inf":
        vectors[7, 0] = -np.inf
        expected = ("vectors[7, 0]", repr(ids[7]), "infinite")
    elif kind == "huge":
        vectors[3, 1] = 1e38  # finite in float32, overflows once squared
        expected = ("vectors[3, 1]", repr(ids[3]), "1e+38", "1e+06")
    elif kind == "no-coverage":
        ids = [f"x{i}" for i in ids]
        expected = ("match none of the dataset's", "'x1'")
    elif kind == "duplicate":
        ids[10] = ids[4]
        expected = (f"id {ids[4]!r} appears more than once", "ids[4] and ids[10]")
    elif kind == "nul-id":
        ids[2] = "ab\x00c"
        expected = ("ids[2]", "NUL byte")
    elif kind == "nul-id-sidecar":  # the .npy + .ids form
        ids[6] = "item\x00six"
        path = folder / f"{kind}.npy"
        np.save(path, vectors)
        Path(f"{path}.ids").write_text("\n".join(ids) + "\n")
        return path, [path, Path(f"{path}.ids")], (str(path), "ids[6]", "NUL byte")
    else:
        raise AssertionError(kind)
    path = folder / f"{kind}.npz"
    np.savez(path, ids=np.array(ids), vectors=vectors)
    return path, [path], (str(path), *expected)


FEATURE_DEFECTS = ["nan", "inf", "huge", "no-coverage", "duplicate", "nul-id", "nul-id-sidecar"]


def decompression_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> None:
    """(b) A valid 1×1 PNG whose header then claims ``width``×``height`` pixels (CRC fixed)."""
    from PIL import Image

    Image.new("RGB", (1, 1), (200, 30, 30)).save(path, format="PNG")
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


ODD_TEXTS = {  # (d) source row (item id row + 1) → its only text (title, description)
    0: ("红色羊毛手提包", "柔软舒适"),
    1: ("حقيبة صوف حمراء", "ناعمة ومريحة"),
    2: ("👜❤️", "✨👍🏽"),
}
BOMB_ROW = 5


def edited_dataset(data: dict[str, Path], root: Path, kind: str) -> dict[str, Any]:
    """A copy of the source, edited, prepared with the CLI. ``bomb`` (b): one item's image is a
    decompression bomb; ``texts`` (d): three items have only CJK, Arabic or emoji text."""
    source = copy_source(data, root)
    table = pd.read_parquet(source / "items.parquet")
    extra: dict[str, Any] = {}
    if kind == "bomb":
        extra["bomb"] = source / "images" / str(table["image"].iloc[BOMB_ROW])
        decompression_bomb(extra["bomb"])
    else:
        for row, (title, description) in ODD_TEXTS.items():
            table.loc[row, "title"], table.loc[row, "description"] = title, description
        table.to_parquet(source / "items.parquet")
        extra["odd_items"] = [str(i) for i in table["item_id"].iloc[list(ODD_TEXTS)]]
    prepared = root / "prepared"
    done = auxrec("prepare", "synthetic", "--source", source, "--out", prepared)
    assert done.returncode == 0, done.stderr
    return {"source": source, "prepared": prepared, **extra}


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _corrupt_pages(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[100:400] = bytes(300)
    path.write_bytes(bytes(data))


DAMAGE = {  # (e) case → (file, damage, extra train arguments)
    "items-truncated": ("items.parquet", _truncate, ["--aux", "text"]),
    "interactions-corrupt": ("interactions.parquet", _corrupt_pages, []),
}


@pytest.fixture(scope="module")
def train_runs(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every ``auxrec train`` case, its inputs made in its own folder, run in one batch:
    case → result, inputs' hashes before and after, runs folder, and the case's extras."""
    ids = pd.read_parquet(data["prepared"] / "items.parquet")["original_id"].astype(str).tolist()
    cases: dict[str, dict[str, Any]] = {}
    for kind in FEATURE_DEFECTS:
        folder = tmp_path_factory.mktemp(kind)
        path, files, expected = feature_file(kind, ids, folder)
        cases[kind] = {"inputs": [*files, data["prepared"]], "runs": folder / "runs", "expected": expected,
                       "args": ["--data", data["prepared"], "--aux", "text", "--features", f"text={path}"]}
    for kind, (name, damage, extra) in DAMAGE.items():
        folder = tmp_path_factory.mktemp(kind)
        prepared = Path(shutil.copytree(data["prepared"], folder / "prepared"))
        damage(prepared / name)
        cases[kind] = {"inputs": [prepared], "runs": folder / "runs", "file": prepared / name,
                       "args": ["--data", prepared, *extra]}
    for kind, modality in (("bomb", "image"), ("texts", "text")):
        folder = tmp_path_factory.mktemp(kind)
        edited = edited_dataset(data, folder, kind)
        cases[kind] = {**edited, "inputs": [edited["source"], edited["prepared"]], "runs": folder / "runs",
                       "args": ["--data", edited["prepared"], "--aux", modality]}
    for case in cases.values():
        case["before"] = snapshot(*case["inputs"])
    lines = [["train", "sasrec", *case["args"], "--out", case["runs"] / "run", "--config", data["config"],
              *TRAIN] for case in cases.values()]
    results = auxrec_batch(lines, tmp_path_factory.mktemp("batch") / "results.json")
    for case, result in zip(cases.values(), results):
        case["result"] = result
        case["after"] = snapshot(*case["inputs"])
    return cases


# --------------------------------------------------------------------------- (a) --features files


@pytest.mark.parametrize("kind", FEATURE_DEFECTS)
def test_bad_feature_file_is_one_line_error(train_runs: dict[str, dict[str, Any]], kind: str) -> None:
    case = train_runs[kind]
    assert_one_line_error(case["result"], "feature file", *case["expected"])
    assert case["after"] == case["before"]
    assert_no_run(case["runs"])


def test_feature_file_checks_in_process(data: dict[str, Path], tmp_path: Path) -> None:
    """The bound is inclusive, ids outside the dataset are ignored, ints load, complex is refused."""
    from auxrec.features.item_features import MAX_FEATURE_MAGNITUDE, load_feature_file

    items = pd.read_parquet(data["prepared"] / "items.parquet")
    ids = items["original_id"].astype(str).tolist()
    good = tmp_path / "good.npz"
    np.savez(good, ids=np.array(ids[:-1] + ["not-in-the-dataset"]),
             vectors=np.full((len(ids), 3), -MAX_FEATURE_MAGNITUDE))
    matrix, present = load_feature_file(good, items)
    assert present.sum() == len(ids) - 1 and matrix[present].min() == -MAX_FEATURE_MAGNITUDE
    as_ints = tmp_path / "ints.npz"
    np.savez(as_ints, ids=np.array([int(i) for i in ids]), vectors=np.ones((len(ids), 2), np.int64))
    assert load_feature_file(as_ints, items)[1].sum() == len(ids)
    complex_values = tmp_path / "complex.npz"
    np.savez(complex_values, ids=np.array(ids), vectors=np.ones((len(ids), 2), np.complex64))
    with pytest.raises(DataError, match="real numbers"):
        load_feature_file(complex_values, items)


# --------------------------------------------------------------------------- (b) decompression bomb


def test_decompression_bomb_image_counts_as_missing(train_runs: dict[str, dict[str, Any]]) -> None:
    case = train_runs["bomb"]
    result = case["result"]
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in stderr_lines(result) if "too large" in line]
    assert len(warnings) == 1 and str(case["bomb"]) in warnings[0], result.stderr
    assert "1 item image(s) not used" in warnings[0]
    config = json.loads((case["runs"] / "run" / "config.json").read_text())
    image = config["item_features"]["image"]
    assert (image["items_present"], image["items"]) == (70, 71)  # every image but the bomb
    assert case["after"] == case["before"]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL's own, before our refusal
def test_one_guarded_loader_refuses_bombs_for_every_encoder(tmp_path: Path) -> None:
    """basic.py and image.py (``auxrec embed``, figures) read images through the same loader."""
    from auxrec.features import basic, image, images

    bomb = tmp_path / "bomb.jpg"  # the name lies: PIL sniffs the PNG
    decompression_bomb(bomb, 12_000, 12_000)  # 144 Mpx: over our bound, under PIL's own error threshold
    tally = images.ImageTally()
    assert images.read_rgb(bomb, tally=tally) is None and tally.counts["too large"] == 1
    assert image.read_rgb(bomb) is None
    assert basic.read_rgb is images.read_rgb and image.guarded_read_rgb is images.read_rgb


# --------------------------------------------------------------------------- (d) text in any script


def test_cjk_arabic_and_emoji_text_get_vectors(train_runs: dict[str, dict[str, Any]]) -> None:
    from auxrec.features.basic import text_features

    case = train_runs["texts"]
    assert case["result"].returncode == 0, case["result"].stderr
    assert "Traceback" not in case["result"].stderr
    config = json.loads((case["runs"] / "run" / "config.json").read_text())
    text = config["item_features"]["text"]
    assert (text["items_present"], text["items"]) == (71, 71)
    dataset = PreparedDataset.load(case["prepared"])
    matrix, present = text_features(dataset)
    odd = dataset.items.set_index("original_id")["item"].loc[case["odd_items"]].to_numpy()
    assert present[odd].all() and (np.abs(matrix[odd]).sum(1) > 0).all()
    assert len({matrix[i].tobytes() for i in odd}) == len(odd)  # three different vectors
    assert case["after"] == case["before"]


def test_ascii_tokens_are_unchanged() -> None:
    from auxrec.features.basic import tokenize

    rng = np.random.default_rng(0)
    samples = ["Amber wool satchel", "Hello, World_foo 42x! --- a_b_c", "", "  \t\n", "C++ & C#: 3.14",
               "MiXeD-CaSe/with\\slashes|pipes", "".join(map(chr, range(128)))]
    samples += ["".join(map(chr, rng.integers(0, 128, rng.integers(0, 40)))) for _ in range(3000)]
    for sample in samples:
        assert tokenize(sample) == re.findall(r"[a-z0-9]+", sample.lower()), repr(sample)


def test_tokenizer_on_other_scripts() -> None:
    from auxrec.features.basic import tokenize

    assert tokenize("红色手提包") == ["红", "色", "手", "提", "包"]  # no spaces: one token per character
    assert tokenize("حقيبة صوف") == ["حقيبة", "صوف"]
    assert tokenize("Привет, мир") == ["привет", "мир"]
    assert tokenize("Café naïve") == ["café", "naïve"]  # was "caf", "na", "ve"
    assert tokenize("हिन्दी") == ["हिन्दी"]  # combining vowel signs stay in the word
    assert tokenize("👜❤️ tote") == ["👜", "❤", "tote"]  # the variation selector is no token
    assert tokenize("東京タワー tokyo") == ["東", "京", "タ", "ワ", "ー", "tokyo"]


# --------------------------------------------------------------------------- (c) paths outside the folder


def escaping_source(data: dict[str, Path], root: Path,
                    all_rows: bool = False) -> tuple[Path, Path, list[str]]:
    source = copy_source(data, root)
    outside = root / "outside.png"  # a real image: read, it would give its item a vector
    shutil.copy(source / "images" / "1.png", outside)
    (source / "images" / "link.png").symlink_to(outside)
    values = ["../../../etc/passwd", "/etc/shadow", "link.png", "../../outside.png", str(outside)]
    table = pd.read_parquet(source / "items.parquet")
    if all_rows:
        table["image"] = [values[k % len(values)] for k in range(len(table))]
    else:
        table.loc[1 : len(values), "image"] = values  # items 2..6
    table.to_parquet(source / "items.parquet")
    return source, outside, values


def test_image_paths_outside_the_folder_count_as_missing(data: dict[str, Path], tmp_path: Path) -> None:
    source, outside, values = escaping_source(data, tmp_path)
    before = snapshot(source, outside)
    prepared = tmp_path / "prepared"
    result = auxrec("prepare", "synthetic", "--source", source, "--out", prepared)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert f"{len(values)} of 80 image paths" in lines[0] and "outside the image folder" in lines[0]
    assert repr(values[0]) in lines[0] and "allow_absolute_image_paths=true" in lines[0]
    stored = pd.read_parquet(prepared / "items.parquet").set_index("original_id")["image"]
    refused = [str(k) for k in range(2, 2 + len(values))]
    assert stored.loc[refused].isna().all()
    kept = stored.drop(refused)
    assert kept.notna().all() and all(Path(p).parent == (source / "images").resolve() for p in kept)
    assert snapshot(source, outside) == before


def test_all_image_paths_outside_is_one_line_error(data: dict[str, Path], tmp_path: Path) -> None:
    source, outside, _ = escaping_source(data, tmp_path, all_rows=True)
    before = snapshot(source, outside)
    prepared = tmp_path / "prepared"
    result = auxrec("prepare", "synthetic", "--source", source, "--out", prepared)
    assert_one_line_error(result, "80 of 80 image paths", "outside the image folder", "'../../../etc/passwd'",
                          "allow_absolute_image_paths=true")
    assert not prepared.exists() and not list(tmp_path.glob(".prepared*"))
    assert snapshot(source, outside) == before


def test_image_paths_anywhere_when_allowed(data: dict[str, Path], tmp_path: Path) -> None:
    from auxrec.data.loaders import load_dataset
    from auxrec.exceptions import ConfigError

    source, outside, values = escaping_source(data, tmp_path)
    raw = load_dataset("synthetic", source, allow_absolute_image_paths=True)
    paths = raw.items.set_index("item")["image"]
    assert paths.loc[3] == "/etc/shadow" and paths.loc[6] == str(outside)
    assert paths.loc[5] == str((source / "images").resolve() / values[3])  # stored as before this guard
    with pytest.raises(ConfigError, match="true or false"):
        load_dataset("synthetic", source, allow_absolute_image_paths="yes")


# --------------------------------------------------------------------------- (e) damaged prepared tables


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_prepared_table_is_one_line_error(train_runs: dict[str, dict[str, Any]], kind: str) -> None:
    case = train_runs[kind]
    assert_one_line_error(case["result"], str(case["file"]), "truncated or corrupt",
                          "re-run `auxrec prepare`")
    assert case["after"] == case["before"]
    assert_no_run(case["runs"])


def test_damaged_users_table_and_manifest_in_process(data: dict[str, Path], tmp_path: Path) -> None:
    prepared = Path(shutil.copytree(data["prepared"], tmp_path / "prepared"))
    _truncate(prepared / "users.parquet")
    dataset = PreparedDataset.load(prepared)
    with pytest.raises(DataError, match=r"users\.parquet is truncated or corrupt.*auxrec prepare"):
        dataset.users
    (prepared / "items.parquet").unlink()
    with pytest.raises(DataError, match=r"items\.parquet is missing"):
        dataset.items
    shutil.copy(prepared / "interactions.parquet", prepared / "items.parquet")  # another table
    with pytest.raises(DataError, match="lacks column"):
        dataset.items
    manifest = json.loads((prepared / "manifest.json").read_text())
    del manifest["n_items"]
    (prepared / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="lacks n_items"):
        PreparedDataset.load(prepared)
