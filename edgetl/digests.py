"""Photos known by their content: what a run trained, validated and tested on, as SHA-1 digests of the bytes.

A path says where a photo is today; its content says which photo it is. Two copies of a data folder, a flat
and a pre-split layout of the same photos, a photo moved to another class folder: the digest is the same.
`edgetl train` writes `split/digests.txt` in every run ("sha1<TAB>split<TAB>class<TAB>relative path" per
image) and `--from` and `compare` read it here, so that no yardstick is fooled by where a photo lies.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.rundir import SPLIT_DIR, SPLITS, RunInfo, Sample, write_atomic

DIGESTS = "digests.txt"  # in the run's split/ folder
OTHER = "other.txt"  # in the run's split/ folder: its "other" photos, "sha1<TAB>side<TAB>path" (train/other.py)
_SHA1 = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class KnownPhoto:
    """One photo a run used, by content."""

    digest: str
    split: str  # train, validation or test
    label: str  # its class name in that run
    path: str  # relative to the run's data folder, as it was then


def content_digest(path: Path) -> str:
    """The SHA-1 of a file's bytes (what the data check computes for every photo)."""
    return hashlib.sha1(path.read_bytes()).hexdigest()


def write_digests(folder: Path, root: Path, classes: list[str], splits: dict, digests: dict[Path, str]) -> None:
    lines = (
        f"{digests[sample.path]}\t{split}\t{classes[sample.label]}\t{sample.path.relative_to(root).as_posix()}\n"
        for split, samples in splits.items()
        for sample in samples
    )
    write_atomic(folder / DIGESTS, "".join(lines))


def run_photos(info: RunInfo) -> list[KnownPhoto]:
    """Every photo of a run by content: from its digests.txt, else (runs before it existed) by hashing the
    photos its split files list that still exist."""
    listed = info.directory / SPLIT_DIR / DIGESTS
    if listed.is_file():
        return _read_digests(listed)
    found = []
    for split in SPLITS:
        for sample in info.samples(split):
            if sample.path.is_file():
                found.append(_known(sample, split, info))
    return found


def _known(sample: Sample, split: str, info: RunInfo) -> KnownPhoto:
    relative = sample.path.relative_to(info.data.root).as_posix()
    return KnownPhoto(content_digest(sample.path), split, info.labels[sample.label], relative)


def _read_digests(path: Path) -> list[KnownPhoto]:
    """digests.txt, each line checked: a damaged file is one line naming it and the line, not a traceback."""
    hint = "Restore the file, or delete it: edgetl then hashes the photos the run's split files list."
    rows = _rows(path, "sha1<TAB>split<TAB>class<TAB>path", SPLITS, hint)
    return [KnownPhoto(*fields) for fields in rows]


def run_other_photos(info: RunInfo) -> list[KnownPhoto]:
    """A run's "other" photos (none of its classes) by content, each with its side (validation: "unknown" was
    fitted on it; test: held out) as `split`, and its path relative to the run's other folder; [] without."""
    path = info.directory / SPLIT_DIR / OTHER
    return read_other(path) if path.is_file() else []


def read_other(path: Path) -> list[KnownPhoto]:
    """split/other.txt, each line checked like digests.txt."""
    rows = _rows(path, "sha1<TAB>side<TAB>path", ("validation", "test"), "Restore the file, or re-run `edgetl train`.")
    return [KnownPhoto(digest, side, "", relative) for digest, side, relative in rows]


def _rows(path: Path, shape: str, sides: tuple[str, ...], hint: str) -> list[list[str]]:
    """The tab-separated rows of a run's photo list, each checked (a SHA-1, then one of `sides`, then a non-empty
    last field); a damaged file is one line naming it and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise EdgetlError(f"{path} cannot be read ({error}).", hint) from None
    columns = shape.count("<TAB>") + 1
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("\t", columns - 1)
        if len(fields) != columns or not _SHA1.fullmatch(fields[0]) or fields[1] not in sides or not fields[-1]:
            raise EdgetlError(f"{path}, line {number}: not '{shape}'.", hint)
        rows.append(fields)
    return rows
