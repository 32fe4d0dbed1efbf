"""An interrupted and resumed run gives exactly the numbers of an uninterrupted one."""

import json

import pytest

from auxrec.experiments import runs
from auxrec.training import trainer

TRAINING = [("test", {"epochs": 4, "batch_size": 16, "learning_rate": 5e-3, "patience": 10, "progress": False})]
MODEL = [("test", {"max_length": 20, "hidden_dim": 16})]


@pytest.mark.parametrize("model", ["sasrec", "bpr"])
def test_resume_equals_uninterrupted(model, tiny_prepared, tmp_path, killed_after_epoch):
    layers = MODEL if model == "sasrec" else []
    reference = runs.train_run(model, tiny_prepared.path, tmp_path / "reference", seed=5, model_layers=layers,
                               training_layers=TRAINING)

    with killed_after_epoch(2):
        runs.train_run(model, tiny_prepared.path, tmp_path / "run", seed=5, model_layers=layers,
                       training_layers=TRAINING)
    assert not (tmp_path / "run").exists()  # never looks complete
    assert (tmp_path / ".run.partial" / "checkpoint.pt").is_file()

    resumed = runs.train_run(model, tiny_prepared.path, tmp_path / "run", seed=5, model_layers=layers,
                             training_layers=TRAINING, resume=True)
    assert resumed == reference
    training_log = json.loads((tmp_path / "run" / "training_log.json").read_text())
    log = training_log["epochs"]
    assert [record["epoch"] for record in log] == [1, 2, 3, 4]
    assert not (tmp_path / ".run.partial").exists()
    # fit_seconds timed the second start only; training_seconds spans both.
    spanned = sum(r["train_seconds"] + (r.get("valid_seconds") or 0.0) for r in log)
    assert runs.training_seconds(training_log) == pytest.approx(spanned, abs=1e-3)
    assert runs.training_seconds(training_log) > sum(r["train_seconds"] for r in log[2:])


def test_resume_refuses_changed_settings(tiny_prepared, tmp_path, monkeypatch):
    def die(path, state):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "_save_checkpoint", die)
    with pytest.raises(KeyboardInterrupt):
        runs.train_run("bpr", tiny_prepared.path, tmp_path / "run", seed=1, training_layers=TRAINING)
    from auxrec.exceptions import RunError

    with pytest.raises(RunError, match="settings differ"):
        runs.train_run("bpr", tiny_prepared.path, tmp_path / "run", seed=2, training_layers=TRAINING, resume=True)


def test_versions_record_the_threads_of_every_start(tiny_prepared, tmp_path, monkeypatch):
    """On CPU the numbers depend on the thread count, so a run says what trained it, per (re)start."""
    import torch

    def die_after_epoch_1(path, state):
        original_save(path, state)
        if state["epoch"] == 1:
            raise KeyboardInterrupt

    original_save = trainer._save_checkpoint
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(trainer, "_save_checkpoint", die_after_epoch_1)
        with pytest.raises(KeyboardInterrupt):
            runs.train_run("sasrec", tiny_prepared.path, tmp_path / "run", model_layers=MODEL, training_layers=TRAINING)
        monkeypatch.setattr(trainer, "_save_checkpoint", original_save)
        torch.set_num_threads(1)
        runs.train_run("sasrec", tiny_prepared.path, tmp_path / "run", model_layers=MODEL, training_layers=TRAINING,
                       resume=True)
    finally:
        torch.set_num_threads(previous)
    versions = json.loads((tmp_path / "run" / "versions.json").read_text())
    assert [entry["torch_threads"] for entry in versions["trained_with"]] == [2, 1]
    assert all(entry["device"] == "cpu" for entry in versions["trained_with"]) and versions["torch"]
