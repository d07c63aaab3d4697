"""tf.data input pipelines: streaming, parallel decode, prefetch; memory does not grow with the dataset.

Decoding goes through `edgetl.images.load_for_model` (Pillow + OpenCV, inside tf.numpy_function),
the same code the device runs, so training and the camera see identical pixels. Both release
the GIL, so parallel map calls really run in parallel. A file that fails to decode mid-epoch
is dropped, not fatal.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from edgetl.images import ResizePolicy, load_for_model
from edgetl.rundir import Sample

AUTOTUNE = tf.data.AUTOTUNE
SHIFT = 0.1  # random translation, a share of the height and width (also of cached activations: boundary.py)


def untuned() -> tf.data.Options:
    """tf.data options with autotuning off, for pipelines with nothing to tune (rows read from memory).

    Its threads cost more than they save: on one core, phase 2's cached epochs took 1.3 × as long with it
    (benchmarks/README.md, scale-out), and TensorFlow 2.21 waits out its sleep, up to a minute, when an
    iterator is dropped under a multi-worker strategy (train/multi_worker.py).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def augmentation(seed: int) -> keras.Sequential:
    """Random flips, rotation, zoom, shift, contrast and brightness: training batches only."""
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.08, seed=seed),
            keras.layers.RandomZoom(0.15, seed=seed),
            keras.layers.RandomTranslation(SHIFT, SHIFT, seed=seed),
            keras.layers.RandomContrast(0.15, seed=seed),
            keras.layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed),
        ],
        name="augmentation",
    )


def image_dataset(
    samples: list[Sample],
    num_classes: int,
    *,
    size: int,
    resize: ResizePolicy = "stretch",
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int = 42,
    augment: keras.Sequential | None = None,
    one_hot: bool = True,
) -> tf.data.Dataset:
    """Batches of (float32 0–255 RGB images, labels) from a list of samples."""
    paths = [str(sample.path) for sample in samples]
    labels = np.array([sample.label for sample in samples], dtype=np.int32)
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)

    def decode(path: bytes) -> np.ndarray:
        return load_for_model(path.decode(), size, resize)

    def load(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.numpy_function(decode, [path], tf.uint8, stateful=False)
        image.set_shape((size, size, 3))
        return tf.cast(image, tf.float32), label

    ds = ds.map(load, num_parallel_calls=AUTOTUNE, deterministic=True).ignore_errors()  # parallel, order kept
    ds = ds.batch(batch_size)
    if augment is not None:
        ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=AUTOTUNE)
    if one_hot:
        ds = ds.map(lambda x, y: (x, tf.one_hot(y, num_classes)), num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)
