"""`--roi X,Y,W,H`: the part of the frame a model is asked about (the garage door, the feeder, one shelf).

Fractions of the frame (0–1) from its top-left corner, so a region survives a change of resolution. The
camera classifies only the region, `--keep` keeps only the region, `collect` writes only the region (so the
training photos are what the camera will classify), and the overlay and the page draw it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edgetl.errors import EdgetlError

MIN_SIDE_PX = 16  # a region smaller than this at the source's resolution holds too little to classify
HINT = "Give X,Y,W,H as fractions of the frame from its top-left corner, e.g. --roi 0.25,0.1,0.5,0.6."


@dataclass(frozen=True)
class Region:
    x: float
    y: float
    w: float
    h: float

    @classmethod
    def parse(cls, text: str, option: str = "--roi") -> Region:
        """'X,Y,W,H' → a region inside the frame, or one clear error."""
        parts = [part.strip() for part in str(text).split(",")]
        try:
            values = [float(part) for part in parts]
        except ValueError:
            raise EdgetlError(f"{option} {text!r} is not four numbers.", HINT) from None
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            raise EdgetlError(f"{option} {text!r} is not four numbers.", HINT)
        x, y, w, h = values
        if w <= 0 or h <= 0:
            raise EdgetlError(f"{option} {text}: the width and height must be more than 0.", HINT)
        if x < 0 or y < 0 or x + w > 1 + 1e-9 or y + h > 1 + 1e-9:
            raise EdgetlError(f"{option} {text} reaches outside the frame (X+W and Y+H must be at most 1).", HINT)
        return cls(x, y, w, h)

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) in pixels of a width × height frame."""
        left, top = round(self.x * width), round(self.y * height)
        return (
            left,
            top,
            max(left + 1, round((self.x + self.w) * width)),
            max(top + 1, round((self.y + self.h) * height)),
        )

    def check_size(self, width: int, height: int, option: str = "--roi") -> None:
        """One clear error when the region is too small to classify at this resolution."""
        left, top, right, bottom = self.box(width, height)
        if min(right - left, bottom - top) < MIN_SIDE_PX:
            raise EdgetlError(
                f"{option} {self.text()} is {right - left}×{bottom - top} px of this {width}×{height} source, "
                f"smaller than {MIN_SIDE_PX} px.",
                "Make the region larger, or use a source of a higher resolution.",
            )

    def crop(self, image: np.ndarray) -> np.ndarray:
        """The region's pixels (a view: no copy)."""
        left, top, right, bottom = self.box(image.shape[1], image.shape[0])
        return image[top:bottom, left:right]

    def draw(self, canvas: np.ndarray) -> None:
        """The region's outline on a BGR image, in place: visible on light and dark scenes alike."""
        left, top, right, bottom = self.box(canvas.shape[1], canvas.shape[0])
        thickness = max(1, round(canvas.shape[1] / 320))
        cv2.rectangle(canvas, (left, top), (right - 1, bottom - 1), (0, 0, 0), thickness + 2)
        cv2.rectangle(canvas, (left, top), (right - 1, bottom - 1), (0, 255, 255), thickness)

    def as_list(self) -> list[float]:
        return [round(v, 6) for v in (self.x, self.y, self.w, self.h)]

    def text(self) -> str:
        return ",".join(f"{v:g}" for v in self.as_list())
