"""`edgetl label DIR --data DATA`: a person files the frames `camera --keep` kept (or any folder of photos).

Labelling moves a photo into DATA/<class>/ and appends its line to DATA/collect.jsonl; discarding moves it
into DIR/discarded/ (nothing is deleted); undo moves it back. A move is a hard link under the new name (which
fails rather than replace a file there) and then the removal of the old name, so a process killed at any
moment leaves the photo under one name or, between the two steps, under both names of one file — which the
next start finishes (`finish_moves`). Nothing is lost and nothing is duplicated.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgetl.edge.keep import SIDECAR
from edgetl.edge.photos import COLLECT_LOG, append_line, check_class_name
from edgetl.errors import EdgetlError
from edgetl.images import IMAGE_SUFFIXES, class_folders

DISCARDED = "discarded"
MAX_ITEMS = 200  # frames the page lists at once: the rest come as these are filed


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
    label: str | None  # the class it was filed under; None: discarded


class Labeller:
    """The photos of DIR, their moves into DATA or DIR/discarded, and the undo stack."""

    def __init__(self, folder: Path, data: Path) -> None:
        if not folder.is_dir():
            raise EdgetlError(f"{folder} is not a folder.", "Pass the folder `camera --keep` wrote, or any photos.")
        self.folder, self.data = folder, data
        self.data.mkdir(parents=True, exist_ok=True)
        self.history: list[Move] = []
        self.lock = threading.Lock()  # one move at a time, whatever the page sends
        finish_moves(folder, [folder / DISCARDED, *class_folders(data)])

    def items(self) -> list[Item]:
        photos = [p for p in self.folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        items = [Item(p.name, _sidecar(p)) for p in photos if not p.name.startswith(".")]
        return sorted(items, key=lambda item: item.doubt)

    def photo(self, name: str) -> Path:
        """The photo of that name in DIR; EdgetlError for any other name (no paths, no hidden files)."""
        path = self.folder / name
        if "/" in name or "\\" in name or name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
            raise EdgetlError(f"{name!r} is not a photo name.")
        if not path.is_file():
            raise EdgetlError(f"{name} is no longer waiting (filed already?).")
        return path

    def label(self, names: list[str], label: str) -> list[Path]:
        label = check_class_name(label)
        with self.lock:
            moved = []
            for name in names:
                target = move_new(self.photo(name), self.data / label)
                self.history.append(Move(self.folder / name, target, label))
                append_line(self.data / COLLECT_LOG, _record(target, self.data, label, _sidecar(self.folder / name)))
                moved.append(target)
            return moved

    def discard(self, names: list[str]) -> None:
        with self.lock:
            for name in names:
                self.history.append(Move(self.folder / name, move_new(self.photo(name), self.folder / DISCARDED), None))

    def undo(self) -> Move | None:
        """Move the last filed photo back into DIR (its collect.jsonl line gets a line saying so)."""
        with self.lock:
            if not self.history:
                return None
            move = self.history.pop()
            back = move_new(move.target, move.source.parent, move.source.name)
            if move.label is not None:
                entry = {"file": move.target.relative_to(self.data).as_posix(), "class": move.label, "undone": True}
                append_line(self.data / COLLECT_LOG, entry | {"time": round(time.time(), 3)})
            return Move(move.target, back, move.label)


def _sidecar(photo: Path) -> dict:
    try:
        value = json.loads(photo.with_suffix(SIDECAR).read_text())
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}  # a photo without a sidecar (or a damaged one) is still a photo to label


def _record(target: Path, data: Path, label: str, kept: dict) -> dict:
    record = {"file": target.relative_to(data).as_posix(), "class": label, "time": round(time.time(), 3)}
    guess = {"model_decision": kept.get("decision"), "model": kept.get("model")} if kept else {}
    return record | {"source": kept.get("source", "label")} | {k: v for k, v in guess.items() if v is not None}


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
