"""A built-in dataset drawn by code, for the demo and the tests: no download, any size.

Four classes of shapes (circle, square, triangle, star) in random colours, sizes, positions
and rotations on noisy, tinted backgrounds. Easy enough to learn in a few epochs, hard enough
that a model has to look at shape rather than colour.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if kind == "square":
        corners = [angle + math.pi / 4 + i * math.pi / 2 for i in range(4)]
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in corners]
    if kind == "triangle":
        corners = [angle + i * 2 * math.pi / 3 for i in range(3)]
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in corners]
    points = []  # star: alternate outer and inner radius
    for i in range(10):
        radius = r if i % 2 == 0 else r * 0.45
        a = angle + i * math.pi / 5
        points.append((cx + radius * math.cos(a), cy + radius * math.sin(a)))
    return points


def draw_shape(kind: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One image of `kind` on a random background."""
    base = rng.integers(0, 256, size=3)
    noise = rng.normal(0, 25, size=(size, size, 3))
    background = np.clip(base + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(background).filter(ImageFilter.GaussianBlur(1))
    draw = ImageDraw.Draw(image)
    colour = tuple(int(c) for c in (base + rng.integers(96, 160, size=3)) % 256)
    r = rng.uniform(0.18, 0.38) * size
    cx, cy = rng.uniform(r, size - r, size=2)
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        draw.polygon(_polygon(kind, cx, cy, r, rng.uniform(0, 2 * math.pi)), fill=colour)
    return image


def make_sample_dataset(folder: Path, per_class: int = 80, size: int = 128, seed: int = 0) -> Path:
    """Write `folder/<shape>/<n>.jpg` and return the folder. Deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    for kind in SHAPES:
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            draw_shape(kind, size, rng).save(folder / kind / f"{kind}_{n:04d}.jpg", quality=90)
    return folder
