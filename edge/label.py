"""`edgetl label DIR --data DATA`: a person files the frames `camera --keep` kept (or any folder of photos).

Labelling moves a photo into DATA/<class>/ (DATA/train/<class>/ when DATA is pre-split: edgetl/layout.py)
and appends its line to DATA/collect.jsonl; "none of these" moves it into DATA/__other__/ (never a class: the
next `edgetl train DATA` fits "unknown" on it, train/other.py) with its line too; discarding moves it
into DIR/discarded/ (nothing is deleted); undo moves it back. A move is a hard link under the new name (which
fails rather than replace a file there) and then the removal of the old name, so a process killed at any
moment leaves the photo under one name or, between the two steps, under both names of one file — which the
next start finishes (`finish_moves`). Nothing is lost and nothing is duplicated.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgetl.edge.keep import SIDECAR
from edgetl.edge.photos import append_line
from edgetl.errors import EdgetlError
from edgetl.images import IMAGE_SUFFIXES, class_folders
from edgetl.layout import COLLECT_LOG, class_folder, class_root, other_folder
from edgetl.text import is_text, printable

DISCARDED = "discarded"
MAX_ITEMS = 200  # frames the page lists at once: the rest come as these are filed
RESULT_KEYS = ("time", "frame", "model", "model_version", "decision", "labels", "scores", "unknown", "ood_score")
MAX_SIDECAR = 16 * 1024  # bytes: what `camera --keep` writes is under 1 KB; a larger one is not its
SIDECAR_TYPES: dict[str, tuple[type, ...]] = {  # what the page reads of a sidecar, and the JSON types it takes
    "decision": (str,),
    "labels": (list,),
    "scores": (list,),
    "ood_score": (int, float),
    "kept_because": (str,),
    "margin": (int, float),
    "time": (int, float),
    "model": (str,),
    "source": (str,),
}


@dataclass(frozen=True)
class Item:
    """One photo waiting in DIR, with what the model said about it when it was kept (if anything)."""

    name: str
    kept: dict = field(default_factory=dict, compare=False)

    @property
    def doubt(self) -> tuple:
        """Sort key, most doubtful first: unknown (highest OOD score first), unsure (smallest margin), the rest."""
        why = self.kept.get("kept_because")
        if why == "unknown":
            return (0, -(self.kept.get("ood_score") or 0.0), self.name)
        if why == "unsure":
            return (1, self.kept.get("margin", 1.0), self.name)
        return (2, 0.0, self.name)

    def as_dict(self) -> dict:
        keys = ("decision", "labels", "scores", "ood_score", "kept_because", "margin", "time")
        return {"name": self.name, **{key: self.kept[key] for key in keys if key in self.kept}}


@dataclass(frozen=True)
class Move:
    source: Path
    target: Path
    label: str | None  # the class it was filed under; None: discarded, or "none of these"
    other: bool = False  # filed as "none of these" (DATA/__other__)


class Labeller:
    """The photos of DIR, their moves into DATA or DIR/discarded, and the undo stack."""

    def __init__(self, folder: Path, data: Path, warn: Callable[[str], None] | None = None) -> None:
        if not folder.is_dir():
            raise EdgetlError(f"{folder} is not a folder.", "Pass the folder `camera --keep` wrote, or any photos.")
        check_apart(folder, data)
        self.folder, self.data = folder, data
        self.data.mkdir(parents=True, exist_ok=True)
        self.history: list[Move] = []
        self.filed = 0  # photos labelled or discarded, less those undone
        self.lock = threading.Lock()  # one move at a time, whatever the page sends
        self.warn = warn or (lambda line: None)
        self._warned: set[str] = set()
        finish_moves(folder, [folder / DISCARDED, other_folder(data), *class_folders(class_root(data))])

    def items(self) -> list[Item]:
        photos = [p for p in self.folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        items = [Item(p.name, self._sidecar(p)) for p in photos if not p.name.startswith(".") and self._text(p)]
        return sorted(items, key=lambda item: item.doubt)

    def photo(self, name: str) -> Path:
        """The photo of that name in DIR; EdgetlError for any other name (no paths, no hidden files)."""
        if not isinstance(name, str) or not name or "/" in name or "\x00" in name or name.startswith("."):
            raise EdgetlError(f"{printable(str(name))!r} is not a photo name.")
        if not is_text(name) or len(name.encode()) > 255:  # a name no file here has (items() lists only text)
            raise EdgetlError(f"{printable(name)[:80]!r} is not a photo name.")
        path = self.folder / name
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise EdgetlError(f"{printable(name)!r} is not a photo name.")
        if not path.is_file():
            raise EdgetlError(f"{printable(name)} is no longer waiting (filed already?).")
        return path

    def label(self, names: list[str], label: str) -> list[Path]:
        """File every named photo under `label`, or (a name or the class refused) none of them."""
        folder = class_folder(self.data, label)
        return self._file(names, folder, folder.name)

    def none_of_these(self, names: list[str]) -> list[Path]:
        """File every named photo as "other": none of the classes (DATA/__other__)."""
        return self._file(names, other_folder(self.data), None)

    def _file(self, names: list[str], folder: Path, label: str | None) -> list[Path]:
        with self.lock:
            photos = [self.photo(name) for name in dict.fromkeys(names)]  # all checked before any moves
            moved = []
            for photo in photos:
                kept = self._sidecar(photo)
                target = move_new(photo, folder)
                try:  # a photo is never filed without its line: it goes back when the line cannot be written
                    append_line(self.data / COLLECT_LOG, _record(target, self.data, label, kept))
                except BaseException:
                    move_new(target, photo.parent, photo.name)
                    raise
                self.history.append(Move(photo, target, label, other=label is None))
                self.filed += 1
                moved.append(target)
            return moved

    def discard(self, names: list[str]) -> None:
        with self.lock:
            photos = [self.photo(name) for name in dict.fromkeys(names)]
            for photo in photos:
                self.history.append(Move(photo, move_new(photo, self.folder / DISCARDED), None))
                self.filed += 1

    def undo(self) -> Move | None:
        """Move the last filed photo back into DIR (its collect.jsonl line gets a line saying so)."""
        with self.lock:
            if not self.history:
                return None
            move = self.history.pop()
            back = move_new(move.target, move.source.parent, move.source.name)
            self.filed -= 1
            if move.label is not None or move.other:
                entry = {"file": move.target.relative_to(self.data).as_posix(), "class": move.label, "undone": True}
                entry |= {"other": True} if move.other else {}
                append_line(self.data / COLLECT_LOG, entry | {"time": round(time.time(), 3)})
            return Move(move.target, back, move.label, move.other)

    def _text(self, photo: Path) -> bool:
        """Whether the file's name is text (a name of other bytes cannot be shown or sent back: said once)."""
        if is_text(photo.name):
            return True
        self._once(photo.name, f"skipped {printable(photo.name)!r}: its name is not UTF-8 text; rename it")
        return False

    def _sidecar(self, photo: Path) -> dict:
        """What the model said when it kept the photo, checked: a damaged one is ignored with one line."""
        path = photo.with_suffix(SIDECAR)
        try:
            if path.stat().st_size > MAX_SIDECAR:
                raise ValueError(f"over {MAX_SIDECAR // 1024} KB")
            return check_sidecar(json.loads(path.read_bytes()))
        except FileNotFoundError:
            return {}  # a photo without a sidecar is still a photo to label
        except (OSError, ValueError, RecursionError) as error:
            self._once(path.name, f"ignored {printable(path.name)}: {printable(str(error))[:200]}")
            return {}

    def _once(self, key: str, line: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.warn(line)


def check_sidecar(value: object) -> dict:
    """A keep sidecar's fields as the page reads them, or ValueError naming what is wrong."""
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    for key, types in SIDECAR_TYPES.items():
        item = value.get(key)
        if item is not None and (not isinstance(item, types) or isinstance(item, bool)):
            raise ValueError(f"'{key}' is {type(item).__name__}")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"'{key}' is not a finite number")
    labels, scores = value.get("labels") or [], value.get("scores") or []
    if len(labels) != len(scores) or not all(isinstance(x, str) for x in labels) or not all(map(_number, scores)):
        raise ValueError("'labels' and 'scores' are not lists of names and numbers of one length")
    return value


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_apart(folder: Path, data: Path) -> None:
    """DIR inside DATA (or DATA inside DIR) would make labelling move photos within the data it reads."""
    inner, outer = folder.resolve(), data.resolve()
    if inner == outer or outer in inner.parents or inner in outer.parents:
        raise EdgetlError(
            f"{folder} and {data} are inside one another: labelling would move photos within the dataset.",
            "Keep the photos to label in a folder outside DATA (e.g. the folder `camera --keep` wrote).",
        )


def _record(target: Path, data: Path, label: str | None, kept: dict) -> dict:
    """collect.jsonl's line: the person's class (None and `"other": true` for "none of these"), and what the
    model said when it kept the photo (`result`, the one result shape, as the sidecar has it)."""
    record = {"file": target.relative_to(data).as_posix(), "class": label, "time": round(time.time(), 3)}
    record |= {"other": True} if label is None else {}
    said = {key: kept[key] for key in RESULT_KEYS if key in kept}
    return record | {"source": kept.get("source", "label")} | ({"result": said} if said else {})


def move_new(source: Path, folder: Path, name: str | None = None) -> Path:
    """Move `source` into `folder` under `name` (or name-2, -3 … when taken), never replacing a file."""
    folder.mkdir(parents=True, exist_ok=True)
    stem, suffix = Path(name or source.name).stem, Path(name or source.name).suffix
    for attempt in range(1, 1000):
        target = folder / f"{stem}{'' if attempt == 1 else f'-{attempt}'}{suffix}"
        try:
            os.link(source, target)  # fails when the name exists: nothing is replaced
        except FileExistsError:
            continue
        except OSError as error:
            if error.errno != errno.EXDEV and error.errno not in (errno.EPERM, errno.ENOTSUP):
                raise EdgetlError(f"Cannot move {source.name} to {folder} ({error.strerror}).") from None
            if target.exists():
                continue
            shutil.copy2(source, target)  # another disk, or no hard links (FAT): copy, then remove
        source.unlink()
        return target
    raise EdgetlError(f"No free name for {source.name} in {folder}.", "Remove some files.")


def finish_moves(folder: Path, targets: list[Path]) -> int:
    """Photos in `folder` that also have a name in one of `targets` (a move killed between its two steps):
    the old name is removed, as the move would have. Returns how many."""
    pending = {}
    for path in folder.iterdir():
        if path.is_file() and path.stat().st_nlink > 1:
            pending[(path.stat().st_dev, path.stat().st_ino)] = path
    finished = 0
    for target in (t for t in targets if pending and t.is_dir()):
        for path in target.iterdir():
            key = (path.stat().st_dev, path.stat().st_ino)
            if key in pending:
                pending.pop(key).unlink()
                finished += 1
    return finished
