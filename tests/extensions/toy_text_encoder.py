"""A toy text encoder, written the way docs/extending.md shows: one file, one registry line.

It describes each item's text by three numbers (characters, words, share of vowels):
no model, no download, but a real encoder in every other respect.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from auxrec.features.templates import default_template, render_items


class ToyTextEmbedder:
    description = "toy-text (characters, words, vowel share; 3-d)"

    def __init__(self, template: str) -> None:
        self.template = template

    def cache_key(self) -> dict[str, Any]:
        return {"encoder": {"encoder": "toy-text", "version": 1}, "template": self.template}

    def embed(self, dataset: Any, context: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        texts = render_items(self.template, dataset.items)
        matrix = np.zeros((dataset.n_items + 1, 3), np.float32)
        present = np.zeros(dataset.n_items + 1, bool)
        for item, text in zip(dataset.items["item"].to_numpy(), texts):
            if text:
                vowels = sum(c in "aeiou" for c in text.lower())
                matrix[item] = [len(text) / 100, len(text.split()) / 10, vowels / len(text)]
                present[item] = True
        return matrix, present, {}


def toy_text_embedder(spec: str, context: Any, dataset: Any) -> ToyTextEmbedder:
    template = context.text_template or default_template(dataset.name, dataset.item_columns,
                                                         list(dataset.items.columns))
    return ToyTextEmbedder(template)
