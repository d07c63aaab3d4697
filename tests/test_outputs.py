"""A command's outputs appear as one set: after an error, a signal, a full disk or a crash mid-way, the
folder holds the old set or the new one, never a mix (edgetl/outputs.py)."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edgetl.errors import EdgetlError
from edgetl.outputs import COMPLETE, OutputSet


def _old_set(folder: Path) -> dict[str, str]:
    folder.mkdir(exist_ok=True)
    old = {"model.tflite": "old model", "report.json": "old report"}
    for name, text in old.items():
        (folder / name).write_text(text)
    return old


def _contents(folder: Path) -> dict[str, str]:
    return {path.name: path.read_text() if path.is_file() else "(folder)" for path in folder.iterdir()}


def test_a_set_that_fails_before_its_commit_leaves_the_old_set_and_no_trace(tmp_path: Path) -> None:
    old = _old_set(tmp_path)
    with pytest.raises(RuntimeError), OutputSet(tmp_path, "convert") as outputs:
        assert outputs.write("model.tflite", "new model") == tmp_path / "model.tflite"
        raise RuntimeError("the check failed half-way")
    assert _contents(tmp_path) == old  # staging folder gone too

    with OutputSet(tmp_path, "convert") as outputs:
        outputs.write("model.tflite", "new model")
        outputs.write("report.json", "new report")
        assert _contents(tmp_path).keys() == {*old, outputs.staging.name}  # nothing in place before the commit
        outputs.commit()
    assert _contents(tmp_path) == {"model.tflite": "new model", "report.json": "new report"}


SIGNAL_DURING_COMMIT = """
import os, signal, sys
from pathlib import Path
from edgetl import interrupt, outputs
interrupt.install("The previous outputs are untouched.")
folder = Path(sys.argv[1])
replace = os.replace
def replace_then_signal(src, dst):  # Ctrl-C lands between the first and the second file
    replace(src, dst)
    if Path(dst).name == "model.tflite":
        os.kill(os.getpid(), signal.SIGINT)
try:
    with outputs.OutputSet(folder, "convert") as staged:
        staged.write("model.tflite", "new model")
        staged.write("report.json", "new report")
        os.replace = replace_then_signal
        staged.commit()
except interrupt.Interrupted:
    print(interrupt.message(), flush=True)
    os._exit(130)
os._exit(0)
"""


def test_a_signal_during_the_commit_waits_until_the_whole_set_is_in_place(tmp_path: Path) -> None:
    _old_set(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", SIGNAL_DURING_COMMIT, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 130, done.stderr[-2000:]
    assert _contents(tmp_path) == {"model.tflite": "new model", "report.json": "new report"}
    assert "Interrupted. The new outputs were all in place before it." in done.stdout  # not "untouched"


def test_a_set_a_crash_left_half_moved_is_finished_and_a_dead_one_dropped(tmp_path: Path) -> None:
    _old_set(tmp_path)
    half_moved = tmp_path / ".edgetl-convert.999999999.staging"  # no such process
    half_moved.mkdir()
    (tmp_path / "model.tflite").write_text("new model")  # moved before the crash
    (half_moved / "report.json").write_text("new report")  # still staged
    (half_moved / COMPLETE).write_text("model.tflite\nreport.json\n")
    unfinished = tmp_path / ".edgetl-convert.999999998.staging"
    unfinished.mkdir()
    (unfinished / "model.tflite").write_text("a model whose check never ended")
    alive = tmp_path / f".edgetl-convert.{os.getppid()}.staging"  # another convert, still running
    alive.mkdir()

    with OutputSet(tmp_path, "convert"):
        pass
    assert (tmp_path / "report.json").read_text() == "new report"
    assert not half_moved.exists() and not unfinished.exists() and alive.is_dir()


def _limit_file_size(limit: int):
    """For a child process: files stop growing at `limit` bytes (EFBIG), as on a full disk, without root."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


FULL_DISK = """
import sys
from pathlib import Path
from edgetl.errors import EdgetlError
from edgetl.outputs import OutputSet
try:
    with OutputSet(Path(sys.argv[1]), "bench") as outputs:
        outputs.write("report.json", "new report")
        outputs.write("model.tflite", b"x" * 100_000)
        outputs.commit()
except EdgetlError as error:
    print(error)
    sys.exit(2)
"""


def test_a_full_disk_is_one_line_and_leaves_the_old_set(tmp_path: Path) -> None:
    old = _old_set(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_file_size(50_000),
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert (
        f"Failed writing model.tflite in {tmp_path}" in done.stdout and "previous outputs are untouched" in done.stdout
    )
    assert _contents(tmp_path) == old


def test_an_output_folder_that_cannot_be_made_fails_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    unwritable = OutputSet(tmp_path / "file" / "out", "convert")
    with pytest.raises(EdgetlError, match="Failed writing to .*file/out: Not a directory"), unwritable:
        pytest.fail("the work started")
