"""The Python recommendation API (`auxrec.load_run` → `TrainedModel`) and `auxrec recommend`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import auxrec
from auxrec.cli import app
from auxrec.data.ids import PADDING_ID
from auxrec.experiments.runs import train_run
from auxrec.models.contract import UserHistories
from auxrec.serving.trained_model import MAX_HISTORY, RecommendError, TrainedModel

runner = CliRunner()


@pytest.fixture(scope="module")
def sasrec(trained_runs: dict[str, Path]) -> TrainedModel:
    return auxrec.load_run(trained_runs["sasrec_plus"])


@pytest.fixture(scope="module")
def bpr_run(trained_runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("bpr") / "bpr"
    train_run("bpr", trained_runs["prepared"], run, seed=0, protocols=("full",),
              training_layers=[("test", {"epochs": 1, "validation_protocol": "full", "progress": False})])
    return run


def reference_top_k(model: TrainedModel, user: str, k: int, exclude_seen: bool) -> list[str]:
    """The top-k computed from the model's `score` directly, without the API."""
    internal = int(model.user_ids.get_loc(user)) + 1
    history = model.dataset.all_sequences
    sequences = history.padded(np.array([internal]), model.model.history_length)
    scores = model.model.score(UserHistories(np.array([internal]), sequences))[0].clone()
    scores[PADDING_ID] = -torch.inf
    if exclude_seen:
        scores[torch.from_numpy(history.of(internal).astype(np.int64))] = -torch.inf
    return [model.item_ids[i - 1] for i in torch.topk(scores, k).indices.tolist()]


@pytest.mark.parametrize("exclude_seen", [True, False])
def test_recommend_for_a_user_is_the_models_own_ranking(sasrec: TrainedModel, exclude_seen: bool) -> None:
    for user in sasrec.user_ids[:5]:
        result = sasrec.recommend(users=user, k=10, exclude_seen=exclude_seen)
        assert result.user == user and len(result.items) == 10
        assert result.items == reference_top_k(sasrec, user, 10, exclude_seen)
        assert result.scores == sorted(result.scores, reverse=True)
        if exclude_seen:
            assert not set(result.items) & set(sasrec.history(user))


def test_a_batch_a_single_user_and_the_same_history_agree(sasrec: TrainedModel) -> None:
    users = list(sasrec.user_ids[:7])
    batch = sasrec.recommend(users=users, k=5)
    assert [r.user for r in batch] == users
    for user, result in zip(users, batch):
        assert sasrec.recommend(users=user, k=5).items == result.items
    # a new user with the same recent items gets what the known user gets: SASRec reads the history only
    by_history = sasrec.recommend(histories=[sasrec.history(u) for u in users], k=5)
    assert [r.items for r in by_history] == [r.items for r in batch]
    assert all(r.user is None for r in by_history)
    # every user when none are named, in chunks
    small_chunks = auxrec.load_run(sasrec.run_dir, chunk_size=3)
    everyone = small_chunks.recommend(k=5)
    assert len(everyone) == sasrec.n_users
    assert [r.items for r in everyone[:7]] == [r.items for r in batch]  # scores: equal up to float rounding
    assert np.allclose([r.scores for r in everyone[:7]], [r.scores for r in batch], atol=1e-5)


def test_numeric_ids_are_the_same_ids_as_text(sasrec: TrainedModel) -> None:
    user = sasrec.user_ids[0]
    assert user.isdigit()  # the synthetic ids are numbers stored as text
    assert sasrec.recommend(users=int(user), k=3).items == sasrec.recommend(users=user, k=3).items


def test_unknown_history_items_are_reported_not_dropped_silently(sasrec: TrainedModel) -> None:
    history = sasrec.history(sasrec.user_ids[0])[-4:]
    result = sasrec.recommend(histories=[["no-such-item", *history, "another"]], k=5)[0]
    assert result.unknown_items == ["no-such-item", "another"]
    assert result.items == sasrec.recommend(histories=[history], k=5)[0].items
    with pytest.raises(RecommendError, match="no item of the history is known"):
        sasrec.recommend(histories=[["no-such-item"]])
    with pytest.raises(RecommendError, match="empty"):
        sasrec.recommend(histories=[[]])


def test_candidates_restrict_the_ranking(sasrec: TrainedModel) -> None:
    user = sasrec.user_ids[1]
    unseen = [i for i in sasrec.item_ids if i not in set(sasrec.history(user))]
    candidates = unseen[::7][:12]
    result = sasrec.recommend(users=user, k=20, candidates=candidates)
    assert sorted(result.items) == sorted(candidates)  # k larger than the candidates: all of them, ranked
    with pytest.raises(RecommendError, match="unknown candidate"):
        sasrec.recommend(users=user, candidates=["no-such-item"])


@pytest.mark.parametrize("request_", [
    {"users": "no-such-user"},
    {"users": ["1", "no-such-user"]},
    {"users": "1", "k": 0},
    {"users": "1", "k": 10**6},
    {"users": "1", "k": "5"},
    {"users": "1", "k": 2.5},
    {"users": "1", "histories": [["1"]]},
    {"histories": "1"},
    {"histories": ["1", "2"]},
    {"histories": [["1"] * (MAX_HISTORY + 1)]},
], ids=lambda r: ",".join(f"{k}={str(v)[:12]}" for k, v in r.items()))
def test_bad_requests_are_one_clear_error(sasrec: TrainedModel, request_: dict[str, object]) -> None:
    with pytest.raises(RecommendError):
        sasrec.recommend(**request_)  # type: ignore[arg-type]


def test_similar_items(sasrec: TrainedModel, trained_runs: dict[str, Path]) -> None:
    item = sasrec.item_ids[3]
    similar = sasrec.similar_items(item, k=5)
    assert len(similar.items) == 5 and item not in similar.items
    assert similar.scores == sorted(similar.scores, reverse=True) and all(-1 <= s <= 1 for s in similar.scores)
    with pytest.raises(RecommendError, match="no similar items"):
        auxrec.load_run(trained_runs["poprec"]).similar_items(item)
    with pytest.raises(RecommendError, match="unknown item"):
        sasrec.similar_items("no-such-item")


def test_models_that_learn_a_vector_per_user_refuse_new_histories(bpr_run: Path) -> None:
    bpr = auxrec.load_run(bpr_run)
    assert len(bpr.recommend(users=bpr.user_ids[0], k=4).items) == 4
    assert len(bpr.similar_items(bpr.item_ids[0], k=3).items) == 3
    with pytest.raises(RecommendError, match="scores only the users it was trained on"):
        bpr.recommend(histories=[[bpr.item_ids[0]]])


def test_poprec_recommends_the_most_popular_unseen_items(trained_runs: dict[str, Path]) -> None:
    poprec = auxrec.load_run(trained_runs["poprec"])
    counts = poprec.dataset.train_item_counts
    result = poprec.recommend(histories=[[poprec.item_ids[int(np.argmax(counts)) - 1]]], k=3)[0]
    assert [counts[poprec.item_ids.get_loc(i) + 1] for i in result.items] == sorted(counts[1:])[-4:-1][::-1]


def test_item_details(sasrec: TrainedModel) -> None:
    details = sasrec.item(sasrec.item_ids[0])
    assert details["id"] == sasrec.item_ids[0] and isinstance(details["title"], str)


def test_importing_auxrec_stays_cheap() -> None:
    """`auxrec.load_run` is there, but `import auxrec` alone does not import torch."""
    code = "import sys, auxrec; assert 'torch' not in sys.modules; assert callable(auxrec.load_run); print('ok')"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "ok"


# -- auxrec recommend (batch) -------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_batch_recommend_writes_every_user(sasrec: TrainedModel, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"recs{suffix}"
    result = runner.invoke(app, ["recommend", str(sasrec.run_dir), "--k", "4", "--out", str(out),
                                 "--chunk-size", "7", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "users/s" in result.output
    frame = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out, dtype={"user": str, "item": str})
    assert len(frame) == sasrec.n_users * 4
    assert frame["rank"].tolist()[:8] == [1, 2, 3, 4, 1, 2, 3, 4]
    first = sasrec.user_ids[0]
    assert frame[frame["user"] == first]["item"].tolist() == sasrec.recommend(users=first, k=4).items


def test_batch_recommend_for_listed_users(sasrec: TrainedModel, tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text(f"{sasrec.user_ids[2]}\n\n {sasrec.user_ids[0]} \n")
    out = tmp_path / "recs.parquet"
    result = runner.invoke(app, ["recommend", str(sasrec.run_dir), "--users", str(users), "--out", str(out),
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(out)["user"].unique().tolist() == [sasrec.user_ids[2], sasrec.user_ids[0]]


@pytest.mark.parametrize("case", ["unknown user", "exists", "suffix", "k"])
def test_batch_recommend_refuses_bad_input_in_one_line(sasrec: TrainedModel, tmp_path: Path, case: str) -> None:
    out = tmp_path / "recs.parquet"
    args = ["recommend", str(sasrec.run_dir), "--out", str(out), "--no-progress"]
    if case == "unknown user":
        (tmp_path / "users.txt").write_text(f"{sasrec.user_ids[0]}\nno-such-user\n")
        args += ["--users", str(tmp_path / "users.txt")]
    elif case == "exists":
        out.write_text("mine")
    elif case == "suffix":
        args[3] = str(tmp_path / "recs.json")
    else:
        args += ["--k", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    if case == "exists":
        assert out.read_text() == "mine"  # never replaced without --overwrite
    else:
        assert not out.exists()
