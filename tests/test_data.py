"""Dataset discovery on messy folders: what is skipped, what is an error, how the split is made."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgetl.errors import EdgetlError
from edgetl.rundir import read_split_file
from edgetl.train.data import scan, write_split_files
from edgetl.train.sample import make_sample_dataset


def _image(path: Path, value: int, size: int = 32, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path, format=fmt)
    return path


def _flat(root: Path, counts: dict[str, int]) -> Path:
    seed = 0
    for name, count in counts.items():
        for i in range(count):
            seed += 1
            _image(root / name / f"{i}.png", seed)
    return root


def test_messy_folder_skips_and_reports_unreadable_files(tmp_path: Path) -> None:
    root = _flat(tmp_path / "data", {"cats": 12, "dogs": 12})
    _image(root / "cats" / "png_named.jpg", 999, fmt="PNG")  # wrong extension: still an image
    _image(root / "dogs" / "nested" / "deep.png", 998)  # sub-folders of a class count
    (root / "cats" / "notes.txt").write_text("hello")
    (root / "cats" / ".DS_Store").write_bytes(b"\0\1")
    good = _image(root / "dogs" / "big.jpg", 997, size=200)
    (root / "dogs" / "truncated.jpg").write_bytes(good.read_bytes()[:500])
    (root / "dogs" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (root / "dogs" / "tiny.png").parent.mkdir(exist_ok=True)
    Image.new("RGB", (2, 2)).save(root / "dogs" / "tiny.png")

    index = scan(root, seed=1)
    skipped = {Path(path).name: reason for path, reason in index.skipped}
    assert set(skipped) == {"notes.txt", ".DS_Store", "truncated.jpg", "corrupt.png", "tiny.png"}
    assert skipped["notes.txt"] == "not an image" and skipped[".DS_Store"] == "hidden file"
    assert "too small" in skipped["tiny.png"]
    total = sum(len(samples) for samples in index.splits.values())
    assert total == 12 + 12 + 1 + 2  # the valid images, including the misnamed and nested ones
    assert any("Skipped 5 file(s)" in w for w in index.warnings)
    assert index.report()["skipped"][0]["reason"]


def test_split_is_stratified_deterministic_and_round_trips(tmp_path: Path) -> None:
    root = _flat(tmp_path / "data", {"a": 40, "b": 20, "c": 20})
    first, second = scan(root, seed=7), scan(root, seed=7)
    assert first.splits == second.splits
    assert first.counts("test") == [6, 3, 3] and first.counts("validation") == [6, 3, 3]
    other = scan(root, seed=8)
    assert other.splits["test"] != first.splits["test"]
    all_paths = [s.path for samples in first.splits.values() for s in samples]
    assert len(all_paths) == len(set(all_paths)) == 80
    write_split_files(first, tmp_path / "split")
    restored = read_split_file(tmp_path / "split" / "test.txt", first.root, first.classes)
    assert restored == first.splits["test"]


def test_duplicates_stay_in_one_split_and_are_reported(tmp_path: Path) -> None:
    root = _flat(tmp_path / "data", {"a": 20, "b": 20})
    original = root / "a" / "0.png"
    for n in range(3):
        (root / "a" / f"copy{n}.png").write_bytes(original.read_bytes())
    index = scan(root)
    split_of = {s.path: name for name, samples in index.splits.items() for s in samples}
    copies = [index.root / "a" / name for name in ("0.png", "copy0.png", "copy1.png", "copy2.png")]
    assert len({split_of[path] for path in copies}) == 1
    assert len(index.duplicates) == 1 and len(index.duplicates[0]) == 4
    assert any("byte-identical" in w and "kept together" in w for w in index.warnings)


def test_presplit_folder_with_val_alias_and_leak_report(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for split, n in (("train", 10), ("val", 3), ("test", 3)):
        for name in ("x", "y"):
            for i in range(n):
                _image(root / split / name / f"{i}.png", hash((split, name, i)) % 10_000)
    leaked = root / "test" / "x" / "leak.png"
    leaked.write_bytes((root / "train" / "x" / "0.png").read_bytes())
    index = scan(root)
    assert index.presplit and index.classes == ["x", "y"]
    assert index.counts("train") == [10, 10] and index.counts("validation") == [3, 3] and index.counts("test") == [4, 3]
    assert any("span splits" in w for w in index.warnings)


def test_presplit_without_test_carves_it_from_train(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for split, n in (("train", 20), ("validation", 4)):
        for name in ("x", "y"):
            for i in range(n):
                _image(root / split / name / f"{i}.png", hash((split, name, i)) % 10_000)
    index = scan(root, test_fraction=0.25)
    assert index.counts("test") == [5, 5] and index.counts("train") == [15, 15]


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, "does not exist"),
        ({"only": 5}, "at least two"),
        ({"a": 5, "b": 0}, "Class 'b' has no readable images"),
    ],
)
def test_clear_errors(tmp_path: Path, layout: dict[str, int], message: str) -> None:
    root = tmp_path / "data"
    if layout:
        _flat(root, layout)
        for name, count in layout.items():
            (root / name).mkdir(parents=True, exist_ok=True)
            if count == 0:
                (root / name / "readme.txt").write_text("no images here")
    with pytest.raises(EdgetlError, match=message):
        scan(root)


def test_presplit_classes_must_match(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _flat(root / "train", {"x": 3, "y": 3})
    _flat(root / "test", {"x": 3, "z": 3})
    with pytest.raises(EdgetlError, match=r"'test' folder's classes differ.*missing \['y'\].*extra \['z'\]"):
        scan(root)


def test_imbalance_warns_and_turns_on_class_weights(tmp_path: Path) -> None:
    balanced = scan(_flat(tmp_path / "even", {"a": 20, "b": 20}))
    assert balanced.class_weights() is None
    uneven = scan(_flat(tmp_path / "uneven", {"a": 80, "b": 8}))
    weights = uneven.class_weights()
    assert weights is not None and weights[1] > 5 * weights[0]
    assert any("imbalanced" in w for w in uneven.warnings)
    assert any("Very small class" in w for w in uneven.warnings)


def test_a_second_scan_reads_no_unchanged_photo_and_finds_the_same(tmp_path: Path, monkeypatch) -> None:
    """The scan cache (train/scan_cache.py): keyed by path, size and modification time, and by the rules."""
    import os

    from edgetl.train import data as data_module

    root = make_sample_dataset(tmp_path / "d", per_class=6, size=48)
    (root / "circle" / "broken.jpg").write_bytes(b"not an image")
    checked: list[Path] = []
    original = data_module._check_image

    def counting(path: Path):
        checked.append(path)
        return original(path)

    monkeypatch.setattr(data_module, "_check_image", counting)
    first = scan(root)
    assert len(checked) == 25
    checked.clear()
    second = scan(root)
    assert checked == []  # every verdict remembered, the broken file's too
    assert second.splits == first.splits and second.skipped == first.skipped and second.digests == first.digests

    changed = next((root / "star").iterdir())
    changed.write_bytes((root / "square" / next((root / "square").iterdir()).name).read_bytes())  # new content
    os.utime(changed, ns=(1, 1))
    third = scan(root)
    assert checked == [changed] and third.digests[changed] != first.digests[changed]
    checked.clear()
    monkeypatch.setenv("EDGETL_MAX_MEGAPIXELS", "10")  # other rules: every verdict is checked again
    scan(root)
    assert len(checked) == 25


def test_the_process_pool_finds_what_threads_find(tmp_path: Path, monkeypatch) -> None:
    from edgetl.train import data as data_module

    root = make_sample_dataset(tmp_path / "d", per_class=6, size=48)
    (root / "circle" / "broken.jpg").write_bytes(b"not an image")
    threads = scan(root, cache=False)
    monkeypatch.setattr(data_module, "PROCESS_POOL_FROM", 1)  # a spawned pool, as for a large dataset
    processes = scan(root, cache=False, workers=2)
    assert processes.splits == threads.splits and processes.digests == threads.digests
    assert processes.skipped == threads.skipped == [("circle/broken.jpg", "not an image")]


def test_names_that_are_not_text_are_skipped_or_refused_with_one_line(tmp_path: Path) -> None:
    import os

    root = make_sample_dataset(tmp_path / "d", per_class=6, size=48)
    odd = os.fsencode(str(root / "circle")) + b"/caf\xe9.jpg"  # Latin-1, as old cameras name files
    with open(odd, "wb") as handle:
        handle.write(next((root / "circle").iterdir()).read_bytes())
    index = scan(root, cache=False)
    assert [(path, why) for path, why in index.skipped if "UTF-8" in why] == [
        (os.fsdecode(b"circle/caf\xe9.jpg"), "its name is not UTF-8 text: rename it")
    ]
    write_split_files(index, tmp_path / "split")  # every listed photo can be named
    os.mkdir(os.fsencode(str(root)) + b"/\xe9toile")
    with pytest.raises(EdgetlError, match="not named in UTF-8 text"):
        scan(root, cache=False)
