"""The model registry: name → (model class, config class).

A new model is one file plus one line here; the contract tests pick it up.
"""

from __future__ import annotations

from typing import Any

from auxrec.exceptions import ConfigError
from auxrec.models.bert4rec import BERT4Rec, BERT4RecConfig
from auxrec.models.bpr import BPR, BPRConfig
from auxrec.models.kebert4rec import KeBERT4Rec, KeBERT4RecConfig
from auxrec.models.poprec import PopRec, PopRecConfig
from auxrec.models.sasrec import SASRec, SASRecConfig
from auxrec.models.transrec import TransRec, TransRecConfig

REGISTRY: dict[str, tuple[type[Any], type[Any]]] = {
    "poprec": (PopRec, PopRecConfig),
    "bpr": (BPR, BPRConfig),
    "transrec": (TransRec, TransRecConfig),
    "sasrec": (SASRec, SASRecConfig),
    "bert4rec": (BERT4Rec, BERT4RecConfig),
    "kebert4rec": (KeBERT4Rec, KeBERT4RecConfig),
}


def lookup(name: str) -> tuple[type[Any], type[Any]]:
    """The (model class, config class) registered as ``name``."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(sorted(REGISTRY))}") from None
