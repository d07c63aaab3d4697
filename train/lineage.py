"""`edgetl train DATA --out runs/v2 --from runs/v1`: v2 is judged on the same yardstick as v1.

Every photo of v1's test split that still exists stays in v2's test split, and the same for validation and
train; only photos v1 never saw are split, by the usual stratified rule. That holds for a pre-split DATA too:
where its folders disagree with v1's split, v1's split wins, by content, and the report says how many moved.
Photos are known by their content (edgetl/digests.py), so a photo moved to another class folder (relabelled)
is recognised and reported, and keeps its split. Each run records its parent and a dataset version (a hash of
the sorted (content, class) pairs) in edgetl.json.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from edgetl.digests import OTHER, run_photos
from edgetl.errors import EdgetlError
from edgetl.rundir import SPLIT_DIR, RunInfo
from edgetl.train.other import read_sides


@dataclass(frozen=True)
class Parent:
    """What the parent run knew about each photo, by content."""

    directory: Path
    split_of: dict[str, str]  # digest → split
    class_of: dict[str, str]  # digest → class name
    path_of: dict[str, str]  # digest → path relative to the data folder, for the report
    other_sides: dict[str, str]  # digest → side, of its "other" photos (train/other.py)

    def sides_for_other(self) -> dict[str, str]:
        """Where the child's other photos go when the parent knew them: their old side; a former class photo
        goes to the fitting side unless the parent only tested on it, so the parent is never judged on a
        photo it trained on as a class."""
        was_class = {d: "test" if split == "test" else "validation" for d, split in self.split_of.items()}
        return was_class | self.other_sides


def read_parent(run_dir: Path) -> Parent:
    """The parent's photos by content (edgetl/digests.py); a missing, unfinished or damaged run is one line."""
    photos = run_photos(RunInfo.load(run_dir))
    if not photos:
        raise EdgetlError(f"None of {run_dir}'s photos exist any more.", "Pass the run trained on this dataset.")
    split_of = {photo.digest: photo.split for photo in photos}
    class_of = {photo.digest: photo.label for photo in photos}
    path_of = {photo.digest: photo.path for photo in photos}
    other_sides = read_sides(run_dir / SPLIT_DIR / OTHER)
    return Parent(run_dir, split_of, class_of, path_of, other_sides)


def dataset_version(classes: list[str], splits: dict, digests: dict[Path, str]) -> str:
    """A hash of the sorted (content, class) pairs: the same photos under the same classes, the same version."""
    pairs = sorted(f"{digests[s.path]}\t{classes[s.label]}" for samples in splits.values() for s in samples)
    return hashlib.sha256("\n".join(pairs).encode()).hexdigest()[:16]


def changes(parent: Parent, root: Path, classes: list[str], splits: dict, digests: dict[Path, str]) -> dict:
    """Photos added, removed and relabelled since the parent (for data_report.json)."""
    now = {digests[s.path]: (classes[s.label], s.path.relative_to(root).as_posix()) for v in splits.values() for s in v}
    split_now = {digests[s.path]: split for split, samples in splits.items() for s in samples}
    parent_test = [d for d in now if parent.split_of.get(d) == "test"]
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
        "kept_in_test": sum(1 for d in parent_test if split_now[d] == "test"),  # what really happened
        "parent_test_not_in_test": sum(1 for d in parent_test if split_now[d] != "test"),
        "in_common": sum(1 for d in now if d in parent.split_of),
    }
