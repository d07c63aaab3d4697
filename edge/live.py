"""`edgetl camera` wired together: capture thread, inference loop, window, web page, JSON lines, summary.

`camera.run_camera` is the loop; this module decides what each result feeds (the overlay window,
the web page's state, a status line every two seconds) and releases everything however the run ends.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from edgetl.edge.auth import Credentials
from edgetl.edge.camera import CameraOptions, Result, ResultLines, RunStats, StopFlag, print_summary, run_camera
from edgetl.edge.capture import Capture, Frame, SourceSpec
from edgetl.edge.classifier import Classifier
from edgetl.edge.hot_swap import ModelSlot
from edgetl.edge.keep import Keeper, KeepOptions
from edgetl.edge.mqtt import MqttOptions
from edgetl.edge.telemetry import SystemdNotifier, Telemetry
from edgetl.errors import EdgetlError
from edgetl.latency import camera_threads
from edgetl.rundir import check_results_file
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
    if json_path is not None and json_path.exists() and not options.force:
        raise EdgetlError(f"{json_path} already exists.", "Pass --force to replace it, or choose another --json file.")
    if json_path is not None:
        check_results_file(json_path, "--json")
    status = err if options.json == "-" else console  # keep stdout pure JSON when it carries the results
    server = state = None
    if options.serve:
        from edgetl.edge.serve import LiveState, announce, start_server

        state = LiveState()
        server = start_server(options.serve, state, credentials=auth)
        announce(server, status, "", "sees the camera", warn_to=err)
    show = options.window
    if show is None:
        show = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    capture = Capture(
        SourceSpec(options.source),
        loop=options.loop,
        realtime=options.realtime,
        max_reconnects=options.max_reconnects,
        prepare=classifier.prepare_bgr,  # in the capture thread: overlaps the previous inference
    )
    sink = ResultLines(options.json) if options.json else None
    keeper = Keeper(keep, options.source, log=status.print) if keep and keep.keep else None
    slot = ModelSlot(classifier, reload, log=status.print) if reload else None  # the file watched, SIGHUP heard
    stats, stop, last_status, systemd = RunStats(), StopFlag(), [0.0], SystemdNotifier()
    publisher = None
    if mqtt is not None and mqtt.mqtt:
        from edgetl.edge.mqtt import Publisher

        publisher = Publisher(mqtt, classifier.path.name, log=status.print)

    def summary() -> dict:
        running = slot.current if slot else classifier
        extra = {"keep": keeper.stats.as_dict()} if keeper else {}
        extra |= {"model_update": slot.status.as_dict()} if slot else {}
        extra |= {"mqtt": publisher.stats()} if publisher else {}
        return stats.summary(capture, running, threads) | extra

    if state is not None:  # computed per request, never per result
        state.summary, state.telemetry = summary, Telemetry(summary, options.stall)

    def on_result(result: Result, frame: Frame) -> None:
        systemd.result()
        if publisher is not None:
            publisher.offer(result)
        if state is not None:
            state.telemetry.record(result)
        if keeper is not None:
            keeper.offer(result, frame.image)
        if state is not None:
            state.update(result, frame, {"fps": stats.fps})
        if show and _show_window(frame, result, stats.fps):
            stop.event.set()
        if time.monotonic() - last_status[0] > STATUS_EVERY_S:
            last_status[0] = time.monotonic()
            top = result.prediction
            status.print(
                f"frame {result.frame}: {for_console(top.labels[0])} {top.scores[0]:.2f} · {stats.fps:.1f} FPS · "
                f"inference {result.latency_ms['inference']:.1f} ms · age {result.age_ms:.0f} ms"
            )

    try:
        with stop:
            run_camera(
                classifier, capture, options, on_result=on_result, json_out=sink, stop=stop, stats=stats, slot=slot
            )
    finally:
        systemd.stopping()
        capture.close()
        if publisher is not None:
            publisher.close()
        if slot is not None:
            slot.close()
        if keeper is not None:
            keeper.close()
        if sink is not None:
            sink.close()
        if state is not None:
            state.close()
            server.shutdown()
        if show:
            import cv2

            cv2.destroyAllWindows()
    error = capture.error or (sink.error if sink else None)
    print_summary(summary(), status, stopped_by=stop.signal, error=error)
    if options.serve and capture.ended:  # not when --duration, --max-frames or a signal ended it
        status.print("The video file ended, and the web page with it: add --loop --realtime to keep serving it.")
    if stop.signum is not None:
        return 128 + stop.signum
    if capture.error:  # no frame at all: the source given is wrong (2); one that failed mid-run: 1
        return 2 if capture.stats.captured == 0 else 1
    return 1 if error else 0


def _show_window(frame: Frame, result: Result, fps: float) -> bool:
    """Draw the overlay in a window; True when the user pressed q or Esc."""
    import cv2

    from edgetl.edge.serve import draw_overlay

    cv2.imshow("edgetl", draw_overlay(frame.image, result, fps))
    return cv2.waitKey(1) & 0xFF in (ord("q"), 27)
