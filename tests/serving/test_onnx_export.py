"""`auxrec export RUN --onnx PATH`: the ONNX graph ranks like the torch model, and the command's guard rails.

The runs are tiny (one epoch on the serving tests' synthetic dataset); SASRec+ and PopRec
come from ``trained_runs`` (conftest), the other models are trained here once per module.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from typer.testing import CliRunner  # noqa: E402

from auxrec.cli import app  # noqa: E402
from auxrec.evaluation.evaluator import user_histories  # noqa: E402
from auxrec.serving.onnx_export import ExportError, ExportMismatch, export_onnx  # noqa: E402
from auxrec.serving.trained_model import TrainedModel, load_run  # noqa: E402

ONE_EPOCH = {"epochs": 1, "batch_size": 64, "validation_protocol": "full"}


@pytest.fixture(scope="module")
def runs(trained_runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SASRec+ (text, image, tabular; concat), PopRec, and here: BERT4Rec+ (tabular, sum), BPR, TransRec."""
    from auxrec.experiments.runs import train_run

    root = tmp_path_factory.mktemp("onnx-runs")
    prepared = trained_runs["prepared"]
    found = {"sasrec_plus": trained_runs["sasrec_plus"], "poprec": trained_runs["poprec"]}
    train_run("bert4rec", prepared, root / "bert4rec", seed=0, protocols=("full",), aux=("tabular",),
              model_layers=[("test", {"max_length": 12, "hidden_dim": 16, "ffn_dim": 32, "aux_fusion": "sum"})],
              training_layers=[("test", ONE_EPOCH)])
    for name in ("bpr", "transrec"):
        train_run(name, prepared, root / name, seed=0, protocols=("full",), training_layers=[("test", ONE_EPOCH)],
                  model_layers=[("test", {"embedding_dim": 16})])
    return {**found, "bert4rec_plus": root / "bert4rec", "bpr": root / "bpr", "transrec": root / "transrec"}


def _onnx_top(path: Path, model: TrainedModel, users: np.ndarray, k: int = 10) -> np.ndarray:
    """Internal item ids onnxruntime ranks first for known ``users`` (their whole history, as the API reads it)."""
    import onnxruntime

    sidecar = json.loads(Path(f"{path}.json").read_text())
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = user_histories(model.model, model.dataset.all_sequences, users)
    feeds = {"users": batch.users.astype(np.int64), "sequences": batch.sequences.astype(np.int64)}
    _, top_scores, top_ids = session.run(None, {spec["name"]: feeds[spec["name"]] for spec in sidecar["inputs"]})
    assert top_ids.shape == (len(users), sidecar["top_k"]) and np.all(np.diff(top_scores, axis=1) <= 0)
    return top_ids[:, :k]


@pytest.mark.parametrize("name", ["sasrec_plus", "bert4rec_plus", "bpr", "transrec", "poprec"])
def test_onnx_top10_equals_torch_on_test_users(runs: dict[str, Path], tmp_path: Path, name: str) -> None:
    report = export_onnx(runs[name], tmp_path / "model.onnx")
    model = load_run(runs[name])
    users = model.dataset.targets("test")[0]
    assert report.users_checked == len(users) > 0 and report.top10_agreement >= 0.999
    assert report.max_abs_difference < 1e-4
    # The Python API's top-10 (original ids, history items allowed) against the graph's, read through the sidecar.
    sidecar = json.loads((tmp_path / "model.onnx.json").read_text())
    top = _onnx_top(tmp_path / "model.onnx", model, users)
    expected = model.recommend(users=[model.user_ids[u - 1] for u in users], k=10, exclude_seen=False)
    exported = [[sidecar["items"][i] for i in row] for row in top]
    identical = np.mean([e.items == x for e, x in zip(expected, exported)])
    # Items with equal scores (PopRec's counts) may come in another order: compare torch's scores of the picks.
    with torch.no_grad():
        scores = model.model.score(user_histories(model.model, model.dataset.all_sequences, users)).float().numpy()
    picked = -np.sort(-np.take_along_axis(scores, top, axis=1), axis=1)
    best = np.array([e.scores for e in expected])
    assert np.abs(picked - best).max() < 1e-4 and (identical >= 0.999 or name == "poprec"), (name, identical)
    assert sidecar["items"][0] is None and sidecar["items"][1:] == list(model.item_ids)
    assert ("users" in sidecar) == (name in ("bpr", "transrec"))
    assert str(report).count("\n") == 2 and "model.onnx" in str(report)


def test_sasrec_plus_graph_carries_its_features_and_takes_any_batch(runs: dict[str, Path], tmp_path: Path) -> None:
    """The features travel in the graph (no feature files needed) and the batch axis is dynamic (1 and 3 rows)."""
    import onnxruntime

    export_onnx(runs["sasrec_plus"], tmp_path / "m.onnx", check_users=5)
    sidecar = json.loads((tmp_path / "m.onnx.json").read_text())
    assert [spec["name"] for spec in sidecar["inputs"]] == ["sequences"]
    assert sidecar["inputs"][0]["shape"] == ["batch", sidecar["history_length"]]
    assert sidecar["verification"]["users_checked"] == 5 and sidecar["padding_id"] == 0
    model = load_run(runs["sasrec_plus"])
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    index = {item: i for i, item in enumerate(sidecar["items"]) if i}
    history = model.history(model.user_ids[0])
    for rows in (1, 3):
        sequences = np.zeros((rows, sidecar["history_length"]), np.int64)
        kept = [index[item] for item in history][-sidecar["history_length"]:]
        sequences[:, sequences.shape[1] - len(kept):] = kept
        scores, _, top_ids = session.run(None, {"sequences": sequences})
        assert scores.shape == (rows, model.n_items + 1) and np.isneginf(scores[:, 0]).all()
        ranked = [sidecar["items"][i] for i in top_ids[0, :10]]
        assert ranked == model.recommend(histories=[history], k=10, exclude_seen=False)[0].items


def test_cli_export_writes_then_refuses_to_overwrite(runs: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "exported" / "model.onnx"
    first = runner.invoke(app, ["export", str(runs["poprec"]), "--onnx", str(out)])
    assert first.exit_code == 0, first.output
    assert out.is_file() and Path(f"{out}.json").is_file() and "top-10 identical" in first.output
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary left behind
    again = runner.invoke(app, ["export", str(runs["poprec"]), "--onnx", str(out)])
    assert again.exit_code == 2
    assert "exists; pass --overwrite" in again.output and "Traceback" not in again.output
    assert len(again.output.strip().splitlines()) == 1
    replaced = runner.invoke(app, ["export", str(runs["poprec"]), "--onnx", str(out), "--overwrite"])
    assert replaced.exit_code == 0, replaced.output

    mine = tmp_path / "my-run"  # without --onnx: RUN.onnx beside the run
    shutil.copytree(runs["poprec"], mine)
    default = runner.invoke(app, ["export", str(mine)])
    assert default.exit_code == 0, default.output
    assert (tmp_path / "my-run.onnx").is_file() and (tmp_path / "my-run.onnx.json").is_file()


def test_bad_destinations_and_runs_are_one_line_errors(runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="is a folder"):
        export_onnx(runs["poprec"], tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="is a file, not a folder"):
        export_onnx(runs["poprec"], blocker / "sub" / "model.onnx")
    Path(f"{tmp_path / 'model.onnx'}.json").write_text("{}")  # a sidecar alone is protected too
    with pytest.raises(ExportError, match="exists; pass --overwrite"):
        export_onnx(runs["poprec"], tmp_path / "model.onnx")
    precious = tmp_path / "data.csv"  # --overwrite never replaces a file an export did not write
    precious.write_text("user,item\n")
    with pytest.raises(ExportError, match="not written by `auxrec export`"):
        export_onnx(runs["poprec"], precious, overwrite=True)
    assert precious.read_text() == "user,item\n"
    unfinished = tmp_path / "unfinished-run"
    unfinished.mkdir()
    result = CliRunner().invoke(app, ["export", str(unfinished), "--onnx", str(tmp_path / "x.onnx")])
    assert result.exit_code == 2 and "not a finished auxrec run" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "x.onnx").exists()


def test_disagreeing_graph_writes_nothing(runs: dict[str, Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A graph that scores differently from torch is refused, and neither file appears."""
    from auxrec.serving import onnx_export

    def reversed_scores(self, users):  # type: ignore[no-untyped-def]
        model = self.model
        return self.outputs(-(model.user_embedding(users) @ model.item_embedding.weight.T))

    monkeypatch.setattr(onnx_export._BPRScorer, "forward", reversed_scores)
    with pytest.raises(ExportMismatch, match="nothing was written"):
        export_onnx(runs["bpr"], tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_copied_run_folder_still_exports(runs: dict[str, Path], tmp_path: Path) -> None:
    """The run folder is all export needs (with its dataset where config.json says), wherever it lies."""
    copy = tmp_path / "copy"
    shutil.copytree(runs["bpr"], copy)
    report = export_onnx(copy, tmp_path / "bpr.onnx", check_users=3, top_k=3)
    assert report.users_checked == 3 and report.top_k == 3 and "(batch × 3)" in str(report)
