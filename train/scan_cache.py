"""What the data check found for each file, remembered between runs: a second run over the same photos costs
one `stat` per file, not a read, a hash and a decode.

Keyed by the file's path, size and modification time (nanoseconds): a file that changed in any of them is
checked again. The verdict (its SHA-1, or why it is not a usable image) depends on the rules the check applies,
so the cache records them (the smallest side, the pixel limit, the format) and is ignored when they differ.
It lives in the user's cache folder ($XDG_CACHE_HOME/edgetl/scan/, else ~/.cache/edgetl/scan/), one file per
dataset folder, written atomically: never beside the photos, which may be read-only or shared, and a damaged or
missing cache only means checking again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from edgetl.rundir import write_atomic

FORMAT = "edgetl-scan-cache 1"


@dataclass(frozen=True)
class Stamp:
    """What says a file is unchanged."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Stamp:
        stat = path.stat()
        return cls(stat.st_size, stat.st_mtime_ns)

    @classmethod
    def maybe(cls, path: Path) -> Stamp | None:
        """The stamp, or None for a file that cannot be looked at (the check then says why)."""
        try:
            return cls.of(path)
        except OSError:
            return None


Verdict = tuple[str | None, str]  # (SHA-1 of a usable image, "") or (None, why it is not one)


def cache_file(root: Path) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgetl" / "scan" / f"{hashlib.sha1(str(root).encode()).hexdigest()[:20]}.tsv"


class ScanCache:
    """Verdicts by (path relative to the dataset folder, stamp); `rules` names what the verdicts depend on."""

    def __init__(self, root: Path, rules: str) -> None:
        self.root, self.rules, self.path = root, rules, cache_file(root)
        self.known: dict[str, tuple[Stamp, Verdict]] = self._read()
        self.hits = 0

    def _read(self) -> dict[str, tuple[Stamp, Verdict]]:
        try:
            lines = self.path.read_bytes().decode("utf-8", "surrogateescape").splitlines()
        except OSError:
            return {}
        if not lines or lines[0] != f"{FORMAT}\t{self.rules}":
            return {}  # another format or other rules: every verdict is checked again
        known = {}
        for line in lines[1:]:
            fields = line.split("\t")
            if len(fields) != 5 or not fields[1].isdigit() or not fields[2].isdigit():
                return {}  # damaged: start afresh rather than trust any of it
            relative, size, mtime, digest, reason = fields
            known[relative] = (Stamp(int(size), int(mtime)), (digest or None, reason))
        return known

    def get(self, path: Path) -> Verdict | None:
        """The remembered verdict when the file is unchanged, else None."""
        entry = self.known.get(self._key(path))
        try:
            if entry is None or entry[0] != Stamp.of(path):
                return None
        except OSError:
            return None  # gone or unreadable: the check says why
        self.hits += 1
        return entry[1]

    def put(self, path: Path, stamp: Stamp | None, verdict: Verdict) -> None:
        if stamp is not None:
            self.known[self._key(path)] = (stamp, verdict)

    def save(self, present: list[Path]) -> None:
        """Write the verdicts of the files present now (those gone are forgotten); a failure only costs time."""
        keys = {self._key(path) for path in present}
        lines = [f"{FORMAT}\t{self.rules}"]
        for key in sorted(keys & self.known.keys()):
            stamp, (digest, reason) = self.known[key]
            clean = reason.replace("\t", " ").replace("\n", " ")
            lines.append(f"{key}\t{stamp.size}\t{stamp.mtime_ns}\t{digest or ''}\t{clean}")
        with contextlib.suppress(OSError):
            write_atomic(self.path, ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))

    def _key(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix().replace("\t", "\\t").replace("\n", "\\n")
