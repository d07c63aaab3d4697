"""A command's output files, put in place as one set: an interrupt leaves the old set or the new one.

Each file is written into a staging folder beside the outputs; `commit` then moves them all into place
with signals deferred (renames in one folder take microseconds). A crash in the middle of those renames
(power loss, SIGKILL) leaves a staging folder marked complete: the next `OutputSet` on the folder
finishes it first, so even then the set becomes whole.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from edgetl import interrupt
from edgetl.errors import EdgetlError
from edgetl.rundir import write_atomic

COMPLETE = "COMPLETE"  # in a staging folder: every file is written; what is left is moving them


class OutputSet:
    """Files for `folder`, staged in `folder/.edgetl-COMMAND.PID.staging` until `commit`."""

    def __init__(self, folder: Path, command: str) -> None:
        self.folder, self.command = folder, command
        self.staging = folder / f".edgetl-{command}.{os.getpid()}.staging"
        self.names: list[str] = []

    def __enter__(self) -> OutputSet:
        """Checks the folder is writable before any work: a read-only or missing disk fails here, at once."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._finish_earlier_sets()
            self.staging.mkdir()
        except OSError as error:
            raise _write_error(error, self.folder) from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)  # after a failure: the new set never appears

    def write(self, name: str, data: bytes | str) -> Path:
        """Stage one file of the set; returns where it will be once committed."""
        try:
            write_atomic(self.staging / name, data)
        except OSError as error:
            raise _write_error(error, self.folder, name) from None
        if name not in self.names:
            self.names.append(name)
        return self.folder / name

    def commit(self) -> None:
        """Put every staged file in place, replacing the old ones; a signal waits until all are moved."""
        with interrupt.deferred():
            write_atomic(self.staging / COMPLETE, "\n".join(self.names) + "\n")
            _move_into_place(self.staging, self.folder)
            interrupt.set_hint("The new outputs were all in place before it.")

    def _finish_earlier_sets(self) -> None:
        """Complete a set a crash left half-moved; drop sets whose process died before they were complete."""
        for staging in self.folder.glob(f".edgetl-{self.command}.*.staging"):
            if (staging / COMPLETE).exists():
                _move_into_place(staging, self.folder)
            elif not _alive(staging.name.split(".")[2]):
                shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staging: Path, folder: Path) -> None:
    for name in (staging / COMPLETE).read_text().split():
        if (staging / name).exists():  # moved already, before a crash
            os.replace(staging / name, folder / name)
    shutil.rmtree(staging)


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def _write_error(error: OSError, folder: Path, name: str = "") -> EdgetlError:
    """One line for a disk that is full, read-only or not ours; the previous outputs are untouched."""
    what = f"writing {name} in {folder}" if name else f"writing to {folder}"
    kept = "The previous outputs are untouched."
    if error.errno == errno.ENOSPC:
        return EdgetlError(f"The disk is full ({what}).", f"Free some space and run again. {kept}")
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return EdgetlError(f"Cannot write to {folder}: {error.strerror}.", f"Pass a writable --out folder. {kept}")
    return EdgetlError(f"Failed {what}: {error.strerror or error}.", f"Check the output folder. {kept}")
