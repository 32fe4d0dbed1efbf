"""Worker pools: a killed reproduction leaves no worker training on behind it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from auxrec.experiments.parallel import exit_when_orphaned

ORPHANING_PARENT = """
import os
from auxrec.experiments.parallel import worker_pool

if __name__ == "__main__":
    pool = worker_pool(1, 1)
    print(pool.submit(os.getpid).result(), flush=True)
    os._exit(0)  # die without shutting the pool down, as under kill -9
"""


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    if not status.is_file():
        return False
    return "\\tZ" not in next(line for line in status.read_text().splitlines() if line.startswith("State:"))


def test_watcher_exits_once_the_parent_is_gone() -> None:
    exits: list[int] = []
    watcher = exit_when_orphaned(os.getppid() + 99_999, interval=0.01, exit=exits.append)  # "parent" died
    watcher.join(timeout=5)
    assert exits == [1]


def test_workers_exit_when_the_reproduction_is_killed(tmp_path: Path) -> None:
    if not Path("/proc").is_dir():
        import pytest

        pytest.skip("needs /proc to see whether the worker still runs")
    script = tmp_path / "parent.py"
    script.write_text(ORPHANING_PARENT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True)
    worker = int(done.stdout.strip())
    deadline = time.monotonic() + 20
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker), f"worker {worker} outlived its parent"


def test_a_killed_worker_is_a_one_line_error_not_a_traceback(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A worker killed from outside (say by the out-of-memory killer) breaks the pool."""
    import pytest

    from auxrec.exceptions import RunError
    from auxrec.experiments import parallel

    monkeypatch.setattr(parallel, "train_or_restart", _die)
    with pytest.raises(RunError, match="worker process died.*run the same command again"):
        parallel.RunExecutor(jobs=2).run([{}, {}], lambda *_: None)


def _die(arguments: dict) -> None:
    os._exit(9)  # as if killed
