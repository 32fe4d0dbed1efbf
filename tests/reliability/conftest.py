"""Shared by the reliability tests: every command's stderr can be collected in one file.

With ``AUXREC_STDERR_LOG=PATH`` set, each command these tests run (a subprocess, or the
CLI invoked in-process by the Hypothesis test) appends its stderr to PATH, so the issue's
check is ``grep -c Traceback PATH`` (0 expected) over the whole suite::

    AUXREC_STDERR_LOG=/tmp/stderr.log .venv/bin/pytest -q tests/reliability
"""

from __future__ import annotations

import os
import subprocess
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner


def _append(command: object, stderr: str) -> None:
    with Path(os.environ["AUXREC_STDERR_LOG"]).open("a", encoding="utf-8") as log:
        log.write(f"$ {command}\n{stderr}\n")


@pytest.fixture(autouse=True, scope="session")
def stderr_log() -> Iterator[None]:
    """Session-wide, so that commands run by module-scoped fixtures are logged too."""
    if not os.environ.get("AUXREC_STDERR_LOG"):
        yield
        return
    run, invoke = subprocess.run, CliRunner.invoke

    def logged_run(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        result = run(*args, **kwargs)
        if isinstance(result.stderr, str):
            _append(result.args, result.stderr)
        return result

    def logged_invoke(self: CliRunner, *args: Any, **kwargs: Any) -> Any:
        result = invoke(self, *args, **kwargs)
        # in-process: an uncaught exception is result.exception, not text on stderr
        error = result.exception
        stray = "" if error is None or isinstance(error, SystemExit) else "".join(
            traceback.format_exception(error))
        _append(args[1] if len(args) > 1 else kwargs.get("args"), result.output + stray)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess, "run", logged_run)
        patch.setattr(CliRunner, "invoke", logged_invoke)
        yield
