"""Property: `auxrec prepare` on any small interaction table either gives a correct
leave-one-out split or a one-line error with exit code 2, never a traceback (issue 16)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from auxrec.cli import USER_ERROR_EXIT_CODE, app
from auxrec.data.dataset import PreparedDataset

runner = CliRunner()

ids = st.one_of(st.integers(-5, 30).map(str), st.sampled_from(["a", "b", "ü", "用户", " x", "", "1.5"]))
timestamps = st.one_of(
    st.integers(-10, 50).map(str),
    st.sampled_from(["1e30", "-1e30", "inf", "nan", "", "1.5", "9223372036854775807", "abc", "2020-01-01"]),
)
# Half the tables are clean (small integer ids and times, so users reach 3 interactions),
# half mix in odd ids and timestamps that must be refused with one line.
clean_rows = st.lists(st.tuples(st.integers(1, 6).map(str), st.integers(1, 12).map(str),
                                st.integers(0, 20).map(str)), min_size=0, max_size=40)
rows = st.one_of(clean_rows, st.lists(st.tuples(ids, ids, timestamps), min_size=0, max_size=40))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows, k_core=st.integers(0, 3))
def test_prepare_splits_correctly_or_fails_cleanly(rows: list[tuple[str, str, str]], k_core: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        source, out = Path(folder) / "source", Path(folder) / "prepared"
        source.mkdir()
        text = "user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows)
        (source / "interactions.csv").write_text(text, encoding="utf-8")
        result = runner.invoke(app, ["prepare", "generic", "--source", str(source), "--out", str(out),
                                     "--k-core", str(k_core)])
        if result.exit_code != 0:
            assert result.exit_code == USER_ERROR_EXIT_CODE, (result.output, result.exception)
            assert isinstance(result.exception, SystemExit), result.exception
            assert not out.exists()
            event("refused with a one-line error")
            return
        event("prepared")
        check_leave_one_out(PreparedDataset.load(out))


def check_leave_one_out(dataset: PreparedDataset) -> None:
    """Per user, in time order: training items, then one validation and one test target
    (users with fewer than 3 interactions are training-only)."""
    table = dataset.interactions
    assert len(table) == dataset.manifest["n_interactions"]
    for _, user_rows in table.groupby("user", sort=False):
        splits = user_rows["split"].astype(str).tolist()
        times = user_rows["timestamp"].to_numpy()
        assert np.all(np.diff(times) >= 0), "a history is out of time order"
        if len(splits) < 3:
            assert set(splits) == {"train"}
        else:
            assert splits[-2:] == ["valid", "test"] and set(splits[:-2]) == {"train"}
    counts = pd.Series(table["split"].astype(str)).value_counts()
    assert counts.get("valid", 0) == counts.get("test", 0) == dataset.manifest["n_valid"]
