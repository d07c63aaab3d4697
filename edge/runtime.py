"""The device's runtime: every camera and region of one process, with the interpreter the only hot loop.

    camera A ─capture thread─▶ newest frame, each region cropped + resized ─┐
    camera B ─capture thread─▶ newest frame, each region cropped + resized ─┴─▶ inference thread ─▶ results thread
                                                                                 (invoke only)      (the rest)

Preparation runs in each camera's capture thread, as the frame arrives, so it overlaps inference. The inference
loop takes the cameras in turn (the one served first rotates, so none starves another), invokes each region's
model on its ready tensor and hands the raw scores on; everything per result happens in the results thread,
while the next `invoke()` runs (LiteRT releases Python's lock during it). One interpreter serves every region
that names the same model file, and a hot update of that file reaches all of them.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from edgetl.edge.camera import CameraOptions
from edgetl.edge.capture import Capture, Frame
from edgetl.edge.classifier import Classifier
from edgetl.edge.device_file import DEFAULT_CAMERA, CameraSpec, RegionSpec, single_region
from edgetl.edge.result import Result
from edgetl.interrupt import StopFlag

WINDOW = 2_000  # results the summary's medians are taken over
HANDOFF = 64  # results waiting for the results thread; the inference loop waits only when it is this far behind
SWITCH_S = 0.0005  # Python's thread switch interval: a thread back from invoke() gets the lock this soon


class Fixed:
    """A model slot that never changes (no hot update): what `ModelSlot` offers, minus the watching."""

    def __init__(self, classifier: Classifier) -> None:
        self.current = classifier
        self.latest_image: np.ndarray | None = None


@dataclass
class RunStats:
    """One region's results: counts, and the medians of the last WINDOW (memory stays flat however long)."""

    results: int = 0
    started: float = field(default_factory=time.monotonic)
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
        recent = list(self.recent)
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9) if len(recent) > 1 else 0.0

    def as_dict(self) -> dict:
        elapsed = time.monotonic() - self.started
        # list(): a copy taken in one step, while the results thread may be appending (another thread asks)
        medians = {stage: round(float(np.median(list(v))), 2) for stage, v in list(self.stage_ms.items()) if v}
        ages = list(self.ages_ms)
        return {
            "results": self.results,
            "results_per_second": round(self.results / elapsed, 2) if elapsed > 0 else 0.0,
            "median_latency_ms": medians,
            "median_age_ms": round(float(np.median(ages)), 2) if ages else None,
        }


class RegionRun:
    """One region of one camera: its model, its preparation, its smoothing and decision, its stats."""

    def __init__(self, camera: str, spec: RegionSpec, slot: Fixed) -> None:
        self.camera, self.spec, self.slot = camera, spec, slot
        self.name = spec.name
        self.stats = RunStats()
        self.history: deque[np.ndarray] = deque(maxlen=spec.smooth)
        self.ood_history: deque[float] = deque(maxlen=spec.smooth)
        self._rule_of: Classifier | None = None  # the classifier the rule below was made for
        self._rule = self.rule(slot.current)  # one the model cannot apply (no OOD score) fails here, at start
        self._checked: tuple[int, int] | None = None  # the frame size the region was checked at

    def summary(self) -> dict:
        running = self.slot.current
        roi = self.spec.roi.as_list() if self.spec.roi else None
        seconds = round(time.monotonic() - self.stats.started, 2)
        model = {"model": running.path.name, "model_sha256": running.sha256, "model_version": running.version}
        return {"name": self.name, "roi": roi, "seconds": seconds, **self.stats.as_dict(), **model,
                "backend": running.model.backend}  # fmt: skip

    def rule(self, classifier: Classifier) -> Classifier:
        """The model that scored a frame, with this region's decision options (sharing its interpreter)."""
        if classifier is not self._rule_of:
            spec = self.spec
            self._rule_of, self._rule = (
                classifier,
                classifier.with_rule(spec.threshold, spec.ood_threshold, spec.unsure),
            )
            self.history.clear()  # a new model's scores are not averaged with the old one's
            self.ood_history.clear()
        return self._rule

    def crop(self, image: np.ndarray) -> np.ndarray:
        """What the model sees of a frame (a view: no copy)."""
        roi = self.spec.roi
        if roi is None:
            return image
        if image.shape[:2] != self._checked:  # a source may change resolution (a reconnect)
            self._checked = image.shape[:2]
            roi.check_size(image.shape[1], image.shape[0])
        return roi.crop(image)

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """(model input, milliseconds): run in the capture thread."""
        started = time.perf_counter()
        prepared = self.slot.current.prepare_bgr(self.crop(image))
        return prepared, 1000 * (time.perf_counter() - started)

    def finish(self, job: Job) -> Result:
        """Smoothing, decision and the result: run in the results thread, while the next invoke runs."""
        started = time.perf_counter()
        rule = self.rule(job.classifier)
        scores, ood = job.classifier.model.dequantize(job.raw)
        self.history.append(scores)
        smoothed = np.mean(self.history, axis=0) if len(self.history) > 1 else scores
        if ood is not None:
            self.ood_history.append(ood)
            ood = float(np.mean(self.ood_history))
        prediction = rule.decide(smoothed, ood, min(self.spec.top_k, len(rule.labels)))
        latency = job.latency_ms | {"postprocess": 1000 * (time.perf_counter() - started)}
        result = Result(
            frame=job.frame.number,
            time=time.time(),
            prediction=prediction,
            latency_ms=latency,
            age_ms=1000 * (time.monotonic() - job.frame.captured),
            model=job.classifier.sha256[:16],
            model_version=job.classifier.version,
            camera=self.camera,
            region=self.name,
        )
        self.stats.add(result)
        return result


@dataclass
class Job:
    """One region's raw scores, on their way from the inference thread to the results thread."""

    region: RegionRun
    frame: Frame
    raw: tuple[np.ndarray, np.ndarray | None]  # the output tensors as the interpreter left them
    classifier: Classifier
    latency_ms: dict[str, float]


def preparation(regions: list[RegionRun]) -> Callable[[np.ndarray], list[tuple[np.ndarray, float]]]:
    """What a camera's capture thread makes of each frame: every region's model input, as the frame arrives."""
    return lambda image: [region.prepare(image) for region in regions]


class CameraRun:
    """One camera: its capture (which prepares every region's input) and its regions."""

    def __init__(self, spec: CameraSpec, capture: Capture, regions: list[RegionRun], max_frames: int | None) -> None:
        self.spec, self.capture, self.regions, self.max_frames = spec, capture, regions, max_frames
        self.name = spec.name
        self.frames = 0  # frames classified
        if capture.prepare is None:  # opened without it (run_camera's callers): prepared there from now on
            capture.prepare = self.prepare

    def prepare(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        return preparation(self.regions)(image)

    def summary(self) -> dict:
        stats = self.capture.stats
        return {
            "name": self.name,
            "source": self.spec.source,
            "frames_captured": stats.captured,
            "frames_dropped": stats.dropped,
            "corrupt_frames": stats.corrupt,
            "reconnects": stats.reconnects,
            "loops": stats.loops,
            "ended": self.capture.finished,
            "error": self.capture.error,
            "regions": [region.summary() for region in self.regions],
        }

    @property
    def done(self) -> bool:
        limit = self.max_frames is not None and self.frames >= self.max_frames
        return limit or (self.capture.finished and not self.capture.pending)


class Runtime:
    """Runs cameras until each has ended, a limit is reached or `stop` is set; `on_result` gets every result."""

    def __init__(
        self,
        cameras: list[CameraRun],
        on_result: Callable[[Result, Frame], bool | None],
        *,
        duration: float | None = None,
        stop: StopFlag | None = None,
    ) -> None:
        self.cameras, self.on_result, self.duration = cameras, on_result, duration
        self.stop = stop or StopFlag()
        self.ready = threading.Event()  # set by any capture thread when it has a new frame (or ended)
        for camera in cameras:
            camera.capture.notify = self.ready
        self.jobs: queue.Queue[Job | None] = queue.Queue(maxsize=HANDOFF)
        self.error: str | None = None  # a consumer that failed: the run ends with it
        self.backlogged = 0  # results the inference loop had to wait to hand over (the results thread behind)

    def run(self) -> None:
        self.started = time.monotonic()  # --duration counts from here
        switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_S)  # else a thread back from invoke() may wait 5 ms for Python's lock
        results = threading.Thread(target=self._results, name="edgetl-results", daemon=True)
        results.start()
        try:
            self._infer()
        finally:
            self.jobs.put(None)
            results.join()
            sys.setswitchinterval(switch)

    def _infer(self) -> None:
        deadline = self.started + self.duration if self.duration else None
        turn, waited = 0, 0.0
        while not self.stop.event.is_set() and (deadline is None or time.monotonic() < deadline):
            active = [camera for camera in self.cameras if not camera.done]
            if not active:
                return
            self.ready.clear()  # before looking: a frame that arrives while we look sets it again
            served = False
            for camera in _rotated(active, turn):
                frame = camera.capture.latest(timeout=0)
                if frame is None:
                    continue
                camera.frames += 1
                self._invoke(camera, frame, waited)
                served, waited = True, 0.0
            turn += 1
            if not served:
                started = time.perf_counter()
                self.ready.wait(0.5)
                waited += 1000 * (time.perf_counter() - started)

    def _invoke(self, camera: CameraRun, frame: Frame, waited_ms: float) -> None:
        """Every region of one frame: the interpreter, and nothing else that could wait."""
        ready = frame.prepared if frame.prepared is not None else camera.prepare(frame.image)  # a frame from before
        for region, (prepared, prepare_ms) in zip(camera.regions, ready, strict=True):
            classifier = region.slot.current
            started = time.perf_counter()
            raw = classifier.model.invoke(prepared)  # dequantized in the results thread
            inference = 1000 * (time.perf_counter() - started)
            latency = {"capture_wait": waited_ms, "preprocess": prepare_ms, "inference": inference}
            if self.jobs.full():  # the consumers are slower than the interpreter: counted, said in the summary
                self.backlogged += 1
            self.jobs.put(Job(region, frame, raw, classifier, latency))
            waited_ms = 0.0

    def _results(self) -> None:
        while (job := self.jobs.get()) is not None:
            if self.error is not None:
                continue  # drain: the inference loop must never wait on a dead results thread
            try:
                result = job.region.finish(job)
                job.region.slot.latest_image = job.region.crop(job.frame.image)  # what a model update is tried on
                if self.on_result(result, job.frame) is False:
                    self.stop.event.set()
            except Exception as error:  # a consumer's bug ends the run with one line, not a hung loop
                self.error = f"handling a result failed: {error!r}"
                self.stop.event.set()


def _rotated(cameras: list[CameraRun], turn: int) -> Iterator[CameraRun]:
    """The cameras, starting with a different one each pass: no camera always goes first."""
    start = turn % len(cameras)
    yield from cameras[start:] + cameras[:start]


def run_camera(
    classifier: Classifier,
    capture: Capture,
    options: CameraOptions,
    *,
    on_result: Callable[[Result, Frame], bool | None] | None = None,
    stop: StopFlag | None = None,
    slot: Fixed | None = None,
) -> CameraRun:
    """One camera and one whole-frame (or `options.roi`) region on this runtime, as the command line runs it:
    what the demo, the benchmarks and the tests call with a capture of their own."""
    region = RegionRun(DEFAULT_CAMERA, single_region(classifier.path, options), slot or Fixed(classifier))
    camera = CameraRun(CameraSpec(DEFAULT_CAMERA, capture.spec.text), capture, [region], options.max_frames)
    Runtime([camera], on_result or (lambda result, frame: None), duration=options.duration, stop=stop).run()
    return camera
