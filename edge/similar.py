"""Near-duplicate frames: a burst of a still scene gives one photo, not fifty, and a person standing still in front
of the camera is kept once or twice, not once per frame.

A frame becomes a 32 × 32 grey thumbnail (area-averaged, so sensor noise and JPEG artefacts average out) less
its mean (so a flickering exposure is not a new view); two frames are near-duplicates when their thumbnails
differ by less than `NEAR_DUPLICATE` grey levels (of 255) on average. `benchmarks/field_collect.py` measures
the rule: the share of shots of a still, noisy scene it skips and the share of distinct photos it keeps.
"""

from __future__ import annotations

import cv2
import numpy as np

THUMBNAIL = 32  # pixels a side: large enough to see an object move in, small enough to ignore noise
NEAR_DUPLICATE = 3.0  # mean absolute grey-level difference under which two frames count as the same view


def thumbnail(bgr: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    small = cv2.resize(grey, (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA).astype(np.float32)
    return small - small.mean()


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute grey-level difference of two thumbnails (0 = identical, 255 = black vs white)."""
    return float(np.mean(np.abs(a - b)))


class NoveltyFilter:
    """Says whether a frame shows something new compared with the last frame that was kept."""

    def __init__(self, threshold: float = NEAR_DUPLICATE) -> None:
        self.threshold = threshold
        self.last: np.ndarray | None = None
        self.skipped = 0  # near-duplicates seen so far

    def is_new(self, bgr: np.ndarray) -> bool:
        """True (and the frame becomes the one to compare with) unless it nearly repeats the last one kept."""
        thumb = thumbnail(bgr)
        if self.last is not None and difference(thumb, self.last) < self.threshold:
            self.skipped += 1
            return False
        self.last = thumb
        return True
