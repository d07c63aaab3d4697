"""The floors: core (edgetl/) → edge → train / convert → CLI. A floor never imports one above it."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# folder → the edgetl subpackages its modules must not import
FORBIDDEN = {
    "edge": ("edgetl.train", "edgetl.convert", "edgetl.cli", "edgetl.demo"),
    "convert": ("edgetl.train", "edgetl.cli", "edgetl.demo"),
    "train": ("edgetl.convert", "edgetl.edge", "edgetl.cli", "edgetl.demo"),
}
CORE_ALLOWED_ABOVE = {"cli.py", "demo.py"}  # the two entry points in edgetl/ wire the floors together


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_floor_imports_one_above_it() -> None:
    broken = []
    for folder, forbidden in FORBIDDEN.items():
        for path in sorted((REPO / folder).glob("*.py")):
            broken += [f"{folder}/{path.name} imports {name}" for name in _imports(path) if name.startswith(forbidden)]
    for path in sorted((REPO / "edgetl").glob("*.py")):
        if path.name not in CORE_ALLOWED_ABOVE:
            above = ("edgetl.train", "edgetl.convert", "edgetl.edge", "edgetl.cli", "edgetl.demo")
            broken += [f"edgetl/{path.name} imports {name}" for name in _imports(path) if name.startswith(above)]
    assert not broken, broken
