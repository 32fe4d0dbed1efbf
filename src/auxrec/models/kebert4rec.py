"""KeBERT4Rec: BERT4Rec with a multi-hot keyword vector per item added to its input.

Fischer, Zhang, Roth, Klakow. "Integrating Keywords into BERT4Rec for Sequential
Recommendation." KI 2020.

The input at position t is ``E_item[v_t] + E_pos[t] + W · kw_{v_t}`` where ``kw_v`` is
the multi-hot vector of the item's categorical keywords (genres for movies, product
types and attributes for fashion; `auxrec.features.basic.keyword_features`). It is
BERT4Rec+ with one specific, sparse "modality", which is how it is built here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from auxrec.exceptions import ConfigError
from auxrec.features.item_features import ItemFeatures
from auxrec.models.bert4rec import BERT4Rec, BERT4RecConfig


@dataclass(frozen=True)
class KeBERT4RecConfig(BERT4RecConfig):
    pass


class KeBERT4Rec(BERT4Rec):
    name: ClassVar[str] = "kebert4rec"
    config_class: ClassVar[type] = KeBERT4RecConfig
    required_features: ClassVar[tuple[str, ...]] = ("keywords",)

    def __init__(
        self, config: KeBERT4RecConfig, *, n_users: int, n_items: int, item_features: ItemFeatures | None = None
    ) -> None:
        if item_features is None or "keywords" not in item_features.names:
            raise ConfigError("KeBERT4Rec needs keyword features (multi-label or categorical item columns)")
        super().__init__(config, n_users=n_users, n_items=n_items, item_features=item_features)
