""" "Other" photos: what the camera will see that is none of the classes, given so that "unknown" is fitted on it.

They never become a class. Like the data they are checked (unreadable files skipped and listed) and split by
content, half to validation (where the "unknown" threshold is fitted, train/open_world.py) and half to test
(where the report measures how many it rejects); the run records each photo's side (split/other.txt), so a
child run (`--from`) and `--resume` keep every photo on the side it had.

Where they come from: `--other DIR`, else DATA's own `__other__` folder when it exists (what `edgetl label`'s
"none of these" and `edgetl collect --other` fill): a name `class_folders` never reads as a class.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from edgetl.digests import read_other
from edgetl.errors import EdgetlError
from edgetl.layout import other_folder
from edgetl.rundir import write_atomic
from edgetl.text import is_text
from edgetl.train.data import check_files

SIDES = ("validation", "test")
MIN_OTHER = 2  # one to fit the threshold on, one to measure it
FEW_OTHER = 20  # fewer on the validation side: the threshold moves with every photo (benchmarks/other_photos.py)


@dataclass
class OtherPhotos:
    """Photos of none of the classes, each on one side."""

    root: Path
    sides: dict[str, list[Path]]  # side → photos, sorted
    digests: dict[Path, str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {side: len(paths) for side, paths in self.sides.items()}

    def report(self) -> dict:
        skipped = [{"path": path, "reason": reason} for path, reason in self.skipped]
        return {"root": str(self.root), "counts": self.counts(), "skipped": skipped}


def resolve(option: Path | None, data: Path) -> Path | None:
    """The folder of other photos: `--other`, else DATA's `__other__` folder if it has any file, else None."""
    if option is not None:
        return option.expanduser().resolve()
    default = other_folder(data.expanduser().resolve())
    return default if default.is_dir() and any(p.is_file() for p in default.rglob("*")) else None


def check_place(folder: Path, data: Path) -> None:
    """Other photos must not be class photos: not DATA itself, not inside it (but for its `__other__` folder),
    and not a folder that holds DATA."""
    data = data.expanduser().resolve()
    if not folder.is_dir():
        raise EdgetlError(f"--other folder {folder} does not exist.", "Pass a folder of photos of none of the classes.")
    if folder == data or data.is_relative_to(folder):
        raise EdgetlError(
            f"--other {folder} is (or holds) the data folder {data}: its class photos would be read as 'other'.",
            "Pass a folder outside the data folder, or put the photos in DATA/__other__.",
        )
    if folder.is_relative_to(data) and not folder.is_relative_to(other_folder(data)):
        raise EdgetlError(
            f"--other {folder} is inside the data folder {data}, where every folder is a class (or a split).",
            f"Move the photos to {other_folder(data)} (found without --other) or outside {data}.",
        )


def scan_other(
    folder: Path,
    data: Path,
    class_digests: dict[Path, str],
    *,
    seed: int,
    keep_sides: dict[str, str] | None = None,
) -> OtherPhotos:
    """Check (as the data scan does) and split the other photos; `keep_sides` (digest → side, from a parent run
    or the partial run) keeps those photos where they were."""
    check_place(folder, data)
    files, skipped = _candidates(folder)
    digests: dict[Path, str] = {}
    for path, (digest, reason) in zip(files, check_files(files)):
        if digest is None:
            skipped.append((str(path.relative_to(folder)), reason))
        else:
            digests[path] = digest
    _refuse_class_photos(digests, class_digests, folder)
    if len(digests) < MIN_OTHER:
        raise EdgetlError(
            f"--other {folder} has {len(digests)} readable photo(s); at least {MIN_OTHER} are needed "
            "(half fit the 'unknown' threshold, half measure it).",
            "Add photos of what the camera sees that is none of the classes (the empty scene, passers-by).",
        )
    sides = split_other([digests[p] for p in digests], seed=seed, keep=keep_sides)
    by_side: dict[str, list[Path]] = {side: [] for side in SIDES}
    for path, side in zip(digests, sides):
        by_side[side].append(path)
    photos = OtherPhotos(folder, {side: sorted(paths) for side, paths in by_side.items()}, digests, skipped)
    if skipped:
        photos.warnings.append(f"Skipped {len(skipped)} file(s) in {folder} that are not readable images.")
    if len(photos.sides["validation"]) < FEW_OTHER:
        photos.warnings.append(
            f"Only {len(photos.sides['validation'])} other photo(s) to fit 'unknown' on: take more "
            f"(benchmarks/README.md says how the result moves with 30 to 240)."
        )
    return photos


def _candidates(folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Every file under `folder`, any layout; hidden ones and names that are not text skipped with why."""
    files, skipped = [], []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            skipped.append((str(relative), "hidden file"))
        elif not is_text(str(relative)):
            skipped.append((str(relative), "its name is not UTF-8 text: rename it"))
        else:
            files.append(path)
    return files, skipped


def _refuse_class_photos(digests: dict[Path, str], class_digests: dict[Path, str], folder: Path) -> None:
    by_digest = {digest: path for path, digest in class_digests.items()}
    clashes = [(path, by_digest[digest]) for path, digest in digests.items() if digest in by_digest]
    if clashes:
        other, photo = clashes[0]
        raise EdgetlError(
            f"{len(clashes)} photo(s) in --other {folder} are byte-identical to class photos "
            f"(e.g. {other} and {photo}): a photo cannot be both a class and none of them.",
            "Delete one of each pair (or move it with `edgetl label`).",
        )


def split_other(digests: list[str], *, seed: int, keep: dict[str, str] | None = None) -> list[str]:
    """Each photo's side, by content: photos in `keep` stay; the others, shuffled (seeded) by digest, go half to
    validation (the odd one too) and half to test. Byte-identical copies go to one side."""
    keep = keep or {}
    new = sorted({digest for digest in digests if keep.get(digest) not in SIDES})
    random.Random(f"{seed}:other").shuffle(new)
    side_of = {digest: keep[digest] for digest in digests if keep.get(digest) in SIDES}
    side_of |= {digest: SIDES[0] if i < (len(new) + 1) // 2 else SIDES[1] for i, digest in enumerate(new)}
    return [side_of[digest] for digest in digests]


def write_other_file(path: Path, photos: OtherPhotos) -> None:
    lines = [
        f"{photos.digests[p]}\t{side}\t{p.relative_to(photos.root).as_posix()}\n"
        for side, paths in photos.sides.items()
        for p in paths
    ]
    write_atomic(path, "".join(lines))


def read_sides(path: Path) -> dict[str, str]:
    """digest → side from a run's split/other.txt ({} when the run had no other photos)."""
    return {photo.digest: photo.split for photo in read_other(path)} if path.is_file() else {}
