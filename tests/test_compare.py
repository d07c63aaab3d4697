"""`edgetl compare A B`: the same images for both models, a paired test, one verdict and an exit code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from test_edge import edge_cli

from edgetl.edge.compare import verdict


def test_the_verdict_follows_mcnemars_exact_test() -> None:
    line, p_value, better = verdict(gained=12, lost=1, images=128)
    assert better and p_value < 0.01 and line.startswith("B is better by 8.6 pt") and "deploy B" in line
    line, p_value, better = verdict(gained=1, lost=12, images=128)
    assert not better and line.startswith("B is worse by 8.6 pt")
    line, p_value, better = verdict(gained=3, lost=1, images=128)  # +1.6 pt: two images could be chance
    assert not better and p_value > 0.5 and line.startswith("No significant difference: B +1.6 pt")
    assert verdict(0, 0, 36) == ("No significant difference: B +0.0 pt (p = 1; 0 images gained, 0 lost).", 1.0, False)


def test_a_model_against_itself_is_no_better_and_exits_1(beans_int8: Path, tmp_path: Path) -> None:
    copy = tmp_path / "candidate.tflite"
    shutil.copy(beans_int8 / "model_int8.tflite", copy)
    done = edge_cli("compare", str(beans_int8), str(copy), "--json", "-", "--data", str(beans_int8 / "unused"))
    assert done.returncode == 2 and "does not exist" in done.stderr  # --data is checked: one line
    done = edge_cli("compare", str(beans_int8), str(beans_int8), "--json", "-")
    assert done.returncode == 1, done.stderr  # exit 1: nothing to deploy
    record = json.loads(done.stdout)
    assert record["images"] == 36 and record["agreement"] == 1.0 and record["gained"] == record["lost"] == 0
    assert record["a"]["top1"] == record["b"]["top1"] and record["a"]["median_ms"] > 0
    assert set(record["a"]["per_class"]) == {"angular_leaf_spot", "bean_rust", "healthy"}
    table = edge_cli("compare", str(beans_int8), str(copy), "--data", str(_beans_test(tmp_path)), "--no-timing")
    assert table.returncode == 1 and "No significant difference" in table.stdout, table.stderr
    assert "6 held-out images of the classes both know" in table.stdout and "B is a .tflite file" in table.stdout


def test_models_that_share_no_class_are_one_clear_line(beans_int8: Path, converted: tuple[Path, dict]) -> None:
    done = edge_cli("compare", str(converted[0]), str(beans_int8))
    assert done.returncode == 2 and "share no class" in done.stderr and "Traceback" not in done.stderr


def _beans_test(tmp_path: Path) -> Path:
    from conftest import shared_path

    folder = tmp_path / "data"
    for source in sorted(shared_path("datasets", "beans", "test").iterdir()):
        (folder / source.name).mkdir(parents=True)
        for image in sorted(source.glob("*.jpg"))[:2]:
            (folder / source.name / image.name).symlink_to(image)
    return folder


def _run_on(template: Path, destination: Path, root: Path, splits: dict[str, list[Path]]) -> Path:
    """A copy of a converted run that claims to have trained on `root` with these splits (same classes)."""
    from edgetl.digests import content_digest
    from edgetl.rundir import read_json, write_json

    run = shutil.copytree(template, destination)
    meta = read_json(run / "edgetl.json")
    meta["data"]["root"] = str(root)
    write_json(run / "edgetl.json", meta)
    digests = []
    for split, paths in splits.items():
        lines = [f"{p.relative_to(root).as_posix()}\t{p.parent.name}\n" for p in paths]
        (run / "split" / f"{split}.txt").write_text("".join(lines))
        digests += [f"{content_digest(p)}\t{split}\t{p.parent.name}\t{p.relative_to(root).as_posix()}\n" for p in paths]
    (run / "split" / "digests.txt").write_text("".join(digests))
    return run


def _copy(photos: list[Path], root: Path, suffix: str = "") -> list[Path]:
    copies = []
    for photo in photos:
        target = root / photo.parent.name / f"{photo.stem}{suffix}{photo.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        copies.append(Path(shutil.copyfile(photo, target)))
    return copies


def test_compare_judges_only_photos_neither_model_trained_on_each_once(beans_int8: Path, tmp_path: Path) -> None:
    """B trained on a flat copy of A's photos: its train split holds A's test photos, its test split A's train
    photos, fresh photos and copies of those. Only the fresh photos, once each, may decide."""
    from conftest import shared_path
    from edgetl.rundir import RunInfo

    a = RunInfo.load(beans_int8)
    a_train, a_test = [s.path for s in a.samples("train")], [s.path for s in a.samples("test")]
    fresh = [p for c in sorted(shared_path("datasets", "beans", "test").iterdir()) for p in sorted(c.iterdir())[20:26]]
    flat = tmp_path / "flat"
    b_test = _copy(a_train[::2], flat) + _copy(fresh, flat) + _copy(fresh, flat, "-copy")
    b = _run_on(beans_int8, tmp_path / "b", flat, {"train": _copy(a_test, flat), "validation": [], "test": b_test})
    done = edge_cli("compare", str(beans_int8), str(b), "--json", str(tmp_path / "verdict.json"), "--no-timing")
    assert done.returncode == 1, done.stderr
    record = json.loads((tmp_path / "verdict.json").read_text())
    assert record["images"] == len(fresh) == 18
    assert record["excluded"] == {
        "trained or validated on by B": len(a_test),
        "trained or validated on by A": len(a_train[::2]),
        "copies of a photo already counted": len(fresh),
    }
    assert "18 held-out images" in done.stdout and "36 trained or validated on by B" in done.stdout

    nothing_left = _run_on(beans_int8, tmp_path / "c", flat, {"train": b_test, "validation": [], "test": []})
    done = edge_cli("compare", str(b), str(nothing_left), "--data", str(flat), "--no-timing")
    assert done.returncode == 2 and "Only 0 photo(s)" in done.stderr and "Traceback" not in done.stderr


def test_compare_goes_on_without_deleted_test_photos_and_says_so(beans_int8: Path, tmp_path: Path) -> None:
    from edgetl.rundir import RunInfo

    a = RunInfo.load(beans_int8)
    root = tmp_path / "data"
    splits = {split: _copy([s.path for s in a.samples(split)], root) for split in ("train", "validation", "test")}
    run = _run_on(beans_int8, tmp_path / "a", root, splits)
    for photo in splits["test"][:10]:
        photo.unlink()
    done = edge_cli("compare", str(run), str(run), "--no-timing")
    assert done.returncode == 1 and "26 held-out images" in done.stdout, done.stderr
    assert "10 test photo(s) the runs list are missing" in done.stdout


def test_better_never_means_rejecting_less() -> None:
    """The two sides of "unknown", paired: B that decides fewer in-class photos, or calls fewer other photos
    unknown, beyond chance, is worse there (and compare then keeps A even when B is more accurate)."""
    import numpy as np

    from edgetl.edge.compare import unknown_verdict

    same = np.ones(100, dtype=bool)
    a_rejects = np.ones(40, dtype=bool)
    b_rejects = np.arange(40) >= 12  # B lets 12 of 40 other photos through that A called unknown
    line, worse = unknown_verdict((same, same), (a_rejects, b_rejects))
    assert worse and line.startswith("B calls unknown 30.0 pt fewer other photos (p = ")
    line, worse = unknown_verdict((same, same), (b_rejects, a_rejects))  # B rejects more: fine
    assert not worse and line == ""
    b_decides = np.arange(100) >= 10  # B calls 10 in-class photos unknown that A decided
    line, worse = unknown_verdict((same, b_decides), None)
    assert worse and "decides as a class 10.0 pt fewer in-class photos" in line and "No other photos" in line


def test_compare_judges_unknown_on_the_runs_held_out_other_photos(beans_int8: Path, tmp_path: Path) -> None:
    """B's split/other.txt: its held-out other photos count; those it fitted on, and a class photo of A filed as
    "other", do not."""
    from conftest import shared_path
    from edgetl.digests import content_digest
    from edgetl.rundir import RunInfo, read_json, write_json

    other = tmp_path / "other"
    other.mkdir()
    flowers = sorted(shared_path("datasets", "flowers", "rose").glob("*.jpg"))[:12]
    a_train = RunInfo.load(beans_int8).samples("train")[0].path
    photos = [Path(shutil.copy(p, other)) for p in [*flowers, a_train]]
    sides = ["test"] * 8 + ["validation"] * 4 + ["test"]
    b = shutil.copytree(beans_int8, tmp_path / "b")
    lines = [f"{content_digest(p)}\t{side}\t{p.name}\n" for p, side in zip(photos, sides)]
    (b / "split" / "other.txt").write_text("".join(lines))
    meta = read_json(b / "edgetl.json")
    meta["data"]["other_root"] = str(other)
    write_json(b / "edgetl.json", meta)
    done = edge_cli("compare", str(beans_int8), str(b), "--json", "-", "--no-timing")
    assert done.returncode == 1, done.stderr
    record = json.loads(done.stdout)
    assert record["other_photos"] == 8
    assert record["excluded"]["other photos fitted on, or class photos, of A or B"] == 1
    assert record["a"]["other_unknown"] == record["b"]["other_unknown"] >= 0.75  # roses are not beans
    assert record["a"]["decided"] == record["b"]["decided"] > 0.5
    shutil.copy(sorted(shared_path("datasets", "flowers", "tulip").glob("*.jpg"))[0], other)  # in no run
    (other / "broken.jpg").write_bytes(b"\xff\xd8 not a whole JPEG")  # left out and counted, no traceback
    data = _beans_test(tmp_path)
    (data / "healthy" / "broken.jpg").write_bytes(b"not a photo")
    table = edge_cli("compare", str(beans_int8), str(b), "--no-timing", "--other", str(other), "--data", str(data))
    assert "other photos called unknown (9)" in table.stdout, table.stdout + table.stderr  # fitted-on left out
    assert "5 other photos fitted on, or class photos, of A or B" in table.stdout
    assert "1 other photos that are not readable images" in table.stdout and "1 not readable images" in table.stdout
