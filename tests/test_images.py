"""Decoding messy real-world files to upright RGB, and the resize policies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgetl.images import load_for_model, load_rgb, resize_rgb


def _gradient(width: int = 40, height: int = 30) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    rgb = np.stack(
        [np.tile(x, (height, 1)), np.full((height, width), 100, np.uint8), np.full((height, width), 30, np.uint8)], -1
    )
    return Image.fromarray(rgb)


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [("L", ".png"), ("RGB", ".bmp"), ("P", ".gif"), ("RGB", ".webp"), ("CMYK", ".jpg"), ("LA", ".png")],
)
def test_modes_and_formats_decode_to_rgb_uint8(tmp_path: Path, mode: str, suffix: str) -> None:
    path = tmp_path / f"img{suffix}"
    _gradient().convert(mode).save(path)
    rgb = load_rgb(path)
    assert rgb.shape == (30, 40, 3) and rgb.dtype == np.uint8
    assert rgb[:, -1].mean() > rgb[:, 0].mean()  # the gradient survived the conversion


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)  # mode I;16
    rgb = load_rgb(path)
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255
    assert 110 < rgb[0, 32, 0] < 145  # mid-grey, where clipping would give 255


def test_transparent_pixels_become_white(tmp_path: Path) -> None:
    rgba = np.zeros((10, 10, 4), np.uint8)  # fully transparent black
    path = tmp_path / "clear.png"
    Image.fromarray(rgba, "RGBA").save(path)
    assert (load_rgb(path) == 255).all()


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = _gradient(40, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "phone.jpg"
    image.save(path, exif=exif, quality=95)
    assert load_rgb(path).shape == (40, 30, 3)


def test_wrong_extension_is_read_by_content(tmp_path: Path) -> None:
    path = tmp_path / "actually_png.jpg"
    _gradient().save(path, format="PNG")
    assert load_rgb(path).shape == (30, 40, 3)


def test_truncated_and_non_image_files_raise(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    _gradient(200, 200).save(good, quality=95)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:600])
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    for path in (truncated, text):
        with pytest.raises((OSError, ValueError)):
            load_rgb(path)


def test_resize_policies() -> None:
    wide = np.zeros((100, 200, 3), np.uint8)
    wide[:, 50:150] = 255  # white centre square, black sides
    stretched = resize_rgb(wide, 50, "stretch")
    cropped = resize_rgb(wide, 50, "crop")
    assert stretched.shape == cropped.shape == (50, 50, 3)
    assert cropped.mean() == 255  # the crop kept only the centre square
    assert 100 < stretched.mean() < 160  # stretching kept the black sides
    with pytest.raises(ValueError):
        resize_rgb(wide, 50, "pad")


def test_load_for_model_enlarges_small_images(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    _gradient(20, 10).save(path)
    assert load_for_model(path, 64).shape == (64, 64, 3)
