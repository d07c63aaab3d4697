"""Photos written into a dataset (or a keep folder) so that nothing is ever lost or overwritten.

Each photo is a JPEG named by its UTC capture time (names sort by time, a counter when two share a
microsecond), written to a hidden temporary file and then linked under its name — a name that exists is
never replaced — with the user's umask. A free-space guard refuses to write when the disk is nearly full.
`collect.jsonl` in the dataset gets one line per photo, written in one append.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np

from edgetl.errors import EdgetlError

MIN_FREE_MB = 256  # the free-space guard's default: the system needs room too (logs, the model's updates)
QUALITY = 90  # JPEG quality: what training reads back is close to what the camera saw


class DiskFull(EdgetlError):
    """The free-space guard, or the disk itself, refused a photo."""


def check_free_space(folder: Path, min_free_mb: float) -> None:
    free = shutil.disk_usage(folder).free / 1e6
    if free < min_free_mb:
        raise DiskFull(
            f"Only {free:.0f} MB is free on the disk that holds {folder} (the guard keeps {min_free_mb:.0f} MB).",
            "Free some space, move photos off the device, or lower --min-free.",
        )


def encode_jpeg(bgr: np.ndarray, quality: int = QUALITY, max_side: int | None = None) -> bytes:
    if max_side and max(bgr.shape[:2]) > max_side:
        scale = max_side / max(bgr.shape[:2])
        size = (max(1, round(bgr.shape[1] * scale)), max(1, round(bgr.shape[0] * scale)))
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise EdgetlError("A frame could not be encoded as JPEG.", "Check the camera's frame format.")
    return data.tobytes()


def time_name(now: float | None = None) -> str:
    """'20261202T124501.123456Z': UTC, sortable, no characters any file system refuses."""
    now = time.time() if now is None else now
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


def save_new(folder: Path, stem: str, suffix: str, data: bytes, min_free_mb: float = MIN_FREE_MB) -> Path:
    """Write `data` to folder/stem+suffix, or stem-2, -3 … when taken: atomically, never replacing a file."""
    folder.mkdir(parents=True, exist_ok=True)
    check_free_space(folder, min_free_mb)
    temporary = folder / f".{stem}.{os.getpid()}.tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        for attempt in range(1, 1000):
            path = folder / f"{stem}{'' if attempt == 1 else f'-{attempt}'}{suffix}"
            if _link_new(temporary, path):
                return path
        raise EdgetlError(f"No free name for {stem}{suffix} in {folder}.", "Remove some files.")
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise DiskFull(f"The disk that holds {folder} is full.", "Free some space.") from None
        raise EdgetlError(f"Cannot write in {folder} ({error.strerror or error}).", "Check the folder.") from None
    finally:
        temporary.unlink(missing_ok=True)


def _link_new(temporary: Path, path: Path) -> bool:
    """Give the written file its name; False when the name is taken (nothing is overwritten)."""
    try:
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        if path.exists():  # a file system without hard links (FAT on a USB stick): check, then rename
            return False
        os.rename(temporary, path)
        return True


def append_line(path: Path, record: dict) -> None:
    """One JSON line appended in a single write (a reader never sees half of it). A write the disk cuts short
    is taken back, so the log stays whole lines (DiskFull then); a line cut by a crash earlier is ended first,
    so this one starts on its own line."""
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        try:
            if os.write(fd, line) != len(line):
                raise OSError(errno.ENOSPC, "short write")
        except OSError as error:
            os.ftruncate(fd, size)
            if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise DiskFull(f"The disk that holds {path} is full.", "Free some space.") from None
            raise EdgetlError(f"Cannot write {path} ({error.strerror or error}).", "Check the folder.") from None
    finally:
        os.close(fd)
