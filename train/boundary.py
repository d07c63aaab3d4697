"""Activations cached where training starts: the frozen layers below run once per copy, not per epoch.

Fine-tuning trains only the top of the backbone, yet an end-to-end epoch pushes every image through
the frozen bottom again (about two thirds of a step's time for MobileNetV2 from block_12,
benchmarks/finetune_step.py). Here the bottom's output is computed for `1 + views` copies of each
training image (the plain image, then `views` augmented ones) and for the validation images, kept in
`cache/` as memory-mapped .npy, and each fine-tuning epoch trains the top on one copy per image, drawn
at random and shifted at random. The plain copy also gives phase 1 its pooled features (the top's
forward pass), so phase 1 needs no pass of its own. The price: the other augmentations are `1 + views`
fixed draws instead of a fresh one per epoch (`--finetune-views 0` restores that, end to end).

When phase 2 does not train on such a cache (end to end, or from scratch), phase 1 still does: the
cut then sits above the whole backbone (`above_backbone`), and the cache holds pooled features of the
plain images only.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from edgetl.errors import EdgetlError
from edgetl.rundir import write_json
from edgetl.train.config import TrainConfig
from edgetl.train.data import DatasetIndex
from edgetl.train.models import Classifier, inference
from edgetl.train.pipeline import SHIFT, augmentation, image_dataset, untuned
from edgetl.train.shares import ALONE, Share

MANIFEST = "boundary.json"
# Activations are stored in half precision: half the disk and page cache, and no test top-1 moved beyond a
# seed's noise (benchmarks/cache_precision.py, beans and flowers, seeds 1–3). Training reads them as float32.
CACHE_DTYPE = np.float16
POOLED_DTYPE = np.float32  # the pooled features (phase 1's and the evaluation's input), beside the cache
ABOVE_BACKBONE = "above the backbone"


@dataclass
class Split:
    """The classifier cut where fine-tuning starts; all three models share the classifier's layers."""

    bottom: keras.Model  # raw pixels → activations at the boundary (frozen)
    top: keras.Model  # boundary activations → class probabilities (what phase 2 trains)
    features: keras.Model | None  # boundary activations → pooled backbone features (phase 1's input); None: pooled
    boundary: str  # the first unfrozen layer, for the log

    def views(self, config: TrainConfig) -> int:
        """Cached copies per training image: augmented ones only where phase 2 trains on them."""
        return 1 + (config.finetune_views if config.augment and self.features is not None else 0)


def split_at(clf: Classifier, start: int, seed: int | None = None) -> Split | None:
    """Cut `clf` before backbone layer `start`; None when more than one tensor crosses the cut (mid-block).

    With a `seed`, the top shifts its input activations at random while training: convolutions are
    translation-equivariant, so that is close to shifting the image (exact away from the borders),
    and every epoch sees new positions although the cached copies are fixed.
    """
    layer = clf.backbone.layers[start]
    if not isinstance(layer.input, keras.KerasTensor):  # e.g. an Add: two tensors cross
        return None
    try:
        upper = keras.Model(layer.input, clf.backbone.output, name="backbone_top")
    except ValueError:  # a skip connection from below the cut: "not connected to inputs"
        return None
    lower = keras.Model(clf.backbone.input, layer.input, name="backbone_bottom")
    pixels = keras.Input(clf.model.input.shape[1:], name="image")
    bottom = keras.Model(pixels, lower(clf.model.get_layer("preprocess")(pixels), training=False), name="bottom")
    activations = keras.Input(layer.input.shape[1:], name="activations")
    pooled = upper(activations, training=False)  # BatchNorm keeps its ImageNet statistics, as in clf.model
    features = keras.Model(activations, pooled, name="top_features")
    shifted = activations
    if seed is not None:  # active in fit() only; validation and features see the activations as cached
        shifted = keras.layers.RandomTranslation(SHIFT, SHIFT, seed=seed, name="activation_shift")(activations)
    top = keras.Model(activations, clf.head(upper(shifted, training=False)), name="top")
    return Split(bottom, top, features, layer.name)


def above_backbone(clf: Classifier) -> Split:
    """The cut above the whole backbone: phase 1's cache when phase 2 runs end to end."""
    return Split(clf.features, clf.head, None, ABOVE_BACKBONE)


@dataclass
class Cache:
    """Boundary activations of this worker's share: `train` rows are view-major (row = view · n + image), labels
    one-hot per image."""

    train: np.ndarray
    train_labels: np.ndarray
    validation: np.ndarray
    validation_labels: np.ndarray
    views: int  # copies per training image, the plain one included
    boundary: str  # where it was cut
    share: Share = ALONE  # whose photos these are (train/shares.py)
    totals: tuple[int, int] = (0, 0)  # photos in the whole training and validation splits, every share together
    folder: Path | None = None  # where it lies; the pooled features are written beside it

    def plain_train(self) -> np.ndarray:
        return self.train[: len(self.train_labels)]


def _fill(
    bottom: keras.Model, datasets: list[tf.data.Dataset], path: Path, rows: int, tick: Callable | None
) -> np.ndarray:
    """Run `bottom` over each dataset in turn into one memory-mapped array; returns the one-hot labels."""
    labels, row, forward = [], 0, inference(bottom)
    with _written(path, (rows, *bottom.output.shape[1:]), CACHE_DTYPE) as out:
        for ds in datasets:
            for images, targets in ds:
                batch = np.asarray(forward(images), dtype=np.float32)
                check_range(batch)
                out[row : row + len(batch)] = batch
                labels.append(np.asarray(targets, dtype=np.float32))
                row += len(batch)
                if tick:
                    tick(len(batch))
        if row != rows:
            raise EdgetlError(
                f"{rows - row} image(s) became unreadable while caching activations.",
                "Check the dataset folder (its files changed during training) and run again.",
            )
    return np.concatenate(labels)


@contextmanager
def _written(path: Path, shape: tuple[int, ...], dtype: np.dtype | type) -> Iterator[np.memmap]:
    """A new .npy file filled through a memory map, then renamed over `path`: never seen half-written, and a
    map of the file it replaces keeps reading the old one."""
    temporary = str(path) + ".tmp.npy"
    array = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype, shape=shape)
    try:
        yield array
        array.flush()
    except BaseException:  # a failed or interrupted fill leaves no half-written file behind
        os.unlink(temporary)
        raise
    os.replace(temporary, path)


def check_range(batch: np.ndarray) -> None:
    """Activations the cache's type cannot hold would be stored as inf and train nothing: one clear error."""
    if np.abs(batch).max(initial=0.0) > np.finfo(CACHE_DTYPE).max:
        raise EdgetlError(
            f"This backbone's activations at the fine-tuning boundary exceed {np.dtype(CACHE_DTYPE).name}'s range.",
            "Pass --finetune-views 0 (fine-tuning end to end, no activation cache).",
        )


def cached(
    split: Split,
    index: DatasetIndex,
    config: TrainConfig,
    folder: Path,
    on_cache: Callable[[int], Callable] | None = None,
    share: Share = ALONE,
) -> Cache:
    """The cache of `share`'s photos for `split` in `folder`, computed unless a complete one is there (--resume)."""
    views = split.views(config)
    manifest = folder / MANIFEST
    meta = json.loads(manifest.read_text()) if manifest.exists() else {}
    totals = (len(index.splits["train"]), len(index.splits["validation"]))
    # Complete, cut in the same place, for the same share (a cache written alone has no "share": everything).
    if meta.get("boundary") == split.boundary and meta.get("share", [0, 1]) == [share.worker, share.workers]:
        labels = np.load(folder / "boundary_labels.npz")
        return Cache(
            np.load(folder / "boundary_train.npy", mmap_mode="r"),
            labels["train"],
            np.load(folder / "boundary_validation.npy", mmap_mode="r"),
            labels["validation"],
            meta["views"],
            meta["boundary"],
            share,
            totals,
            folder,
        )
    folder.mkdir(parents=True, exist_ok=True)
    manifest.unlink(missing_ok=True)  # a cache cut elsewhere is replaced, never half-described
    k, train, val = len(index.classes), share.take(index.splits["train"]), share.take(index.splits["validation"])
    needed = np.dtype(CACHE_DTYPE).itemsize * math.prod(split.bottom.output.shape[1:]) * (views * len(train) + len(val))
    if split.features is not None:  # and the pooled features beside it (`pooled`), twice while they are replaced
        needed += (
            2 * np.dtype(POOLED_DTYPE).itemsize * math.prod(split.features.output.shape[1:]) * (len(train) + len(val))
        )
    if needed > shutil.disk_usage(folder).free:
        instead = (
            "--finetune-views 0 (phase 2 end to end"
            if split.features is not None
            else "--no-feature-cache (phase 1 end to end"
        )
        raise EdgetlError(
            f"The activation cache needs {needed / 1e9:.1f} GB in {folder}, more than is free.",
            f"Free some space, or pass {instead}, no cache).",
        )
    common = {"size": config.size, "resize": config.resize, "batch_size": config.batch_size}
    aug = augmentation(config.seed) if config.augment else None
    train_views = [image_dataset(train, k, augment=aug if view else None, **common) for view in range(views)]
    tick = on_cache(views * len(train) + len(val)) if on_cache else None
    train_labels = _fill(split.bottom, train_views, folder / "boundary_train.npy", views * len(train), tick)
    val_labels = _fill(
        split.bottom, [image_dataset(val, k, **common)], folder / "boundary_validation.npy", len(val), tick
    )
    np.savez(folder / "boundary_labels.npz", train=train_labels[: len(train)], validation=val_labels)
    shape = list(split.bottom.output.shape[1:])
    meta = {"views": views, "boundary": split.boundary, "shape": shape, "dtype": np.dtype(CACHE_DTYPE).name}
    write_json(manifest, {**meta, "share": [share.worker, share.workers]})
    return cached(split, index, config, folder, share=share)


def _batches(
    rows: np.ndarray, labels: np.ndarray, index_batches: tf.data.Dataset, class_weight: np.ndarray | None = None
) -> tf.data.Dataset:
    """(activations, labels[, class weights]) per batch of row indices, from the memory map, never all in memory."""
    source = _Rows(rows, labels)
    reach = weakref.ref(source)  # neither function below holds the arrays themselves (see _Rows)
    dtype, row_shape, classes = tf.as_dtype(rows.dtype), rows.shape[1:], labels.shape[1]

    def gather(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order, held = np.sort(idx), reach()
        return np.asarray(held.rows[order]), held.labels[order % len(held.labels)]

    def load(idx: tf.Tensor) -> tuple[tf.Tensor, ...]:
        x, y = tf.numpy_function(gather, [idx], (dtype, tf.float32))
        # float16 read as float32 by TF's cast (2.4× NumPy's: cache_precision.py --cast-only)
        x = tf.cast(x, tf.float32)
        x.set_shape((None, *row_shape))
        y.set_shape((None, classes))
        if class_weight is None:
            return x, y
        return x, y, tf.gather(tf.constant(class_weight), tf.argmax(y, axis=1))

    batches = index_batches.map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    batches = batches.with_options(untuned())  # rows from memory: autotuning's thread would only cost time
    batches._edgetl_rows = source  # the dataset holds the rows: they go when it goes
    return batches


class _Rows:
    """The arrays a dataset's batches are read from, reached by its numpy function through a weak reference
    only: TensorFlow's registry keeps every numpy function for the life of the process, and with it all that the
    function holds (phase 1's pooled features stayed through the evaluation: benchmarks/README.md, scale-up)."""

    __slots__ = ("rows", "labels", "__weakref__")

    def __init__(self, rows: np.ndarray, labels: np.ndarray) -> None:
        self.rows, self.labels = rows, labels


def training_batches(
    cache: Cache, batch_size: int, seed: int, class_weight: np.ndarray | None = None
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """(train, validation): each epoch visits every training image once, in one of its views drawn at random.

    In a cluster, this worker's share only (train/shares.py), class weights inside (Keras cannot add them to
    a distributed dataset), and endless: one iterator serves every epoch (a new one costs seconds there), and
    fit() takes `Share.train_steps` local batches an epoch, pass after pass over the share, each reshuffled.
    """
    n, share = len(cache.train_labels), cache.share
    order = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True)
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    rows = tf.data.Dataset.zip(order, draws).map(lambda i, r: i + n * (r % cache.views))
    train, validation = (cache.train, cache.train_labels), (cache.validation, cache.validation_labels)
    if share.alone:
        every = tf.data.Dataset.range(len(validation[1])).batch(batch_size)
        return _batches(*train, rows.batch(batch_size)), _batches(*validation, every)
    train_rows = rows.repeat().batch(share.local_batch(batch_size))
    bounds = share.validation_bounds(len(validation[1]), cache.totals[1], batch_size)
    validation_rows = tf.data.Dataset.from_tensor_slices((bounds[:-1], bounds[1:])).map(tf.range)
    return _batches(*train, train_rows, class_weight), _batches(*validation, validation_rows)


def pooled(split: Split, cache: Cache, batch_size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Pooled features and one-hot labels per split from the plain cached rows: phase 1's input, and the
    evaluation's. Memory-mapped beside the cache: with many photos they are pages the system can drop, not
    memory that grows with the photo count (5 KB a photo at MobileNetV2's 1,280 features)."""
    out = {}
    forward = None if split.features is None else inference(split.features)  # one trace for both splits
    for name, rows, labels in (
        ("train", cache.plain_train(), cache.train_labels),
        ("validation", cache.validation, cache.validation_labels),
    ):
        if forward is None:  # cut above the backbone: the rows are pooled features already
            out[name] = (rows, labels)
            continue
        path = cache.folder / f"pooled_{name}.npy"  # replaced after phase 2; phase 1's map keeps its own
        with _written(path, (len(rows), *split.features.output.shape[1:]), POOLED_DTYPE) as pooled:
            for i in range(0, len(rows), batch_size):
                pooled[i : i + batch_size] = np.asarray(forward(np.asarray(rows[i : i + batch_size], np.float32)))
        out[name] = (np.load(path, mmap_mode="r"), labels)
    return out


def feature_batches(
    features: dict[str, tuple[np.ndarray, np.ndarray]], batch_size: int, seed: int
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """(train, validation) batches of pooled features for phase 1; training shuffled each epoch."""
    n = len(features["train"][1])
    order = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    validation = tf.data.Dataset.range(len(features["validation"][1])).batch(batch_size)
    return _batches(*features["train"], order), _batches(*features["validation"], validation)
