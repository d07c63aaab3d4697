"""`edgetl train DATA --out runs/v2 --from runs/v1`: v2 is judged on the same yardstick as v1.

Every photo of v1's test split that still exists stays in v2's test split, and the same for validation and
train; only photos v1 never saw are split, by the usual stratified rule. Photos are known by their content
(the SHA-1 the data check computes), so a photo moved to another class folder — relabelled — is recognised
and reported, and keeps its split. Each run writes `split/digests.txt` for the runs that follow it, and
records its parent and a dataset version (a hash of the sorted (content, class) pairs) in edgetl.json.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.rundir import SPLITS, RunInfo, write_atomic

DIGESTS = "digests.txt"  # in the run's split/ folder: "sha1<TAB>split<TAB>class<TAB>relative path" per image


@dataclass(frozen=True)
class Parent:
    """What the parent run knew about each photo, by content."""

    directory: Path
    split_of: dict[str, str]  # digest → split
    class_of: dict[str, str]  # digest → class name
    path_of: dict[str, str]  # digest → path relative to the data folder, for the report


def read_parent(run_dir: Path) -> Parent:
    """The parent's photos by content: from its digests.txt, else (runs before it) by hashing its split files."""
    info = RunInfo.load(run_dir)  # a missing or unfinished run is one clear line
    listed = run_dir / "split" / DIGESTS
    split_of, class_of, path_of = {}, {}, {}
    if listed.is_file():
        for line in listed.read_text().splitlines():
            digest, split, name, relative = line.split("\t", 3)
            split_of[digest], class_of[digest], path_of[digest] = split, name, relative
        return Parent(run_dir, split_of, class_of, path_of)
    for split in SPLITS:
        for sample in info.samples(split):
            if sample.path.is_file():
                digest = hashlib.sha1(sample.path.read_bytes()).hexdigest()
                split_of[digest], class_of[digest] = split, info.labels[sample.label]
                path_of[digest] = sample.path.relative_to(info.data.root).as_posix()
    if not split_of:
        raise EdgetlError(f"None of {run_dir}'s photos exist any more.", "Pass the run trained on this dataset.")
    return Parent(run_dir, split_of, class_of, path_of)


def write_digests(folder: Path, root: Path, classes: list[str], splits: dict, digests: dict[Path, str]) -> None:
    lines = (
        f"{digests[sample.path]}\t{split}\t{classes[sample.label]}\t{sample.path.relative_to(root).as_posix()}\n"
        for split, samples in splits.items()
        for sample in samples
    )
    write_atomic(folder / DIGESTS, "".join(lines))


def dataset_version(classes: list[str], splits: dict, digests: dict[Path, str]) -> str:
    """A hash of the sorted (content, class) pairs: the same photos under the same classes, the same version."""
    pairs = sorted(f"{digests[s.path]}\t{classes[s.label]}" for samples in splits.values() for s in samples)
    return hashlib.sha256("\n".join(pairs).encode()).hexdigest()[:16]


def changes(parent: Parent, root: Path, classes: list[str], splits: dict, digests: dict[Path, str]) -> dict:
    """Photos added, removed and relabelled since the parent (for data_report.json)."""
    now = {digests[s.path]: (classes[s.label], s.path.relative_to(root).as_posix()) for v in splits.values() for s in v}
    relabelled = [
        {"path": path, "was": parent.class_of[digest], "now": name}
        for digest, (name, path) in now.items()
        if digest in parent.class_of and parent.class_of[digest] != name
    ]
    return {
        "parent": str(parent.directory),
        "added": sorted(path for digest, (_, path) in now.items() if digest not in parent.split_of),
        "removed": sorted(parent.path_of[d] for d in parent.split_of if d not in now),
        "relabelled": sorted(relabelled, key=lambda item: item["path"]),
        "kept_in_test": sum(1 for d in now if parent.split_of.get(d) == "test"),
    }
