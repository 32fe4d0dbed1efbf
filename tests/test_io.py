"""Atomic output: complete file or nothing, ordinary permissions; one holder per locked folder."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from auxrec.exceptions import FolderBusy
from auxrec.io import atomic_output, exclusive_folder, write_json_atomic, write_text_atomic


def test_written_files_are_complete_and_world_readable(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "report.md"
    write_text_atomic(path, "hello")
    assert path.read_text() == "hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    write_json_atomic(tmp_path / "x.json", {"path": tmp_path})
    assert json.loads((tmp_path / "x.json").read_text()) == {"path": str(tmp_path)}


def test_a_failed_write_leaves_the_previous_version_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    write_text_atomic(path, "old")
    with pytest.raises(RuntimeError), atomic_output(path) as temporary:
        temporary.write_text("half")
        raise RuntimeError("crash while writing")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_a_held_folder_refuses_a_second_holder_until_released(tmp_path: Path) -> None:
    import os

    with exclusive_folder(tmp_path / "work", "first job"), \
            pytest.raises(FolderBusy, match=f"in use by pid {os.getpid()} \\(second job\\)"), \
            exclusive_folder(tmp_path / "work", "second job"):
        pass
    with exclusive_folder(tmp_path / "work", "second job"):  # released: free again
        pass
