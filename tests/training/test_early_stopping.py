"""Early stopping: patience counts validations without improvement; min_epochs delays it."""

import json

from auxrec.experiments import runs


def _epochs(tmp_path, tiny_prepared, name, **training):
    settings = {"epochs": 12, "batch_size": 16, "learning_rate": 1e-6, "patience": 1, "progress": False} | training
    runs.train_run("sasrec", tiny_prepared.path, tmp_path / name, seed=0,
                   model_layers=[("test", {"max_length": 20, "hidden_dim": 16})],
                   training_layers=[("test", settings)], protocols=("sampled",))
    return len(json.loads((tmp_path / name / "training_log.json").read_text())["epochs"])


def test_min_epochs_keeps_training_through_a_plateau(tiny_prepared, tmp_path):
    # At lr 1e-6 validation barely moves: patience 1 stops within a few epochs...
    stopped = _epochs(tmp_path, tiny_prepared, "plain")
    assert stopped < 8
    # ...unless min_epochs forbids stopping before epoch 8, and it stops soon after.
    assert 8 <= _epochs(tmp_path, tiny_prepared, "min8", min_epochs=8) <= 12
