"""`edgetl collect DATA --source S`: training photos from the device's own camera, into DATA/<class>/.

Its lens, its light, its angle, its background: the photos that make a camera classifier good. Headless
(`--label CLASS --count N --interval S`) it takes a burst and exits; with `--serve` a page shows the live
video, one button per class, and takes bursts on request (edge/collect_page.py); edge/run_collect.py wires
the command. A shot that nearly repeats
the previous photo is skipped (edge/similar.py), so a burst of a still scene gives one photo, not fifty.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgetl.edge.capture import Capture, Frame
from edgetl.edge.photos import MIN_FREE_MB, QUALITY, append_line, encode_jpeg, save_new, time_name
from edgetl.edge.roi import Region
from edgetl.edge.similar import NoveltyFilter
from edgetl.errors import EdgetlError
from edgetl.layout import COLLECT_LOG, check_class_name, class_folder, other_folder
from edgetl.options import setting

RECENT = 8  # thumbnails of the last photos the page shows


@dataclass
class CollectOptions:
    """What `edgetl collect` can be told, each default stated once (the CLI shows them)."""

    source: str = setting("0", "Camera index, video file, rtsp:// or http:// URL, GStreamer pipeline, picamera2.")
    label: str | None = setting(
        None, "Headless: the class to photograph (a folder in DATA, or DATA/train when pre-split; made if new)."
    )
    other: bool = setting(
        False, "Headless: photograph what is none of the classes (the empty scene) into DATA/__other__, for 'unknown'."
    )
    count: int = setting(10, "Shots per burst.")
    interval: float = setting(1.0, "Seconds between the shots of a burst.")
    serve: str | None = setting(None, "Serve the collecting page on HOST:PORT (e.g. 127.0.0.1:8080).")
    quality: int = setting(QUALITY, "JPEG quality (1–100).")
    max_side: int | None = setting(None, "Scale photos down to this many pixels on their longer side (default: full).")
    min_free: float = setting(MIN_FREE_MB, "Write no photo when the disk has less than this many MB free.")
    roi: str | None = setting(None, "Write only this region: X,Y,W,H as fractions of the frame (0–1), as camera --roi.")

    def __post_init__(self) -> None:
        if self.count < 1 or self.interval < 0 or not 1 <= self.quality <= 100 or self.min_free < 0:
            raise EdgetlError(
                "--count must be ≥ 1, --interval and --min-free ≥ 0, --quality from 1 to 100.",
                "Example: --label healthy --count 20 --interval 0.5",
            )
        if self.max_side is not None and self.max_side < 32:
            raise EdgetlError(f"--max-side {self.max_side} is too small.", "Use 224 or more, or leave it out.")
        if (self.label is not None) + self.other + (self.serve is not None) != 1:
            raise EdgetlError(
                "Pass --label CLASS or --other (headless), or --serve HOST:PORT (a page).", "One of the three."
            )
        if self.label is not None:
            self.label = check_class_name(self.label)
        if self.roi is not None:
            Region.parse(self.roi)

    @property
    def region(self) -> Region | None:
        return Region.parse(self.roi) if self.roi is not None else None


OTHER_NAME = "none of these"  # how a shot of DATA/__other__ is shown (a class may have any name: never a key)


@dataclass
class Shot:
    label: str | None  # None: "none of these" (DATA/__other__)
    path: Path | None  # None: a near-duplicate of the previous photo, not written

    @property
    def shown(self) -> str:
        return OTHER_NAME if self.label is None else self.label


@dataclass
class Collector:
    """Photos into DATA/<class>/, one line each in DATA/collect.jsonl; near-duplicates skipped."""

    data: Path
    options: CollectOptions
    skipped: int = 0
    written: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT))  # (label, file name, thumbnail JPEG)
    _novelty: NoveltyFilter = field(default_factory=NoveltyFilter)
    _label: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, image: np.ndarray, label: str | None, frame: int) -> Shot:
        """Write the frame as a photo of `label` (None: "none of these"), unless it nearly repeats the previous
        photo of that class."""
        if label is None:
            folder = other_folder(self.data)
        else:
            folder = class_folder(self.data, label)  # checked; a class that reads the same is that class
            label = folder.name
        region = self.options.region
        if region is not None:  # the photo is what the camera will classify: the region's pixels
            region.check_size(image.shape[1], image.shape[0])
            image = np.ascontiguousarray(region.crop(image))
        with self._lock:  # the page may ask for two bursts at once: one shot at a time
            if label != self._label:
                self._novelty, self._label = NoveltyFilter(), label  # a new class starts afresh
            if not self._novelty.is_new(image):
                self.skipped += 1
                return Shot(label, None)
            now = time.time()
            jpeg = encode_jpeg(image, self.options.quality, self.options.max_side)
            path = save_new(folder, time_name(now), ".jpg", jpeg, self.options.min_free)
            record = {
                "file": path.relative_to(self.data).as_posix(),
                "class": label,
                "time": round(now, 3),
                "source": self.options.source,
            } | ({"other": True} if label is None else {})
            try:  # a photo is never left without its line: it goes when the line cannot be written
                extra = _resolution(image, self.options.max_side) | {"frame": frame}
                extra |= {"roi": region.as_list()} if region else {}
                append_line(self.data / COLLECT_LOG, record | extra)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
            self.written += 1
            small = encode_jpeg(image, 80, 160)
            self.recent.appendleft((OTHER_NAME if label is None else label, path.name, small))
            return Shot(label, path)


def _resolution(image: np.ndarray, max_side: int | None) -> dict[str, int]:
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width)) if max_side else 1.0
    return {"width": max(1, round(width * scale)), "height": max(1, round(height * scale))}


def burst(collector: Collector, next_frame: Callable[[], Frame | None], label: str | None, count: int,
          interval: float, stop: threading.Event, on_shot: Callable[[Shot], None] | None = None) -> int:  # fmt: skip
    """`count` shots of `label` (None: "none of these"), one every `interval` seconds from the newest frame;
    returns how many were taken (fewer when the source ends; a near-duplicate is taken but not written)."""
    taken, due = 0, time.monotonic()
    for _ in range(count):
        while not stop.is_set() and time.monotonic() < due:
            time.sleep(min(0.05, max(due - time.monotonic(), 0)))
        frame = None if stop.is_set() else next_frame()
        if frame is None:
            break
        due = time.monotonic() + interval
        shot = collector.take(frame.image, label, frame.number)
        taken += 1
        if on_shot is not None:
            on_shot(shot)
    return taken


def newest_frames(capture: Capture, stop: threading.Event) -> Callable[[], Frame | None]:
    """A frame newer than the last one taken, or None once the source has ended or `stop` is set."""

    def next_frame() -> Frame | None:
        while not stop.is_set() and not capture.finished:
            if (frame := capture.latest(timeout=0.5)) is not None:
                return frame
        return None

    return next_frame
