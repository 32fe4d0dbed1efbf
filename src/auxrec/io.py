"""Atomic file output: a file is either absent, its previous version, or complete.

Everything auxrec writes goes through `atomic_output`: the content is written to a
temporary file in the destination's folder, made world-readable like an ordinary file
(``mkstemp`` creates 0600), then renamed over the destination. A crash or Ctrl-C leaves
no half-written file behind that a later run could mistake for a finished one.

`exclusive_folder` keeps two long jobs (say, two `auxrec reproduce` on one work folder)
from training the same runs into the same files at once.

`check_output_folder` is the one gate before a command replaces a folder: ``--overwrite``
replaces only a folder that auxrec wrote (it carries the `OUTPUT_MARKER` file, or is a
recognisable prepared dataset, run or generated dataset from before the marker existed),
of the same kind, and never one that is or holds one of the command's inputs.
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

from auxrec.exceptions import DamagedFile, FolderBusy, OutputFolderError
from auxrec.run_layout import CONFIG_NAME as RUN_CONFIG_NAME
from auxrec.run_layout import PARTIAL_SUFFIX

FILE_MODE = 0o644
OUTPUT_MARKER = ".auxrec-output"  # {"kind": ...}: this folder was written by auxrec
OUTPUT_KINDS = {"prepared": "a prepared dataset", "run": "a run", "generated": "a generated dataset"}


@contextlib.contextmanager
def atomic_output(path: Path | str, suffix: str = PARTIAL_SUFFIX) -> Iterator[Path]:
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


def read_json(path: Path | str, fix: str = "delete it and run the command that wrote it again") -> Any:
    """The JSON content of ``path``; a truncated or corrupted file is one `DamagedFile` line naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DamagedFile(f"{path} is damaged (not valid JSON: {error}); {fix}") from None


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


def folder_mode() -> int:
    """The mode the user's umask gives a new folder (``mkdtemp`` always makes 0700)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask


def mark_output(folder: Path | str, kind: str) -> None:
    """Say in ``folder`` that auxrec wrote it, as ``kind``, so `--overwrite` may replace it later."""
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    write_text_atomic(Path(folder) / OUTPUT_MARKER, json.dumps({"kind": kind}) + "\n")


def output_kind(folder: Path | str) -> str | None:
    """Which kind of auxrec output ``folder`` holds ("prepared", "run", "generated"), or None.

    Folders written before the marker existed are recognised by the files only auxrec
    writes together: a manifest with a fingerprint and format version, a run config with
    model, seed and data, a generated source description beside its latent truth.
    """
    folder = Path(folder)
    marker = _read_json(folder / OUTPUT_MARKER)
    if isinstance(marker, dict) and marker.get("kind") in OUTPUT_KINDS:
        return str(marker["kind"])
    manifest = _read_json(folder / "manifest.json")
    if isinstance(manifest, dict) and {"fingerprint", "format_version"} <= set(manifest):
        return "prepared"
    config = _read_json(folder / RUN_CONFIG_NAME)
    if isinstance(config, dict) and {"model", "seed", "data"} <= set(config):
        return "run"
    if (folder / "auxrec-source.json").is_file() and (folder / "latent" / "config.json").is_file():
        return "generated"
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def check_output_folder(out: Path | str, kind: str, overwrite: bool,
                        inputs: tuple[Path | str | None, ...] = ()) -> None:
    """Refuse to write ``out`` where that would lose something the user has.

    - ``out`` must not be, or hold, one of ``inputs`` (even with ``--overwrite``: replacing
      it would delete the data the command reads);
    - an existing non-empty ``out`` needs ``overwrite``, and then must be auxrec's own
      output of the same ``kind``: a folder of the user's, or another kind of output, is
      never deleted.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"{out} exists and is a file, not a folder; choose another --out")
    target = out.resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        if source == target or target in source.parents:
            where = "is" if source == target else "holds"
            raise OutputFolderError(f"--out {out} {where} this command's input {given}; writing there would delete it, "
                              "so choose another --out")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise OutputFolderError(f"{out} exists and is not empty; choose another --out or pass --overwrite")
    found = output_kind(out)
    if found is None:
        raise OutputFolderError(f"--overwrite only replaces folders auxrec wrote, and {out} is not one (no {OUTPUT_MARKER}); "
                          "remove it yourself or choose another --out")
    if found != kind:
        raise OutputFolderError(f"{out} holds {OUTPUT_KINDS[found]}, not {OUTPUT_KINDS[kind]}; --overwrite does not "
                          "replace another kind of output; choose another --out")
