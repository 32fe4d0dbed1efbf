"""Text templates: optional parts, value formatting, unknown fields."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from auxrec.data.schema import ItemColumns
from auxrec.exceptions import ConfigError
from auxrec.features.templates import TEMPLATES, default_template, render, render_items


def test_optional_parts_drop_when_a_field_is_missing() -> None:
    template = TEMPLATES["ml-100k"]
    full = {"title": "Heat", "year": 1995.0, "genres": np.array(["Action", "Crime"], dtype=object),
            "director": "Michael Mann", "plot": "A heist."}
    assert render(template, full) == "Heat (1995). Genres: Action, Crime. Directed by Michael Mann. A heist."
    assert render(template, {"title": "Heat", "year": float("nan"), "genres": [], "director": None}) == "Heat"


def test_leading_missing_field_leaves_no_separator() -> None:
    assert render("{title}[. {plot}]", {"title": None, "plot": "Only a plot."}) == "Only a plot."


def test_blank_items_render_empty_and_unknown_fields_fail() -> None:
    items = pd.DataFrame({"title": ["A", "", None], "genres": [["x"], [], None]})
    assert render_items("{title}[ ({genres})]", items) == ["A (x)", "", ""]
    with pytest.raises(ConfigError, match="unknown item field"):
        render_items("{title} {nope}", items)


def test_generic_template_covers_declared_columns() -> None:
    template = default_template("unknown-data", ItemColumns(text=("title",), categorical=("group",)))
    assert render(template, {"title": "item 1", "group": "g1"}) == "item 1. group: g1."


def test_built_in_template_drops_parts_for_absent_columns() -> None:
    # ML-1M has tags only when a tags file was given; without it the template must still work.
    columns = ["item", "original_id", "title", "year", "genres", "image_path"]
    template = default_template("ml-1m", ItemColumns(text=("title",)), columns)
    assert "tags" not in template
    items = pd.DataFrame({"title": ["Heat"], "year": [1995.0], "genres": [["Action", "Crime"]]})
    assert render_items(template, items) == ["Heat (1995). Genres: Action, Crime"]
