"""Run records: which device trained a run (the reports list it beside each run's metrics)."""

from __future__ import annotations

import json
from pathlib import Path

from auxrec.experiments.runs import trained_on


def _versions(folder: Path, trained_with: list[dict] | None) -> Path:
    folder.mkdir()
    record = {"python": "3.11", **({"trained_with": trained_with} if trained_with is not None else {})}
    (folder / "versions.json").write_text(json.dumps(record))
    return folder


def test_trained_on_names_the_device_of_every_start(tmp_path: Path) -> None:
    cpu = {"device": "cpu", "torch_threads": 2, "device_name": "x86_64"}
    gpu = {"device": "cuda", "torch_threads": 1, "device_name": "NVIDIA H200"}
    assert trained_on(_versions(tmp_path / "cpu", [cpu])) == "cpu x86_64 (2 threads)"
    assert trained_on(_versions(tmp_path / "gpu", [gpu])) == "NVIDIA H200"
    # Resumed on another machine: both, in order; a repeated start is named once.
    assert trained_on(_versions(tmp_path / "both", [cpu, gpu, cpu])) == "cpu x86_64 (2 threads) + NVIDIA H200"
    one_thread = {**cpu, "torch_threads": 1}
    assert trained_on(_versions(tmp_path / "one", [one_thread])) == "cpu x86_64 (1 thread)"
    assert trained_on(_versions(tmp_path / "old", None)).startswith("not recorded")
    assert trained_on(tmp_path / "absent") is None
