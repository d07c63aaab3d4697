""" "Other" photos (none of the classes): checked, split by content, and used to place "unknown" (issue 32)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from conftest import TINY, shared_path
from edgetl.errors import EdgetlError
from edgetl.open_world_card import OODRule, OpenWorldCard
from edgetl.rundir import RunInfo, read_json
from edgetl.train.open_world import other_threshold
from edgetl.train.other import scan_other, split_other


def flowers(count: int, start: int = 0) -> list[Path]:
    return sorted(shared_path("datasets", "flowers", "daisy").glob("*.jpg"))[start : start + count]


def test_other_photos_are_split_by_content_half_and_half_and_keep_known_sides() -> None:
    digests = [f"{i:040x}" for i in range(9)] + [f"{3:040x}"]  # a copy of photo 3
    sides = split_other(digests, seed=1)
    assert sides.count("validation") == 5 and sides.count("test") == 5  # 9 photos: the odd one fits
    assert sides[3] == sides[9]  # byte-identical copies on one side
    assert split_other(list(reversed(digests)), seed=1) == list(reversed(sides))  # by content, not order
    assert split_other(digests, seed=2) != sides  # the seed decides, as for the data
    known = {digests[0]: "test", digests[1]: "validation"}
    again = split_other(digests, seed=1, keep=known)
    assert again[0] == "test" and again[1] == "validation"


def test_other_photos_move_the_threshold_up_as_far_as_they_allow_and_it_refits_like_a_fitted_one() -> None:
    from edgetl.train.open_world import OTHER_CAP, RETENTION

    inside = np.linspace(0.1, 0.4, 100)
    classes_only, cap = np.quantile(inside, RETENTION), OTHER_CAP * np.quantile(inside, 0.99)
    near = np.linspace(0.41, 0.6, 100)  # just beyond the classes: the threshold goes under their lowest 5 %
    placed = other_threshold(inside, near)
    assert classes_only < placed < 0.42 and placed == pytest.approx(np.quantile(near, 0.05))
    assert other_threshold(inside, near + 10) == pytest.approx(cap)  # far away: no further than the cap
    assert other_threshold(inside, inside) == pytest.approx(classes_only)  # among the classes: never stricter
    rng = np.random.default_rng(0)
    validation = rng.uniform(0.1, 0.5, 200)
    rule = OODRule.placed(0.6, validation, prototypes=8, other_photos=3)  # above every in-class score
    assert rule.threshold == 0.6 and rule.retention == 1.0 and rule.refit(validation) == pytest.approx(0.6)
    assert rule.refit(validation * 1.1) == pytest.approx(0.66)  # a converted file's scores move it alike
    inner = OODRule.placed(0.45, validation, other_photos=3)
    assert inner.refit(validation) == pytest.approx(0.45, abs=0.01)
    card = OpenWorldCard.from_json(OpenWorldCard(1.0, rule).to_json())
    assert card.ood.other_photos == 3 and card.ood.headroom == rule.headroom
    for measured in ({"in_class_decided": 2.0}, {"in_class_decided": 0.9, "other_photos": -1}, [0.9], {}):
        with pytest.raises(ValueError, match="measured"):  # a model card comes from a file: checked
            OpenWorldCard.from_json({"measured": measured})


def _data(sample_data: Path, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(sample_data, data)
    return data


def _scan(folder: Path, data: Path, **changes) -> object:
    from edgetl.train.data import scan

    index = scan(data, cache=False)
    return scan_other(folder, data, index.digests, seed=1, **changes)


def test_other_folder_mistakes_are_one_clear_line_each(sample_data: Path, tmp_path: Path) -> None:
    data = _data(sample_data, tmp_path)
    cases = {
        data: r"is \(or holds\) the data folder",
        tmp_path: r"is \(or holds\) the data folder",  # a folder that holds DATA: its class photos would be "other"
        data / "circle": "is inside the data folder",
        tmp_path / "missing": "does not exist",
    }
    for folder, message in cases.items():
        with pytest.raises(EdgetlError, match=message):
            _scan(folder, data)
    empty = tmp_path / "empty"
    (empty / ".hidden").mkdir(parents=True)
    (empty / "notes.jpg").write_text("not a photo")
    (empty / ".hidden" / "x.jpg").write_bytes(flowers(1)[0].read_bytes())
    with pytest.raises(EdgetlError, match="has 0 readable photo"):
        _scan(empty, data)
    same = tmp_path / "same"
    same.mkdir()
    for photo in flowers(3):
        shutil.copy(photo, same)
    shutil.copy(next((data / "star").glob("*")), same / "looks_new.png")
    with pytest.raises(EdgetlError, match="1 photo.* byte-identical to class photos .*looks_new.png"):
        _scan(same, data)
    (same / "looks_new.png").unlink()
    (same / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    photos = _scan(same, data)
    assert sum(photos.counts().values()) == 3 and [p for p, _ in photos.skipped] == ["broken.jpg"]
    assert any("Only 2 other photo" in warning for warning in photos.warnings)


def test_training_fits_unknown_on_the_data_folders_other_photos_and_reports_both_sides(
    sample_data: Path, tiny_weights: str, tmp_path: Path
) -> None:
    """DATA/__other__ (where `label` and `collect --other` put them) is found without an option; the run records
    each photo's side; a child run (--from) keeps them, and a photo the parent trained on as a class that is now
    "other" is never on the side the child is judged on."""
    from edgetl.train.config import TrainConfig
    from edgetl.train.run import index_data, train

    data = _data(sample_data, tmp_path)
    other = data / "__other__"
    other.mkdir()
    for photo in flowers(24):
        shutil.copy(photo, other)
    (other / "broken.jpg").write_bytes(b"not a jpeg")
    console = Console(record=True, width=200)
    config = TrainConfig(**{**TINY, "head_epochs": 1, "finetune_epochs": 0}, weights=tiny_weights)
    run = RunInfo.load(train(data, tmp_path / "v1", config, console=console))
    said = console.export_text()
    assert "Other (none of the classes): 12 photos to fit 'unknown' on, 12 to test it" in said
    assert "'Unknown' placed with 12 other photos: test photos decided as a class" in said
    assert run.open_world.ood.other_photos == 12 and run.data.other_root == other.resolve()
    assert run.metrics.other_unknown is not None and run.metrics.test_decided is not None
    unknown = read_json(tmp_path / "v1" / "metrics.json")["test"]["unknown"]
    assert unknown["other_photos"] == 12 and unknown["in_class_photos"] == 16
    report = read_json(tmp_path / "v1" / "data_report.json")["other"]
    assert report["skipped"] == [{"path": "broken.jpg", "reason": "not an image"}]
    lines = (tmp_path / "v1" / "split" / "other.txt").read_text().splitlines()
    sides = {line.split("\t")[2]: line.split("\t")[1] for line in lines}
    assert sorted(sides.values()).count("test") == 12 and not any(p.endswith("broken.jpg") for p in sides)
    assert all(s.path.parent.name != "__other__" for split in ("train", "test") for s in run.samples(split))
    from conftest import LOOSE
    from edgetl.convert.options import ConvertOptions
    from edgetl.convert.run import convert

    converted = convert(tmp_path / "v1", ConvertOptions(formats=("float32",), **LOOSE), console=Console(quiet=True))
    measured = converted["models"]["float32"]["ood"]["measured"]  # the file that is deployed says it too
    assert measured["other_photos"] == 12 and 0 <= measured["other_unknown"] <= 1
    from edgetl.edge.classifier import Classifier

    card = Classifier(tmp_path / "v1" / "model_float32.tflite").fitted  # in the model card, on the device
    assert card.measured.other_photos == 12 and card.measured.in_class_photos == 16
    assert run.open_world.measured.other_unknown == run.metrics.other_unknown  # the float model's, in edgetl.json

    trained = run.samples("train")[0].path  # the parent trained on it as a class: now it is "other"
    shutil.move(trained, other / "was_a_class.jpg")
    for photo in flowers(6, start=24):  # new other photos
        shutil.copy(photo, other)
    child = index_data(data, TrainConfig(**TINY, weights=tiny_weights, parent=str(tmp_path / "v1")), console)
    side_of = {path.name: side for side, paths in child.other.sides.items() for path in paths}
    assert side_of["was_a_class.jpg"] == "validation"
    assert all(side_of[name] == side for name, side in sides.items())  # every photo keeps its side
    assert sum(child.other.counts().values()) == 31


def test_other_photos_given_to_train_on_the_command_line_are_checked_first(sample_data: Path, tmp_path: Path) -> None:
    from test_cli import edgetl_cli

    data = _data(sample_data, tmp_path)
    done = edgetl_cli("train", str(data), "--other", str(data / "square"), "--out", str(tmp_path / "run"))
    assert done.returncode == 2 and "is inside the data folder" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()
    assert sorted(p.name for p in data.iterdir()) == ["circle", "square", "star", "triangle"]


def test_a_damaged_other_list_is_one_line_naming_it(tmp_path: Path) -> None:
    from edgetl.digests import read_other

    listed = tmp_path / "other.txt"
    listed.write_text(f"{'a' * 40}\tvalidation\tempty.jpg\n{'b' * 40}\ttrain\tx.jpg\n")
    with pytest.raises(EdgetlError, match=r"other.txt, line 2: not 'sha1<TAB>side<TAB>path'"):
        read_other(listed)
    listed.write_bytes(b"\xff\xfe")
    with pytest.raises(EdgetlError, match="cannot be read"):
        read_other(listed)
