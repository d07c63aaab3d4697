"""Activations cached at the unfreeze boundary: the cut is exact, training reaches the full model, every
epoch sees each image once in a drawn view, --resume reuses the cache, and without a boundary phase 1
caches pooled features."""

from __future__ import annotations

import csv
import gc
import shutil
import weakref
from pathlib import Path

import keras
import numpy as np
import pytest
from rich.console import Console

from conftest import TINY
from edgetl.errors import EdgetlError
from edgetl.train import boundary, fit
from edgetl.train.config import TrainConfig
from edgetl.train.models import build_classifier, unfreeze_start
from edgetl.train.run import train


def test_the_cut_reproduces_the_whole_model_and_trains_its_layers(tiny_weights: str) -> None:
    clf = build_classifier("mobilenet_v2", 3, size=64, alpha=0.35, weights=tiny_weights)
    split = boundary.split_at(clf, unfreeze_start(clf.backbone, from_layer="block_12"), seed=1)
    assert split is not None and split.boundary == "block_12_expand"
    images = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 3)).astype("float32")
    below = split.bottom(images)
    np.testing.assert_allclose(split.top(below), clf.model(images), atol=1e-5)
    whole = np.asarray(clf.features(images))  # random weights: may be ~1e-9, so the tolerance is relative
    np.testing.assert_allclose(split.features(below), whole, rtol=1e-3, atol=1e-4 * np.abs(whole).max())
    shift = split.top.get_layer("activation_shift")  # training only: the line above ran in inference mode
    assert not np.allclose(shift(below, training=True), below) and np.allclose(shift(below, training=False), below)

    before = clf.model(images).numpy()
    fit.unfreeze_top(clf.backbone, from_layer="block_12")
    split.top.compile(keras.optimizers.Adam(1e-2), "categorical_crossentropy")
    split.top.train_on_batch(below, np.eye(3)[[0, 1, 2, 0]])
    after = clf.model(images).numpy()
    assert not np.allclose(before, after, atol=1e-4)  # the top's step moved the full model's shared layers
    np.testing.assert_allclose(split.top(below), after, atol=1e-5)

    mid_block = unfreeze_start(clf.backbone, from_layer="block_12_depthwise")  # the skip from block_11 crosses
    assert boundary.split_at(clf, mid_block) is None


def test_each_epoch_sees_every_image_once_in_a_drawn_view() -> None:
    n, views = 40, 3
    rows = np.arange(views * n, dtype=np.float32).reshape(-1, 1, 1, 1)  # a row holds its own index
    labels = np.eye(2, dtype=np.float32)[np.arange(n) % 2]
    cache = boundary.Cache(rows, labels, rows[:5], labels[:5], views, "block_12_expand")
    train_batches, validation = boundary.training_batches(cache, batch_size=8, seed=1)
    seen_views = set()
    for _ in range(2):
        drawn = np.concatenate([x.numpy().ravel() for x, _ in train_batches]).astype(int)
        assert sorted(drawn % n) == list(range(n))  # every image once per epoch
        seen_views |= set(drawn // n)
        batch_x, batch_y = next(iter(train_batches))
        np.testing.assert_array_equal(batch_y.numpy(), labels[batch_x.numpy().ravel().astype(int) % n])
    assert seen_views == set(range(views))
    assert len(np.concatenate([x.numpy() for x, _ in validation])) == 5
    # Rows read from memory: nothing for tf.data's autotuning to tune, and its thread costs time (pipeline.untuned)
    assert train_batches.options().autotune.enabled is False and validation.options().autotune.enabled is False


def test_pooled_features_are_memory_mapped_beside_the_cache(tiny_weights: str, tmp_path: Path) -> None:
    """Phase 1's and the evaluation's pooled features are file pages, not memory that grows with the photos;
    computing them again (after phase 2) leaves a map of the old ones readable."""
    clf = build_classifier("mobilenet_v2", 2, size=64, alpha=0.35, weights=tiny_weights)
    split = boundary.split_at(clf, unfreeze_start(clf.backbone, from_layer="block_12"), seed=1)
    below = np.asarray(split.bottom(np.random.default_rng(0).uniform(0, 255, (6, 64, 64, 3)).astype("float32")))
    labels = np.eye(2, dtype=np.float32)[[0, 1, 0, 1, 0, 1]]
    cache = boundary.Cache(below, labels, below[:2], labels[:2], 1, split.boundary, folder=tmp_path)
    first = boundary.pooled(split, cache, batch_size=4)
    for name, (features, _) in first.items():
        assert isinstance(features, np.memmap) and Path(features.filename) == tmp_path / f"pooled_{name}.npy"
    kept = np.array(first["train"][0])
    scale = float(np.abs(kept).max())  # random weights: features may be ~1e-9, so tolerances are relative
    assert scale > 0
    np.testing.assert_allclose(kept, split.features(below), rtol=1e-4, atol=1e-4 * scale)
    top = split.top.get_layer("backbone_top")  # what phase 2 trains
    top.set_weights([w * 1.5 for w in top.get_weights()])
    second = boundary.pooled(split, cache, batch_size=4)
    assert not np.allclose(second["train"][0], kept, rtol=1e-3, atol=1e-3 * scale)  # the new top's features…
    np.testing.assert_array_equal(first["train"][0], kept)  # …and the old map still reads the old ones


def test_resumed_fine_tuning_reuses_the_cache_and_the_head_checkpoint(
    sample_data: Path, tiny_weights: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped in phase 2's first epoch: no whole-model checkpoint yet, so the head's own one restores phase 1."""
    config = TrainConfig(**{**TINY, "weights": tiny_weights, "finetune_views": 1})
    original_end, original_fill, original_restore = fit.EpochCheckpoint.on_epoch_end, boundary._fill, fit.restore
    fills: list[int] = []
    heads: list[list[np.ndarray]] = []

    def crash_in_fine_tuning(self, epoch, logs=None):
        if self.state.phase == "finetune":
            raise KeyboardInterrupt  # before this epoch is checkpointed
        original_end(self, epoch, logs)
        heads[:] = [self.saved.get_weights()]  # the head as phase 1 left it

    def counted_fill(bottom, datasets, path, rows, tick):
        fills.append(rows)
        return original_fill(bottom, datasets, path, rows, tick)

    def checked_restore(clf, work):
        original_restore(clf, work)
        for restored, saved in zip(clf.head.get_weights(), heads[0]):
            np.testing.assert_array_equal(restored, saved)
        heads.append([])

    monkeypatch.setattr(boundary, "_fill", counted_fill)
    monkeypatch.setattr(fit.EpochCheckpoint, "on_epoch_end", crash_in_fine_tuning)
    with pytest.raises(KeyboardInterrupt):
        train(sample_data, tmp_path / "run", config, console=Console(quiet=True))
    partial = tmp_path / "run.partial"
    assert (partial / fit.HEAD_CHECKPOINT).exists() and not (partial / fit.CHECKPOINT).exists()
    cache = np.load(partial / "cache" / "boundary_train.npy", mmap_mode="r")
    assert len(fills) == 2 and len(cache) == fills[0]  # training rows, then validation rows
    n = fills[0] // 2  # the plain copy of each training image, then one augmented copy
    assert not np.allclose(cache[:5], cache[n : n + 5])

    monkeypatch.setattr(fit.EpochCheckpoint, "on_epoch_end", original_end)
    monkeypatch.setattr("edgetl.train.run.restore", checked_restore)
    fills.clear()
    out = train(sample_data, tmp_path / "run", config, resume=True, console=Console(quiet=True))
    assert fills == [] and len(heads) == 2  # nothing recomputed; the head was restored and checked
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [row["phase"] for row in rows] == ["head", "head", "finetune", "finetune"]
    assert not (out / "cache").exists() and not (out / fit.HEAD_CHECKPOINT).exists()


def test_a_cache_that_does_not_fit_on_disk_is_one_clear_error(
    sample_data: Path, tiny_weights: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = shutil.disk_usage
    monkeypatch.setattr(boundary.shutil, "disk_usage", lambda path: usage(path)._replace(free=1000))
    config = TrainConfig(**{**TINY, "weights": tiny_weights})
    with pytest.raises(EdgetlError, match="more than is free") as caught:
        train(sample_data, tmp_path / "run", config, console=Console(quiet=True))
    assert "--finetune-views 0" in caught.value.hint


def test_without_a_boundary_phase_1_caches_pooled_features_of_the_plain_images(
    sample_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From scratch (or --finetune-views 0) the cut sits above the backbone: one plain copy, already pooled."""
    from edgetl.train.data import scan

    config = TrainConfig(**TINY, weights="none")
    index = scan(sample_data, seed=config.seed)
    clf = build_classifier("mobilenet_v2", len(index.classes), size=64, alpha=0.35, weights=None)
    assert fit.boundary_split(clf, config) is None
    split = boundary.above_backbone(clf)
    cache = boundary.cached(split, index, config, tmp_path / "cache")
    assert cache.views == 1 and cache.boundary == boundary.ABOVE_BACKBONE  # augmented copies would go unused
    expected, labels = fit.predict(clf.features, index.splits["validation"], config, len(index.classes))
    assert cache.validation.dtype == np.float16  # half the disk (benchmarks/cache_precision.py)
    np.testing.assert_allclose(cache.validation, expected, rtol=2e-3, atol=1e-3)  # float16's own rounding
    np.testing.assert_array_equal(cache.validation_labels.argmax(axis=1), labels)
    features = boundary.pooled(split, cache, config.batch_size)
    assert np.shares_memory(features["train"][0], cache.train)  # nothing left to pool: the cached rows themselves

    usage = shutil.disk_usage
    monkeypatch.setattr(boundary.shutil, "disk_usage", lambda path: usage(path)._replace(free=1000))
    with pytest.raises(EdgetlError, match="more than is free") as caught:
        boundary.cached(split, index, config, tmp_path / "other")
    assert "--no-feature-cache" in caught.value.hint


def test_activations_outside_the_cache_type_are_one_clear_error() -> None:
    """float16 holds up to 65,504: a backbone whose activations go beyond would cache inf and learn nothing."""
    boundary.check_range(np.full((2, 3), 60_000.0, np.float32))  # within range: nothing said
    with pytest.raises(EdgetlError, match="exceed float16's range") as caught:
        boundary.check_range(np.array([[1.0, -7e4]], np.float32))
    assert "--finetune-views 0" in caught.value.hint


def test_features_a_fit_read_are_freed_with_its_datasets() -> None:
    """TensorFlow keeps every numpy function for the process's life: the batches' arrays must not hang on it
    (phase 1's pooled features stayed through the evaluation)."""
    rng = np.random.default_rng(0)
    features = {
        split: (rng.normal(size=(n, 8)).astype("float32"), np.eye(2, dtype="float32")[rng.integers(0, 2, n)])
        for split, n in (("train", 40), ("validation", 12))
    }
    alive = [weakref.ref(rows) for rows, _ in features.values()]
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "categorical_crossentropy")
    train, validation = boundary.feature_batches(features, batch_size=8, seed=1)
    history = model.fit(train, validation_data=validation, epochs=2, verbose=0)
    assert len(history.history["val_loss"]) == 2  # the batches were read
    del features, train, validation
    gc.collect()
    assert [ref() for ref in alive] == [None, None]


def test_a_cache_file_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    """A fill that fails leaves neither the file nor its temporary behind; one that ends replaces the old file,
    while a map of the old one still reads the old rows."""
    path = tmp_path / "rows.npy"
    with boundary._written(path, (4, 2), np.float32) as rows:
        rows[:] = 1
    old = np.load(path, mmap_mode="r")
    with pytest.raises(RuntimeError), boundary._written(path, (4, 2), np.float32) as rows:
        rows[:] = 2
        raise RuntimeError("the backbone failed halfway")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.npy"] and np.load(path).max() == 1
    with boundary._written(path, (3, 2), np.float32) as rows:
        rows[:] = 3
    assert np.load(path).shape == (3, 2) and np.load(path).min() == 3 and old.max() == 1
