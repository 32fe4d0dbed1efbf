"""`auxrec reproduce` end to end on tiny synthetic data: runs, reuse, tables, figures, CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from auxrec.cli import USER_ERROR_EXIT_CODE, app
from auxrec.exceptions import ConfigError
from auxrec.experiments.plan import ABLATION_ROWS, TABLE1, SeedCounts, expand_targets, planned_runs
from auxrec.experiments.reproduce import reproduce
from auxrec.experiments.run_folder import RunSettings
from auxrec.experiments.specs import find_spec, load_spec

TINY_SPEC = """
name = "tiny-synthetic"
protocols = ["sampled", "full"]
[data]
loader = "synthetic"
synthetic_preset = "tiny"
synthetic_overrides = { n_users = 80, n_items = 160, images = true, image_size = 8 }
[seeds]
table1 = 1
table2 = 2
table3 = 1
[training]
epochs = 1
batch_size = 64
eval_every = 1
[models.sasrec.model]
max_length = 12
hidden_dim = 16
[models.bert4rec.model]
max_length = 12
hidden_dim = 16
[models.kebert4rec.model]
max_length = 12
hidden_dim = 16
[models.bpr.training]
epochs = 1
[models.transrec.training]
epochs = 1
[figures]
attention_set_size = 5
"""


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("reproduce")
    spec_path = root / "tiny.toml"
    spec_path.write_text(TINY_SPEC)
    spec = load_spec(spec_path)
    lines: list[str] = []
    summary = reproduce(spec, ["all"], root / "work", root / "reports", log=lines.append, progress=False)
    return {"root": root, "spec": spec, "summary": summary, "lines": lines}


def test_plan_covers_every_table_cell_once() -> None:
    plan = planned_runs(expand_targets(["all"]), SeedCounts(table1=1, table2=2, table3=1))
    assert len(plan) == len(set(plan))
    # Table 1 (8) + seed 1 of the 4 Table-2 variants + Table 3 without its 2 shared cells.
    assert len(plan) == len(TABLE1) + 4 + 2 * (len(ABLATION_ROWS) - 1)


def test_reproduce_all_writes_every_report(reproduced: dict) -> None:
    reports = reproduced["root"] / "reports"
    for protocol in ("sampled", "full"):
        for table in ("table1", "table2", "table3"):
            for suffix in (".md", ".csv", ".tex"):
                assert (reports / f"{table}-{protocol}{suffix}").is_file()
    for figure in ("figure2-case-study.png", "figure3-attention.png", "figure3-elbow.png"):
        assert (reports / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    analysis = json.loads((reports / "figure3-attention.json").read_text())
    assert len(analysis["similarity"]) == analysis["n_clusters"]
    table1 = (reports / "table1-full.md").read_text()
    assert all(v.label in table1 for v in TABLE1)
    index = (reports / "README.md").read_text()
    assert "Table 1" in index and "Table 3" in index and "figure3-attention.png" in index
    planned = len(planned_runs(expand_targets(["all"]), SeedCounts(1, 2, 1)))
    assert reproduced["summary"]["runs"] == planned
    # Every run and tuning trial was trained by this invocation; the index says so and where.
    assert reproduced["summary"]["trained"] > 0
    assert f"| {planned} ({reproduced['summary']['trained']}) |" in index
    frame = pd.read_csv(reports / "runs.csv")
    assert frame["trained_on"].str.startswith("cpu ").all()
    device = frame["trained_on"].iloc[0]
    assert f"| {device} | {planned} |" in index


def test_tables_1_and_2_are_also_given_per_target_group_from_the_runs_breakdowns(reproduced: dict) -> None:
    reports = reproduced["root"] / "reports"
    runs = reproduced["root"] / "work" / "runs"
    for protocol in ("sampled", "full"):
        for table in ("table1-groups", "table2-groups"):
            for suffix in (".md", ".csv", ".tex"):
                assert (reports / f"{table}-{protocol}{suffix}").is_file()
        groups = pd.read_csv(reports / f"table1-groups-{protocol}.csv", index_col=0)
        breakdown = json.loads((runs / "sasrec" / "seed-0" / "breakdown.json").read_text())["test"][protocol]
        for value in ("novel", "repeated"):
            cell = breakdown["history"][value]
            if cell["users"]:
                row = next(name for name in groups.index if name.startswith(f"history: {value} "))
                assert groups.at[row, "SASRec"] == pytest.approx(cell["NDCG@10"])
        saved = json.loads((reports / f"table2-groups-{protocol}.json").read_text())["tests"]
        assert {test["with"] for test in saved} == {"SASRec+", "BERT4Rec+"}
    index = (reports / "README.md").read_text()
    assert index.index("**Table 1 — ") < index.index("**Table 1 by target group") < index.index("**Table 2 — ")


def test_table2_p_values_follow_from_the_saved_per_seed_results(reproduced: dict) -> None:
    saved = json.loads((reproduced["root"] / "reports" / "table2-sampled.json").read_text())
    runs = reproduced["root"] / "work" / "runs"
    for without, with_aux, key in (("SASRec", "SASRec+", "sasrec"), ("BERT4Rec", "BERT4Rec+", "bert4rec")):
        per_seed = {int(s): v for s, v in saved["per_seed_ndcg@10"][with_aux].items()}
        for seed, value in per_seed.items():
            metrics = json.loads((runs / f"{key}+text-image-tabular.concat" / f"seed-{seed}" / "metrics.json").read_text())
            assert metrics["test"]["sampled"]["NDCG@10"] == value
        a = [saved["per_seed_ndcg@10"][without][str(s)] for s in range(2)]
        b = [saved["per_seed_ndcg@10"][with_aux][str(s)] for s in range(2)]
        if a != b and len({y - x for x, y in zip(a, b)}) > 1:
            assert saved["tests"][with_aux]["p"] == pytest.approx(stats.ttest_rel(b, a).pvalue)


def test_rerun_reuses_finished_runs_and_renders_from_them(reproduced: dict) -> None:
    root = reproduced["root"]
    before = (root / "reports" / "table2-sampled.json").read_text()
    lines: list[str] = []
    summary = reproduce(reproduced["spec"], ["table2"], root / "work", root / "reports", log=lines.append,
                        progress=False)
    run_lines = [line for line in lines if line.startswith("[")]
    assert run_lines and all(line.endswith("(reused)") for line in run_lines)
    assert (root / "reports" / "table2-sampled.json").read_text() == before
    assert summary["wall_seconds"] < 60
    assert summary["trained"] == 0


def test_changed_settings_retrain_only_that_run(reproduced: dict, tmp_path: Path) -> None:
    root = reproduced["root"]
    spec = reproduced["spec"].model_copy(update={
        "models": {**reproduced["spec"].models,
                   "bpr": reproduced["spec"].models["bpr"].model_copy(update={"training": {"epochs": 2}})}})
    lines: list[str] = []
    reproduce(spec, ["table1"], root / "work", tmp_path / "reports", log=lines.append, progress=False)
    retrained = [line for line in lines if line.startswith("[") and not line.endswith("(reused)")]
    assert len(retrained) == 1 and "BPR" in retrained[0]
    assert any(line.endswith("differ from the spec; training it again") for line in lines)


def test_cli_renders_one_protocol_from_saved_runs(reproduced: dict) -> None:
    root = reproduced["root"]
    result = CliRunner().invoke(app, ["reproduce", "table1", "--spec", str(root / "tiny.toml"), "--workdir",
                                      str(root / "work"), "--reports", str(root / "cli-reports"), "--protocol",
                                      "full", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (root / "cli-reports" / "table1-full.md").is_file()
    assert not (root / "cli-reports" / "table1-sampled.md").exists()
    assert "Table 1" in result.output


def test_dry_run_says_what_is_left_and_trains_nothing(reproduced: dict, tmp_path: Path) -> None:

    import torch

    work = tmp_path / "work"
    shutil.copytree(reproduced["root"] / "work", work)
    (work / "runs" / "bpr" / "seed-0" / "metrics.json").unlink()  # as if never finished
    finished = work / "runs" / "sasrec" / "seed-1"  # as if interrupted after epoch 1
    staging = finished.with_name(".seed-1.partial")
    staging.mkdir()
    shutil.copy(finished / "config.json", staging / "config.json")
    torch.save({"epoch": 1}, staging / "checkpoint.pt")
    shutil.rmtree(finished)
    before = sorted(str(p) for p in work.rglob("*"))

    result = CliRunner().invoke(app, ["reproduce", "all", "--spec", str(reproduced["root"] / "tiny.toml"),
                                      "--workdir", str(work), "--reports", str(tmp_path / "reports"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "to train: BPR seed 0" in result.output
    assert "partial: SASRec seed 1 (epoch 1 saved)" in result.output
    left = [line for line in result.output.splitlines() if line.startswith(("to train", "partial", "waits"))]
    assert len(left) == 2
    # Time left: SASRec's from its finished seed 0; BPR has no finished run to go by.
    assert "h of training left" in result.output and "1 more with no finished run" in result.output
    assert "wall time with --jobs" not in result.output
    with_jobs = CliRunner().invoke(app, ["reproduce", "all", "--spec", str(reproduced["root"] / "tiny.toml"),
                                         "--workdir", str(work), "--reports", str(tmp_path / "reports"), "--dry-run",
                                         "--jobs", "2"])
    assert "h of wall time with --jobs 2" in with_jobs.output
    assert sorted(str(p) for p in work.rglob("*")) == before and not (tmp_path / "reports").exists()


def test_a_second_reproduction_may_render_but_not_train_in_a_busy_work_folder(reproduced: dict,
                                                                               tmp_path: Path) -> None:

    from auxrec.io import exclusive_folder

    work = tmp_path / "work"
    shutil.copytree(reproduced["root"] / "work", work)
    command = ["reproduce", "table1", "--spec", str(reproduced["root"] / "tiny.toml"), "--workdir", str(work),
               "--no-progress"]
    with exclusive_folder(work, "a long reproduction"):
        rendered = CliRunner().invoke(app, [*command, "--reports", str(tmp_path / "a")])
        assert rendered.exit_code == 0, rendered.output  # every run finished: nothing to write in work/
        (work / "runs" / "bpr" / "seed-0" / "metrics.json").unlink()
        refused = CliRunner().invoke(app, [*command, "--reports", str(tmp_path / "b")])
        status = CliRunner().invoke(app, [*command, "--reports", str(tmp_path / "b"), "--dry-run"])
    assert status.exit_code == 0 and f"training now: pid {os.getpid()} holds" in status.output
    assert refused.exit_code == USER_ERROR_EXIT_CODE
    assert "is in use by pid" in refused.output and "Traceback" not in refused.output
    assert not (work / "runs" / "bpr" / "seed-0" / "metrics.json").exists()


def test_finished_only_renders_interim_tables_from_what_is_done(reproduced: dict, tmp_path: Path) -> None:

    from auxrec.io import exclusive_folder

    work = tmp_path / "work"
    shutil.copytree(reproduced["root"] / "work", work)
    shutil.rmtree(work / "runs" / "sasrec" / "seed-1")  # still training, say
    before = sorted(str(p) for p in work.rglob("*") if p.name != ".lock")
    with exclusive_folder(work, "a long reproduction"):  # finished-only needs no lock
        result = CliRunner().invoke(app, ["reproduce", "table1,table2,figure2", "--spec",
                                          str(reproduced["root"] / "tiny.toml"), "--workdir", str(work),
                                          "--reports", str(tmp_path / "interim"), "--finished-only", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert sorted(str(p) for p in work.rglob("*") if p.name != ".lock") == before  # nothing trained or copied
    saved = json.loads((reproduced["root"] / "reports" / "table2-sampled.json").read_text())["per_seed_ndcg@10"]
    interim = json.loads((tmp_path / "interim" / "table2-sampled.json").read_text())
    assert interim["per_seed_ndcg@10"]["SASRec"] == {"0": saved["SASRec"]["0"]}
    assert interim["tests"]["SASRec+"]["n"] == 1 and interim["tests"]["BERT4Rec+"]["n"] == 2
    assert "interim" in (tmp_path / "interim" / "table1-sampled.md").read_text()
    assert (tmp_path / "interim" / "figure2-case-study.png").is_file()
    assert "interim: finished runs only" in (tmp_path / "interim" / "README.md").read_text()


def test_dry_run_before_tuning_shows_runs_waiting_for_it(tmp_path: Path) -> None:
    from auxrec.experiments.reproduce import Reproduction

    spec_path = tmp_path / "tuned.toml"
    spec_path.write_text(TINY_SPEC + '\n[tuning]\ngrid = { learning_rate = [1e-3, 3e-3] }\n')
    spec = load_spec(spec_path)
    entries = Reproduction(spec, tmp_path / "work", tmp_path / "reports").status(["table1"], SeedCounts(1, 1, 1))
    trials = [e for e in entries if e.stage == "tuning"]
    runs = {e.label: e.state for e in entries if e.stage == "run"}
    assert len(trials) == 14 and all(e.state == "to train" for e in trials)
    assert runs["PopRec"] == "to train" and runs["SASRec+"] == "waits for tuning"
    with pytest.raises(ConfigError, match="nothing has finished"):
        reproduce(spec, ["table1"], tmp_path / "work", tmp_path / "reports", finished_only=True, progress=False)


def test_user_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["reproduce", "table9", "--spec", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and "not found" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[data]\nloader = "synthetic"\nsurprise = 1\n')
    result = runner.invoke(app, ["reproduce", "table1", "--spec", str(bad)])
    assert result.exit_code == 2 and "surprise" in result.output
    with pytest.raises(ConfigError, match="no reproduction spec"):
        find_spec("no-such-dataset")


def test_shipped_specs_are_valid() -> None:
    folder = Path(__file__).resolve().parents[2] / "configs"
    specs = sorted(folder.glob("*.toml"))
    assert {"ml-100k", "synthetic"} <= {p.stem for p in specs}
    for path in specs:
        load_spec(path)


def test_tuning_gives_every_model_the_same_trials_and_reuses_the_winner(tmp_path: Path) -> None:

    spec_path = tmp_path / "tuned.toml"
    spec_path.write_text(TINY_SPEC + '\n[tuning]\ngrid = { learning_rate = [1e-3, 3e-3] }\n')
    spec = load_spec(spec_path)
    lines: list[str] = []
    reproduce(spec, ["table1"], tmp_path / "work", tmp_path / "reports", log=lines.append, progress=False)
    record = json.loads((tmp_path / "reports" / "tuning.json").read_text())
    tuned = {label: entry for label, entry in record["models"].items() if entry["trials"]}
    assert set(tuned) == {v.label for v in TABLE1} - {"PopRec"}
    assert all(len(entry["trials"]) == 2 for entry in tuned.values())
    # Each seed-0 run is its model's winning trial, not a second training.
    run_lines = [line for line in lines if line.startswith("[")]
    assert run_lines and all(line.endswith("(reused)") for line in run_lines if "PopRec" not in line)
    chosen = tuned["SASRec"]["chosen"]["learning_rate"]
    config_path = tmp_path / "work" / "runs" / "sasrec" / "seed-0" / "config.json"
    config = json.loads(config_path.read_text())
    assert config["training"]["learning_rate"] == chosen
    # A seed-0 run left from an earlier choice is replaced by the winning trial, not retrained.
    config["training"]["learning_rate"] = 1e-3 if chosen == 3e-3 else 3e-3
    config_path.write_text(json.dumps(config))
    lines.clear()
    reproduce(spec, ["table1"], tmp_path / "work", tmp_path / "reports", log=lines.append, progress=False)
    assert all(line.endswith("(reused)") for line in lines if line.startswith("["))
    assert any("tuning no longer chooses" in line for line in lines)
    assert json.loads(config_path.read_text())["training"]["learning_rate"] == chosen
    # An interim report reads a winning trial where it lies, before it is copied to seed 0.
    shutil.rmtree(config_path.parent)
    lines.clear()
    reproduce(spec, ["table1"], tmp_path / "work", tmp_path / "interim", log=lines.append, progress=False,
              finished_only=True)
    assert not config_path.parent.exists()
    assert "finished runs only: 8 of 8 planned runs" in lines
    import csv

    with open(tmp_path / "interim" / "runs.csv", newline="") as stream:
        labels = {row["label"] for row in csv.DictReader(stream)}
    assert labels == {v.label for v in TABLE1}  # SASRec's seed 0 read from its winning trial
    # A model whose tuning is unfinished has no chosen values yet: its runs are left out.
    (tmp_path / "work" / "tuning" / "bert4rec" / "trial-1" / "metrics.json").unlink()
    lines.clear()
    reproduce(spec, ["table1"], tmp_path / "work", tmp_path / "interim", log=lines.append, progress=False,
              finished_only=True)
    assert "tuning BERT4Rec: not finished; its runs are left out" in lines
    assert "finished runs only: 7 of 8 planned runs" in lines


def test_parallel_jobs_give_the_same_runs_as_training_inline(tmp_path: Path) -> None:
    """--jobs 2 trains in worker processes (one thread each on 2 cores) with the same results."""
    import torch

    from auxrec.experiments.parallel import RunExecutor

    spec_path = tmp_path / "tuned.toml"
    spec_path.write_text(TINY_SPEC + '\n[tuning]\ngrid = { learning_rate = [2e-3] }\n')
    spec = load_spec(spec_path)
    threads = RunExecutor(2).threads
    results = {}
    for jobs in (1, 2):
        lines: list[str] = []
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)  # what each worker uses, so the numbers can be compared exactly
        try:
            summary = reproduce(spec, ["table2"], tmp_path / f"work-{jobs}", tmp_path / f"reports-{jobs}",
                                log=lines.append, progress=False, jobs=jobs)
        finally:
            torch.set_num_threads(previous)
        assert summary["jobs"] == jobs and summary["runs"] == 8
        assert sum(line.startswith("tuning") and "trial" in line for line in lines) == 4
        results[jobs] = json.loads((tmp_path / f"reports-{jobs}" / "table2-sampled.json").read_text())
    assert results[1]["per_seed_ndcg@10"] == results[2]["per_seed_ndcg@10"]


def test_jobs_must_be_positive(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["reproduce", "table1", "--dataset", "synthetic", "--jobs", "0",
                                      "--workdir", str(tmp_path)])
    assert result.exit_code == 2 and "--jobs" in result.output


BERT4REC_CONFIG = {"max_length": 12}


def same_settings(saved: dict, training: dict, epochs_trained: int) -> bool:
    """Whether a saved BERT4Rec run (seed 0) is the run ``training`` asks for."""
    return RunSettings("bert4rec", 0, BERT4REC_CONFIG, training, ()).matches({**saved, "seed": 0}, epochs_trained)


def test_raising_min_epochs_keeps_runs_that_trained_that_long_anyway() -> None:
    model_config = BERT4REC_CONFIG
    saved = {"model": "bert4rec", "model_config": model_config, "item_features": {},
             "training": {"patience": 2, "epochs": 200, "progress": False}}  # trained before min_epochs existed
    wanted = {"patience": 2, "epochs": 200, "min_epochs": 40, "progress": True}
    assert same_settings(saved, wanted, 88)  # same trajectory
    assert not same_settings(saved, wanted, 12)  # it stopped early
    lower = {"model": "bert4rec", "model_config": model_config, "item_features": {},
             "training": {"patience": 2, "epochs": 200, "min_epochs": 60}}
    assert not same_settings(lower, wanted, 88)  # might stop sooner now


def test_another_epoch_cap_keeps_runs_that_early_stopping_ended_before_either_cap() -> None:
    model_config = BERT4REC_CONFIG
    saved = {"model": "bert4rec", "model_config": model_config, "item_features": {},
             "training": {"patience": 4, "epochs": 200}}
    raised = {"patience": 4, "epochs": 400}
    assert same_settings(saved, raised, 188)  # stopped by patience
    assert not same_settings(saved, raised, 200)  # the cap stopped it
    lowered = {"patience": 4, "epochs": 100}
    assert same_settings(saved, lowered, 96)
    assert not same_settings(saved, lowered, 188)  # would be cut at 100


def test_a_run_without_weights_renders_but_cannot_be_evaluated_again(reproduced: dict, tmp_path: Path) -> None:
    from auxrec.exceptions import RunError
    from auxrec.experiments.runs import evaluate_run

    run = tmp_path / "seed-1"
    shutil.copytree(reproduced["root"] / "work" / "runs" / "sasrec" / "seed-1", run)
    (run / "model" / "weights.pt").unlink()  # as runs brought back from another machine without weights
    with pytest.raises(RunError, match="kept its metrics but not its model weights"):
        evaluate_run(run, ("popularity",))


def test_cached_features_train_on_what_the_work_folder_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--cached-features: a work folder copied without its raw data or encoders still trains."""
    from auxrec.experiments.reproduce import Reproduction

    pytest.importorskip("xgboost")
    spec_path = tmp_path / "tiny.toml"
    spec_path.write_text(TINY_SPEC.replace('image_size = 8 }', 'image_size = 8 }\nembed = ["tabular"]'))
    spec = load_spec(spec_path)
    work, reports = tmp_path / "work", tmp_path / "reports"
    # Nothing embedded yet: a one-line error from the CLI, saying what to do.
    result = CliRunner().invoke(app, ["reproduce", "table1", "--spec", str(spec_path), "--workdir", str(work),
                                      "--reports", str(reports), "--cached-features", "--no-progress"])
    assert result.exit_code == USER_ERROR_EXIT_CODE
    assert "no usable tabular features" in result.output and "Traceback" not in result.output
    Reproduction(spec, work, reports, log=lambda _: None, progress=False).ensure_data()  # embeds tabular

    def no_embedding(*args: object, **kwargs: object) -> None:
        raise AssertionError("--cached-features must not embed")

    monkeypatch.setattr("auxrec.features.embed.embed_dataset", no_embedding)
    lines: list[str] = []
    Reproduction(spec, work, reports, log=lines.append, progress=False, cached_features=True).ensure_data()
    assert any(line.startswith("tabular:") and "cached" in line for line in lines)
