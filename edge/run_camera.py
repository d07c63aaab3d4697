"""`edgetl camera` wired together: capture thread, inference loop, and what each result feeds.

`camera.run_camera` is the loop. Everything a result feeds (the window, the web page and its telemetry, MQTT,
keeping, systemd, a status line every two seconds) is a `ResultConsumer` (edge/result.py): one `on_result`
call per result, one `close` at the end, held in an ExitStack so that however the run ends each is closed,
in the reverse order of opening.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import ExitStack, closing
from pathlib import Path

from rich.console import Console

from edgetl.edge.auth import Credentials
from edgetl.edge.camera import CameraOptions, ResultLines, RunStats, print_summary, run_camera
from edgetl.edge.capture import Capture, Frame, SourceSpec
from edgetl.edge.classifier import Classifier
from edgetl.edge.hot_swap import ModelSlot
from edgetl.edge.keep import Keeper, KeepOptions
from edgetl.edge.mqtt import MqttOptions
from edgetl.edge.result import Result, ResultConsumer
from edgetl.edge.roi import Region
from edgetl.edge.telemetry import SystemdNotifier, Telemetry
from edgetl.interrupt import StopFlag
from edgetl.latency import camera_threads
from edgetl.rundir import check_results_file, refuse_existing
from edgetl.text import for_console

STATUS_EVERY_S = 2.0


def default_threads() -> int:
    """Cores − 1: one core stays free for capture and the web page."""
    return camera_threads(os.cpu_count() or 2)


def run_live(
    classifier: Classifier,
    options: CameraOptions,
    threads: int,
    console: Console,
    err: Console,
    keep: KeepOptions | None = None,
    reload: Callable[[Path], Classifier] | None = None,
    auth: Credentials | None = None,
    mqtt: MqttOptions | None = None,
) -> int:
    """Classify the source until it ends, a limit is reached or a signal stops it.

    Returns the exit code: 0; 2 when the source gave no frame at all, 1 when it failed later; 128 + the signal's
    number when one stopped it (130 for Ctrl-C, 143 for SIGTERM), after the summary and complete JSON lines.
    """
    json_path = None if options.json in (None, "-") else Path(options.json)
    if json_path is not None:
        refuse_existing(json_path, "choose another --json file", force=options.force)
        check_results_file(json_path, "--json")
    status = err if options.json == "-" else console  # keep stdout pure JSON when it carries the results
    stats, stop = RunStats(), StopFlag()
    with ExitStack() as stack:
        capture = Capture(
            SourceSpec(options.source),
            loop=options.loop,
            realtime=options.realtime,
            max_reconnects=options.max_reconnects,
            prepare=_preparation(classifier, options.region),  # in the capture thread: overlaps the previous inference
        )
        consumers: list[ResultConsumer] = [stack.enter_context(closing(SystemdNotifier()))]
        stack.callback(capture.close)  # closed before the consumers below: no frame comes after this
        sink = stack.enter_context(closing(ResultLines(options.json))) if options.json else None
        slot = stack.enter_context(closing(ModelSlot(classifier, reload, log=status.print))) if reload else None
        keeper = None
        if keep and keep.keep:
            keeper = stack.enter_context(closing(Keeper(keep, options.source, status.print, options.region)))
            consumers.append(keeper)
        publisher = None
        if mqtt is not None and mqtt.mqtt:
            from edgetl.edge.mqtt import Publisher

            publisher = stack.enter_context(closing(Publisher(mqtt, classifier.path.name, log=status.print)))
            consumers.append(publisher)

        def summary() -> dict:
            running = slot.current if slot else classifier
            extra = {"keep": keeper.stats.as_dict()} if keeper else {}
            extra |= {"model_update": slot.status.as_dict()} if slot else {}
            extra |= {"mqtt": publisher.stats()} if publisher else {}
            return stats.summary(capture, running, threads) | extra

        if options.serve:
            consumers.append(
                stack.enter_context(closing(PageFeed(options.serve, auth, summary, stats, options, status, err)))
            )
        if _window_wanted(options):
            consumers.append(stack.enter_context(closing(Window(stats, stop, options.region))))
        consumers.append(StatusLine(status, stats))

        def on_result(result: Result, frame: Frame) -> None:
            for consumer in consumers:
                consumer.on_result(result, frame)

        with stop:
            run_camera(
                classifier, capture, options, on_result=on_result, json_out=sink, stop=stop, stats=stats, slot=slot
            )
    error = capture.error or (sink.error if sink else None)
    print_summary(summary(), status, stopped_by=stop.signal, error=error)
    if options.serve and capture.ended:  # not when --duration, --max-frames or a signal ended it
        status.print("The video file ended, and the web page with it: add --loop --realtime to keep serving it.")
    if stop.exit_code is not None:
        return stop.exit_code
    if capture.error:  # no frame at all: the source given is wrong (2); one that failed mid-run: 1
        return 2 if capture.stats.captured == 0 else 1
    return 1 if error else 0


def _preparation(classifier: Classifier, region: Region | None) -> Callable:
    """Frame → model input, run in the capture thread: the region's pixels (a view), resized and converted."""
    if region is None:
        return classifier.prepare_bgr
    return lambda frame: classifier.prepare_bgr(region.crop(frame))


def _window_wanted(options: CameraOptions) -> bool:
    """--[no-]window, else a window when a display is there."""
    if options.window is not None:
        return options.window
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class PageFeed:
    """`--serve`: the page's state and telemetry, fed one result at a time; its server."""

    def __init__(self, address: str, auth, summary, stats: RunStats, options: CameraOptions, status, err) -> None:
        from edgetl.edge.serve import LiveState, announce, start_server

        self.state, self.stats = LiveState(), stats
        self.state.region = options.region
        self.server = start_server(address, self.state, credentials=auth)
        announce(self.server, status, "", "sees the camera", warn_to=err)
        self.state.summary, self.state.telemetry = summary, Telemetry(summary, options.stall)  # per request

    def on_result(self, result: Result, frame: Frame) -> None:
        self.state.telemetry.record(result)
        self.state.update(result, frame, {"fps": self.stats.fps})

    def close(self) -> None:
        self.state.close()
        self.server.shutdown()


class Window:
    """The on-screen overlay; q or Esc stops the camera."""

    def __init__(self, stats: RunStats, stop: StopFlag, region: Region | None) -> None:
        self.stats, self.stop, self.region = stats, stop, region

    def on_result(self, result: Result, frame: Frame) -> None:
        import cv2

        from edgetl.edge.serve import draw_overlay

        cv2.imshow("edgetl", draw_overlay(frame.image, result, self.stats.fps, self.region))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stop.event.set()

    def close(self) -> None:
        import cv2

        cv2.destroyAllWindows()


class StatusLine:
    """A line every STATUS_EVERY_S: the newest result, the rate and the inference time."""

    def __init__(self, status: Console, stats: RunStats) -> None:
        self.status, self.stats, self.last = status, stats, 0.0

    def on_result(self, result: Result, frame: Frame) -> None:
        if time.monotonic() - self.last > STATUS_EVERY_S:
            self.last = time.monotonic()
            best = result.prediction.best
            self.status.print(
                f"frame {result.frame}: {for_console(best.label)} {best.score:.2f} · {self.stats.fps:.1f} FPS · "
                f"inference {result.latency_ms['inference']:.1f} ms · age {result.age_ms:.0f} ms"
            )

    def close(self) -> None:
        pass
