"""Atomic file output: a file is either absent, its previous version, or complete.

Everything auxrec writes goes through `atomic_output`: the content is written to a
temporary file in the destination's folder, made world-readable like an ordinary file
(``mkstemp`` creates 0600), then renamed over the destination. A crash or Ctrl-C leaves
no half-written file behind that a later run could mistake for a finished one.

`exclusive_folder` keeps two long jobs (say, two `auxrec reproduce` on one work folder)
from training the same runs into the same files at once.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from auxrec.exceptions import FolderBusy

FILE_MODE = 0o644


@contextlib.contextmanager
def atomic_output(path: Path | str, suffix: str = ".partial") -> Iterator[Path]:
    """Yield a temporary path to write; it becomes ``path`` when the block succeeds.

    ``suffix`` lets writers that pick a format from the name (``np.savez`` adds ``.npz``
    to other names) see the extension they expect.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path | str, data: bytes, sync: bool = False) -> None:
    with atomic_output(path) as temporary, open(temporary, "wb") as stream:
        stream.write(data)
        if sync:
            stream.flush()
            os.fsync(stream.fileno())


def write_text_atomic(path: Path | str, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path | str, content: Any) -> None:
    """Standard JSON (NaN and infinities become null, paths become strings)."""
    write_text_atomic(path, json.dumps(finite_or_none(content), indent=2, default=_json_default) + "\n")


def finite_or_none(value: Any) -> Any:
    """``value`` with every NaN/inf float replaced by None, through dicts, lists and tuples."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def folder_holder(folder: Path | str) -> str | None:
    """Who holds ``folder`` through `exclusive_folder` ("pid N"), or None when nobody does.

    Only looks: a shared lock is granted unless someone holds the exclusive one, and
    nothing is written.
    """
    lock = Path(folder) / ".lock"
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    if not lock.is_file():
        return None
    with open(lock, encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


@contextlib.contextmanager
def exclusive_folder(folder: Path | str, purpose: str) -> Iterator[None]:
    """Hold ``folder`` (an advisory lock on ``folder/.lock``) for the block.

    A second holder gets a one-line `FolderBusy` naming the first one's pid, instead of
    both writing the same checkpoints. The kernel drops the lock when its process dies, so
    a killed job never leaves the folder locked. Where ``fcntl`` does not exist (Windows)
    the folder is not locked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise FolderBusy(f"{folder} is in use by {holder} ({purpose}); wait for it to finish or stop it, "
                             "then run this again (finished and partly trained runs are kept)") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
