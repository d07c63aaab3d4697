"""Decode → RGB → resize: the only preprocessing that lives outside the model.

Training, calibration and the device all call these two functions, so the pixels a model
sees on the Pi are the pixels it was trained on. No TensorFlow here: the edge imports it.
Scaling to the backbone's range lives inside the model (raw 0–255 RGB goes in).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Literal

# OpenCV's own WARN/ERROR lines (a missing camera prints about ten) would bury edgetl's one-line error;
# set OPENCV_LOG_LEVEL yourself (e.g. DEBUG) to see them.
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")

import cv2  # noqa: E402
import numpy as np
from PIL import Image, ImageOps

from edgetl.errors import EdgetlError
from edgetl.rundir import Sample

ResizePolicy = Literal["stretch", "crop"]
IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
RESIZE_POLICIES: tuple[str, ...] = ("stretch", "crop")

# A 1 MB PNG can claim 20000×20000 pixels and take gigabytes to decode: every image is checked against this
# limit from its header, before decoding. Pillow's own check only warns below ~179 Mpx, so it is off and
# this one applies instead. 50 Mpx covers every phone and DSLR photo; EDGETL_MAX_MEGAPIXELS changes it.
DEFAULT_MAX_MEGAPIXELS = 50.0
Image.MAX_IMAGE_PIXELS = None
# JPEGs above this many pixels are decoded at a reduced scale (Pillow's draft: 1/2, 1/4 or 1/8, never below
# the model's input size) when the caller needs a small image; smaller ones decode exactly as before.
DRAFT_ABOVE_PIXELS = 12_000_000


class ImageTooLarge(ValueError):
    """An image over the pixel limit: skipped and listed like any unreadable file."""


def max_pixels() -> int:
    """The pixel limit: EDGETL_MAX_MEGAPIXELS (a positive number of megapixels), else the default."""
    text = os.environ.get("EDGETL_MAX_MEGAPIXELS", "")
    try:
        megapixels = float(text) if text else DEFAULT_MAX_MEGAPIXELS
    except ValueError:
        megapixels = -1.0
    if not megapixels > 0:
        raise EdgetlError(
            f"EDGETL_MAX_MEGAPIXELS={text!r} is not a positive number.", "Example: EDGETL_MAX_MEGAPIXELS=100"
        )
    return int(megapixels * 1_000_000)


def list_images(folder: Path) -> list[Path]:
    """Image files under `folder`, recursively, sorted; hidden files left out."""
    return [
        path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    ]


def load_rgb(path: str | Path | BinaryIO, min_side: int | None = None) -> np.ndarray:
    """Read any image Pillow can open as an HxWx3 uint8 RGB array, upright.

    Handles EXIF orientation, greyscale, palette, transparency (composited on white, so
    transparent areas do not show whatever colour the encoder left there), CMYK and 16-bit
    images. Raises OSError or ValueError on unreadable, truncated or non-image files, and
    ImageTooLarge (a ValueError) above the pixel limit, before decoding. A large JPEG is decoded
    at a reduced scale that keeps both sides at least `min_side`, when given.
    """
    limit = max_pixels()
    with Image.open(path) as image:
        width, height = image.size
        if width * height > limit:
            raise ImageTooLarge(
                f"{width}×{height} pixels is over the {limit / 1e6:g} Mpx limit (a decompression bomb?); "
                "set EDGETL_MAX_MEGAPIXELS to allow it"
            )
        if min_side and width * height > DRAFT_ABOVE_PIXELS:
            image.draft("RGB", (min_side, min_side))  # JPEG only; a no-op for other formats
        image.load()  # decode fully now: truncated files fail here, not mid-epoch
        image = ImageOps.exif_transpose(image)
        return _to_rgb_array(image)


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit or float greyscale: Pillow's convert("RGB") would clip at 255, so scale down.
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if values.max() > 255 else 255.0
        grey = np.clip(values * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def check_resize(policy: str) -> None:
    """One clear error for a resize policy edgetl does not know (options, bare models, models' metadata)."""
    if policy not in RESIZE_POLICIES:
        raise EdgetlError(f"Unknown --resize '{policy}'.", f"Use one of: {', '.join(RESIZE_POLICIES)}.")


def resize_rgb(rgb: np.ndarray, size: int, policy: ResizePolicy = "stretch") -> np.ndarray:
    """Resize an HxWx3 uint8 array to size×size.

    `stretch` squashes the whole frame (what Keras' image_dataset_from_directory does);
    `crop` takes the largest centred square first, keeping aspect ratio. Area interpolation
    when shrinking avoids aliasing; bilinear when enlarging.
    """
    if policy == "crop":
        height, width = rgb.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        rgb = rgb[top : top + side, left : left + side]
    elif policy != "stretch":
        raise ValueError(f"unknown resize policy {policy!r}; use one of {RESIZE_POLICIES}")
    height, width = rgb.shape[:2]
    if (height, width) == (size, size):
        return np.ascontiguousarray(rgb)
    shrinking = height * width > size * size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size, size), interpolation=interpolation)


def load_for_model(path: str | Path, size: int, policy: ResizePolicy = "stretch") -> np.ndarray:
    """The whole file → model-input path: decode, RGB, upright, resize."""
    return resize_rgb(load_rgb(path, min_side=size), size, policy)


def class_folders(folder: Path) -> list[Path]:
    """The sub-folders of a dataset folder that name classes, sorted; hidden ones (".x", "__x") left out."""
    return [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith((".", "__"))]


def labelled_samples(folder: Path, labels: list[str], option: str, *, require_classes: bool = True) -> list[Sample]:
    """Images under `folder` in class sub-folders named like `labels`; without `require_classes` a folder of
    plain images is accepted too (label -1). `option` names the folder in errors (e.g. "--data")."""
    if not folder.is_dir():
        raise EdgetlError(f"{option} folder {folder} does not exist.", "Pass a folder of images.")
    label_of = {name: i for i, name in enumerate(labels)}
    subdirs = class_folders(folder)
    samples: list[Sample] = []
    if subdirs:
        foreign = [p.name for p in subdirs if p.name not in label_of]
        if foreign:
            raise EdgetlError(
                f"{option} folder {folder} has classes the model does not know: {foreign[:5]}.",
                f"Name the class folders like the model's labels: {', '.join(labels[:5])}{', …' * (len(labels) > 5)}.",
            )
        for sub in subdirs:
            samples += [Sample(p, label_of[sub.name]) for p in list_images(sub)]
    elif require_classes:
        raise EdgetlError(
            f"{option} folder {folder} has no class folders.", "Put the images in one sub-folder per class."
        )
    else:
        samples = [Sample(p, -1) for p in list_images(folder)]
    if not samples:
        raise EdgetlError(f"{option} folder {folder} holds no images.", f"Add images ({', '.join(IMAGE_SUFFIXES)}).")
    return samples
