"""The command line: help, version, one-line errors, and no TensorFlow where none is needed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import edgetl

BLOCK_TF = "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"


def edgetl_cli(*args: str, block_tensorflow: bool = False, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real entry point in a fresh interpreter (optionally with TensorFlow made unimportable)."""
    code = (BLOCK_TF if block_tensorflow else "") + (
        "import sys\nfrom edgetl.cli import run\nsys.argv = ['edgetl', *sys.argv[1:]]\nrun()\n"
        "print('tensorflow imported' if sys.modules.get('tensorflow') else 'no tensorflow', file=sys.stderr)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_help_lists_every_command_without_tensorflow() -> None:
    result = edgetl_cli("--help", block_tensorflow=True)
    assert result.returncode == 0, result.stderr
    for command in ("train", "convert", "classify", "camera", "bench", "profile", "demo"):
        assert command in result.stdout


def test_version() -> None:
    result = edgetl_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"edgetl {edgetl.__version__}"


def test_train_help_has_an_example() -> None:
    result = edgetl_cli("train", "--help")
    assert result.returncode == 0 and "Example: edgetl train" in result.stdout


def test_train_without_tensorflow_says_how_to_install_it(tmp_path: Path) -> None:
    result = edgetl_cli("train", str(tmp_path), block_tensorflow=True)
    assert result.returncode == 2
    assert 'pip install "edgetl[train]"' in result.stderr and "Traceback" not in result.stderr


def test_bad_input_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    result = edgetl_cli("train", str(tmp_path / "missing"), "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "does not exist" in errors[0] and "Traceback" not in result.stderr
    chatter = [
        line for line in result.stderr.splitlines() if line.strip() and not line.startswith(("error:", "no ", "tens"))
    ]
    assert not chatter, chatter  # TensorFlow's import-time absl/oneDNN/CUDA lines are gone
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / "run.partial").exists()  # a failed start leaves nothing that looks resumable


def test_existing_run_is_not_clobbered(tmp_path: Path, sample_data: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    result = edgetl_cli("train", str(sample_data), "--out", str(out))
    assert result.returncode == 2 and "--force" in result.stderr
    assert (out / "precious.txt").read_text() == "keep me"


def test_unknown_backbone_is_rejected(tmp_path: Path, sample_data: Path) -> None:
    result = edgetl_cli("train", str(sample_data), "--model", "resnet9000", "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and "mobilenet_v2" in result.stderr


def test_device_side_modules_import_without_tensorflow() -> None:
    """What a Raspberry Pi runs (image decoding, run directories, edge/) must not need TensorFlow."""
    code = BLOCK_TF + (
        "import edgetl.images, edgetl.rundir, edgetl.errors, edgetl.cli, edgetl.edge\n"
        "assert sys.modules.get('tensorflow') is None\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
