"""`edgetl camera … --keep DIR`: keep the frames the model doubts, for a person to label (`edgetl label`).

A frame is kept when it is "unknown", when the model doubts it (top-1 probability under its class's threshold,
whether or not "unsure" is shown, or within `margin` of the second class), or, for a `sample` share of confident
frames, at random (to catch errors the model is sure of). At most one every `interval` seconds and none that
nearly repeats the last kept frame (edge/similar.py): someone standing still for a minute gives one or two
frames. The inference loop only offers a frame (a few comparisons); encoding and writing run in this module's
thread, and a frame offered while it is busy is passed over, so the camera never waits for the disk.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgetl.edge.capture import Frame
from edgetl.edge.photos import MIN_FREE_MB, QUALITY, DiskFull, append_line, encode_jpeg, save_new, time_name
from edgetl.edge.result import Prediction, Result
from edgetl.edge.roi import Region
from edgetl.edge.similar import NoveltyFilter
from edgetl.errors import EdgetlError
from edgetl.options import setting
from edgetl.rundir import json_text

SIDECAR = ".json"  # beside each kept JPEG: what the model said and why the frame was kept
KEPT_LOG = "kept.jsonl"  # one line per kept frame, for a quick look without opening each sidecar
RETRY_S = 30.0  # a full folder or disk is looked at again this often: labelling frames away resumes keeping


@dataclass
class KeepOptions:
    """What `camera --keep` keeps, each default stated once (the CLI shows them)."""

    keep: Path | None = setting(None, "Keep the frames the model doubts in this folder (for `edgetl label`).")
    keep_interval: float = setting(5.0, "At most one kept frame every this many seconds.")
    keep_sample: float = setting(0.0, "Also keep this share of confident frames (0–1), to catch confident mistakes.")
    keep_margin: float = setting(0.2, "Doubt a frame whose top-1 probability is within this of the second's.")
    keep_max: int = setting(500, "Stop keeping when the folder holds this many frames (label or move them).")
    min_free: float = setting(MIN_FREE_MB, "Write no photo when the disk has less than this many MB free.")

    def __post_init__(self) -> None:
        ranges = 0 <= self.keep_sample <= 1 and 0 <= self.keep_margin <= 1
        if self.keep_interval < 0 or not ranges or self.keep_max < 1 or self.min_free < 0:
            raise EdgetlError(
                "--keep-interval and --min-free must be ≥ 0, --keep-sample and --keep-margin 0 to 1, --keep-max ≥ 1.",
                "Example: --keep DIR --keep-interval 5 --keep-sample 0.01",
            )


@dataclass
class KeepStats:
    kept: int = 0
    similar: int = 0  # doubted, but nearly the same view as the last kept frame
    busy: int = 0  # doubted while the previous frame was still being written: passed over
    stopped: str | None = None  # why keeping is paused (folder full, disk full), said in the log; None: keeping
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        fields = {"kept": self.kept, "similar": self.similar, "busy": self.busy, "stopped": self.stopped}
        return {**fields, "reasons": dict(self.reasons)}


def reason_to_keep(prediction: Prediction, options: KeepOptions, draw: float) -> str | None:
    """Why this result's frame is worth a person's look, or None."""
    if prediction.unknown:
        return "unknown"
    if prediction.under_threshold or prediction.margin < options.keep_margin:
        return "unsure"
    return "sample" if draw < options.keep_sample else None


class Keeper:
    """Takes frames offered by the inference loop; writes the worthwhile ones from its own thread."""

    def __init__(self, options: KeepOptions, source: str, log=print, region: Region | None = None) -> None:
        self.options, self.source, self.log, self.region = options, source, log, region
        self.folder = options.keep
        self.folder.mkdir(parents=True, exist_ok=True)
        self.held = len(list(self.folder.glob("*.jpg")))  # frames waiting to be labelled count toward the max
        self.stats = KeepStats()
        self.novelty = NoveltyFilter()
        self.random = random.Random()
        self.last_kept = -float("inf")
        self.paused_until = 0.0  # while the folder or disk is full: no frame is offered before then
        self.queue: queue.Queue = queue.Queue(maxsize=1)
        self.thread = threading.Thread(target=self._run, name="edgetl-keep", daemon=True)
        self.thread.start()

    def on_result(self, result: Result, frame: Frame) -> None:
        """Called by the inference loop for every result: cheap checks, then a hand-over that never waits. The
        result says which model produced it (after a hot update, the new one)."""
        now = time.monotonic()
        if now < self.paused_until or now - self.last_kept < self.options.keep_interval:
            return
        why = reason_to_keep(result.prediction, self.options, self.random.random())
        if why is None:
            return
        image = self.region.crop(frame.image) if self.region else frame.image  # what the model saw
        try:
            self.queue.put_nowait((why, result, image, time.time()))
        except queue.Full:
            self.stats.busy += 1

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            why, result, image, when = item
            if not self.novelty.is_new(image):
                self.stats.similar += 1
                continue
            try:
                self._write(why, result, image, when)
            except (DiskFull, EdgetlError) as error:
                self._stop(str(error))

    def _write(self, why: str, result: Result, image: np.ndarray, when: float) -> None:
        if self.held >= self.options.keep_max:
            self.held = len(list(self.folder.glob("*.jpg")))  # `edgetl label` may have filed some away
        if self.held >= self.options.keep_max:
            self._stop(f"{self.folder} holds {self.held} frames (--keep-max): label or move them to keep more")
            return
        photo = save_new(self.folder, time_name(when), ".jpg", encode_jpeg(image, QUALITY), self.options.min_free)
        record = (
            result.as_dict()
            | {  # the one result shape (edge/result.py), and what keeping adds to it
                "file": photo.name,
                "kept_because": why,
                "margin": round(result.prediction.margin, 5),
                "source": self.source,
                "width": int(image.shape[1]),
                "height": int(image.shape[0]),
            }
            | ({"roi": self.region.as_list()} if self.region else {})
        )
        save_new(self.folder, photo.stem, SIDECAR, json_text(record).encode(), 0)
        append_line(self.folder / KEPT_LOG, record)
        self.held += 1
        self.stats.kept += 1
        self.stats.reasons[why] = self.stats.reasons.get(why, 0) + 1
        self.last_kept = time.monotonic()
        if self.stats.stopped is not None:
            self.stats.stopped = None
            self.log("keeping resumed")

    def _stop(self, why: str) -> None:
        """Pause keeping for RETRY_S (said once per pause); the camera goes on."""
        self.paused_until = time.monotonic() + RETRY_S
        if self.stats.stopped is None:
            self.stats.stopped = why
            self.log(f"keeping stopped: {why}")

    def close(self) -> None:
        """Finish the frame being written (a kept frame is whole or absent), then stop the thread."""
        try:
            self.queue.put(None, timeout=30)
        except queue.Full:
            return  # the writer is stuck (a hung disk): it is a daemon thread and ends with the process
        self.thread.join(timeout=30)
