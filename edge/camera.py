"""`edgetl camera`: newest frame → preprocess → interpreter → smoothed top-k, with timings.

The loop only does inference; capture runs in its own thread (`capture.py`) and the web page
encodes its own JPEGs (`serve.py`), so neither waits on the other. Each result states where
its time went (waiting for a frame, preprocessing, inference, postprocessing) and how old
its frame was when the result came out.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgetl.edge.capture import Capture, Frame
from edgetl.edge.classifier import TOP_K, Classifier
from edgetl.edge.hot_swap import ModelSlot
from edgetl.edge.result import Result
from edgetl.edge.roi import Region
from edgetl.errors import EdgetlError
from edgetl.interrupt import StopFlag
from edgetl.options import setting

WINDOW = 2_000  # results the summary's medians are taken over


@dataclass
class CameraOptions:
    """What `edgetl camera` can be told, each default stated once (the CLI shows them)."""

    source: str = setting("0", "Camera index, video file, rtsp:// or http:// URL, GStreamer pipeline, picamera2.")
    top_k: int = setting(TOP_K, "Labels per result.")
    smooth: int = setting(1, "Average scores (and OOD scores) over this many recent frames before deciding.")
    json: str | None = setting(None, "Write one JSON line per result to FILE, or - for stdout.")
    serve: str | None = setting(None, "Serve a live web page on HOST:PORT (e.g. 127.0.0.1:8080).")
    window: bool | None = setting(None, "On-screen window (default: when a display is there).")
    max_frames: int | None = setting(None, "Stop after this many results.")
    duration: float | None = setting(None, "Stop after this many seconds.")
    loop: bool = setting(False, "Restart a video file at its end.")
    realtime: bool = setting(False, "Play a video file at its own frame rate, like a camera.")
    max_reconnects: int | None = setting(None, "Give up on a dropped stream after N tries (default: never).")
    force: bool = setting(False, "Replace an existing --json file.")
    stall: float = setting(10.0, "With --serve: /healthz answers 503 when no result came for this many seconds.")
    roi: str | None = setting(None, "Classify only this region: X,Y,W,H as fractions of the frame (0–1).")

    def __post_init__(self) -> None:
        if self.smooth < 1 or self.top_k < 1:
            raise EdgetlError("--smooth and --top-k must be at least 1.")
        if self.roi is not None:
            Region.parse(self.roi)

    @property
    def region(self) -> Region | None:
        """The region of interest, None for the whole frame."""
        return Region.parse(self.roi) if self.roi is not None else None


@dataclass
class RunStats:
    results: int = 0
    started: float = field(default_factory=time.monotonic)
    # The last WINDOW results only: memory stays flat however long the camera runs.
    stage_ms: dict[str, deque] = field(default_factory=dict)
    ages_ms: deque = field(default_factory=lambda: deque(maxlen=WINDOW))
    recent: deque = field(default_factory=lambda: deque(maxlen=60))  # result times, for live FPS

    def add(self, result: Result) -> None:
        self.results += 1
        self.recent.append(time.monotonic())
        for stage, value in result.latency_ms.items():
            self.stage_ms.setdefault(stage, deque(maxlen=WINDOW)).append(value)
        self.ages_ms.append(result.age_ms)

    @property
    def fps(self) -> float:
        if len(self.recent) < 2:
            return 0.0
        return (len(self.recent) - 1) / max(self.recent[-1] - self.recent[0], 1e-9)

    def summary(self, capture: Capture, classifier: Classifier, threads: int | None) -> dict:
        elapsed = time.monotonic() - self.started
        # list(): a copy taken in one step, while the inference thread may be appending (another thread asks)
        medians = {stage: round(float(np.median(list(v))), 2) for stage, v in list(self.stage_ms.items()) if v}
        return {
            "results": self.results,
            "seconds": round(elapsed, 2),
            "results_per_second": round(self.results / elapsed, 2) if elapsed > 0 else 0.0,
            "median_latency_ms": medians,
            "median_age_ms": round(float(np.median(list(self.ages_ms))), 2) if self.ages_ms else None,
            "frames_captured": capture.stats.captured,
            "frames_dropped": capture.stats.dropped,
            "corrupt_frames": capture.stats.corrupt,
            "reconnects": capture.stats.reconnects,
            "loops": capture.stats.loops,
            "threads": threads,
            "backend": classifier.model.backend,
            "model": classifier.path.name,
            "model_sha256": classifier.sha256,
            "model_version": classifier.version,
        }


class ResultLines:
    """Where --json results go: one whole JSON line per result, to a file or to stdout ("-").

    A write that fails (a full disk, a reader that closed the pipe) ends the run with one line in
    `error`, and a file is cut back to its last complete line: whoever parses it never meets half a line.
    """

    def __init__(self, target: str) -> None:
        self.name = "stdout" if target == "-" else target
        self.fd = (
            sys.stdout.fileno() if target == "-" else os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        )
        self.complete = 0  # bytes of whole lines written
        self.error: str | None = None

    def write(self, record: dict) -> bool:
        """Write one line; False (and `error` set) when it could not be written whole."""
        line = memoryview((json.dumps(record) + "\n").encode())
        try:
            while line:
                line = line[os.write(self.fd, line) :]
        except OSError as error:
            self.error = f"writing the results to {self.name} failed ({error.strerror or error}); they end there."
            if stat.S_ISREG(os.fstat(self.fd).st_mode):
                os.ftruncate(self.fd, self.complete)  # shrinking a file needs no free space
            return False
        self.complete += len(line.obj)
        return True

    def close(self) -> None:
        if self.fd != sys.stdout.fileno():
            os.close(self.fd)


def run_camera(
    classifier: Classifier,
    capture: Capture,
    options: CameraOptions,
    *,
    on_result: Callable[[Result, Frame], None] | None = None,
    json_out: ResultLines | None = None,
    stop: StopFlag | None = None,
    stats: RunStats | None = None,
    slot: ModelSlot | None = None,
) -> RunStats:
    """Classify frames until the source ends, a limit is reached or `stop` is set; with a `slot`, switch to the
    model it holds between two frames (a hot update)."""
    stats = stats or RunStats()
    history: deque[np.ndarray] = deque(maxlen=max(options.smooth, 1))
    ood_history: deque[float] = deque(maxlen=max(options.smooth, 1))
    deadline = stats.started + options.duration if options.duration else None
    stop = stop or StopFlag()
    region, checked = options.region, None  # the frame size the region was checked at
    while not stop.event.is_set():
        if options.max_frames is not None and stats.results >= options.max_frames:
            break
        if deadline and time.monotonic() >= deadline:
            break
        waited = time.perf_counter()
        frame = capture.latest(timeout=0.5)
        if frame is None:
            if capture.finished:
                break
            continue
        image = frame.image
        if region is not None:
            if frame.image.shape[:2] != checked:  # a source may change resolution (a reconnect)
                checked = frame.image.shape[:2]
                region.check_size(checked[1], checked[0])
            image = region.crop(frame.image)
        if slot is not None:
            slot.latest_image = image
            if slot.current is not classifier:  # a checked new model: scores of the old one are not averaged in
                classifier = slot.current
                history.clear()
                ood_history.clear()
        t0 = time.perf_counter()
        prepared = frame.prepared if frame.prepared is not None else classifier.prepare_bgr(image)
        t1 = time.perf_counter()
        scores, ood = classifier.scores(prepared)
        t2 = time.perf_counter()
        history.append(scores)
        smoothed = np.mean(history, axis=0) if len(history) > 1 else scores
        if ood is not None:
            ood_history.append(ood)
            ood = float(np.mean(ood_history))
        prediction = classifier.decide(smoothed, ood, options.top_k)
        t3 = time.perf_counter()
        result = Result(
            frame=frame.number,
            time=time.time(),
            prediction=prediction,
            latency_ms={
                "capture_wait": 1000 * (t0 - waited),
                "preprocess": frame.prepare_ms if frame.prepared is not None else 1000 * (t1 - t0),
                "inference": 1000 * (t2 - t1),
                "postprocess": 1000 * (t3 - t2),
            },
            age_ms=1000 * (time.monotonic() - frame.captured),
            model=classifier.sha256[:16],
            model_version=classifier.version,
        )
        stats.add(result)
        if json_out is not None and not json_out.write(result.as_dict()):
            break  # its error ends the run: results no one can read are not worth computing
        if on_result is not None:
            on_result(result, frame)
    return stats


def print_summary(summary: dict, console, *, stopped_by: str | None = None, error: str | None = None) -> None:
    """The final stats as a small Rich table."""
    from rich.table import Table

    title = f"{summary['model']} · {summary['backend']} · {summary['threads']} threads"
    if stopped_by:
        title += f" · stopped by {stopped_by}"
    table = Table(title=title, show_header=False, title_justify="left")
    latency = summary["median_latency_ms"]
    rows = [
        ("results", f"{summary['results']} in {summary['seconds']} s ({summary['results_per_second']}/s)"),
        ("median latency ms", ", ".join(f"{k} {v}" for k, v in latency.items()) or "–"),
        ("median frame age ms", str(summary["median_age_ms"])),
        ("frames", f"{summary['frames_captured']} captured, {summary['frames_dropped']} dropped (newer frame taken)"),
        (
            "faults",
            f"{summary['corrupt_frames']} corrupt, {summary['reconnects']} reconnects, {summary['loops']} loops",
        ),
    ]
    if "keep" in summary:
        keep = summary["keep"]
        kept = f"{keep['kept']} ({', '.join(f'{k} {v}' for k, v in keep['reasons'].items()) or 'none'}); "
        passed = f"{keep['similar']} near-duplicates and {keep['busy']} while writing passed over"
        rows.append(("kept frames", kept + passed + (f"; stopped: {keep['stopped']}" if keep["stopped"] else "")))
    if "mqtt" in summary:
        mqtt = summary["mqtt"]
        rows.append(
            (
                "mqtt",
                f"{mqtt['published']} states published, {mqtt['dropped']} dropped (the broker away or unreachable)",
            )
        )
    if "model_update" in summary:
        update = summary["model_update"]
        refused = f"; last refused: {update['refused']}" if update["refused"] else ""
        rows.append(("model updates", f"{update['updates']} taken{refused}"))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    if error:
        console.print(f"[bold red]error:[/] {error}")
