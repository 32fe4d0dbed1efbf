"""Basic item encoders that need no pretrained weights: always available, fast, offline.

They turn the prepared item table into `ItemFeatures` modalities:

- ``text``: hashed bag of words over the declared text columns (256 buckets, log term
  frequency, L2-normalised). Hashing uses CRC-32, not Python's salted ``hash``, so the
  vectors are identical across processes. Tokens (`tokenize`): the text is NFKC-normalised
  and lower-cased; a token is a run of Unicode letters/digits (so Arabic, Cyrillic or
  accented Latin words are whole tokens), except that characters of scripts written
  without spaces (CJK ideographs, kana, Thai, Lao, Khmer, Myanmar) and symbols such as
  emoji are one token each. On ASCII text this is exactly the original ``[a-z0-9]+``.
- ``image``: the image shrunk to 8×8 RGB (192 values in [-0.5, 0.5]); a missing,
  unreadable, truncated or decompression-bomb file (`auxrec.features.images.read_rgb`,
  the one guarded loader) leaves the item without an image (present = False), counted in
  one log line.
- ``tabular``: one-hot categorical values (each column's most frequent values), standardised
  numeric columns with a missing-value indicator, multi-hot multi-label tags.
- ``keywords``: multi-hot of the multi-label columns (or, without any, of the categorical
  columns) — KeBERT4Rec's keyword vector (e.g. genres, product type).

The pretrained encoders (data2vec, MiniLM, EfficientNet, XGBoost) are richer; these are
the dependable baseline and what the synthetic quickstart uses.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image

from auxrec.data.dataset import PreparedDataset
from auxrec.data.schema import ItemColumns
from auxrec.exceptions import ConfigError, DataError
from auxrec.features.images import ImageTally, read_rgb
from auxrec.features.item_features import ItemFeatures
from auxrec.features.registry import DERIVED_MODALITIES, MODALITIES

logger = logging.getLogger(__name__)

TEXT_BUCKETS = 256
IMAGE_SIDE = 8
MAX_CATEGORY_VALUES = 64
BASIC_MODALITIES = (*MODALITIES, *DERIVED_MODALITIES)
_ASCII_TOKEN = re.compile(r"[a-z0-9]+")  # the original tokenizer, still used for ASCII text
# Scripts written without spaces between words: each character is a token (code point ranges).
_UNSPACED = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x2E80, 0x2FDF),  # CJK radicals, Kangxi radicals
    (0x3005, 0x3007),  # CJK iteration mark, closing mark, ideographic zero
    (0x3021, 0x3029),  # Hangzhou numerals
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x3FFFF),  # CJK extensions B and later
)
_EMOJI_MODIFIERS = (0x1F3FB, 0x1F3FF)  # skin tones: category Sk, not So


def _unspaced(code: int) -> bool:
    return any(low <= code <= high for low, high in _UNSPACED)


def tokenize(text: str) -> list[str]:
    """The basic text encoder's tokens of ``text``.

    NFKC-normalised, lower-cased; a token is a run of letters and digits with their
    combining marks (Unicode categories L, N, M: Arabic, Cyrillic, Devanagari or accented
    Latin words stay whole), except that a character of a script written without spaces
    (CJK, kana, Thai, Lao, Khmer, Myanmar) or a symbol such as an emoji (category So) is a
    token by itself.
    ASCII text gives exactly ``re.findall("[a-z0-9]+", text.lower())``, the original
    tokenizer, so basic text vectors of ASCII data are unchanged.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    if text.isascii():
        return _ASCII_TOKEN.findall(text)
    tokens: list[str] = []
    word: list[str] = []
    for char in text:
        code = ord(char)
        category = unicodedata.category(char)
        alone = _unspaced(code) or category == "So" or _EMOJI_MODIFIERS[0] <= code <= _EMOJI_MODIFIERS[1]
        if not alone and (category[0] in "LN" or category[0] == "M" and word):  # a mark only continues
            word.append(char)
            continue
        if word:
            tokens.append("".join(word))
            word = []
        if alone:
            tokens.append(char)
    if word:
        tokens.append("".join(word))
    return tokens


def _rows(dataset: PreparedDataset) -> tuple[pd.DataFrame, np.ndarray]:
    items = dataset.items
    return items, items["item"].to_numpy()


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return False


def _as_list(value: object) -> list[str]:
    if _is_missing(value):
        return []
    if isinstance(value, list | tuple | np.ndarray):
        return [str(v) for v in value]
    return [str(value)]


def _text_rows(items: pd.DataFrame, spec: ItemColumns) -> tuple[np.ndarray, np.ndarray]:
    """(len(items), TEXT_BUCKETS) hashed bags of words of the text columns, and which rows have text."""
    columns = [c for c in spec.text if c in items.columns]
    matrix = np.zeros((len(items), TEXT_BUCKETS), np.float32)
    present = np.zeros(len(items), bool)
    for row in range(len(items)):
        words = []
        for column in columns:
            value = items[column].iat[row]
            if not _is_missing(value):
                words += tokenize(str(value))
        if not words:
            continue
        buckets = np.fromiter((zlib.crc32(w.encode()) % TEXT_BUCKETS for w in words), np.int64, len(words))
        counts = np.bincount(buckets, minlength=TEXT_BUCKETS).astype(np.float32)
        vector = np.log1p(counts)
        matrix[row] = vector / np.linalg.norm(vector)
        present[row] = True
    return matrix, present


def _image_rows(items: pd.DataFrame, spec: ItemColumns, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(len(items), 8·8·3) shrunk images of the image column, and which rows have a readable image."""

    column = spec.image
    matrix = np.zeros((len(items), IMAGE_SIDE * IMAGE_SIDE * 3), np.float32)
    present = np.zeros(len(items), bool)
    if column is None or column not in items.columns:
        return matrix, present
    tally = ImageTally()
    for row in range(len(items)):
        path = items[column].iat[row]
        image = read_rgb(path, tally=tally)  # None: missing, unreadable or too large
        if image is None:
            continue
        try:
            small = image.resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.BILINEAR)
        except (OSError, ValueError) as error:  # e.g. a 0-pixel image
            tally.add("unreadable", path, error)
            continue
        matrix[row] = np.asarray(small, np.float32).reshape(-1) / 255.0 - 0.5
        present[row] = True
    tally.log(logger, f"image (basic, {name})")
    return matrix, present


def _into_item_rows(dataset: PreparedDataset, rows: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-row vectors of the item table → (n_items + 1, dim) indexed by internal item id."""
    _, ids = _rows(dataset)
    matrix = np.zeros((dataset.n_items + 1, rows[0].shape[1]), np.float32)
    present = np.zeros(dataset.n_items + 1, bool)
    matrix[ids], present[ids] = rows
    return matrix, present


def text_features(dataset: PreparedDataset) -> tuple[np.ndarray, np.ndarray]:
    return _into_item_rows(dataset, _text_rows(dataset.items, dataset.item_columns))


def image_features(dataset: PreparedDataset) -> tuple[np.ndarray, np.ndarray]:
    return _into_item_rows(dataset, _image_rows(dataset.items, dataset.item_columns, dataset.name))


def _values(items: pd.DataFrame, column: str, multi: bool) -> pd.Series:
    return items[column].map(_as_list) if multi else items[column].map(
        lambda v: [] if _is_missing(v) else [str(v)])


def _vocabulary(items: pd.DataFrame, column: str, multi: bool) -> dict[str, int]:
    """The column's ``MAX_CATEGORY_VALUES`` most frequent values (ties by value) → block column."""
    frequency = pd.Series([v for vs in _values(items, column, multi) for v in vs]).value_counts()
    return {v: k for k, v in enumerate(sorted(frequency.index[:MAX_CATEGORY_VALUES],
                                             key=lambda x: (-frequency[x], x)))}


def _one_hot(items: pd.DataFrame, column: str, multi: bool, vocabulary: dict[str, int]) -> np.ndarray:
    block = np.zeros((len(items), len(vocabulary)), np.float32)
    if column in items.columns:
        for row, vs in enumerate(_values(items, column, multi)):
            for v in vs:
                if v in vocabulary:
                    block[row, vocabulary[v]] = 1.0
    return block


def _one_hot_blocks(items: pd.DataFrame, columns: Iterable[str], multi: bool) -> list[np.ndarray]:
    return [_one_hot(items, column, multi, _vocabulary(items, column, multi))
            for column in columns if column in items.columns]


@dataclass(frozen=True)
class TabularEncoder:
    """The basic tabular encoder fitted on an item table: vocabularies and numeric scaling.

    Fitted on the dataset's items, it encodes items added later (`auxrec add-items`) into
    the same columns the model was trained on.
    """

    categorical: dict[str, dict[str, int]]
    multi_label: dict[str, dict[str, int]]
    numeric: dict[str, tuple[float, float]]  # column → (mean, std)

    @classmethod
    def fit(cls, items: pd.DataFrame, spec: ItemColumns) -> TabularEncoder:
        numeric = {}
        for column in spec.numeric:
            if column in items.columns:
                values = pd.to_numeric(items[column], errors="coerce").to_numpy(np.float64)
                known = ~np.isnan(values)
                numeric[column] = (float(np.nanmean(values)) if known.any() else 0.0,
                                   float(np.nanstd(values)) if known.any() else 1.0)
        return cls({c: _vocabulary(items, c, False) for c in spec.categorical if c in items.columns},
                   {c: _vocabulary(items, c, True) for c in spec.multi_label if c in items.columns}, numeric)

    @property
    def width(self) -> int:
        return (sum(map(len, self.categorical.values())) + sum(map(len, self.multi_label.values()))
                + 2 * len(self.numeric))

    def transform(self, items: pd.DataFrame) -> np.ndarray:
        """(len(items), width) one-hot, multi-hot, then (standardised value, missing) per numeric column."""
        blocks = [_one_hot(items, c, False, v) for c, v in self.categorical.items()]
        blocks += [_one_hot(items, c, True, v) for c, v in self.multi_label.items()]
        for column, (mean, std) in self.numeric.items():
            values = (pd.to_numeric(items[column], errors="coerce").to_numpy(np.float64) if column in items.columns
                      else np.full(len(items), np.nan))
            missing = np.isnan(values)
            standardised = np.where(missing, 0.0, (values - mean) / (std or 1.0))
            blocks.append(np.stack([standardised, missing.astype(np.float64)], axis=1).astype(np.float32))
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(items), 0), np.float32)


def no_tabular_attributes(dataset: PreparedDataset) -> DataError:
    """The error of a tabular encoder asked to embed a dataset whose items have no attributes."""
    return DataError(f"{dataset.name} has no tabular item attributes (categorical, numeric or multi-label columns)")


def tabular_features(dataset: PreparedDataset) -> tuple[np.ndarray, np.ndarray]:
    items, ids = _rows(dataset)
    encoder = TabularEncoder.fit(items, dataset.item_columns)
    width = encoder.width
    matrix = np.zeros((dataset.n_items + 1, max(width, 1)), np.float32)
    present = np.zeros(dataset.n_items + 1, bool)
    if width:
        matrix[ids] = encoder.transform(items)
        has_metadata = items["has_metadata"].to_numpy(bool) if "has_metadata" in items.columns else np.ones(len(ids), bool)
        present[ids] = has_metadata
    return matrix, present


def keyword_features(dataset: PreparedDataset) -> tuple[np.ndarray, np.ndarray]:
    items, ids = _rows(dataset)
    spec = dataset.item_columns
    blocks = _one_hot_blocks(items, spec.multi_label, multi=True) if spec.multi_label else \
        _one_hot_blocks(items, spec.categorical, multi=False)
    width = sum(b.shape[1] for b in blocks)
    if not width:
        raise ConfigError(
            f"{dataset.name} has no multi-label or categorical item columns to use as keywords (KeBERT4Rec)"
        )
    matrix = np.zeros((dataset.n_items + 1, width), np.float32)
    matrix[ids] = np.concatenate(blocks, axis=1)
    return matrix, matrix.any(axis=1)


def basic_features_of_new_items(dataset: PreparedDataset, new_items: pd.DataFrame, modalities: Iterable[str]
                                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(vectors, present) per modality of items that are not in ``dataset``, one row per ``new_items`` row.

    Encoded exactly as the dataset's own items are: text and images row by row, tabular
    attributes with the vocabularies and scaling fitted on the dataset's items. Not an
    `ItemFeatures`: these rows are not indexed by internal id (row 0 is a real item).
    """
    spec = dataset.item_columns
    matrices, present = {}, {}
    for modality in modalities:
        if modality == "text":
            matrices[modality], present[modality] = _text_rows(new_items, spec)
        elif modality == "image":
            matrices[modality], present[modality] = _image_rows(new_items, spec, "new items")
        elif modality == "tabular":
            encoder = TabularEncoder.fit(dataset.items, spec)
            width = encoder.width
            matrices[modality] = encoder.transform(new_items) if width else np.zeros((len(new_items), 1), np.float32)
            present[modality] = np.full(len(new_items), bool(width))
        else:
            raise ConfigError(f"items added after training cannot be encoded for modality {modality!r} "
                              "(only the basic text, image and tabular encoders)")
        matrices[modality][~present[modality]] = 0.0  # absent → zeros, as in ItemFeatures
    return matrices, present


ENCODERS = {
    "text": text_features,
    "image": image_features,
    "tabular": tabular_features,
    "keywords": keyword_features,
}


def basic_item_features(dataset: PreparedDataset, modalities: Iterable[str]) -> ItemFeatures:
    """Compute the requested basic modalities for every item of ``dataset``."""
    matrices, present, descriptions = {}, {}, {}
    for modality in modalities:
        if modality not in ENCODERS:
            raise ConfigError(f"unknown modality {modality!r}; choose from {', '.join(BASIC_MODALITIES)}")
        matrices[modality], present[modality] = ENCODERS[modality](dataset)
        descriptions[modality] = f"basic-{modality}"
    return ItemFeatures(matrices, present, descriptions)
