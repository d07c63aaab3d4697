"""Frames from a camera, file or stream, captured in their own thread; inference always gets the newest.

A camera driver buffers frames; reading them in the inference loop would classify frames that
are several inference-times old. Here a thread reads continuously and keeps only the latest
frame (older ones are counted as dropped), so a result is never older than one inference plus
one frame interval. A video file read faster than real time is different: nothing goes stale,
so every frame is classified in order, with one frame decoded ahead. Preprocessing (resize,
BGR→RGB) can run here too, on each frame as it arrives, so it overlaps the previous inference
instead of adding to it. Streams that drop are
reopened with exponential backoff; the end of a video file ends the run (or starts it over
with `loop`).
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from edgetl.errors import EdgetlError


class FrameReader(Protocol):
    """What capture needs from a source: one BGR frame per read, None when none came."""

    def read(self) -> np.ndarray | None: ...

    def release(self) -> None: ...


@dataclass(frozen=True)
class SourceSpec:
    text: str

    @property
    def kind(self) -> str:
        text = self.text
        if text.isdigit():
            return "camera"
        if text == "picamera2" or text.startswith("picamera2:"):
            return "picamera2"
        if "!" in text:
            return "gstreamer"
        if "://" in text:
            return "stream"
        return "file"

    @property
    def is_live(self) -> bool:
        return self.kind != "file"


def refuse_special_file(spec: SourceSpec) -> None:
    """A FIFO, socket or block device as a video file: OpenCV blocks opening it (a FIFO until a writer
    comes), in native code where Ctrl-C cannot reach. Character devices (/dev/video0) are cameras."""
    try:
        mode = os.stat(spec.text).st_mode if spec.kind == "file" else 0
    except OSError:
        return  # missing or unreadable: OpenCV's own error names it
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISBLK(mode):
        raise EdgetlError(
            f"Video source '{spec.text}' is not a regular file (a FIFO, socket or block device).",
            "Stream it instead, e.g. `ffmpeg -re -i VIDEO -f mpegts udp://127.0.0.1:5000` with "
            "--source udp://127.0.0.1:5000, or pass a video file or a camera index.",
        )


JPEG_FOURCCS = {"MJPG", "mjpg", "mjpe", "jpeg"}  # FFmpeg's codec tags for JPEG frames ("mjpe": a tagless stream)
UNDECODABLE = np.zeros((0, 0), np.uint8)  # a frame that came but did not decode: counted as corrupt, not an end


class OpenCVReader:
    """cv2.VideoCapture: camera index, video file, RTSP/HTTP URL or GStreamer pipeline.

    JPEG video (MJPEG files and streams, through FFmpeg) is read as the compressed frames and decoded here with
    libjpeg-turbo (`cv2.imdecode`), as OpenCV already decodes USB cameras' (V4L2) MJPEG: FFmpeg's own path
    (decode, then swscale to BGR) gives colours further from the encoded image, and on a 2-core machine the
    camera ran about 1 % slower with it, within the noise (benchmarks/README.md, issue 34).
    """

    def __init__(self, spec: SourceSpec) -> None:
        if spec.kind == "camera":
            self.capture = cv2.VideoCapture(int(spec.text))
            self.capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # drivers that honour it keep less stale frames
        elif spec.kind == "gstreamer":
            self.capture = cv2.VideoCapture(spec.text, cv2.CAP_GSTREAMER)
        else:
            self.capture = cv2.VideoCapture(spec.text)
        if not self.capture.isOpened():
            raise OSError(f"OpenCV could not open {spec.text}")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and fps > 0 else None
        fourcc = (int(self.capture.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF).to_bytes(4, "little").decode("latin-1")
        jpeg = spec.kind in ("file", "stream") and fourcc in JPEG_FOURCCS
        self.compressed = jpeg and self.capture.set(cv2.CAP_PROP_FORMAT, -1)  # -1: FFmpeg's packets, undecoded

    def read(self) -> np.ndarray | None:
        ok, frame = self.capture.read()
        if not ok or frame is None or not frame.size:
            return None
        if not self.compressed:
            return frame
        image = cv2.imdecode(frame, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)  # as FFmpeg: no EXIF turn
        return UNDECODABLE if image is None else image

    def release(self) -> None:
        self.capture.release()


class Picamera2Reader:  # pragma: no cover - needs a Raspberry Pi camera
    """The Pi's CSI camera through picamera2 (libcamera), which OpenCV cannot open."""

    def __init__(self, spec: SourceSpec) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise OSError(
                "picamera2 is not installed (on Raspberry Pi OS: sudo apt install python3-picamera2, "
                "and create the venv with --system-site-packages)"
            ) from None
        size = spec.text.split(":", 1)[1] if ":" in spec.text else "640x480"
        width, height = (int(v) for v in size.split("x"))
        self.camera = Picamera2()
        config = self.camera.create_video_configuration(main={"size": (width, height), "format": "RGB888"})
        self.camera.configure(config)
        self.camera.start()
        self.fps = None

    def read(self) -> np.ndarray | None:
        return self.camera.capture_array()  # "RGB888" is BGR in memory, like OpenCV frames

    def release(self) -> None:
        self.camera.stop()
        self.camera.close()


def open_reader(spec: SourceSpec) -> FrameReader:
    if spec.kind == "file" and not Path(spec.text).exists():
        raise OSError(f"video file {spec.text} does not exist")
    return Picamera2Reader(spec) if spec.kind == "picamera2" else OpenCVReader(spec)


@dataclass
class Frame:
    image: np.ndarray  # BGR
    number: int  # 1, 2, 3… in capture order (counting dropped ones)
    captured: float  # time.monotonic() when read
    prepared: Any = None  # what capture's `prepare` made of it (the runtime: each region's model input)


@dataclass
class CaptureStats:
    captured: int = 0
    delivered: int = 0
    corrupt: int = 0
    reconnects: int = 0
    loops: int = 0

    @property
    def dropped(self) -> int:
        """Frames replaced by a newer one before inference took them."""
        return max(self.captured - self.delivered, 0)


@dataclass
class Capture:
    """Reads `spec` in a background thread; `latest()` hands out each new frame at most once."""

    spec: SourceSpec
    loop: bool = False
    max_reconnects: int | None = None  # None: keep trying (a camera on a Pi should come back)
    backoff: tuple[float, float] = (0.5, 10.0)  # first and longest wait between reconnect attempts
    realtime: bool = False  # pace a video file at its own frame rate, like a camera
    prepare: Callable[[np.ndarray], Any] | None = None  # preprocessing, run here so it overlaps inference
    notify: threading.Event | None = None  # set on each new frame and at the end: one wait serves many cameras
    opener: Callable[[SourceSpec], FrameReader] = open_reader
    stats: CaptureStats = field(default_factory=CaptureStats)

    def __post_init__(self) -> None:
        self._condition = threading.Condition()
        self._latest: Frame | None = None
        self._taken = 0
        self._stop = threading.Event()
        self.finished = False  # end of file, or reconnects exhausted
        self.ended = False  # a video file played to its end (not stopped early by a limit or a signal)
        self.error: str | None = None
        self._captured_at_pass_start = 0  # a file pass that adds no frame is an error, not a loop
        refuse_special_file(self.spec)
        try:
            self._reader = self.opener(self.spec)
        except OSError as error:
            hint = "Check the camera index / path / URL; `ls /dev/video*` lists cameras."
            raise EdgetlError(f"Cannot open video source '{self.spec.text}': {error}.", hint) from None
        self._thread = threading.Thread(target=self._run, name="edgetl-capture", daemon=True)
        self._thread.start()

    @property
    def newest_only(self) -> bool:
        """Live sources (and files played in real time) skip to the newest frame; other files keep every frame."""
        return self.spec.is_live or self.realtime

    def _wait_until_taken(self) -> None:
        """File mode: decode one frame ahead of inference, never more (nothing is dropped)."""
        with self._condition:
            self._condition.wait_for(
                lambda: self._stop.is_set() or self._latest is None or self._latest.number <= self._taken
            )

    def _run(self) -> None:
        try:
            self._capture()
        except EdgetlError as error:  # the frame does not fit what was asked of it (a region too small): its line
            self.error = str(error)
        except Exception as error:  # the source went away mid-run (a deleted file, a driver fault): one line, an end
            self.error = f"reading '{self.spec.text}' failed: {str(error).splitlines()[0] if str(error) else error!r}"
        with self._condition:
            self.finished = True
            self._condition.notify_all()
        if self.notify is not None:
            self.notify.set()

    @property
    def pending(self) -> bool:
        """A frame is there that `latest()` has not handed out yet."""
        with self._condition:
            return self._latest is not None and self._latest.number > self._taken

    def _capture(self) -> None:
        fps = getattr(self._reader, "fps", None)
        interval = 1.0 / fps if self.realtime and fps else 0.0
        next_due = time.monotonic()
        while not self._stop.is_set():
            if not self.newest_only:
                self._wait_until_taken()
            frame = self._reader.read()
            if frame is None:
                if not self._recover():
                    break
                continue
            if frame.ndim != 3 or frame.shape[2] != 3:
                self.stats.corrupt += 1
                continue
            if interval:
                next_due += interval
                time.sleep(max(next_due - time.monotonic(), 0.0))
            captured = time.monotonic()
            prepared = self.prepare(frame) if self.prepare is not None else None
            with self._condition:
                self.stats.captured += 1
                self._latest = Frame(frame, self.stats.captured, captured, prepared)
                self._condition.notify_all()
            if self.notify is not None:
                self.notify.set()

    def _recover(self) -> bool:
        """After a failed read: loop a file, reopen a stream with backoff, or report the end."""
        if not self.spec.is_live:
            if self.stats.captured == self._captured_at_pass_start:  # looping it again would spin, not play
                self.error = f"'{self.spec.text}' gave no frame: it is not a video OpenCV can decode"
                return False
            if not self.loop:
                self.ended = True
                return False
            self._captured_at_pass_start = self.stats.captured
            self.stats.loops += 1
            self._reader.release()
            self._reader = self.opener(self.spec)
            return True
        wait, longest = self.backoff
        attempts = 0
        self._reader.release()
        while not self._stop.is_set():
            if self.max_reconnects is not None and attempts >= self.max_reconnects:
                self.error = f"the stream dropped and {attempts} reconnect attempt(s) failed"
                return False
            attempts += 1
            if self._stop.wait(wait):
                return False
            try:
                self._reader = self.opener(self.spec)
                self.stats.reconnects += 1
                return True
            except OSError:
                wait = min(wait * 2, longest)
        return False

    def latest(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not handed out before; waits for one. None at the end of the source."""
        with self._condition:
            ready = self._condition.wait_for(
                lambda: (self._latest is not None and self._latest.number > self._taken) or self.finished,
                timeout=timeout,
            )
            if not ready or self._latest is None or self._latest.number <= self._taken:
                return None
            self._taken = self._latest.number
            self.stats.delivered += 1
            self._condition.notify_all()  # file mode: the capture thread may decode the next one
            return self._latest

    def close(self) -> None:
        self._stop.set()
        with self._condition:
            self._condition.notify_all()
        self._thread.join(timeout=5)
        self._reader.release()
