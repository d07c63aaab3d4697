"""Training end to end on the generated sample data with a tiny model: the run directory, resume, --force."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from rich.console import Console

from conftest import TINY
from edgetl.errors import EdgetlError
from edgetl.rundir import RunInfo, read_json
from edgetl.train import fit
from edgetl.train.config import TrainConfig
from edgetl.train.run import index_data, train


def _config(weights: str, **changes) -> TrainConfig:
    return TrainConfig(**{**TINY, "weights": weights, **changes})


@pytest.fixture
def finished_run(tiny_run: Path) -> Path:
    return tiny_run


def test_run_directory_has_everything_later_stages_need(finished_run: Path) -> None:
    expected = {
        "edgetl.json",
        "labels.txt",
        "model.keras",
        "metrics.json",
        "history.csv",
        "curves.png",
        "confusion.png",
        "data_report.json",
        "split",
    }
    assert expected <= {p.name for p in finished_run.iterdir()}
    assert not (finished_run / "cache").exists() and not (finished_run / "state.json").exists()
    assert not finished_run.with_name("tiny.partial").exists()
    meta = read_json(finished_run / "edgetl.json")  # the on-disk format later stages and older runs share
    assert RunInfo.load(finished_run).to_json() == meta  # the typed contract reads and writes it losslessly
    assert meta["labels"] == ["circle", "square", "star", "triangle"]
    assert meta["input"] == {
        "height": 64,
        "width": 64,
        "channels": "RGB",
        "range": [0, 255],
        "resize": "stretch",
        "interpolation": "area when shrinking, bilinear when enlarging",
    }
    assert meta["model"]["backbone"] == "mobilenet_v2" and meta["model"]["finetuned_layers"] > 0
    assert meta["environment"]["tensorflow"] and meta["training"]["seconds"]["total"] > 0
    test_lines = (finished_run / "split" / "test.txt").read_text().splitlines()
    assert meta["data"]["counts"]["test"] == len(test_lines) > 0


def test_metrics_agree_with_the_saved_model_on_raw_pixels(finished_run: Path) -> None:
    """The saved model takes raw 0–255 pixels; re-predicting the test split reproduces metrics.json."""
    from edgetl.images import load_for_model

    run = RunInfo.load(finished_run)
    model = keras.saving.load_model(run.model_path)
    labels = run.labels
    lines = [line.split("\t") for line in (finished_run / "split" / "test.txt").read_text().splitlines()]
    root = run.data.root
    images = np.stack([load_for_model(root / rel, 64) for rel, _ in lines]).astype(np.float32)
    probabilities, ood_scores = model.predict(images, verbose=0)  # calibrated probabilities first, then the OOD score
    assert ood_scores.shape == (len(images), 1) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    predicted = probabilities.argmax(axis=1)
    truth = np.array([labels.index(name) for _, name in lines])
    metrics = json.loads((finished_run / "metrics.json").read_text())
    assert metrics["test"]["top1"] == pytest.approx((predicted == truth).mean())
    assert np.sum(metrics["test"]["confusion_matrix"]) == len(lines)
    assert set(metrics["test"]["per_class"]) == set(labels)


def test_history_covers_both_phases(finished_run: Path) -> None:
    rows = list(csv.DictReader((finished_run / "history.csv").open()))
    assert [row["phase"] for row in rows] == ["head", "head", "finetune", "finetune"]
    assert all(float(row["val_loss"]) > 0 for row in rows)


def test_interrupted_run_resumes_to_a_complete_run(
    sample_data: Path, tiny_weights: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    original = fit.EpochCheckpoint.on_epoch_end
    calls = {"n": 0}

    def crash_after_third_epoch(self, epoch, logs=None):
        original(self, epoch, logs)
        calls["n"] += 1
        if calls["n"] == 3:  # after the first fine-tuning epoch is checkpointed
            raise KeyboardInterrupt

    monkeypatch.setattr(fit.EpochCheckpoint, "on_epoch_end", crash_after_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(sample_data, out, _config(tiny_weights), console=Console(quiet=True))
    monkeypatch.setattr(fit.EpochCheckpoint, "on_epoch_end", original)

    partial = tmp_path / "run.partial"
    assert not out.exists() and (partial / "checkpoint.weights.h5").exists()
    with pytest.raises(EdgetlError, match="--resume"):
        train(sample_data, out, _config(tiny_weights), console=Console(quiet=True))
    with pytest.raises(EdgetlError, match="no interrupted run"):
        train(sample_data, tmp_path / "other", _config(tiny_weights), resume=True, console=Console(quiet=True))

    train(sample_data, out, _config(tiny_weights), resume=True, console=Console(quiet=True))
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [(row["phase"], row["epoch"]) for row in rows] == [
        ("head", "1"),
        ("head", "2"),
        ("finetune", "1"),
        ("finetune", "2"),
    ]
    assert RunInfo.load(out).metrics.test_top1 >= 0 and not partial.exists()


def test_a_run_stopped_while_it_is_evaluated_resumes_from_there(
    sample_data: Path, tiny_weights: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during "Evaluating, calibrating…" leaves phase 'done': --resume trains nothing more, starts from
    the weights training ended with, and writes the same record as a run that was never stopped."""
    from edgetl.train import run as run_module

    out, seen = tmp_path / "run", {}
    original = run_module.evaluation_features

    def stop_once(clf, *args):
        seen.setdefault("weights", [w.copy() for w in clf.model.get_weights()])
        if len(seen) == 1:
            seen["stopped"] = True
            raise KeyboardInterrupt
        seen["resumed"] = [w.copy() for w in clf.model.get_weights()]
        return original(clf, *args)

    monkeypatch.setattr(run_module, "evaluation_features", stop_once)
    config = _config(tiny_weights, head_epochs=1, finetune_epochs=1)
    with pytest.raises(KeyboardInterrupt):
        train(sample_data, out, config, console=Console(quiet=True))
    assert read_json(tmp_path / "run.partial" / "state.json")["phase"] == "done"
    train(sample_data, out, config, resume=True, console=Console(quiet=True))
    assert all(np.array_equal(a, b) for a, b in zip(seen["weights"], seen["resumed"]))
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [row["phase"] for row in rows] == ["head", "finetune"]
    assert RunInfo.load(out).model.finetuned_layers > 0


def test_force_replaces_an_old_run_only_when_the_new_one_is_done(
    sample_data: Path, tiny_weights: str, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(EdgetlError, match="already exists"):
        train(sample_data, out, _config(tiny_weights), console=Console(quiet=True))
    train(
        sample_data,
        out,
        _config(tiny_weights, head_epochs=1, finetune_epochs=0),
        force=True,
        console=Console(quiet=True),
    )
    assert not (out / "old.txt").exists() and (out / "edgetl.json").exists()


def test_end_to_end_phase_one_and_efficientnet(efficientnet_run: Path) -> None:
    """Phase 1 without the feature cache (augmented, end to end) on EfficientNetB0, fine-tuning skipped."""
    model = RunInfo.load(efficientnet_run).model
    assert model.backbone == "efficientnet_b0" and model.finetuned_layers == 0
    rows = list(csv.DictReader((efficientnet_run / "history.csv").open()))
    assert [row["phase"] for row in rows] == ["head"]


def test_a_damaged_training_state_is_one_clear_error(tmp_path: Path) -> None:
    from edgetl.train.fit import STATE, TrainState

    TrainState(phase="finetune", epoch=2).save(tmp_path)
    assert TrainState.load(tmp_path).phase == "finetune"
    for damaged in ('{"phase": "warmup", "epoch": 1}', '{"phase": "head", "epoch": -1}', "{", '{"stage": 1}'):
        (tmp_path / STATE).write_text(damaged)
        with pytest.raises(EdgetlError, match=f"{STATE} is damaged .*--force instead of --resume"):
            TrainState.load(tmp_path)


def test_from_a_parent_run_keeps_its_test_split_and_reports_what_changed(
    tiny_run: Path, sample_data: Path, tiny_weights: str, tmp_path: Path
) -> None:
    """The field loop's retraining: the same yardstick (the parent's test photos), new photos split as usual,
    a photo moved to another class reported, a new class trained."""

    from PIL import Image

    data = tmp_path / "data"
    shutil.copytree(sample_data, data)
    parent = RunInfo.load(tiny_run)
    moved = parent.samples("test")[0].path.relative_to(parent.data.root)  # a test photo, relabelled
    target_class = next(name for name in parent.labels if name != moved.parts[0])
    shutil.move(data / moved, data / target_class / moved.name)
    (data / "hexagon").mkdir()
    for i, source in enumerate(sorted((data / "circle").glob("*.jpg"))[:12]):  # a new class, new content
        Image.open(source).transpose(Image.Transpose.ROTATE_90).save(data / "hexagon" / f"new{i}.jpg")
    with pytest.raises(EdgetlError, match="is not a directory"):
        train(data, tmp_path / "bad", TrainConfig(**TINY, weights=tiny_weights, parent=str(tmp_path / "nope")))
    config = TrainConfig(**{**TINY, "head_epochs": 1, "finetune_epochs": 0}, weights=tiny_weights, parent=str(tiny_run))
    child = RunInfo.load(train(data, tmp_path / "v2", config, console=Console(quiet=True)))
    assert child.labels == sorted([*parent.labels, "hexagon"]) and child.data.parent == str(tiny_run)

    def contents(run: RunInfo, split: str) -> set[bytes]:
        return {sample.path.read_bytes() for sample in run.samples(split) if sample.path.exists()}

    assert contents(parent, "test") <= contents(child, "test")  # every parent test photo still in test
    assert contents(parent, "validation") <= contents(child, "validation")
    assert any(sample.path.parent.name == "hexagon" for sample in child.samples("test"))  # new photos split
    report = read_json(tmp_path / "v2" / "data_report.json")["since_parent"]
    assert report["relabelled"] == [
        {"path": f"{target_class}/{moved.name}", "was": moved.parts[0], "now": target_class}
    ]
    assert len(report["added"]) == 12 and report["removed"] == []
    assert child.data.version and child.data.version != parent.data.version


def test_from_on_a_presplit_copy_follows_the_parent_split_by_content(
    tiny_run: Path, tiny_weights: str, tmp_path: Path
) -> None:
    """The parent trained on a flat folder; the child's DATA is the same photos laid out pre-split, with the
    parent's test photos in train/. They go to test (the parent's split wins), and the report says so."""
    parent = RunInfo.load(tiny_run)
    data = tmp_path / "presplit"
    layout = {"train": "test", "validation": "validation", "test": "train"}  # the parent's test → DATA's train/
    for split, folder in layout.items():
        for sample in parent.samples(split):
            target = data / folder / parent.labels[sample.label] / sample.path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sample.path, target)
    config = TrainConfig(**TINY, weights=tiny_weights, parent=str(tiny_run))
    index = index_data(data, config, Console(quiet=True))  # what training splits and reports, no training

    def contents(samples: list) -> set[bytes]:
        return {sample.path.read_bytes() for sample in samples}

    for split in ("train", "validation", "test"):
        assert contents(index.splits[split]) == contents(parent.samples(split))
    report = index.report()
    moved = len(parent.samples("test")) + len(parent.samples("train"))
    assert report["since_parent"]["kept_in_test"] == len(parent.samples("test"))
    assert report["since_parent"]["parent_test_not_in_test"] == 0
    assert report["since_parent"]["moved_to_parent_split"] == moved
    assert any(f"{moved} photo(s) of this pre-split folder were put in the split" in w for w in report["warnings"])


def test_from_a_parent_with_no_photo_in_common_or_damaged_records_is_one_line(
    tiny_run: Path, tiny_weights: str, tmp_path: Path
) -> None:
    from edgetl.train.sample import make_sample_dataset

    other = make_sample_dataset(tmp_path / "other", per_class=12, size=96, seed=7)
    config = TrainConfig(**{**TINY, "head_epochs": 0, "finetune_epochs": 0}, weights=tiny_weights, parent=str(tiny_run))
    warnings = index_data(other, config, Console(quiet=True)).warnings
    assert sum("has no photo in common" in w for w in warnings) == 1

    damaged = shutil.copytree(tiny_run, tmp_path / "damaged")
    (damaged / "split" / "digests.txt").write_text("not a digest line\n")
    config = TrainConfig(**{**TINY, "head_epochs": 0, "finetune_epochs": 0}, weights=tiny_weights, parent=str(damaged))
    with pytest.raises(EdgetlError, match=r"digests.txt, line 1: not 'sha1<TAB>split<TAB>class<TAB>path'"):
        train(other, tmp_path / "v3", config, console=Console(quiet=True))
    (damaged / "split" / "digests.txt").unlink()
    meta = read_json(damaged / "edgetl.json")
    meta["data"] = 7
    (damaged / "edgetl.json").write_text(json.dumps(meta))
    with pytest.raises(EdgetlError, match=r"edgetl.json: 'data' should be an object, not int"):
        train(other, tmp_path / "v3", config, console=Console(quiet=True))


def _with_new_class(sample_data: Path, folder: Path) -> Path:
    """sample_data plus a class the parent never saw (rotated circles: new content)."""

    from PIL import Image

    shutil.copytree(sample_data, folder)
    (folder / "hexagon").mkdir()
    for i, source in enumerate(sorted((folder / "circle").glob("*.jpg"))[:12]):
        Image.open(source).transpose(Image.Transpose.ROTATE_90).save(folder / "hexagon" / f"new{i}.jpg")
    return folder


def test_warm_start_begins_from_the_parent_weights_with_fresh_rows_for_new_classes(
    tiny_run: Path, sample_data: Path, tiny_weights: str, tmp_path: Path
) -> None:
    """No epochs: the saved model is exactly where training would start. The parent's fine-tuned backbone (not
    the weights file), its rows (before calibration) under the same class names, a fresh row for the new class."""
    from edgetl.train.open_world import raw_head

    data = _with_new_class(sample_data, tmp_path / "data")
    config = TrainConfig(
        **{**TINY, "head_epochs": 0, "finetune_epochs": 0}, weights=tiny_weights, parent=str(tiny_run), warm_start=True
    )
    parent, child = (
        RunInfo.load(tiny_run),
        RunInfo.load(train(data, tmp_path / "v2", config, console=Console(quiet=True))),
    )
    assert "hexagon" in child.labels and child.labels != parent.labels  # the rows moved: matched by name
    models = [keras.saving.load_model(run.model_path) for run in (parent, child)]
    backbones = [next(layer for layer in model.layers if isinstance(layer, keras.Model)) for model in models]
    for was, now in zip(*(backbone.get_weights() for backbone in backbones), strict=True):
        np.testing.assert_array_equal(now, was)
    (p_kernel, p_bias), (c_kernel, c_bias) = (
        raw_head(model, run.open_world.temperature) for model, run in zip(models, (parent, child), strict=True)
    )
    for name in parent.labels:
        was, now = parent.labels.index(name), child.labels.index(name)
        np.testing.assert_allclose(c_kernel[:, now], p_kernel[:, was], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(c_bias[now], p_bias[was], rtol=1e-4, atol=1e-6)
    fresh = child.labels.index("hexagon")
    assert c_bias[fresh] == 0.0 and not any(np.allclose(c_kernel[:, fresh], column) for column in p_kernel.T)


def test_warm_start_from_another_architecture_or_a_damaged_parent_is_one_clear_line(
    tiny_run: Path, sample_data: Path, tiny_weights: str, tmp_path: Path
) -> None:
    """Refused before anything is written."""
    damaged = shutil.copytree(tiny_run, tmp_path / "damaged")
    (damaged / "model.keras").write_bytes((damaged / "model.keras").read_bytes()[:1000])  # cut short
    cases = [
        ({"alpha": 0.5}, tiny_run, r"is a mobilenet_v2 \(alpha 0.35\); this run asks for mobilenet_v2 \(alpha 0.5\)"),
        ({"backbone": "efficientnet_b0"}, tiny_run, r"\(alpha 0.35\); this run asks for efficientnet_b0"),
        ({}, damaged, "model.keras is missing or damaged"),
    ]
    for changes, parent, message in cases:
        config = TrainConfig(**{**TINY, **changes}, weights=tiny_weights, parent=str(parent), warm_start=True)
        with pytest.raises(EdgetlError, match=message) as error:
            train(sample_data, tmp_path / "runs" / "v2", config, console=Console(quiet=True))
        assert "--no-warm-start" in error.value.hint and not (tmp_path / "runs").exists()  # nothing written
    with pytest.raises(EdgetlError, match="--max-latency would choose another"):
        TrainConfig(parent=str(tiny_run), warm_start=True, max_latency=10.0)


def test_the_cli_trains_from_a_parent_like_the_parent_unless_told_otherwise(
    tiny_run: Path, sample_data: Path, tiny_weights: str, tmp_path: Path
) -> None:
    """`--from` alone: the parent's backbone, width, size and resize (v2 fits the same device); an unfinished
    parent or one of another backbone is one line."""
    from test_cli import edgetl_cli

    epochs = ("--head-epochs", "0", "--finetune-epochs", "0", "--weights", tiny_weights)
    done = edgetl_cli(
        "train", str(sample_data), "--out", str(tmp_path / "v2"), "--from", str(tiny_run), "--warm-start", *epochs
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"As {tiny_run} was trained: --alpha 0.35 --size 64." in done.stdout
    child = RunInfo.load(tmp_path / "v2")
    assert (child.size, child.model.alpha, child.data.parent) == (TINY["size"], TINY["alpha"], str(tiny_run))
    (tmp_path / "unfinished.partial").mkdir()
    for parent, message in (
        (tmp_path / "unfinished", "is not a finished edgetl run.*--resume"),
        (tiny_run, "asks for efficientnet_b0"),
    ):
        bad = edgetl_cli(
            "train",
            str(sample_data),
            "--out",
            str(tmp_path / "v3"),
            "--from",
            str(parent),
            "--model",
            "efficientnet_b0",
            "--warm-start",
        )
        assert bad.returncode == 2 and "Traceback" not in bad.stderr
        assert re.search(message, bad.stderr.replace("\n", " ")), bad.stderr
