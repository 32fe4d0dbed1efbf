"""Data-parallel training under torchrun (2 gloo processes on CPU) is single-process training on the
same global batch: the same loss curve to float tolerance, and a run folder of the same format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from auxrec.experiments import runs
from auxrec.experiments.run_folder import RunFolder

SETTINGS = ["--epochs", "3", "--batch-size", "16", "--lr", "5e-3", "--patience", "10", "--no-progress", "--seed", "3"]
# dropout 0: dropout masks are drawn per process, the one thing that differs by design
MODEL_SETTINGS = {"sasrec": ["--set", "max_length=20", "--set", "hidden_dim=16", "--dropout", "0"], "bpr": []}


def _train(prepared: Path, out: Path, model: str, processes: int, *extra: str) -> subprocess.CompletedProcess[str]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    command = [*(launcher if processes > 1 else [sys.executable]), "-m", "auxrec", "train", model,
               "--data", str(prepared), "--out", str(out), *SETTINGS, *MODEL_SETTINGS[model], *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _losses(run: Path) -> list[float]:
    return [epoch["loss"] for epoch in json.loads(RunFolder(run).training_log_path.read_text())["epochs"]]


def _layout(run: Path) -> set[str]:
    return {str(path.relative_to(run)) for path in run.rglob("*")}


@pytest.mark.parametrize("model", ["sasrec", "bpr"])
def test_two_gloo_processes_follow_the_single_process_loss_curve(model, tiny_prepared, tmp_path):
    single, parallel = tmp_path / "single", tmp_path / "parallel"
    _train(tiny_prepared.path, single, model, 1)
    result = _train(tiny_prepared.path, parallel, model, 2)

    assert _losses(parallel) == pytest.approx(_losses(single), rel=1e-4)
    assert _layout(parallel) == _layout(single)
    assert not any(path.name.endswith(".partial") for path in tmp_path.iterdir())
    trained_with = json.loads(RunFolder(parallel).versions_path.read_text())["trained_with"]
    assert trained_with[-1]["processes"] == 2
    assert result.stdout.count("run written to") == 1  # the main process reports, once
    single_metrics = json.loads(RunFolder(single).metrics_path.read_text())
    parallel_metrics = json.loads(RunFolder(parallel).metrics_path.read_text())
    assert parallel_metrics["test"]["full"]["NDCG@10"] == pytest.approx(single_metrics["test"]["full"]["NDCG@10"],
                                                                        abs=0.02)


def test_two_processes_resume_a_run_interrupted_in_one(tiny_prepared, tmp_path, killed_after_epoch):
    """Checkpoints hold the global training state: a run killed after epoch 2 resumes under torchrun."""
    reference = tmp_path / "reference"
    _train(tiny_prepared.path, reference, "sasrec", 1)

    with killed_after_epoch(2):
        runs.train_run("sasrec", tiny_prepared.path, tmp_path / "run", seed=3,
                       model_layers=[("test", {"max_length": 20, "hidden_dim": 16, "dropout": 0.0})],
                       training_layers=[("test", {"epochs": 3, "batch_size": 16, "learning_rate": 5e-3,
                                                  "patience": 10, "progress": False})])
    assert RunFolder(tmp_path / "run").staging.has_checkpoint()

    _train(tiny_prepared.path, tmp_path / "run", "sasrec", 2, "--resume")
    assert _losses(tmp_path / "run") == pytest.approx(_losses(reference), rel=1e-4)
    assert not RunFolder(tmp_path / "run").staging.path.exists()
