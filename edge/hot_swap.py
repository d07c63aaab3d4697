"""`edgetl camera`: a new model without stopping the camera, and the old one kept when the new one is broken.

The camera watches its model file (inode, size and modification time, once a second) and listens for SIGHUP.
When the file is replaced — copied to a temporary name and renamed over it, as `scp` then `mv` do — it loads
the new one in this module's thread and checks it: it loads, its input has the size and resize policy the
capture thread prepares frames for, it has labels, and one inference on the latest frame gives one finite
score per label. Only then does the loop take it, between two frames: the camera is not reopened and web
viewers stay connected. A file that fails a check is refused with one log line (and in /stats).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgetl.edge.classifier import Classifier

POLL_S = 1.0  # how often the model file is looked at


@dataclass
class UpdateStatus:
    """What /stats and the summary say about model updates."""

    updates: int = 0  # new models taken
    refused: str | None = None  # why the last refused file was refused
    refused_at: float | None = None  # time.time() of that refusal

    def as_dict(self) -> dict:
        return asdict(self)


class ModelSlot:
    """The classifier the camera loop uses now; replaced, in the background, by a checked new one."""

    def __init__(self, classifier: Classifier, load: Callable[[Path], Classifier], log: Callable[[str], None]) -> None:
        self.current, self.load, self.log = classifier, load, log
        self.path = classifier.path
        self.status = UpdateStatus()
        self.latest_image: np.ndarray | None = None  # set by the loop: the frame the check runs on
        self._seen = self._stamp()
        self._missing, self._missing_said = 0, False  # polls the file has been missing for; said so
        self._wake, self._stop = threading.Event(), threading.Event()
        self._previous_handler = None
        if threading.current_thread() is threading.main_thread():  # several slots (models): SIGHUP wakes them all
            self._previous_handler = signal.signal(signal.SIGHUP, self._sighup)
        self._thread = threading.Thread(target=self._watch, name="edgetl-model-watch", daemon=True)
        self._thread.start()

    def _sighup(self, signum, frame) -> None:
        self._wake.set()
        if callable(self._previous_handler):
            self._previous_handler(signum, frame)

    def _stamp(self) -> tuple | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None  # between the removal and the rename of a replacement: wait for it
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def _watch(self) -> None:
        while not self._stop.is_set():
            asked = self._wake.wait(POLL_S)
            self._wake.clear()
            stamp = self._stamp()
            if stamp is None and not self._stop.is_set():
                self._gone(asked)
                continue
            if self._stop.is_set() or (stamp == self._seen and not asked):
                continue
            self._missing, self._missing_said = 0, False
            time.sleep(0.2)  # a file still being written changes again: wait for it to settle
            if self._stamp() != stamp:
                continue
            self._seen = stamp
            self._try(asked)

    def _try(self, asked: bool) -> None:
        try:
            candidate = self.load(self.path)
            problem = self._incompatible(candidate)
        except Exception as error:  # EdgetlError, or whatever a damaged file makes the interpreter raise
            candidate, problem = None, str(error).splitlines()[0] if str(error) else type(error).__name__
        if problem is not None:
            self.status.refused, self.status.refused_at = problem, time.time()
            self.log(f"model update refused, the running model stays: {problem}")
            return
        if candidate.sha256 == self.current.sha256:
            self.log(f"{'SIGHUP: ' if asked else ''}{self.path.name} is the model already running: nothing to update")
            return
        self.current = candidate  # the loop takes it at its next frame
        self.status.updates += 1
        self.log(f"model updated: {self.path.name} sha256 {candidate.sha256[:12]}, {len(candidate.labels)} classes")

    def _gone(self, asked: bool) -> None:
        """The file is missing: a replacement between its removal and its rename, or deleted. Said once it has
        stayed missing for a second poll (or at once on SIGHUP); the running model stays."""
        self._missing += 1
        if (asked or self._missing == 2) and not self._missing_said:
            self._missing_said = True
            self.log(f"model file {self.path} is gone: the running model stays; put a model there to update it")
        self._seen = None

    def _incompatible(self, candidate: Classifier) -> str | None:
        running = self.current
        if (candidate.size, candidate.resize) != (running.size, running.resize):
            return (
                f"{self.path.name} takes {candidate.size} px ({candidate.resize}) but the camera prepares "
                f"{running.size} px ({running.resize}) frames: restart the camera to change the input size"
            )
        if all(label == f"class_{i}" for i, label in enumerate(candidate.labels)):
            return f"{self.path.name} has no labels (in its metadata or a labels.txt beside it)"
        if self.latest_image is not None:
            scores, _ = candidate.scores(candidate.prepare_bgr(self.latest_image))
            if len(scores) != len(candidate.labels) or not np.all(np.isfinite(scores)):
                return f"{self.path.name} gives no usable scores on the latest frame"
        return None

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        if self._previous_handler is not None:
            signal.signal(signal.SIGHUP, self._previous_handler)
