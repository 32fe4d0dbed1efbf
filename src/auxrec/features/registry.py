"""The modalities and the pretrained item encoders, defined once.

Every layer that names a modality (loaders' item columns, `auxrec embed`, `train --aux`,
reproduction specs, the CLI's help) takes it from `MODALITIES`; every pretrained encoder
`auxrec embed` can run is a line of `ENCODERS`. An encoder is a class with

- ``description``: one line naming the model and its settings (shown and recorded);
- ``cache_key()``: a JSON-able dict of everything that changes its vectors (the model's
  weights digest, parameters, extra inputs); the cache adds the modality, the versions of
  the entry's ``packages``, the data fingerprint and `ENCODER_CODE_VERSION`;
- ``embed(dataset, context)``: ``(matrix (n_items + 1, dim), present (n_items + 1,), extra)``
  for the prepared dataset, row = internal item id, row 0 padding; ``extra`` is a dict of
  JSON-able details stored beside the vectors (``"description"`` there replaces the
  description once the encoder knows more).

Adding an encoder is one file holding such a class and a ``factory(spec, context, dataset)``
that builds it, plus one `EncoderEntry` line below (or `register_encoder` from your own code);
``auxrec embed --text-encoder NAME`` (``--image-encoder``, or a spec's ``text_encoder``)
then finds it. docs/extending.md walks through one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from auxrec.exceptions import ConfigError

if TYPE_CHECKING:
    from auxrec.data.dataset import PreparedDataset

Modality = Literal["text", "image", "tabular"]
MODALITIES: tuple[Modality, ...] = ("text", "image", "tabular")  # item content, each with its own encoders
# Computed from the item attributes by the basic encoders only (KeBERT4Rec's keyword vector).
DERIVED_MODALITIES = ("keywords",)
PATH_ENCODER = "path"  # the entry for a spec that is no registered name: a model folder or a hub name


@dataclass(frozen=True)
class EmbedContext:
    """What `auxrec embed` passes every encoder (each reads what concerns it)."""

    batch_size: int = 32
    progress: bool = True
    log: Callable[[str], None] = print
    text_template: str | None = None
    text_pooling: str = "mean"
    tabular_config: Any = None


class Embedder(Protocol):
    description: str

    def cache_key(self) -> dict[str, Any]: ...

    def embed(self, dataset: PreparedDataset, context: EmbedContext
              ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]: ...


@dataclass(frozen=True)
class EncoderEntry:
    """One pretrained encoder: its modality, name, where its factory lives and what it needs."""

    modality: str
    name: str
    factory: str  # "module:function", imported only when the encoder is chosen
    packages: tuple[str, ...]  # their versions are part of the cache key
    summary: str
    extra: str = ""  # the pip extra that installs the packages, for the error message

    def create(self, spec: str, context: EmbedContext, dataset: PreparedDataset) -> Embedder:
        module_name, _, function = self.factory.partition(":")
        try:
            factory = getattr(import_module(module_name), function)
        except ImportError as error:
            hint = f": pip install 'auxrec[{self.extra}]'" if self.extra else ""
            raise ConfigError(f"the {self.modality} encoder {self.name!r} needs {error.name or error}{hint}") from None
        return factory(spec, context, dataset)  # type: ignore[no-any-return]


ENCODERS: dict[tuple[str, str], EncoderEntry] = {}


def register_encoder(entry: EncoderEntry) -> None:
    """Make ``entry`` available to `auxrec embed` (a later entry of the same name replaces it)."""
    if entry.modality not in MODALITIES:
        raise ConfigError(f"unknown modality {entry.modality!r}; choose from {', '.join(MODALITIES)}")
    ENCODERS[(entry.modality, entry.name)] = entry


def encoder_names(modality: str) -> list[str]:
    """The names ``--MODALITY-encoder`` accepts (a folder or hub name also works where ``path`` is listed)."""
    return [name for (m, name) in ENCODERS if m == modality]


def find_encoder(modality: str, spec: str) -> EncoderEntry:
    """The entry ``spec`` names; for text and images, an unregistered spec is a model folder or hub name."""
    if (modality, spec) in ENCODERS:
        return ENCODERS[(modality, spec)]
    if (modality, PATH_ENCODER) in ENCODERS:
        return ENCODERS[(modality, PATH_ENCODER)]
    raise ConfigError(f"unknown {modality} encoder {spec!r}; choose from {', '.join(encoder_names(modality))}")


def check_modalities(names: list[str], allowed: tuple[str, ...] = MODALITIES) -> list[str]:
    """``names`` without duplicates, each one of ``allowed`` (a `ConfigError` naming the choices otherwise)."""
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        raise ConfigError(f"unknown modality {', '.join(unknown) or '(none given)'}; choose from {', '.join(allowed)}")
    return list(dict.fromkeys(names))


_TEXT = ("torch", "transformers", "tokenizers")
_IMAGE = ("torch", "pillow", "transformers", "efficientnet-lite-pytorch")
_TABULAR = ("xgboost-cpu", "xgboost", "scipy", "numpy")
_ATTRIBUTES = ("numpy", "pandas")
for _entry in (
    EncoderEntry("text", "auto", "auxrec.features.text:text_embedder", _TEXT,
                 "data2vec-text when its weights are local, else all-MiniLM-L6-v2", "text"),
    EncoderEntry("text", "data2vec", "auxrec.features.text:text_embedder", _TEXT,
                 "facebook/data2vec-text-base from the local model cache (the paper's)", "text"),
    EncoderEntry("text", "minilm", "auxrec.features.text:text_embedder", _TEXT,
                 "all-MiniLM-L6-v2, bundled with the text extra (offline)", "text"),
    EncoderEntry("text", PATH_ENCODER, "auxrec.features.text:text_embedder", _TEXT,
                 "any other value: a transformers model folder or a cached hub name", "text"),
    EncoderEntry("image", "auto", "auxrec.features.image:image_embedder", _IMAGE,
                 "data2vec-vision when its weights are local, else EfficientNet-Lite0", "image"),
    EncoderEntry("image", "data2vec", "auxrec.features.image:image_embedder", _IMAGE,
                 "facebook/data2vec-vision-base from the local model cache (the paper's)", "image"),
    EncoderEntry("image", "efficientnet", "auxrec.features.image:image_embedder", _IMAGE,
                 "EfficientNet-Lite0 (ImageNet), bundled with the image extra (offline)", "image"),
    EncoderEntry("image", PATH_ENCODER, "auxrec.features.image:image_embedder", _IMAGE,
                 "any other value: a data2vec-vision model folder or a cached hub name", "image"),
    EncoderEntry("tabular", "auto", "auxrec.features.attributes:attributes_embedder", _ATTRIBUTES,
                 "the item attributes one-hot (measured better than XGBoost leaves; docs/results.md)"),
    EncoderEntry("tabular", "attributes", "auxrec.features.attributes:attributes_embedder", _ATTRIBUTES,
                 "one-hot categories, standardised numbers, multi-hot tags (the basic encoder's)"),
    EncoderEntry("tabular", "xgboost", "auxrec.features.tabular:tabular_embedder", _TABULAR,
                 "XGBoost fitted to the training interactions, item vectors read off the trees (the paper's)",
                 "tabular"),
):
    register_encoder(_entry)
