"""The README's Python example runs as written (in a fresh folder, in its own interpreter)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_example() -> str:
    section = README.read_text(encoding="utf-8").split("## In Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README.md has no Python example under '## In Python'"
    return match.group(1)


def test_the_readme_python_example_runs(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", python_example()], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert 0 < float(lines[0]) <= 1  # the test NDCG@10
    for line in lines[1:]:  # lists of original item ids
        items = eval(line)  # noqa: S307 (the example prints Python lists of strings)
        assert items and all(isinstance(item, str) for item in items)
    assert len(lines) == 4
