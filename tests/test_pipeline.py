"""The tf.data pipeline: the same pixels as the device path, augmentation that varies, bad files dropped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from edgetl.images import load_for_model
from edgetl.rundir import Sample
from edgetl.train.pipeline import augmentation, image_dataset


def _write(path: Path, seed: int, shape=(50, 70, 3)) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)).save(path)
    return path


def test_pipeline_pixels_equal_the_device_preprocessing(tmp_path: Path) -> None:
    paths = [_write(tmp_path / f"{i}.png", i) for i in range(5)]
    ds = image_dataset([Sample(p, i % 2) for i, p in enumerate(paths)], 2, size=32, resize="crop", batch_size=2)
    images = np.concatenate([x.numpy() for x, _ in ds])
    expected = np.stack([load_for_model(p, 32, "crop") for p in paths]).astype(np.float32)
    np.testing.assert_array_equal(images, expected)  # training sees exactly what the camera path computes


def test_augmentation_differs_per_image_and_per_epoch(tmp_path: Path) -> None:
    path = _write(tmp_path / "one.png", 0, (64, 64, 3))
    ds = image_dataset([Sample(path, 0)] * 4, 2, size=64, batch_size=4, augment=augmentation(1))
    first, second = next(iter(ds))[0].numpy(), next(iter(ds))[0].numpy()
    assert np.abs(first[1] - first[0]).mean() > 1 and np.abs(first - second).mean() > 1


def test_a_file_that_breaks_mid_training_is_dropped_not_fatal(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.png", 1)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")  # e.g. replaced on disk after the scan
    ds = image_dataset([Sample(good, 0), Sample(broken, 1), Sample(good, 1)], 2, size=16, batch_size=8, one_hot=False)
    (images, labels), *rest = list(ds)
    assert not rest and images.shape[0] == 2 and labels.numpy().tolist() == [0, 1]
