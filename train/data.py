"""Find the images in a folder-per-class dataset, weed out what cannot be read, and split it.

Real folders are messy. Every file is decoded once here (in parallel) so that unreadable
ones are listed in a report up front instead of crashing an epoch later; byte-identical
duplicates are found from the same read and kept on one side of the split.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import random
import signal
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgetl.errors import EdgetlError
from edgetl.images import class_folders, load_rgb, max_pixels
from edgetl.layout import split_folders
from edgetl.rundir import SPLITS, Sample, write_split_file
from edgetl.text import is_text
from edgetl.train.scan_cache import ScanCache, Stamp

if TYPE_CHECKING:  # train/other.py uses this module's image check
    from edgetl.train.other import OtherPhotos

MIN_CLASS_IMAGES = 10  # below this a class gets a warning: too few to learn or to measure
IMBALANCE_FOR_WEIGHTS = 1.5  # largest/smallest class ratio from which class weights are used
IMBALANCE_WARNING = 3.0
MIN_SIDE = 8  # pixels; smaller "images" are icons or broken files
PROCESS_POOL_FROM = 500  # files to check from which a process pool's start-up (about a second) pays

Progress = Callable[[int], None]


@dataclass
class DatasetIndex:
    """The images of one dataset, assigned to train/validation/test."""

    root: Path
    classes: list[str]
    splits: dict[str, list[Sample]]
    presplit: bool
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    duplicates: list[list[str]] = field(default_factory=list)  # groups of byte-identical files
    warnings: list[str] = field(default_factory=list)
    digests: dict[Path, str] = field(default_factory=dict)  # each image's content hash (SHA-1)
    since_parent: dict | None = None  # --from: photos added, removed and relabelled (train/lineage.py)
    other: OtherPhotos | None = None  # photos of none of the classes (train/other.py), for "unknown"
    moved_to_parent_split: int = 0  # --from on a pre-split folder: photos put in the parent's split instead

    def counts(self, split: str) -> list[int]:
        counter = Counter(sample.label for sample in self.splits[split])
        return [counter.get(i, 0) for i in range(len(self.classes))]

    def class_weights(self) -> dict[int, float] | None:
        """Balanced weights (n / (k · count)) when the training classes are clearly uneven, else None."""
        counts = self.counts("train")
        if min(counts) == 0 or max(counts) / min(counts) < IMBALANCE_FOR_WEIGHTS:
            return None
        total, k = sum(counts), len(counts)
        return {i: total / (k * count) for i, count in enumerate(counts)}

    def report(self) -> dict:
        """What the run directory records about the data: counts, skipped files, duplicates, warnings."""
        return (
            {
                "root": str(self.root),
                "presplit": self.presplit,
                "classes": self.classes,
                "counts": {split: dict(zip(self.classes, self.counts(split))) for split in SPLITS},
                "skipped": [{"path": path, "reason": reason} for path, reason in self.skipped],
                "duplicates": self.duplicates,
                "warnings": self.warnings,
            }
            | ({"since_parent": self.since_parent} if self.since_parent is not None else {})
            | ({"other": self.other.report()} if self.other else {})
        )


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") or part.startswith("__") for part in path.relative_to(root).parts)


def _class_dirs(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in class_folders(folder)}


def _check_image(path: Path) -> tuple[str | None, str]:
    """Return (sha1 of the bytes, "") for a usable image, else (None, reason)."""
    try:
        data = path.read_bytes()  # read once: hashed for duplicates, decoded to prove it is readable
        digest = hashlib.sha1(data).hexdigest()
        rgb = load_rgb(io.BytesIO(data))
    except Exception as error:  # Pillow raises many types for broken files
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "cannot identify image file" in reason:
            reason = "not an image"
        return None, reason
    if min(rgb.shape[:2]) < MIN_SIDE:
        return None, f"too small ({rgb.shape[1]}x{rgb.shape[0]} px)"
    return digest, ""


def scan(
    root: Path,
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 42,
    workers: int = 8,
    progress: Callable[[int], Progress] | None = None,
    keep_splits: dict[str, str] | None = None,
    cache: bool = True,
) -> DatasetIndex:
    """Index a dataset folder: `root/<class>/...` or `root/{train,validation|val,test}/<class>/...`.

    `progress(total)` may return a callback that is called once per checked file. `keep_splits` (content
    hash → split, from a parent run: train/lineage.py) keeps those photos in their split; the others are split
    as usual, or keep the pre-split folder's split. Where a pre-split folder disagrees with the parent, the
    parent's split wins: its test photos must never be trained on (`moved_to_parent_split` counts them).
    `cache`: remember each file's verdict between runs (train/scan_cache.py), so that a second scan of
    unchanged photos reads none of them.
    """
    root = root.expanduser().resolve()
    if not root.is_dir():
        raise EdgetlError(f"Dataset folder {root} does not exist.", "Pass a folder with one sub-folder per class.")
    layout = split_folders(root)
    presplit = bool(layout)
    if not presplit:
        layout = {"all": root}

    per_split_classes = {name: _class_dirs(folder) for name, folder in layout.items()}
    classes = sorted(per_split_classes.get("train", per_split_classes.get("all", {})))
    _check_classes(root, per_split_classes, classes)

    files, skipped = _candidate_files(root, per_split_classes, classes)
    grouped, by_digest = _checked_images(root, files, skipped, workers, progress, cache)
    for label, name in enumerate(classes):
        for split_name in per_split_classes:
            if not grouped[split_name][label]:
                where = f"{layout[split_name].name}/{name}" if presplit else name
                raise EdgetlError(
                    f"Class '{name}' has no readable images (in {where}).",
                    "Add images to it or remove the folder.",
                )

    digests = {path: digest for by_label in grouped.values() for items in by_label.values() for digest, path in items}
    moved = 0
    if presplit:
        splits = _presplit_samples(grouped, classes, val_fraction, test_fraction, seed)
        splits, moved = _follow_parent(splits, digests, keep_splits or {})
    else:
        splits = _split_keeping(grouped["all"], classes, keep_splits or {}, (val_fraction, test_fraction), seed)

    index = DatasetIndex(root, classes, splits, presplit, skipped, digests=digests, moved_to_parent_split=moved)
    _report_duplicates(index, by_digest, classes)
    _warn_about_balance(index)
    if skipped:
        index.warnings.insert(
            0, f"Skipped {len(skipped)} file(s) that are not readable images (listed in data_report.json)."
        )
    return index


def _candidate_files(
    root: Path, per_split_classes: dict[str, dict[str, Path]], classes: list[str]
) -> tuple[list[tuple[str, int, Path]], list[tuple[str, str]]]:
    """(every file under the class folders as (split, label, path), hidden files skipped with why)."""
    files: list[tuple[str, int, Path]] = []
    skipped: list[tuple[str, str]] = []
    for split_name, class_dirs in per_split_classes.items():
        for label, name in enumerate(classes):
            for path in sorted(class_dirs[name].rglob("*")):
                if not path.is_file():
                    continue
                if _is_hidden(path, root):
                    skipped.append((str(path.relative_to(root)), "hidden file"))
                    continue
                if not is_text(str(path.relative_to(root))):  # split files and reports could not name it
                    skipped.append((str(path.relative_to(root)), "its name is not UTF-8 text: rename it"))
                    continue
                files.append((split_name, label, path))
    return files, skipped


def _checked_images(
    root: Path,
    files: list[tuple[str, int, Path]],
    skipped: list[tuple[str, str]],
    workers: int,
    progress: Callable[[int], Progress] | None,
    cache: bool = True,
) -> tuple[dict, dict]:
    """Each file opened, hashed and decoded (`_verdicts`), unless the scan cache knows it unchanged
    (train/scan_cache.py): readable images grouped by split and label (with their digest), and by digest for
    duplicates; unreadable ones appended to `skipped` with why."""
    tick = progress(len(files)) if progress else (lambda n: None)
    remembered = ScanCache(root, f"min_side={MIN_SIDE};max_pixels={max_pixels()}") if cache else None
    paths = [path for _, _, path in files]
    results: dict[Path, tuple[str | None, str]] = {}
    for path in paths:
        if remembered and (known := remembered.get(path)) is not None:
            results[path] = known
            tick(1)
    unknown = [path for path in paths if path not in results]
    stamps = {path: Stamp.maybe(path) for path in unknown}  # before the reads: a file changed meanwhile is new
    for path, verdict in zip(unknown, _verdicts(unknown, workers, tick)):
        results[path] = verdict
        if remembered:
            remembered.put(path, stamps[path], verdict)
    if remembered:
        remembered.save(paths)
    grouped: dict[str, dict[int, list[tuple[str, Path]]]] = defaultdict(lambda: defaultdict(list))
    by_digest: dict[str, list[tuple[str, int, Path]]] = defaultdict(list)
    for split_name, label, path in files:
        digest, reason = results[path]
        if digest is None:
            skipped.append((str(path.relative_to(root)), reason))
            continue
        grouped[split_name][label].append((digest, path))
        by_digest[digest].append((split_name, label, path))
    return grouped, by_digest


def _verdicts(paths: list[Path], workers: int, tick: Progress) -> Iterator[tuple[str | None, str]]:
    """`_check_image` of each path, in order. Many files: a bounded pool of processes, one per core up to
    `workers` (on flowers, 2 cores: threads scan 1.2× as fast as one worker, processes 1.7×;
    benchmarks/scan_speed.py); spawned, since training has TensorFlow loaded, which must not be forked. A few
    files: threads, which start at once."""
    cores = min(workers, os.cpu_count() or 1)
    if len(paths) < PROCESS_POOL_FROM or cores < 2:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for verdict in pool.map(_check_image, paths):
                tick(1)
                yield verdict
        return
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=cores, mp_context=spawn, initializer=_leave_signals_to_the_parent) as pool:
        for verdict in pool.map(_check_image, paths, chunksize=32):
            tick(1)
            yield verdict


def check_files(paths: list[Path], workers: int = 8) -> list[tuple[str | None, str]]:
    """Each file's (SHA-1, "") when it is a usable image, else (None, why): the data scan's check, for other
    folders (train/other.py)."""
    return list(_verdicts(paths, workers, lambda n: None))


def _leave_signals_to_the_parent() -> None:
    """In a scan worker: Ctrl-C reaches the whole process group, and the parent (edgetl/interrupt.py) decides;
    a worker that also raised would print a traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _check_classes(root: Path, per_split: dict[str, dict[str, Path]], classes: list[str]) -> None:
    for name in classes:
        if not is_text(name):
            raise EdgetlError(
                f"The class folder {name.encode('utf-8', 'surrogateescape')!r} in {root} is not named in UTF-8 text.",
                "Rename it (its name becomes the class label in the model).",
            )
    if len(classes) < 2:
        found = ", ".join(classes) or "none"
        raise EdgetlError(
            f"{root} has {len(classes)} class folder(s) ({found}); a classifier needs at least two.",
            "Put each class's images in its own sub-folder.",
        )
    for split_name, class_dirs in per_split.items():
        if sorted(class_dirs) != classes:
            missing = sorted(set(classes) - set(class_dirs))
            extra = sorted(set(class_dirs) - set(classes))
            raise EdgetlError(
                f"The '{split_name}' folder's classes differ from 'train': missing {missing}, extra {extra}.",
                "Every split folder must hold the same class folders.",
            )


def _fraction_count(n: int, fraction: float) -> int:
    if fraction <= 0:
        return 0
    return max(1, round(n * fraction)) if n >= 3 else 0


def _stratified_split(
    by_class: dict[int, list[tuple[str, Path]]],
    classes: list[str],
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, list[Sample]]:
    """Per class: shuffle (seeded), fill test, then validation, rest train. Duplicates move as one."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise EdgetlError("--val-fraction and --test-fraction must be in [0, 1) and sum to less than 1.")
    splits: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    for label in range(len(classes)):
        groups: dict[str, list[Path]] = defaultdict(list)
        for digest, path in by_class[label]:
            groups[digest].append(path)
        ordered = sorted(groups.values(), key=lambda paths: str(paths[0]))
        random.Random(f"{seed}:{classes[label]}").shuffle(ordered)
        n = len(by_class[label])
        quotas = {"test": _fraction_count(n, test_fraction), "validation": _fraction_count(n, val_fraction)}
        for paths in ordered:
            target = next((name for name in ("test", "validation") if quotas[name] > 0), "train")
            if target != "train":
                quotas[target] -= len(paths)
            splits[target].extend(Sample(path, label) for path in paths)
    return {name: sorted(samples, key=lambda s: str(s.path)) for name, samples in splits.items()}


def _split_keeping(
    by_class: dict[int, list[tuple[str, Path]]],
    classes: list[str],
    keep: dict[str, str],
    fractions: tuple[float, float],
    seed: int,
) -> dict[str, list[Sample]]:
    """Photos named in `keep` (by content) stay in their split; the others are split by `_stratified_split`."""
    kept: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    new: dict[int, list[tuple[str, Path]]] = defaultdict(list)
    for label, items in by_class.items():
        for digest, path in items:
            if keep.get(digest) in kept:
                kept[keep[digest]].append(Sample(path, label))
            else:
                new[label].append((digest, path))
    carved = _stratified_split(new, classes, *fractions, seed)
    return {name: sorted(kept[name] + carved[name], key=lambda s: str(s.path)) for name in SPLITS}


def _follow_parent(
    splits: dict[str, list[Sample]], digests: dict[Path, str], keep: dict[str, str]
) -> tuple[dict[str, list[Sample]], int]:
    """A pre-split folder's samples, each photo the parent knew put in the parent's split; (splits, moved)."""
    followed: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    moved = 0
    for name, samples in splits.items():
        for sample in samples:
            target = keep.get(digests[sample.path], name)
            target = target if target in followed else name
            moved += target != name
            followed[target].append(sample)
    return {name: sorted(samples, key=lambda s: str(s.path)) for name, samples in followed.items()}, moved


def _presplit_samples(
    grouped: dict[str, dict[int, list[tuple[str, Path]]]],
    classes: list[str],
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, list[Sample]]:
    """Use the folder's own split; carve a missing validation or test split out of train."""
    missing_val = "validation" not in grouped
    missing_test = "test" not in grouped
    carved = _stratified_split(
        grouped["train"],
        classes,
        val_fraction if missing_val else 0.0,
        test_fraction if missing_test else 0.0,
        seed,
    )
    splits = {"train": carved["train"]}
    for name in ("validation", "test"):
        if name in grouped:
            splits[name] = sorted(
                (Sample(path, label) for label, items in grouped[name].items() for _, path in items),
                key=lambda s: str(s.path),
            )
        else:
            splits[name] = carved[name]
    return splits


def _report_duplicates(index: DatasetIndex, by_digest: dict, classes: list[str]) -> None:
    split_of = {sample.path: name for name, samples in index.splits.items() for sample in samples}
    cross_split = conflicting = 0
    for copies in by_digest.values():
        if len(copies) < 2:
            continue
        paths = [path for _, _, path in copies]
        index.duplicates.append([str(path.relative_to(index.root)) for path in paths])
        if len({split_of.get(path) for path in paths}) > 1:
            cross_split += 1
        if len({label for _, label, _ in copies}) > 1:
            conflicting += 1
    if index.duplicates:
        message = f"{len(index.duplicates)} group(s) of byte-identical images"
        if cross_split:
            message += f"; {cross_split} span splits and leak test images into training"
        elif not index.presplit:
            message += ", kept together in one split"
        index.warnings.append(message + " (listed in data_report.json).")
    if conflicting:
        index.warnings.append(f"{conflicting} identical image(s) appear under different classes: check the labels.")


def _warn_about_balance(index: DatasetIndex) -> None:
    counts = index.counts("train")
    small = [name for name, count in zip(index.classes, counts) if count < MIN_CLASS_IMAGES]
    if small:
        index.warnings.append(
            f"Very small class(es) {small}: fewer than {MIN_CLASS_IMAGES} training images each; "
            "expect unreliable accuracy for them."
        )
    if min(counts) and max(counts) / min(counts) >= IMBALANCE_WARNING:
        index.warnings.append(
            f"Classes are badly imbalanced (largest/smallest = {max(counts) / min(counts):.1f}); "
            "class weights are used."
        )


def write_split_files(index: DatasetIndex, folder: Path) -> None:
    """Exact file lists, so every later stage uses the same held-out test images."""
    for name, samples in index.splits.items():
        write_split_file(folder / f"{name}.txt", index.root, index.classes, samples)
