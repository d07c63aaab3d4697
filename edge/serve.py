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


def draw_overlay(image: np.ndarray, result: Result | None, fps: float, region: Region | None = None) -> np.ndarray:
    """A copy of the BGR frame with the region of interest drawn and the top predictions and FPS written on it."""
    canvas = image.copy()
    if region is not None:
        region.draw(canvas)
    if result is None:
        return canvas
    scale = max(canvas.shape[1] / 640, 0.5)
    prediction = result.prediction
    lines = [f"{entry.label} {entry.score:.0%}" for entry in prediction.top]
    if prediction.decision != prediction.best.label:  # "unknown" or "unsure" above the model's own guesses
        lines.insert(0, prediction.decision)
    run = f" ({result.model_version.split()[0]})" if result.model_version.strip() else ""  # the run's folder name
    lines.append(f"{fps:.1f} FPS  {result.latency_ms['inference']:.0f} ms  model {result.model[:8]}{run}")
    for row, text in enumerate(lines):
        origin = (int(10 * scale), int((30 + 28 * row) * scale))
        cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (0, 0, 0), int(4 * scale) + 1)
        cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (255, 255, 255), int(2 * scale))
    return canvas


STREAM_FPS = 15.0  # JPEGs a second sent to the viewers: smooth to watch, and a fixed cost however many watch
MAX_VIEWERS = 20  # stream clients at once; one more gets 503
MAX_CONNECTIONS = 64  # open connections of any kind at once; one more gets 503 and is closed
IDLE_SECONDS = 15  # a connection that sends or takes nothing for this long is closed
MAX_DRAIN = 1 << 20  # bytes of a refused body read and dropped before the answer; a larger one is cut off
REQUEST_SECONDS = 20  # a request (line, headers and body) must arrive within this, however slowly it trickles


class LiveState:
    """The newest frame, result and stats, shared between the inference loop and the web clients.

    One thread encodes the newest frame with its overlay, at most STREAM_FPS times a second and only while
    someone watches, and every viewer sends that same JPEG: the stream's cost does not grow with its viewers,
    so they cannot slow inference down.
    """

    def __init__(self, max_viewers: int = MAX_VIEWERS) -> None:
        lock = threading.Lock()
        # Two conditions on one lock: a result (hundreds a second) wakes only the encoder; a new JPEG (at most
        # STREAM_FPS a second) wakes the viewers. Waking every viewer per result cost inference ~10 %.
        self.condition = threading.Condition(lock)
        self.jpeg_ready = threading.Condition(lock)
        self.frame: Frame | None = None
        self.result: Result | None = None
        self.stats: dict = {}
        self.closed = False
        self.jpeg: tuple[int, bytes] = (0, b"")  # (frame number, JPEG) that every viewer sends
        self.viewers, self.max_viewers = 0, max_viewers
        self.telemetry = None  # edge/telemetry.py's Telemetry: /metrics and /healthz (the camera sets it)
        self.summary: Callable[[], dict] | None = None  # the run's stats for /stats, computed only when asked
        self.region: Region | None = None  # drawn on the stream: the part of the frame the model is asked about
        threading.Thread(target=self._encode, name="edgetl-jpeg", daemon=True).start()

    def update(self, result: Result, frame: Frame, stats: dict) -> None:
        with self.condition:
            self.frame, self.result, self.stats = frame, result, stats
            self.condition.notify_all()

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
        """The shared JPEG once it shows a newer frame than `last`; None when the server closes."""
        with self.jpeg_ready:
            self.jpeg_ready.wait_for(lambda: self.closed or self.jpeg[0] > last)
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
                frame, result, fps = self.frame, self.result, self.stats.get("fps", 0.0)
            ok, data = cv2.imencode(
                ".jpg", draw_overlay(frame.image, result, fps, self.region), [cv2.IMWRITE_JPEG_QUALITY, 80]
            )
            encoded = frame.number
            if ok:
                with self.jpeg_ready:
                    self.jpeg = (frame.number, data.tobytes())
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

    def stream(self) -> None:
        state = self.state
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


def _handler(live: LiveState) -> type[BaseHTTPRequestHandler]:
    class Handler(LiveHandler):
        state, page = live, "camera"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.send_static(self.path.split("?")[0]):
                return
            if self.path.startswith("/stats"):
                summary = live.summary() if live.summary else {}  # outside the lock: inference never waits on it
                with live.condition:
                    body = {**summary, **live.stats, "result": live.result.as_dict() if live.result else None}
                self.send_json(body)
            elif self.path.startswith("/stream.mjpg"):
                self.stream()
            elif self.path in ("/metrics", "/healthz") and live.telemetry is None:
                self.send_json({"status": "starting"}, HTTPStatus.SERVICE_UNAVAILABLE)  # the camera is opening
            elif self.path == "/metrics":
                self.send_body(live.telemetry.page().encode(), "text/plain; version=0.0.4; charset=utf-8")
            elif self.path == "/healthz":
                healthy, quiet = live.telemetry.healthy()
                status = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
                self.send_json(
                    {"status": "ok" if healthy else "stalled", "seconds_since_result": round(quiet, 2)}, status
                )
            else:
                self.send_error(HTTPStatus.NOT_FOUND)

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
    state: LiveState | None,
    handler: type[LiveHandler] | None = None,
    credentials: Credentials | None = None,
) -> ThreadingHTTPServer:
    """Serve `handler`'s page (by default the camera's, showing `state`) on HOST:PORT from a background thread;
    with `credentials`, only to requests that carry them."""
    host, port = parse_address(address)
    handler = handler or _handler(state)
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
