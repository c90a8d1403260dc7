"""The package layout is a promise: stages import only earlier stages and the shared layers,
nothing imports the CLI, there are no import cycles (also none hidden inside functions), and
`evalkit --help` stays light. Read from the source with `ast`, so every import counts."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "evalkit"
SHARED = {"": 0, "errors": 0, "trial": 0, "io": 0, "register": 1}  # "" is evalkit/__init__
STAGES = ["allocation", "delivery", "turnover", "monitoring", "audit", "power", "analysis",
          "examples", "cli"]
MAX_FUNCTION_LINES = 60


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every evalkit module a file imports, at top level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("evalkit")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("evalkit"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _rank(top: str) -> float:
    """Shared layers come first (errors, trial, io, then register), then stages in order."""
    if top in SHARED:
        return SHARED[top]
    if top in STAGES:
        return 2 + STAGES.index(top)
    return float("inf")


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name}
            for name, path in modules.items()}


def test_every_top_level_name_is_a_known_stage_or_shared_layer():
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    unknown = names - set(SHARED) - set(STAGES) - {"__init__", "__main__"}
    assert not unknown, f"modules outside the stage layout: {sorted(unknown)}"


def test_stages_import_only_earlier_stages_and_shared_layers():
    backwards = []
    for module, targets in _graph().items():
        top = _top(module)
        if module in {"evalkit", "evalkit.__main__"}:
            continue
        for target in targets:
            if _top(target) != top and _rank(_top(target)) > _rank(top):
                backwards.append(f"{module} -> {target}")
    assert not backwards, "imports against the data flow:\n" + "\n".join(sorted(backwards))


def test_nothing_but_the_entry_point_imports_the_cli():
    importers = [m for m, targets in _graph().items()
                 if any(_top(t) == "cli" for t in targets)
                 and _top(m) != "cli" and m != "evalkit.__main__"]
    assert not importers


def test_no_import_cycles_between_modules():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _long_functions() -> list[str]:
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} "
                                 f"({length} lines)")
    return found


def test_no_function_is_longer_than_a_screen():
    assert not _long_functions()


@pytest.mark.parametrize("heavy", ["scipy", "statsmodels", "matplotlib", "openpyxl"])
def test_help_does_not_import_heavy_libraries(heavy):
    code = ("import sys\nfrom evalkit.cli import app\n"
            "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
            f"print({heavy!r} in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().endswith("False"), f"`evalkit --help` imports {heavy}"
