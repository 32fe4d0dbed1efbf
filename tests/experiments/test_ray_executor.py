"""`auxrec reproduce --executor ray`: the runs as Ray tasks on a local Ray instance give the runs of the
local process pool, are reused by a later reproduction, and leave the report rendering unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from auxrec.exceptions import ConfigError
from auxrec.experiments import ray_executor
from auxrec.experiments.ray_executor import RayExecutor
from auxrec.experiments.reproduce import reproduce
from auxrec.experiments.specs import load_spec

pytest.importorskip("ray", reason="Ray is the optional [cluster] extra")

SPEC = """
name = "tiny-ray"
protocols = ["sampled", "full"]
[data]
loader = "synthetic"
synthetic_preset = "tiny"
synthetic_overrides = { n_users = 80, n_items = 160 }
[seeds]
table2 = 2
[training]
epochs = 1
batch_size = 64
[models.sasrec.model]
max_length = 12
hidden_dim = 16
[models.bert4rec.model]
max_length = 12
hidden_dim = 16
"""


def test_ray_tasks_train_the_runs_the_process_pool_trains(tmp_path: Path) -> None:
    spec_path = tmp_path / "tiny.toml"
    spec_path.write_text(SPEC)
    spec = load_spec(spec_path)
    # The reference trains inline on one torch thread, as each Ray task does with one CPU (the
    # process pool's workers are covered by tests/experiments/test_reproduce.py); spawning a pool
    # here too made this the slowest test of the suite.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pool = reproduce(spec, ["table2"], tmp_path / "pool", tmp_path / "pool-reports", progress=False, jobs=1,
                         log=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    lines: list[str] = []
    on_ray = reproduce(spec, ["table2"], tmp_path / "ray", tmp_path / "ray-reports", progress=False,
                       log=lines.append, executor=RayExecutor(cpus_per_run=1))
    assert on_ray["trained"] == pool["trained"] == 8
    assert on_ray["executor"] == "Ray tasks on a local Ray instance (1 CPU each)"
    tables = [json.loads((tmp_path / f"{name}-reports" / "table2-sampled.json").read_text()) for name in ("pool", "ray")]
    assert tables[0]["per_seed_ndcg@10"] == tables[1]["per_seed_ndcg@10"]  # one torch thread per run in both

    again = reproduce(spec, ["table2"], tmp_path / "ray", tmp_path / "ray-reports-2", progress=False,
                      log=lambda _: None)  # the local pool reuses what Ray trained
    assert again["trained"] == 0
    assert (tmp_path / "ray-reports-2" / "table2-sampled.md").read_text() == \
        (tmp_path / "ray-reports" / "table2-sampled.md").read_text()


def test_without_ray_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str):
        raise ImportError(name)

    monkeypatch.setattr(ray_executor.importlib, "import_module", missing)
    with pytest.raises(ConfigError, match=r"pip install 'auxrec\[cluster\]'"):
        RayExecutor()


def test_resources_per_run_are_checked() -> None:
    with pytest.raises(ConfigError, match="--cpus-per-run"):
        RayExecutor(cpus_per_run=0)
