"""Every file edgetl writes is readable as the user's umask says (a Pi service user must read the model)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from edgetl.rundir import current_umask, write_atomic


def test_atomic_writes_follow_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        write_atomic(tmp_path / "a.json", "{}")
        assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o640
        os.umask(0o022)
        write_atomic(tmp_path / "a.json", "{}")  # replacing keeps the new mode, not the old file's
        assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    finally:
        os.umask(previous)


def test_a_converted_run_is_world_readable_under_umask_022(converted: tuple[Path, dict]) -> None:
    run, _ = converted
    expected = 0o666 & ~current_umask()
    files = [path for path in run.rglob("*") if path.is_file()]
    assert {p.name for p in files} >= {"model_int8.tflite", "labels.txt", "edgetl.json", "conversion.json"}
    wrong = {str(p.relative_to(run)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    wrong = {name: mode for name, mode in wrong.items() if int(mode, 8) != expected}
    assert not wrong, f"expected {oct(expected)}: {wrong}"
