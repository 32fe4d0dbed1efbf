"""Bad and unusual input to the commands, run as a user runs them (issue 16).

Each case runs the real `auxrec` command in a subprocess, so stderr shows exactly what a
user sees, and asserts: exit code 2, one line on stderr that names the value and the fix,
no traceback, and no input or earlier output changed. Inputs are generated in tmp.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from auxrec.exceptions import CheckpointError
from auxrec.io import OUTPUT_MARKER
from auxrec.training.trainer import _save_checkpoint, load_checkpoint

USER_ERROR = 2


def auxrec(*args: object, check_ok: bool = False, preexec=None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "auxrec.cli", *map(str, args)], capture_output=True, text=True,
                            timeout=300, preexec_fn=preexec, env={**os.environ, "COLUMNS": "200"})
    if check_ok:
        assert result.returncode == 0, result.stderr
    return result


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == USER_ERROR, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def snapshot(*folders: Path) -> dict[str, str]:
    """Every file under ``folders`` (hidden ones too) → its SHA-256."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def write_interactions(folder: Path, rows: list[tuple[object, object, object]], schema: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user,item,timestamp", *(",".join(map(str, row)) for row in rows)]
    (folder / "interactions.csv").write_text("\n".join(lines) + "\n")
    if schema is not None:
        (folder / "auxrec-source.json").write_text(json.dumps(schema))
    return folder


def sequences(n_users: int = 6, length: int = 5) -> list[tuple[object, object, object]]:
    return [(user, (user + step) % 9 + 1, 100 * step) for user in range(1, n_users + 1) for step in range(length)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny synthetic preset, prepared, and a finished PopRec and SASRec run on it."""
    root = tmp_path_factory.mktemp("tiny")
    auxrec("generate", "--preset", "tiny", "--out", root / "source", check_ok=True)
    auxrec("prepare", "synthetic", "--source", root / "source", "--out", root / "prepared", check_ok=True)
    auxrec("train", "poprec", "--data", root / "prepared", "--out", root / "poprec", "--protocol", "full",
           "--validation-protocol", "full", check_ok=True)
    auxrec("train", "sasrec", "--data", root / "prepared", "--out", root / "sasrec", "--epochs", "1",
           "--protocol", "full", "--validation-protocol", "full", "--set", "hidden_dim=16", "--max-len", "10",
           "--no-progress", check_ok=True)
    return {"root": root, "source": root / "source", "prepared": root / "prepared", "poprec": root / "poprec",
            "sasrec": root / "sasrec"}


# -- 1. --overwrite never deletes an input or a folder auxrec did not write -------------------------------

def test_prepare_out_equal_to_source_keeps_the_source(tmp_path: Path) -> None:
    source = write_interactions(tmp_path / "data", sequences())
    before = snapshot(source)
    line = assert_one_line_error(auxrec("prepare", "generic", "--source", source, "--out", source, "--overwrite"),
                                 "is this command's input", "choose another --out")
    assert snapshot(source) == before, line


def test_prepare_out_holding_the_source_keeps_it(tmp_path: Path) -> None:
    source = write_interactions(tmp_path / "project" / "raw", sequences())
    before = snapshot(tmp_path)
    assert_one_line_error(auxrec("prepare", "generic", "--source", source, "--out", tmp_path / "project",
                                 "--overwrite"), "holds this command's input")
    assert snapshot(tmp_path) == before


def test_train_out_equal_to_the_prepared_data_keeps_it(tiny: dict[str, Path]) -> None:
    before = snapshot(tiny["prepared"])
    assert_one_line_error(auxrec("train", "poprec", "--data", tiny["prepared"], "--out", tiny["prepared"],
                                 "--overwrite"), "is this command's input")
    assert snapshot(tiny["prepared"]) == before


def test_overwrite_refuses_a_folder_auxrec_did_not_write(tmp_path: Path) -> None:
    source = write_interactions(tmp_path / "data", sequences())
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("three years of work")
    assert_one_line_error(auxrec("prepare", "generic", "--source", source, "--out", mine, "--overwrite"),
                          "only replaces folders auxrec wrote")
    assert (mine / "thesis.tex").read_text() == "three years of work"


def test_overwrite_refuses_another_kind_of_output(tiny: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "other-prepared"
    shutil.copytree(tiny["prepared"], other)
    before = snapshot(other)
    assert_one_line_error(auxrec("train", "poprec", "--data", tiny["prepared"], "--out", other, "--overwrite"),
                          "holds a prepared dataset, not a run")
    assert snapshot(other) == before


def test_overwrite_replaces_auxrecs_own_output(tmp_path: Path) -> None:
    source = write_interactions(tmp_path / "data", sequences())
    out = tmp_path / "prepared"
    auxrec("prepare", "generic", "--source", source, "--out", out, check_ok=True)
    assert (out / OUTPUT_MARKER).is_file()
    assert_one_line_error(auxrec("prepare", "generic", "--source", source, "--out", out), "pass --overwrite")
    auxrec("prepare", "generic", "--source", source, "--out", out, "--overwrite", check_ok=True)


# -- 2. timestamps out of range are an error naming the row -----------------------------------------------

@pytest.mark.parametrize("bad", ["1e30", "inf", "-9.3e9"])
def test_out_of_range_timestamp_names_the_row(tmp_path: Path, bad: str) -> None:
    rows = sequences()
    rows[3] = (rows[3][0], rows[3][1], bad)
    source = write_interactions(tmp_path / "data", rows)
    assert_one_line_error(auxrec("prepare", "generic", "--source", source, "--out", tmp_path / "out"),
                          "data row 4", "not a finite time")
    assert not (tmp_path / "out").exists()


# -- 3. a loss that becomes non-finite stops the run --------------------------------------------------------

def test_diverging_training_stops_without_a_finished_run(tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert_one_line_error(auxrec("train", "sasrec", "--data", tiny["prepared"], "--out", out, "--lr", "1e30",
                                 "--batch-size", "8", "--epochs", "2", "--validation-protocol", "full",
                                 "--protocol", "full", "--no-progress"), "diverged", "lower --lr")
    assert not out.exists()


# -- 4. a misspelt model or setting in a spec is an error, --dry-run included --------------------------------

@pytest.mark.parametrize(("change", "expected"), [
    (("[models.sasrec.model]", "[models.sasrc.model]"), "unknown model 'sasrc'"),
    (("hidden_dim = 32", "hiden_dim = 32"), "unknown setting(s) hiden_dim"),
    (("patience = 2", "patience = 0"), "TrainingConfig.patience"),
])
def test_spec_mistakes_are_errors_in_dry_run(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    spec = (Path(__file__).resolve().parents[2] / "configs" / "synthetic.toml").read_text()
    assert change[0] in spec
    path = tmp_path / "bad.toml"
    path.write_text(spec.replace(change[0], change[1], 1))
    assert_one_line_error(auxrec("reproduce", "all", "--spec", path, "--dry-run", "--workdir", tmp_path / "w"),
                          expected)
    assert not (tmp_path / "w").exists()


# -- 5. out-of-range settings fail before any work ------------------------------------------------------------

@pytest.mark.parametrize(("args", "expected"), [
    (("--set", "dropout=2"), "SASRecConfig.dropout"),
    (("--dropout", "-0.5"), "SASRecConfig.dropout"),
    (("--lr", "-1"), "TrainingConfig.learning_rate"),
    (("--batch-size", "0"), "TrainingConfig.batch_size"),
    (("--set", "hidden_dim=15", "--set", "n_heads=2"), "hidden_dim 15"),
    (("--set", "max_length=0"), "SASRecConfig.max_length"),
    (("--epochs", "0"), "TrainingConfig.epochs"),
    (("--validation-protocol", "ful"), "TrainingConfig.validation_protocol"),
])
def test_bad_settings_fail_before_training(tiny: dict[str, Path], tmp_path: Path, args: tuple[str, ...],
                                           expected: str) -> None:
    assert_one_line_error(auxrec("train", "sasrec", "--data", tiny["prepared"], "--out", tmp_path / "run", *args),
                          expected)
    assert not list(tmp_path.iterdir())


def test_negative_k_core_is_a_one_line_error(tmp_path: Path) -> None:
    source = write_interactions(tmp_path / "data", sequences())
    assert_one_line_error(auxrec("prepare", "generic", "--source", source, "--out", tmp_path / "out",
                                 "--k-core", "-3"), "--k-core=-3")


# -- 6. damaged files name themselves --------------------------------------------------------------------------

def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_metrics_json(tiny: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny["poprec"], run)
    truncate(run / "metrics.json")
    assert_one_line_error(auxrec("evaluate", run, "--protocol", "full"), "metrics.json is damaged")


def test_truncated_weights(tiny: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny["sasrec"], run)
    truncate(run / "model" / "weights.pt")
    assert_one_line_error(auxrec("evaluate", run, "--protocol", "full"), "is damaged", "train it again")


def test_truncated_checkpoint_on_resume(tiny: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    staging = tmp_path / ".run.partial"
    staging.mkdir()
    shutil.copy(tiny["sasrec"] / "config.json", staging / "config.json")
    torch.save({"epoch": 1, "model": {"x": torch.zeros(1000)}}, staging / "checkpoint.pt")
    truncate(staging / "checkpoint.pt")
    result = auxrec("train", "sasrec", "--data", tiny["prepared"], "--out", run, "--epochs", "1", "--protocol", "full",
                    "--validation-protocol", "full", "--set", "hidden_dim=16", "--max-len", "10", "--resume",
                    "--no-progress")
    assert_one_line_error(result, "checkpoint.pt is damaged", "delete it")
    assert not run.exists()


# -- 8. a full disk while checkpointing keeps the previous checkpoint -----------------------------------------

def test_full_disk_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    _save_checkpoint(path, {"epoch": 1, "weights": torch.ones(10)})
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        with pytest.raises(CheckpointError, match="previous checkpoint is kept"):
            _save_checkpoint(path, {"epoch": 2, "weights": torch.ones(1_000_000)})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["weights"], torch.ones(10))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_full_disk_during_training_is_one_line(tiny: dict[str, Path], tmp_path: Path) -> None:
    def limit_file_size() -> None:  # in the child only: files beyond 48 KiB cannot be written
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (48 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    result = auxrec("train", "sasrec", "--data", tiny["prepared"], "--out", tmp_path / "run", "--epochs", "1",
                    "--protocol", "full", "--validation-protocol", "full", "--no-progress", preexec=limit_file_size)
    assert_one_line_error(result, "could not write the checkpoint", "--resume")
    assert not (tmp_path / "run").exists()


# -- 9. data with no validation or test targets ------------------------------------------------------------------

def test_no_evaluable_user_warns_at_prepare_and_refuses_to_train(tmp_path: Path) -> None:
    source = write_interactions(tmp_path / "data", sequences(n_users=8, length=2))
    prepared = tmp_path / "prepared"
    result = auxrec("prepare", "generic", "--source", source, "--out", prepared, check_ok=True)
    assert "warning:" in result.stderr and "no user has the 3 or more interactions" in result.stderr
    assert_one_line_error(auxrec("train", "sasrec", "--data", prepared, "--out", tmp_path / "run"),
                          "no validation or test targets")
    assert not (tmp_path / "run").exists()


# -- 10. a catalogue too small for sampled validation names the fix that works ------------------------------------

def test_small_catalogue_names_the_validation_protocol(tiny: dict[str, Path], tmp_path: Path) -> None:
    line = assert_one_line_error(auxrec("train", "sasrec", "--data", tiny["prepared"], "--out", tmp_path / "run"),
                                 "--validation-protocol full")
    assert not (tmp_path / "run").exists(), line  # found before the first epoch


# -- 11. mixed naive and zoned dates ------------------------------------------------------------------------------

def test_mixed_naive_and_zoned_dates_say_what_is_mixed(tmp_path: Path) -> None:
    rows = [(user, item, f"2020-01-0{item}" + ("T00:00:00+02:00" if user == 2 else ""))
            for user in (1, 2) for item in (1, 2, 3)]
    source = write_interactions(tmp_path / "data", rows,
                                schema={"interactions": {"path": "interactions.csv", "timestamp_unit": "datetime"}})
    assert_one_line_error(auxrec("prepare", "generic", "--source", source, "--out", tmp_path / "out"),
                          "mixes dates without a time zone", "+02:00")


# -- 12. accepted without a word before -----------------------------------------------------------------------------

def test_nul_byte_in_an_id_is_an_error(tmp_path: Path) -> None:
    rows = sequences()
    rows[2] = ("bad\x00user", rows[2][1], rows[2][2])
    source = write_interactions(tmp_path / "data", rows)
    assert_one_line_error(auxrec("prepare", "generic", "--source", source, "--out", tmp_path / "out"), "NUL")


def test_item_rows_without_interactions_are_counted(tmp_path: Path) -> None:
    source = write_interactions(tmp_path / "data", sequences(),
                                schema={"interactions": {"path": "interactions.csv"},
                                        "items": {"path": "items.csv", "text": ["title"]}})
    (source / "items.csv").write_text("item,title\n" + "".join(f"{i},item {i}\n" for i in range(1, 15)))
    result = auxrec("prepare", "generic", "--source", source, "--out", tmp_path / "out", check_ok=True)
    assert "5 item-table rows name items with no interaction" in " ".join(result.stdout.split())


# -- 13. prepared folders follow the user's umask ------------------------------------------------------------------

def test_prepared_folder_mode_follows_the_umask(tiny: dict[str, Path]) -> None:
    mask = os.umask(0)
    os.umask(mask)
    assert tiny["prepared"].stat().st_mode & 0o777 == 0o777 & ~mask
