"""`--serve HOST:PORT`: a small web page for a headless Pi — live video with the overlay, predictions, stats.

Standard library only (`http.server`): one page, an MJPEG stream (`/stream.mjpg`) and a JSON
endpoint (`/stats`) the page polls. One thread encodes the stream for every viewer (`LiveState`), at a
fixed rate, so viewers never slow inference down; at most MAX_VIEWERS watch at once.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import cv2
import numpy as np

from edgetl.edge.auth import Credentials
from edgetl.edge.capture import Frame
from edgetl.edge.pages import CONTENT_TYPES, static_file
from edgetl.edge.result import Result
from edgetl.edge.roi import Region
from edgetl.errors import EdgetlError

SECURITY_HEADERS = {  # no inline script or style at all: the pages are files (edge/static/)
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self'; "
    "style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


Shown = tuple[str, Region | None, Result | None]  # a region's name, rectangle (None: the whole frame), newest result


def draw_overlay(image: np.ndarray, shown: list[Shown], fps: float) -> np.ndarray:
    """A copy of the BGR frame with each region drawn and its newest decision written on it; one region's result
    gets its top-k, the rate, inference time and model, as the single-camera overlay always had."""
    canvas = image.copy()
    scale = max(canvas.shape[1] / 640, 0.5)
    for _, region, _ in shown:
        if region is not None:
            region.draw(canvas)
    if len(shown) == 1 and shown[0][2] is not None:
        result = shown[0][2]
        prediction = result.prediction
        lines = [f"{entry.label} {entry.score:.0%}" for entry in prediction.top]
        if prediction.decision != prediction.best.label:  # "unknown" or "unsure" above the model's own guesses
            lines.insert(0, prediction.decision)
        run = f" ({result.model_version.split()[0]})" if result.model_version.strip() else ""  # the run's folder
        lines.append(f"{fps:.1f} FPS  {result.latency_ms['inference']:.0f} ms  model {result.model[:8]}{run}")
        for row, text in enumerate(lines):
            _write(canvas, text, (int(10 * scale), int((30 + 28 * row) * scale)), scale)
        return canvas
    for row, (name, region, result) in enumerate(shown):
        if result is None:
            continue
        left, top = region.box(canvas.shape[1], canvas.shape[0])[:2] if region else (0, int(28 * row * scale))
        text = f"{name}: {result.prediction.decision} {result.prediction.best.score:.0%}"
        _write(canvas, text, (left + int(6 * scale), top + int(24 * scale)), scale * 0.8)
    return canvas


def _write(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    """White text with a black outline: readable on light and dark scenes alike."""
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (0, 0, 0), int(4 * scale) + 1)
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (255, 255, 255), int(2 * scale))


STREAM_FPS = 15.0  # JPEGs a second sent to the viewers: smooth to watch, and a fixed cost however many watch
MAX_VIEWERS = 20  # stream clients at once; one more gets 503
MAX_CONNECTIONS = 64  # open connections of any kind at once; one more gets 503 and is closed
IDLE_SECONDS = 15  # a connection that sends or takes nothing for this long is closed
MAX_DRAIN = 1 << 20  # bytes of a refused body read and dropped before the answer; a larger one is cut off
REQUEST_SECONDS = 20  # a request (line, headers and body) must arrive within this, however slowly it trickles


class LiveState:
    """One camera's newest frame and its regions' newest results, shared between the results thread and the web
    clients.

    One thread encodes the newest frame with its overlay, at most STREAM_FPS times a second and only while
    someone watches, and every viewer sends that same JPEG: the stream's cost does not grow with its viewers,
    so they cannot slow inference down.
    """

    def __init__(
        self,
        regions: dict[str, Region | None] | None = None,
        max_viewers: int = MAX_VIEWERS,
        encode: bool = True,
        finished: Callable[[], bool] = lambda: False,
    ) -> None:
        """`regions`: each region's name and rectangle (None: the whole frame), drawn on the stream in this
        order; `encode=False` for a state that is only drawn (the on-screen window), never streamed; `finished`
        says when the camera has given its last frame."""
        lock = threading.Lock()
        # Two conditions on one lock: a result (hundreds a second) wakes only the encoder; a new JPEG (at most
        # STREAM_FPS a second) wakes the viewers. Waking every viewer per result cost inference ~10 %.
        self.condition = threading.Condition(lock)
        self.jpeg_ready = threading.Condition(lock)
        self.frame: Frame | None = None
        self.regions = dict(regions or {})
        self.results: dict[str, Result] = {}  # by region name: the newest of each
        self.fps = 0.0
        self.finished = finished
        self.closed = False
        self.jpeg: tuple[int, bytes] = (0, b"")  # (frame number, JPEG) that every viewer sends
        self.viewers, self.max_viewers = 0, max_viewers
        if encode:
            threading.Thread(target=self._encode, name="edgetl-jpeg", daemon=True).start()

    def update(self, result: Result | None, frame: Frame, fps: float) -> None:
        with self.condition:
            self.frame, self.fps = frame, fps
            if result is not None:
                self.results[result.region] = result
            if self.viewers:  # no one watching: nothing to encode, no thread to wake (a wake per result costs)
                self.condition.notify_all()

    def overlay(self) -> np.ndarray:
        """The newest frame with every region and its newest result drawn (drawn outside the lock)."""
        with self.condition:
            frame, fps, results = self.frame, self.fps, dict(self.results)
        return draw_overlay(frame.image, [(name, roi, results.get(name)) for name, roi in self.regions.items()], fps)

    def latest(self) -> dict[str, dict]:
        """Each region's newest result in the one result shape."""
        with self.condition:
            return {name: result.as_dict() for name, result in self.results.items()}

    def close(self) -> None:
        with self.condition:
            self.closed = True
            self.condition.notify_all()
            self.jpeg_ready.notify_all()

    def join(self) -> bool:
        """Count a new viewer in; False when MAX_VIEWERS already watch."""
        with self.condition:
            if self.viewers >= self.max_viewers:
                return False
            self.viewers += 1
            self.condition.notify_all()
            return True

    def leave(self) -> None:
        with self.condition:
            self.viewers -= 1

    def next_jpeg(self, last: int) -> tuple[int, bytes] | None:
        """The shared JPEG once it shows a newer frame than `last`; None when the server closes, or when the
        camera has ended and its last frame was sent (a stream that never ends would hold a browser's page)."""
        with self.jpeg_ready:
            while not (self.closed or self.jpeg[0] > last):
                if self.finished() and (last > 0 or self.frame is None):
                    return None
                self.jpeg_ready.wait(1.0)
            return None if self.closed else self.jpeg

    def _new_frame_for_viewers(self, encoded: int) -> bool:
        return self.viewers > 0 and self.frame is not None and self.frame.number != encoded

    def _encode(self) -> None:
        encoded = 0
        while True:
            with self.condition:
                self.condition.wait_for(lambda: self.closed or self._new_frame_for_viewers(encoded))  # noqa: B023
                if self.closed:
                    return
                number = self.frame.number
            ok, data = cv2.imencode(".jpg", self.overlay(), [cv2.IMWRITE_JPEG_QUALITY, 80])
            encoded = number
            if ok:
                with self.jpeg_ready:
                    self.jpeg = (number, data.tobytes())
                    self.jpeg_ready.notify_all()
            time.sleep(1 / STREAM_FPS)


class LiveHandler(BaseHTTPRequestHandler):
    """What every edgetl page serves: bodies with the security headers, and the shared MJPEG stream."""

    state: LiveState  # set by the subclass a page makes
    credentials: Credentials | None = None  # set by start_server: every route then needs them
    page = ""  # its files in edge/static/: NAME.html at /, NAME.js, and the shared common.css and common.js

    timeout = IDLE_SECONDS  # socketserver sets it on the connection: reads and writes that stall end it

    def log_message(self, *args) -> None:  # keep the terminal for results
        pass

    def handle_one_request(self) -> None:
        """One request, which must arrive whole within REQUEST_SECONDS (a client that trickles a byte now and
        then never trips the idle timeout): past it the connection is shut, and the read ends."""
        self._deadline = threading.Timer(REQUEST_SECONDS, self._cut)
        self._deadline.daemon = True
        self._deadline.start()
        try:
            super().handle_one_request()
        finally:
            self._deadline.cancel()

    def _cut(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def send_response(self, code, message=None) -> None:
        self._deadline.cancel()  # the request is in: answering (an MJPEG stream, too) may take as long as it needs
        super().send_response(code, message)

    def parse_request(self) -> bool:
        """http.server's parsing, then the credentials: a request without them gets 401 and nothing else."""
        if not super().parse_request():
            return False
        if self.credentials is None or self.credentials.allow(self.headers.get("Authorization")):
            return True
        self._drain()
        self.close_connection = True
        self.send_response(HTTPStatus.UNAUTHORIZED)
        self.send_header("WWW-Authenticate", 'Basic realm="edgetl", charset="UTF-8"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def send_static(self, path: str) -> bool:
        """Serve the page, its script or the shared files when `path` names one; False otherwise."""
        name = {"/": f"{self.page}.html", "/index.html": f"{self.page}.html", f"/{self.page}.js": f"{self.page}.js",
                "/common.css": "common.css", "/common.js": "common.js"}.get(path)  # fmt: skip
        if name is None:
            return False
        self.send_body(static_file(name), CONTENT_TYPES[Path(name).suffix])
        return True

    def send_body(self, body: bytes, content_type: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, value: object, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_body(json.dumps(value).encode(), "application/json", status)

    def json_body(self, limit: int) -> dict | None:
        """A POST's JSON object, or None after answering why not. JSON only: no other site's page can send
        that here without a CORS preflight, which no edgetl page grants."""
        length = self._content_length()
        if self.headers.get_content_type() != "application/json" or not 0 < length <= limit:
            self._drain()
            self.close_connection = True  # a body we did not read must not be taken for the next request
            self.send_json({"message": f"send a JSON object of at most {limit} bytes"}, HTTPStatus.BAD_REQUEST)
            return None
        try:
            value = json.loads(self.rfile.read(length))
        except ValueError:
            value = None
        if not isinstance(value, dict):
            self.send_json({"message": "the body is not a JSON object"}, HTTPStatus.BAD_REQUEST)
            return None
        return value

    def _content_length(self) -> int:
        """The request's Content-Length as a number, -1 when it is missing or not digits (e.g. "abc", "-5")."""
        given = (self.headers.get("Content-Length") or "").strip()
        return int(given) if given.isascii() and given.isdigit() else -1

    def _drain(self) -> None:
        """Read and drop a refused request's body (up to MAX_DRAIN), so the client reads the answer rather than
        a connection reset by the unread bytes."""
        if 0 < (length := self._content_length()) <= MAX_DRAIN:
            self.rfile.read(length)

    def stream(self, state: LiveState | None = None) -> None:
        state = state or self.state
        if not state.join():
            self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, f"At most {state.max_viewers} viewers at once")
            return
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            last = 0
            while (encoded := state.next_jpeg(last)) is not None:
                last, jpeg = encoded
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n")
                self.wfile.write(f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
        except ConnectionError:
            return  # the viewer went away
        finally:
            state.leave()


def _handler(states: dict[str, LiveState], summary: Callable[[], dict], telemetry) -> type[LiveHandler]:
    """The camera page: every camera's stream (`/stream.mjpg?camera=NAME`, the first by default), `/stats` with
    each region's newest result, `/metrics` and `/healthz`."""
    first = next(iter(states.values()))

    class Handler(LiveHandler):
        state, page = first, "camera"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path, _, query = self.path.partition("?")
            if self.send_static(path):
                return
            if path == "/stats":
                self.send_json(self.stats())
            elif path == "/stream.mjpg":
                wanted = parse_qs(query).get("camera", [None])[0]
                if wanted is not None and wanted not in states:
                    self.send_error(HTTPStatus.NOT_FOUND, "No such camera")
                    return
                self.stream(states[wanted] if wanted else first)
            elif path == "/metrics":
                self.send_body(telemetry.page().encode(), "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/healthz":
                health = telemetry.health()
                self.send_json(health, HTTPStatus.OK if health["status"] == "ok" else HTTPStatus.SERVICE_UNAVAILABLE)
            else:
                self.send_error(HTTPStatus.NOT_FOUND)

        def stats(self) -> dict:
            """The run's summary (computed outside every lock: inference never waits on it), each camera's rate
            and each region's newest result."""
            body = summary()
            for camera in body["cameras"]:
                state = states[camera["name"]]
                camera["fps"] = state.fps
                newest = state.latest()
                for region in camera["regions"]:
                    region["result"] = newest.get(region["name"])
            return body

    return Handler


def announce(server: ThreadingHTTPServer, console, doing: str, risk: str, warn_to=None) -> None:
    """The page's address, and a warning (to `warn_to`, else `console`) when it is reachable from the network:
    without credentials anyone can use it, with them they still cross the network unencrypted."""
    host, port = server.server_address[:2]
    console.print(f"Serving http://{host}:{port}/" + (f" ({doing})" if doing else ""))
    if is_loopback(host):
        return
    if server.RequestHandlerClass.credentials is not None:
        (warn_to or console).print(
            f"[bold yellow]warning:[/] {host}:{port} asks for credentials, but plain HTTP carries them (and the "
            "video) unencrypted: put a TLS proxy or an SSH tunnel (ssh -L) in front."
        )
    else:
        (warn_to or console).print(
            f"[bold yellow]warning:[/] {host} is reachable from the network and the page has no authentication: "
            f"anyone who can reach port {port} {risk}. Prefer 127.0.0.1 and an SSH tunnel (ssh -L)."
        )


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise EdgetlError(f"--serve {text} is not HOST:PORT.", "Example: --serve 127.0.0.1:8080 (0.0.0.0 for the LAN).")
    return host or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _Server(ThreadingHTTPServer):
    """A thread per connection, at most MAX_CONNECTIONS at once."""

    daemon_threads = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address) -> None:
        """A viewer that closes its tab mid-response is normal, not an error worth a traceback."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):  # a viewer gone, or stalled past IDLE
            super().handle_error(request, client_address)


def start_server(
    address: str,
    states: dict[str, LiveState] | None = None,
    handler: type[LiveHandler] | None = None,
    credentials: Credentials | None = None,
    summary: Callable[[], dict] | None = None,
    telemetry=None,
) -> ThreadingHTTPServer:
    """Serve `handler`'s page (by default the camera's: `states` by camera, with the run's `summary` and
    `telemetry`) on HOST:PORT from a background thread; with `credentials`, only to requests that carry them."""
    host, port = parse_address(address)
    handler = handler or _handler(states, summary, telemetry)
    handler.credentials = credentials
    try:
        server = _Server((host, port), handler)
    except socket.gaierror as error:  # before OSError: a name that does not resolve is not a busy port
        raise EdgetlError(
            f"Cannot serve on {host}:{port}: {error.strerror}.", "Give an address of this machine, e.g. 127.0.0.1."
        ) from None
    except OSError as error:
        raise EdgetlError(f"Cannot serve on {host}:{port}: {error.strerror}.", "Pick another port.") from None
    threading.Thread(target=server.serve_forever, name="edgetl-web", daemon=True).start()
    return server
