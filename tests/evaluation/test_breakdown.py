"""Breakdowns by target group, checked on a dataset small enough to compute by hand."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from auxrec.data.dataset import PreparedDataset
from auxrec.data.prepare import prepare_dataset, write_prepared
from auxrec.data.schema import RawDataset
from auxrec.evaluation.breakdown import (
    breakdown,
    breakdown_of_ranks_file,
    complete_from_ranks,
    popularity_terciles,
)
from auxrec.exceptions import RunError

# Users u1..u4 become 1..4, items a..f become 1..6.
#   u1: train a b c | valid b | test a (a repeats)
#   u2: train a b   | valid c | test e (e never trains: cold; valid and test both at time 3)
#   u3: train a c   | valid a | test d
#   u4: train a b d | valid f | test c (f is cold)
# Training counts: a 4, b 3, c 2, d 1, e 0, f 0.
ROWS = [
    ("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3), ("u1", "b", 4), ("u1", "a", 5),
    ("u2", "a", 1), ("u2", "b", 2), ("u2", "c", 3), ("u2", "e", 3),
    ("u3", "a", 1), ("u3", "c", 2), ("u3", "a", 3), ("u3", "d", 4),
    ("u4", "a", 1), ("u4", "b", 2), ("u4", "d", 3), ("u4", "f", 5), ("u4", "c", 6),
]
A, B, C, D, E, F = range(1, 7)


@pytest.fixture
def hand(tmp_path) -> PreparedDataset:
    raw = RawDataset("hand", pd.DataFrame(ROWS, columns=["user", "item", "timestamp"]))
    return PreparedDataset.load(write_prepared(prepare_dataset(raw), tmp_path / "hand"))


def ndcg(rank: int) -> float:
    return 1 / math.log2(rank + 1) if rank <= 10 else 0.0


def check(cell: dict, ndcgs: list[float], hits: list[float]) -> None:
    assert cell["users"] == len(ndcgs)
    assert cell["NDCG@10"] == pytest.approx(np.mean(ndcgs)) and cell["HR@10"] == pytest.approx(np.mean(hits))


def test_the_hand_dataset_is_what_the_comments_say(hand):
    assert hand.targets("test")[1].tolist() == [A, E, D, C]
    assert hand.targets("valid")[1].tolist() == [B, C, A, F]
    assert hand.train_item_counts.tolist() == [0, 4, 3, 2, 1, 0, 0]


def test_test_groups_by_hand(hand):
    # ranks 1, 3, 11, 2: NDCG@10 1, 1/log2(4) = .5, 0, 1/log2(3); HR@10 1, 1, 0, 1
    groups = breakdown(hand, "test", np.array([1, 2, 3, 4]), np.array([A, E, D, C]), np.array([1, 3, 11, 2]))
    u1, u2, u3, u4 = ndcg(1), ndcg(3), ndcg(11), ndcg(2)
    check(groups["all"]["all"], [u1, u2, u3, u4], [1, 1, 0, 1])
    check(groups["target"]["cold"], [u2], [1])  # e has no training interaction
    check(groups["target"]["warm"], [u1, u3, u4], [1, 0, 1])
    # test targets' counts 4, 0, 1, 2 → sorted 0 1 2 4: q1 = 2nd = 1, q2 = 3rd = 2
    check(groups["popularity"]["head"], [u1], [1])  # a: 4 > 2
    check(groups["popularity"]["mid"], [u4], [1])  # c: 2
    check(groups["popularity"]["tail"], [u2, u3], [1, 0])  # e: 0, d: 1
    check(groups["history"]["repeated"], [u1], [1])  # a is in u1's history a b c b
    check(groups["history"]["novel"], [u2, u3, u4], [1, 0, 1])
    check(groups["novel_target"]["cold"], [u2], [1])
    check(groups["novel_target"]["warm"], [u3, u4], [0, 1])  # u1's repeated a left out
    check(groups["valid_test_time"]["same"], [u2], [1])
    check(groups["valid_test_time"]["different"], [u1, u3, u4], [1, 0, 1])


def test_valid_groups_by_hand(hand):
    groups = breakdown(hand, "valid", np.array([1, 2, 3, 4]), np.array([B, C, A, F]), np.array([5, 1, 20, 1]))
    # valid targets' counts 3, 2, 4, 0 → sorted 0 2 3 4: q1 = 2, q2 = 3
    check(groups["popularity"]["head"], [ndcg(20)], [0])  # u3: a
    check(groups["popularity"]["mid"], [ndcg(5)], [1])  # u1: b
    check(groups["popularity"]["tail"], [ndcg(1), ndcg(1)], [1, 1])  # u2: c, u4: f
    check(groups["target"]["cold"], [ndcg(1)], [1])  # u4: f
    check(groups["history"]["repeated"], [ndcg(5), ndcg(20)], [1, 0])  # u1: b in a b c; u3: a in a c
    check(groups["valid_test_time"]["same"], [ndcg(1)], [1])  # u2 again: a user property


def test_terciles_come_from_all_targets_and_empty_groups_are_nan(hand):
    groups = breakdown(hand, "test", np.array([1]), np.array([A]), np.array([4]))
    check(groups["popularity"]["head"], [ndcg(4)], [1])  # still head: the cuts use every test target
    assert groups["target"]["cold"]["users"] == 0 and math.isnan(groups["target"]["cold"]["NDCG@10"])
    assert groups["popularity"]["tail"]["users"] == 0


def test_tercile_ties_join_the_lower_group():
    reference = np.array([1, 1, 1, 1, 5, 9])  # q1 = 2nd smallest = 1, q2 = 4th = 1
    assert popularity_terciles(np.array([0, 1, 5, 9]), reference).tolist() == ["tail", "tail", "head", "head"]
    assert popularity_terciles(np.array([1, 2, 3]), np.array([1, 2, 3])).tolist() == ["tail", "mid", "head"]


def test_ranks_of_another_dataset_are_refused(hand):
    with pytest.raises(RunError, match="target differs"):
        breakdown(hand, "test", np.array([1]), np.array([B]), np.array([1]))
    with pytest.raises(RunError, match="target differs"):
        breakdown(hand, "test", np.array([9]), np.array([A]), np.array([1]))


def test_saved_ranks_file(hand, tmp_path):
    ranks = tmp_path / "ranks"
    ranks.mkdir()
    pd.DataFrame({"user": [1, 2, 3, 4], "target": [A, E, D, C], "rank": [1, 3, 11, 2]}).to_parquet(
        ranks / "test-full.parquet", index=False)
    direct = breakdown(hand, "test", np.array([1, 2, 3, 4]), np.array([A, E, D, C]), np.array([1, 3, 11, 2]))
    assert breakdown_of_ranks_file(hand, ranks / "test-full.parquet") == direct
    completed = complete_from_ranks(hand, ranks, {"valid": {"full": {}}})
    assert completed == {"valid": {"full": {}}, "test": {"full": direct}}


def test_a_run_writes_breakdown_json(tiny_prepared, tmp_path):
    from auxrec.experiments.runs import evaluate_run, train_run

    run = tmp_path / "run"
    metrics = train_run("poprec", tiny_prepared.path, run, protocols=("full",))
    saved = json.loads((run / "breakdown.json").read_text())
    assert set(saved) == {"valid", "test"} and set(saved["test"]) == {"full"}
    assert saved["test"]["full"]["all"]["all"]["NDCG@10"] == pytest.approx(metrics["test"]["full"]["NDCG@10"])
    assert sum(cell["users"] for cell in saved["test"]["full"]["popularity"].values()) == len(
        tiny_prepared.targets("test")[0])
    evaluate_run(run, ("sampled",))
    saved = json.loads((run / "breakdown.json").read_text())
    assert set(saved["test"]) == {"full", "sampled"}
    assert set(json.loads((run / "metrics.json").read_text())["test"]["full"]) >= {"NDCG@10", "HR@10"}


def test_breakdown_command_prints_the_table_and_names_missing_protocols(tiny_prepared, tmp_path):
    from typer.testing import CliRunner

    from auxrec.cli import USER_ERROR_EXIT_CODE, app
    from auxrec.experiments.runs import train_run

    run = tmp_path / "run"
    train_run("poprec", tiny_prepared.path, run, protocols=("full",))
    runner = CliRunner()
    shown = runner.invoke(app, ["breakdown", str(run)], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert all(word in shown.output for word in ("popularity", "tail", "cold", "repeated", "valid_test_time"))
    (run / "breakdown.json").unlink()  # a run from before breakdown.json: computed from its ranks
    assert runner.invoke(app, ["breakdown", str(run)], catch_exceptions=False).output == shown.output
    missing = runner.invoke(app, ["breakdown", str(run), "--protocol", "sampled"], catch_exceptions=False)
    assert missing.exit_code == USER_ERROR_EXIT_CODE and "Traceback" not in missing.output
    assert "auxrec evaluate" in " ".join(missing.output.split())
