"""On-disk cache of pretrained item embeddings, inside the prepared dataset's folder.

Layout (``PREPARED/features/``):

- ``<modality>-<key>.npz``: arrays ``matrix`` ``(n_items + 1, dim)`` float32 and
  ``present`` ``(n_items + 1,)`` bool, aligned to internal item ids (row 0 = padding).
- ``<modality>-<key>.json``: the sidecar — encoder description, the exact key payload
  (encoder name, parameters, package versions, data fingerprint), the sha256 of the
  ``.npz`` file, shape, coverage and timing.
- ``<modality>.current.json``: which key ``auxrec embed`` produced last for the modality;
  `auxrec.features.resolve` uses that entry in training runs.

``key`` is the first 16 hex digits of the sha256 of the canonical JSON payload, so any
change of encoder, parameter, package version or data gives a new file. A lookup
re-checks everything it can: the payload stored in the sidecar must equal the expected
one, the array file's sha256 must match, and the arrays must have the dataset's shape.
Anything else — stale, corrupt, truncated, hand-edited — is a miss that is logged and
rebuilt, never silently reused. Writes go to a temporary file then ``os.replace``, so a
crash never leaves a half-written entry under the final name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from auxrec.io import atomic_output, write_bytes_atomic

logger = logging.getLogger(__name__)

CACHE_DIR = "features"
CACHE_FORMAT = 1  # bump when the file layout changes


@dataclass(frozen=True)
class CachedFeatures:
    matrix: np.ndarray  # (n_items + 1, dim) float32
    present: np.ndarray  # (n_items + 1,) bool
    sidecar: dict[str, Any]

    @property
    def description(self) -> str:
        return str(self.sidecar.get("encoder", ""))


def _canonical(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def cache_key(payload: dict[str, Any]) -> str:
    """16 hex digits identifying an embedding: sha256 of the canonical key payload."""
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write_json(path: Path, content: dict[str, Any]) -> None:
    write_bytes_atomic(path, (json.dumps(content, indent=2, sort_keys=True, default=str) + "\n").encode(), sync=True)


class FeatureCache:
    """The embedding cache of one prepared dataset folder."""

    def __init__(self, dataset_path: Path | str) -> None:
        self.root = Path(dataset_path) / CACHE_DIR

    def paths(self, modality: str, key: str) -> tuple[Path, Path]:
        stem = f"{modality}-{key}"
        return self.root / f"{stem}.npz", self.root / f"{stem}.json"

    def lookup(self, modality: str, payload: dict[str, Any], n_rows: int) -> tuple[CachedFeatures | None, str]:
        """The valid entry for ``payload``, or ``(None, why it is a miss)``."""
        return self._read(modality, cache_key(payload), n_rows, expected_payload=payload)

    def _read(
        self, modality: str, key: str, n_rows: int, expected_payload: dict[str, Any] | None = None
    ) -> tuple[CachedFeatures | None, str]:
        arrays_path, sidecar_path = self.paths(modality, key)
        if not sidecar_path.is_file() and not arrays_path.is_file():
            return None, "not cached"
        try:
            sidecar = json.loads(sidecar_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            return None, f"sidecar {sidecar_path.name} unreadable ({error})"
        if not isinstance(sidecar, dict) or sidecar.get("cache_format") != CACHE_FORMAT:
            return None, f"sidecar {sidecar_path.name} has another format"
        if expected_payload is not None and _canonical(sidecar.get("payload", {})) != _canonical(expected_payload):
            return None, "stale (encoder, parameters, versions or data changed)"
        if not arrays_path.is_file():
            return None, f"{arrays_path.name} missing"
        if file_sha256(arrays_path) != sidecar.get("sha256"):
            return None, f"{arrays_path.name} corrupt (sha256 differs from its sidecar)"
        try:
            with np.load(arrays_path, allow_pickle=False) as saved:
                matrix = saved["matrix"].astype(np.float32, copy=False)
                present = saved["present"].astype(bool, copy=False)
        except (OSError, ValueError, KeyError) as error:
            return None, f"{arrays_path.name} unreadable ({error})"
        if matrix.ndim != 2 or matrix.shape[0] != n_rows or present.shape != (n_rows,):
            return None, f"{arrays_path.name} has shape {matrix.shape}, the dataset needs {n_rows} rows"
        if not np.isfinite(matrix).all():
            return None, f"{arrays_path.name} holds non-finite values"
        return CachedFeatures(matrix, present, sidecar), "hit"

    def store(
        self, modality: str, payload: dict[str, Any], matrix: np.ndarray, present: np.ndarray,
        encoder: str, extra: dict[str, Any] | None = None,
    ) -> Path:
        """Write an entry atomically (arrays first, then the sidecar that vouches for them)."""
        key = cache_key(payload)
        arrays_path, sidecar_path = self.paths(modality, key)
        with atomic_output(arrays_path, suffix=".npz") as temporary:
            np.savez(temporary, matrix=np.asarray(matrix, np.float32), present=np.asarray(present, bool))
            digest = file_sha256(temporary)
        sidecar = {
            "cache_format": CACHE_FORMAT, "modality": modality, "key": key, "encoder": encoder,
            "payload": payload, "sha256": digest, "shape": list(np.shape(matrix)),
            "n_present": int(np.asarray(present, bool)[1:].sum()), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **(extra or {}),
        }
        _atomic_write_json(sidecar_path, sidecar)
        return arrays_path

    def select(self, modality: str, payload: dict[str, Any]) -> None:
        """Record ``payload``'s entry as the one training runs use for ``modality``."""
        _atomic_write_json(self.root / f"{modality}.current.json",
                           {"modality": modality, "key": cache_key(payload), "fingerprint": payload.get("fingerprint")})

    def current(self, modality: str, fingerprint: str, n_rows: int) -> tuple[CachedFeatures | None, str]:
        """The entry ``auxrec embed`` selected last for ``modality``, if still valid for this data."""
        pointer = self.root / f"{modality}.current.json"
        if not pointer.is_file():
            return None, "not embedded"
        try:
            key = str(json.loads(pointer.read_text())["key"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
            return None, f"{pointer.name} unreadable ({error})"
        found, why = self._read(modality, key, n_rows)
        if found is not None and found.sidecar.get("payload", {}).get("fingerprint") != fingerprint:
            return None, "stale (embedded for other data; run `auxrec embed` again)"
        if found is not None and cache_key(found.sidecar.get("payload", {})) != key:
            return None, "sidecar does not match its key"
        return found, why
