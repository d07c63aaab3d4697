"""`edgetl camera` wired together: a device's cameras and regions on the runtime, and what each result feeds.

`runtime.Runtime` is the loop. Everything a result feeds (the windows, the web page and its telemetry, MQTT,
keeping, systemd, a status line every two seconds) is a `ResultConsumer` (edge/result.py): one `on_result`
call per result, from the results thread, one `close` at the end, held in an ExitStack so that however the
run ends each is closed, in the reverse order of opening.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import ExitStack, closing
from pathlib import Path

from rich.console import Console

from edgetl.edge.auth import Credentials
from edgetl.edge.camera import CameraOptions, ResultLines, print_summary
from edgetl.edge.capture import Capture, Frame, SourceSpec
from edgetl.edge.classifier import Classifier
from edgetl.edge.device_file import DeviceSpec
from edgetl.edge.hot_swap import ModelSlot
from edgetl.edge.keep import Keeper
from edgetl.edge.result import Result, ResultConsumer
from edgetl.edge.runtime import CameraRun, RegionRun, Runtime, preparation
from edgetl.edge.telemetry import SystemdNotifier, Telemetry
from edgetl.errors import EdgetlError
from edgetl.interrupt import StopFlag
from edgetl.latency import camera_threads
from edgetl.rundir import check_results_file, refuse_existing
from edgetl.text import for_console

STATUS_EVERY_S = 2.0


def default_threads() -> int:
    """Cores − 1: one core stays free for capture and the web page."""
    return camera_threads(os.cpu_count() or 2)


def run_live(
    device: DeviceSpec,
    options: CameraOptions,
    threads: int,
    load: Callable[[Path], Classifier],
    console: Console,
    err: Console,
    auth: Credentials | None = None,
) -> int:
    """Classify every camera of the device until each has ended, a limit is reached or a signal stops it.

    Returns the exit code: 0; 2 when a source gave no frame at all, 1 when one failed later; 128 + the signal's
    number when one stopped it (130 for Ctrl-C, 143 for SIGTERM), after the summary and complete JSON lines.
    """
    json_path = None if options.json in (None, "-") else Path(options.json)
    if json_path is not None:
        refuse_existing(json_path, "choose another --json file", force=options.force)
        check_results_file(json_path, "--json")
    status = err if options.json == "-" else console  # keep stdout pure JSON when it carries the results
    stop = StopFlag()
    with ExitStack() as stack:
        slots = _slots(device, load, status, stack)
        cameras = [_camera(device, spec, slots, options, stack) for spec in device.cameras]
        regions = [region for camera in cameras for region in camera.regions]
        consumers: list[ResultConsumer] = [stack.enter_context(closing(SystemdNotifier()))]
        sink = stack.enter_context(closing(ResultLines(options.json))) if options.json else None
        keepers = _keepers(cameras, status, stack)
        publisher = None
        if device.mqtt.mqtt:
            from edgetl.edge.mqtt import Publisher

            names = [(region.camera, region.name, region.slot.current.path.name) for region in regions]
            publisher = stack.enter_context(closing(Publisher(device.mqtt, names, log=status.print)))
            consumers.append(publisher)

        def summary() -> dict:
            extra = {"mqtt": publisher.stats()} if publisher else {}
            extra |= {"model_update": {slot.path.name: slot.status.as_dict() for slot in slots.values()}}
            return _summary(cameras, keepers, threads) | extra | {"backlogged": runtime.backlogged}

        def on_result(result: Result, frame: Frame) -> bool:
            if sink is not None and not sink.write(result.as_dict()):
                return False  # its error ends the run: results no one can read are not worth computing
            keeper = keepers.get((result.camera, result.region))
            if keeper is not None:
                keeper.on_result(result, frame)
            for consumer in consumers:
                consumer.on_result(result, frame)
            return True

        runtime = Runtime(cameras, on_result, duration=options.duration, stop=stop)
        if device.serve:
            consumers.append(stack.enter_context(closing(PageFeed(device, cameras, auth, summary, status, err))))
        if _window_wanted(options):
            consumers.append(stack.enter_context(closing(Window(cameras, stop))))
        consumers.append(StatusLine(status, regions))

        with stop:
            runtime.run()
    return _report(summary(), cameras, device, stop, runtime.error or (sink.error if sink else None), status, err)


def _slots(device: DeviceSpec, load, status: Console, stack: ExitStack) -> dict[Path, ModelSlot]:
    """One interpreter per distinct model file, shared by the regions naming it; each watched for updates."""
    slots: dict[Path, ModelSlot] = {}
    for _, region in device.regions:
        key = region.model.resolve()
        if key not in slots:
            classifier = load(region.model)
            for warning in classifier.warnings:
                status.print(f"[yellow]warning:[/] {for_console(warning)}")
            slots[key] = stack.enter_context(closing(ModelSlot(classifier, load, log=status.print)))
    return slots


def _camera(device, spec, slots, options: CameraOptions, stack: ExitStack) -> CameraRun:
    regions = [RegionRun(spec.name, region, slots[region.model.resolve()]) for region in spec.regions]
    try:
        capture = Capture(
            SourceSpec(spec.source),
            loop=spec.loop,
            realtime=spec.realtime,
            max_reconnects=spec.max_reconnects,
            prepare=preparation(regions),  # in the capture thread, from the first frame on
        )
    except EdgetlError as error:
        if device.single:
            raise
        raise EdgetlError(f"Camera {spec.name}: {error.message}", error.hint) from None
    stack.callback(capture.close)  # closed before the consumers opened later: no frame comes after this
    return CameraRun(spec, capture, regions, options.max_frames)


def _keepers(cameras: list[CameraRun], status: Console, stack: ExitStack) -> dict[tuple[str, str], Keeper]:
    keepers = {}
    for camera in cameras:
        for region in camera.regions:
            if region.spec.keep.keep is not None:
                keeper = Keeper(region.spec.keep, camera.spec.source, status.print, region.spec.roi)
                keepers[camera.name, region.name] = stack.enter_context(closing(keeper))
    return keepers


def _summary(cameras: list[CameraRun], keepers: dict, threads: int) -> dict:
    summaries = []
    for camera in cameras:
        entry = camera.summary()
        for region in entry["regions"]:
            keeper = keepers.get((camera.name, region["name"]))
            if keeper is not None:
                region["keep"] = keeper.stats.as_dict()
        summaries.append(entry)
    return {"threads": threads, "cameras": summaries}


def _report(summary: dict, cameras: list[CameraRun], device: DeviceSpec, stop: StopFlag, error, status, err) -> int:
    """The summary, then the exit code: a signal's, else the worst camera's (2: no frame at all; 1: failed)."""
    print_summary(summary, status, stopped_by=stop.signal, error=error)
    if device.serve and all(camera.capture.ended for camera in cameras):  # not a limit or a signal: the files
        status.print("The video file ended, and the web page with it: add --loop --realtime to keep serving it.")
    if stop.exit_code is not None:
        return stop.exit_code
    codes = [2 if camera.capture.stats.captured == 0 else 1 for camera in cameras if camera.capture.error]
    for camera in cameras:  # on stderr, as every error: stdout may carry the JSON lines
        if camera.capture.error:
            named = f"camera {camera.name}: " if len(cameras) > 1 else ""
            err.print(f"[bold red]error:[/] {named}{for_console(camera.capture.error)}")
    return max(codes, default=1 if error else 0)


def _window_wanted(options: CameraOptions) -> bool:
    """--[no-]window, else a window when a display is there."""
    if options.window is not None:
        return options.window
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class PageFeed:
    """`--serve` (or the file's [serve]): one page for every camera, and the telemetry; its server."""

    def __init__(self, device: DeviceSpec, cameras: list[CameraRun], auth, summary, status, err) -> None:
        from edgetl.edge.serve import LiveState, announce, start_server

        self.states = {
            camera.name: LiveState({r.name: r.spec.roi for r in camera.regions}, finished=lambda c=camera: c.done)
            for camera in cameras
        }
        self.fps = {(camera.name, region.name): region.stats for camera in cameras for region in camera.regions}
        self.telemetry = Telemetry(summary, device.stall)
        self.server = start_server(
            device.serve, self.states, credentials=auth, summary=summary, telemetry=self.telemetry
        )
        announce(self.server, status, "", "sees the cameras", warn_to=err)

    def on_result(self, result: Result, frame: Frame) -> None:
        self.telemetry.record(result)
        self.states[result.camera].update(result, frame, self.fps[result.camera, result.region].fps)

    def close(self) -> None:
        for state in self.states.values():
            state.close()
        self.server.shutdown()


class Window:
    """An on-screen overlay per camera; q or Esc stops the device."""

    def __init__(self, cameras: list[CameraRun], stop: StopFlag) -> None:
        from edgetl.edge.serve import LiveState

        self.stop = stop
        self.states = {camera.name: LiveState({r.name: r.spec.roi for r in camera.regions}, encode=False)
                       for camera in cameras}  # fmt: skip

    def on_result(self, result: Result, frame: Frame) -> None:
        import cv2

        state = self.states[result.camera]
        state.update(result, frame, 0.0)
        cv2.imshow(f"edgetl {result.camera}", state.overlay())
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stop.event.set()

    def close(self) -> None:
        import cv2

        cv2.destroyAllWindows()


class StatusLine:
    """A line every STATUS_EVERY_S: the newest result, the rate and the inference time."""

    def __init__(self, status: Console, regions: list[RegionRun]) -> None:
        self.status, self.last = status, 0.0
        self.stats = {(region.camera, region.name): region.stats for region in regions}
        self.named = len(regions) > 1

    def on_result(self, result: Result, frame: Frame) -> None:
        if time.monotonic() - self.last > STATUS_EVERY_S:
            self.last = time.monotonic()
            best = result.prediction.best
            where = f"{result.camera}/{result.region} " if self.named else ""
            fps = self.stats[result.camera, result.region].fps
            self.status.print(
                f"{where}frame {result.frame}: {for_console(best.label)} {best.score:.2f} · {fps:.1f} FPS · "
                f"inference {result.latency_ms['inference']:.1f} ms · age {result.age_ms:.0f} ms"
            )

    def close(self) -> None:
        pass
