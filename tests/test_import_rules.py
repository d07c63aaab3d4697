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
CORE_ALLOWED_ABOVE = {"cli.py", "cli_common.py", "cli_device.py", "demo.py", "profiling.py"}  # entry points: wiring


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


def test_benchmark_scripts_are_not_shipped_and_bench_lives_with_the_edge() -> None:
    import importlib.util

    assert importlib.util.find_spec("edgetl.benchmarks") is None  # scripts in benchmarks/, not a package
    assert importlib.util.find_spec("edgetl.edge.bench") is not None
    assert '"edgetl.benchmarks"' not in (REPO / "pyproject.toml").read_text()


def test_the_cli_is_wiring_and_takes_its_defaults_from_the_options() -> None:
    """Each default is stated once, in an options dataclass; the CLI's --help shows that value."""
    from dataclasses import fields

    import typer

    from edgetl.cli import app
    from edgetl.convert.options import BareModel, ConvertOptions
    from edgetl.edge.camera import CameraOptions
    from edgetl.edge.collect import CollectOptions
    from edgetl.edge.keep import KeepOptions
    from edgetl.edge.mqtt import MqttOptions
    from edgetl.train.config import TrainConfig

    assert len((REPO / "edgetl" / "cli.py").read_text().splitlines()) <= 400
    commands = {command.name: command for command in typer.main.get_command(app).commands.values()}
    checked = 0
    for command, options in (("train", TrainConfig), ("convert", ConvertOptions), ("convert", BareModel)):
        params = {param.name: param for param in commands[command].params}
        for field in fields(options):
            if field.name in params:
                default = params[field.name].default
                assert default == field.default or (default is None and field.default is None), field.name
                assert params[field.name].help == field.metadata["help"], field.name
                checked += 1
    pairs = (("camera", CameraOptions), ("camera", KeepOptions), ("camera", MqttOptions), ("collect", CollectOptions))
    for command, options in pairs:
        params = {param.name: param for param in commands[command].params}
        for field in fields(options):
            assert params[field.name].default == field.default, field.name
            assert params[field.name].help == field.metadata["help"], field.name
            checked += 1
    assert checked >= 60


def test_no_import_cycle_in_edge() -> None:
    """Each module of edge/ can be understood from the ones it imports: no two reach each other (lazy imports
    inside functions count too)."""
    graph = {
        path.stem: {name.rsplit(".", 1)[1] for name in _imports(path) if name.startswith("edgetl.edge.")}
        for path in sorted((REPO / "edge").glob("*.py"))
    }
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        for imported in sorted(graph.get(module, ())):
            if imported in path:
                cycles.append(" → ".join([*path[path.index(imported) :], imported]))
            else:
                visit(imported, [*path, imported])

    for module in graph:
        visit(module, [module])
    assert not cycles, sorted(set(cycles))


def test_no_module_of_edge_reaches_into_another_objects_private_parts() -> None:
    """Only edge/interpreter.py touches LiteRT's internals; elsewhere `x._name` is only `self._name`."""
    broken = []
    for path in sorted((REPO / "edge").glob("*.py")):
        if path.name == "interpreter.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                    broken.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert not broken, broken


def test_pages_are_files_not_python_strings() -> None:
    """HTML, CSS and JavaScript live in edge/static/ (shipped as package data), where they can be read as such."""
    markers = ("<script", "<style", "<html", "addEventListener(")
    found = [
        f"edge/{path.name}: {marker}"
        for path in sorted((REPO / "edge").glob("*.py"))
        for marker in markers
        if marker in path.read_text()
    ]
    assert not found, found
