"""The one place auxrec opens an item image: `read_rgb`.

Every reader of item images — the basic 8×8 encoder (`auxrec.features.basic`), the
pretrained encoders of ``auxrec embed`` (`auxrec.features.image`) and the report figures —
goes through `read_rgb`. It never raises for a bad image: it returns None, and the item
is then without an image (zero vector, ``present`` False), exactly like an item whose
image file does not exist. Reasons an image is not used:

- ``missing``: no path, or no file at the path;
- ``unreadable``: not an image, truncated, corrupt (whatever PIL cannot decode);
- ``too large``: the header claims more than `MAX_IMAGE_PIXELS` pixels. This is checked
  from the header before any pixel is decoded, so a decompression bomb (a PNG of a few
  hundred bytes claiming 100000×100000 pixels, 30 GB as RGB) costs nothing.

An `ImageTally` passed to `read_rgb` counts the reasons (one example path each) so a
caller can log one summary line for a whole dataset: images refused as too large are a
warning (somebody should look at such a file), missing or unreadable ones are logged at
info level, as before (datasets routinely lack some images).

Whether a path may be read at all (inside the dataset's image folder) is decided when the
dataset is loaded (`auxrec.data.loaders.generic`), not here.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image

logger = logging.getLogger(__name__)

# PIL's own default (`PIL.Image.MAX_IMAGE_PIXELS`): about 0.25 GiB once decoded to RGB.
# Fixed here so that a process which lowered or disabled PIL's global still gets it.
MAX_IMAGE_PIXELS = 89_478_485
REASONS = ("missing", "unreadable", "too large")


class ImageTally:
    """How many images were not usable, by reason, with the first example of each (thread-safe)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, reason: str, path: object, detail: object = "") -> None:
        with self._lock:
            self.counts[reason] += 1
            self.examples.setdefault(reason, f"{path}" + (f" ({detail})" if detail else ""))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """e.g. ``1 too large (e.g. /d/images/5.png: 100000×100000 pixels), 3 missing (e.g. ...)``."""
        return ", ".join(f"{self.counts[r]:,} {r} (e.g. {self.examples[r]})"
                         for r in REASONS if self.counts[r])

    def log(self, where: logging.Logger, what: str) -> None:
        """One line for all unusable images of ``what`` (say, "image (basic)"): a warning when any
        was refused as too large, else info."""
        if not self.total:
            return
        level = logging.WARNING if self.counts["too large"] else logging.INFO
        where.log(level, "%s: %s item image(s) not used, those items count as without an image: %s",
                  what, f"{self.total:,}", self.summary())


def _is_missing(path: object) -> bool:
    if path is None:
        return True
    if isinstance(path, float) and path != path:  # NaN
        return True
    return not str(path).strip()


def read_rgb(path: object, *, draft: tuple[int, int] | None = None,
             tally: ImageTally | None = None) -> Any | None:
    """The image at ``path`` as a decoded RGB PIL image, or None when there is no usable image.

    ``draft``: for JPEGs, let the decoder reduce the scale (1/2..1/8) while the result stays
    at least this size (cheap decoding of big photos; changes the pixels slightly, so the
    basic encoder does not use it). PIL reads the real format from the bytes, whatever the
    extension. Never raises for a bad file; ``tally`` counts why an image was not used.
    """

    if _is_missing(path):
        return None
    name = str(path)
    if not Path(name).is_file():
        if tally is not None:
            tally.add("missing", name)
        logger.debug("image %s missing", name)
        return None
    try:
        with Image.open(name) as image:
            width, height = image.size  # from the header: nothing decoded yet
            if width * height > MAX_IMAGE_PIXELS:
                if tally is not None:
                    tally.add("too large", name, f"{width}×{height} pixels, more than {MAX_IMAGE_PIXELS:,}")
                logger.debug("image %s refused: %d×%d pixels", name, width, height)
                return None
            if draft is not None and image.format == "JPEG":
                image.draft("RGB", draft)
            image.load()  # decodes now, so a truncated file fails here and not later
            return image.convert("RGB")
    except Image.DecompressionBombError as error:  # PIL's own check, in Image.open, came first
        if tally is not None:
            tally.add("too large", name, error)
        logger.debug("image %s refused: %s", name, error)
        return None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as error:
        # PIL raises UnidentifiedImageError (an OSError) for non-images, OSError for
        # truncated data, SyntaxError/ValueError/EOFError from some format plugins.
        if tally is not None:
            tally.add("unreadable", name, f"{type(error).__name__}: {error}")
        logger.debug("image %s unusable: %s", name, error)
        return None
