"""The codebase's shape, held by a test: engine/ is subpackages whose names are the architecture,
imports run one way between them, and no module or function grows past what one reader holds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
MAX_TOP_LEVEL_ENGINE_MODULES = 8  # __init__ and the cross-cutting modules

# A group may import only groups of a lower rank (the top-level cross-cutting modules count as
# groups of their own). docs/ARCHITECTURE.md draws the same order.
RANKS = {
    "errors": 0,
    "methods": 0,
    "options": 1,
    "events": 1,
    "models": 2,
    "data": 3,
    "config": 4,
    "runs": 5,
    "runtime": 5,
    "pruning": 6,
    "checkpoints": 7,
    "measure": 7,
    "export": 8,
    "training": 9,
    "sweep": 10,
    "operations": 11,
    "api": 12,
}
UI_LIBRARIES = ("textual", "rich", "typer", "plotext", "textual_plotext")


def python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def group_of(module: str) -> str:
    """engine.sweep.run -> sweep; engine.config -> config."""
    return module.split(".")[1]


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def test_engine_top_level_holds_only_cross_cutting_modules():
    top = sorted(p.name for p in (ROOT / "engine").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_ENGINE_MODULES, top


def test_every_engine_group_has_a_rank():
    groups = {p.stem for p in (ROOT / "engine").glob("*.py") if p.stem != "__init__"}
    groups |= {p.name for p in (ROOT / "engine").iterdir() if (p / "__init__.py").is_file()}
    assert groups <= set(RANKS), f"give {sorted(groups - set(RANKS))} a rank in RANKS"


def test_engine_groups_import_only_lower_groups():
    wrong = []
    for path in python_files("engine"):
        own = group_of(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for module in imported_modules(path):
            if not module.startswith("engine.") or module.count(".") < 1:
                continue
            other = group_of(module)
            if other != own and RANKS[other] >= RANKS[own]:
                wrong.append(f"{path.relative_to(ROOT)} imports {module} ({own} -> {other})")
    assert not wrong, "\n".join(wrong)


def test_engine_imports_no_ui_library():
    wrong = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in python_files("engine")
        for module in imported_modules(path)
        if module.split(".")[0] in UI_LIBRARIES
    ]
    assert not wrong, wrong


def test_package_inits_are_light():
    """`prunelab --help` must not import torch: every __init__ is a docstring at most."""
    heavy = [
        str(path.relative_to(ROOT))
        for path in python_files("engine")
        if path.name == "__init__.py" and imported_modules(path)
    ]
    assert not heavy, heavy


@pytest.mark.parametrize("folder", ["engine", "tui"])
def test_modules_and_functions_stay_small(folder):
    too_long = []
    for path in python_files(folder):
        source = path.read_text()
        lines = source.count("\n")
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length}")
    assert not too_long, "\n".join(too_long)
