"""Per-dataset text templates: which item fields, in which words, a text encoder reads.

A template is a string over item-table columns. ``{column}`` is replaced by the item's
value; a part in square brackets is kept only when every field inside it has a value, so
``"{title}[ ({year})][. Genres: {genres}]"`` renders "Heat (1995). Genres: Action, Crime"
or just "Heat" when year and genres are missing. Lists (genres, tags) are joined with
", "; whole floats (years stored as 1995.0) print without the ".0". Use ``[[`` / ``]]`` for
literal brackets.

An item whose template renders to blank text has no text: it gets a zero vector and the
present mask off, never an encoding of the empty string.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from auxrec.data.schema import ItemColumns
from auxrec.exceptions import ConfigError

# Dataset name (the prepared manifest's ``name``) → template. The fields are those the
# loaders in `auxrec.data.loaders` produce; absent columns simply drop their part.
TEMPLATES: dict[str, str] = {
    # ML-100K with the IMDb details file: title, year, genres, director, plot (issue §6).
    "ml-100k": "{title}[ ({year})][. Genres: {genres}][. Directed by {director}][. {plot}]",
    "ml-1m": "{title}[ ({year})][. Genres: {genres}][. Tags: {tags}]",
    "ml-20m": "{title}[ ({year})][. Genres: {genres}][. Tags: {tags}]",
    "ml-25m": "{title}[ ({year})][. Genres: {genres}][. Tags: {tags}]",
    # H&M articles: product name, type, colour, then the free-text description.
    "hm": "{prod_name}[. {product_type_name}][, {colour_group_name}][. {detail_desc}]",
}

_PART = re.compile(r"\[(?!\[)((?:[^\[\]]|\[\[|\]\])*)\](?!\])")
_FIELD = re.compile(r"\{([^{}:!]+)\}")


def default_template(dataset_name: str, columns: ItemColumns, available: Sequence[str] | None = None) -> str:
    """The built-in template of ``dataset_name``, else one built from the declared columns.

    The generic template lists the text columns, then ``column: value`` for categorical,
    multi-label and numeric columns, each part optional. With ``available`` (the item
    table's columns), optional parts of a built-in template that name an absent column
    are dropped: ML-1M's tags, say, come only with a tags file.
    """
    if dataset_name in TEMPLATES:
        template = TEMPLATES[dataset_name]
        if available is not None:
            present = set(available)
            template = _PART.sub(
                lambda match: match.group(0) if set(_FIELD.findall(match.group(1))) <= present else "", template)
        return template
    parts = [f"[{{{c}}}. ]" for c in columns.text]
    parts += [f"[{c}: {{{c}}}. ]" for c in (*columns.categorical, *columns.multi_label, *columns.numeric)]
    return "".join(parts)


def template_fields(template: str) -> list[str]:
    return list(dict.fromkeys(_FIELD.findall(template)))


def check_template(template: str, available: list[str] | pd.Index) -> None:
    """Raise `ConfigError` when the template names a column the item table lacks."""
    unknown = [f for f in template_fields(template) if f not in set(available)]
    if unknown:
        raise ConfigError(
            f"text template {template!r} uses unknown item field(s) {', '.join(unknown)}; "
            f"item columns are: {', '.join(map(str, available))}"
        )


def _value_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple | np.ndarray):
        return ", ".join(t for t in (_value_text(v) for v in value) if t)
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        return str(int(value)) if float(value).is_integer() else str(value)
    if value is pd.NA or value is pd.NaT:
        return ""
    return str(value).strip()


def _fill(text: str, values: Mapping[str, str]) -> tuple[str, bool]:
    """Substitute fields; also say whether every field had a value."""
    complete = True

    def replace(match: re.Match[str]) -> str:
        nonlocal complete
        value = values.get(match.group(1), "")
        complete &= bool(value)
        return value

    return _FIELD.sub(replace, text), complete


def render(template: str, fields: Mapping[str, Any]) -> str:
    """The text of one item: ``template`` filled with ``fields`` (column → raw value)."""
    values = {name: _value_text(fields.get(name)) for name in template_fields(template)}

    def optional(match: re.Match[str]) -> str:
        filled, complete = _fill(match.group(1), values)
        return filled if complete else ""

    text = _PART.sub(optional, template)
    text, _ = _fill(text, values)
    text = re.sub(r"\s+", " ", text.replace("[[", "[").replace("]]", "]"))
    return text.strip().lstrip(".,;: ")  # a missing leading field leaves its separator behind


def render_items(template: str, items: pd.DataFrame) -> list[str]:
    """One text per row of the prepared item table (blank when the item has no text)."""
    check_template(template, items.columns)
    fields = template_fields(template)
    records = items[fields].to_dict("records") if fields else [{} for _ in range(len(items))]
    texts = [render(template, record) for record in records]
    # A template of pure punctuation around missing fields ("(). ") is no text either.
    return [t if re.search(r"\w", t) else "" for t in texts]
