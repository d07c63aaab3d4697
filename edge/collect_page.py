"""`edgetl collect --serve`: the live video, one button per class, bursts on request, counts and thumbnails.

The same machinery as `camera --serve` (edge/serve.py): one paced MJPEG stream shared by every viewer, the
security headers, text from data entering the page as text nodes only. Requests that change something
(POST /take, POST /class) must be JSON: a page on another site cannot send that to this server without the
browser asking first (a CORS preflight), which this server never grants.
"""

from __future__ import annotations

import math
import threading
import time
from http import HTTPStatus

from edgetl.edge.auth import Credentials
from edgetl.edge.capture import Capture, Frame
from edgetl.edge.collect import OTHER_NAME, Collector, burst
from edgetl.edge.serve import LiveHandler, LiveState, announce, start_server
from edgetl.errors import EdgetlError
from edgetl.layout import class_folder, other_folder, photos_per_class
from edgetl.text import for_console

MAX_BODY = 4096  # bytes of a POST: a class name and two numbers
MAX_BURST = 500  # shots one request may ask for


class Bursts:
    """One burst at a time, in its own thread, from the newest frame the page's loop has seen."""

    def __init__(self, collector: Collector, stop: threading.Event) -> None:
        self.collector, self.stop = collector, stop
        self.condition = threading.Condition()
        self.frame: Frame | None = None
        self.busy: str | None = None  # the class being photographed
        self.error: str | None = None

    def show(self, frame: Frame) -> None:
        with self.condition:
            self.frame = frame
            self.condition.notify_all()

    def next_frame(self) -> Frame | None:
        """A frame newer than the last one shot (waits for it), or None when stopping."""
        with self.condition:
            seen = self.frame.number if self.frame else 0
            self.condition.wait_for(lambda: self.stop.is_set() or (self.frame and self.frame.number > seen), 5)
            return None if self.stop.is_set() else self.frame

    def start(self, label: str | None, count: int, interval: float) -> bool:
        with self.condition:
            if self.busy:
                return False
            self.busy, self.error = OTHER_NAME if label is None else label, None
        threading.Thread(target=self._run, args=(label, count, interval), daemon=True).start()
        return True

    def _run(self, label: str | None, count: int, interval: float) -> None:
        try:
            burst(self.collector, self.next_frame, label, count, interval, self.stop)
        except EdgetlError as error:  # a full disk: the page says so, the video goes on
            self.error = str(error)
        except Exception as error:  # anything else stops this burst, not the page: and the page says why
            self.error = f"the burst stopped: {type(error).__name__}: {error}"
        finally:
            self.busy = None


def _handler(live: LiveState, collector: Collector, bursts: Bursts) -> type[LiveHandler]:
    class Handler(LiveHandler):
        state, page = live, "collect"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?")[0]
            if self.send_static(path):
                return
            if path == "/state":
                recent = [{"label": label, "file": name} for label, name, _ in collector.recent]
                fields = {"written": collector.written, "skipped": collector.skipped, "recent": recent}
                self.send_json(
                    {"classes": photos_per_class(collector.data), **fields, "busy": bursts.busy, "error": bursts.error}
                )
            elif (
                path.startswith("/thumb/")
                and path[7:].isascii()
                and path[7:].isdigit()
                and int(path[7:]) < len(collector.recent)
            ):
                self.send_body(list(collector.recent)[int(path[7:])][2], "image/jpeg")
            elif path == "/stream.mjpg":
                self.stream()
            else:
                self.send_error(HTTPStatus.NOT_FOUND)

        def do_POST(self) -> None:  # noqa: N802
            request = self.json_body(MAX_BODY)
            if request is None:
                return
            try:
                other = request.get("other") is True  # "none of these": DATA/__other__
                folder = other_folder(collector.data) if other else class_folder(collector.data, request.get("label"))
                label = None if other else folder.name  # checked above: text, a name, not reserved
                if self.path == "/class" and not other:
                    folder.mkdir(parents=True, exist_ok=True)
                    self.send_json({"message": f"class {label} added"})
                elif self.path == "/take":
                    count, interval = request.get("count", 10), request.get("interval", 1.0)
                    if not _number(count) or not _number(interval) or count != int(count):
                        raise EdgetlError("count and interval must be numbers.")
                    if not 1 <= count <= MAX_BURST or not 0 <= interval <= 3600:
                        raise EdgetlError(f"A burst is 1 to {MAX_BURST} photos, 0 to 3600 s apart.")
                    count, interval = int(count), float(interval)
                    if not bursts.start(label, count, interval):
                        self.send_json({"message": f"still taking {bursts.busy}"}, HTTPStatus.CONFLICT)
                        return
                    self.send_json({"message": f"taking {count} of {label or OTHER_NAME}"}, HTTPStatus.ACCEPTED)
                else:
                    self.send_error(HTTPStatus.NOT_FOUND)
            except EdgetlError as error:
                self.send_json({"message": str(error)}, HTTPStatus.BAD_REQUEST)

    return Handler


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def serve_collect(
    collector: Collector, capture: Capture, address: str, stop: threading.Event, console, auth: Credentials | None
) -> None:
    """Serve the page and feed it frames until the source ends or `stop` is set."""
    live, bursts = LiveState({"photo": collector.options.region}), Bursts(collector, stop)  # drawn: what photos hold
    server = start_server(address, live, _handler(live, collector, bursts), auth)
    announce(server, console, f"collecting into {for_console(str(collector.data))}", "sees the camera and takes photos")
    shown, started = 0, time.monotonic()
    try:
        while not stop.is_set() and not capture.finished:
            frame = capture.latest(timeout=0.5)
            if frame is not None:
                shown += 1
                bursts.show(frame)
                live.update(None, frame, shown / max(time.monotonic() - started, 1e-9))
    finally:
        stop.set()
        live.close()
        server.shutdown()
