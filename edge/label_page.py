"""`edgetl label --serve`: the page a person labels on, most doubtful frame first.

Keys: 1–9 file the frame (and any selected with it) under that class, o files it as "none of these" (photos
the next training fits "unknown" on), x discards, u undoes, s skips.
Clicking thumbnails of the frames that follow selects them, to label several similar frames at once.
As every edgetl page: the security headers of edge/serve.py, text from data as text nodes only, and
requests that change something must be JSON (no other site can send that without a CORS preflight).
"""

from __future__ import annotations

from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from edgetl.edge.auth import Credentials
from edgetl.edge.label import MAX_ITEMS, Labeller
from edgetl.edge.serve import LiveHandler, announce, start_server
from edgetl.errors import EdgetlError
from edgetl.layout import photos_per_class
from edgetl.text import for_console

MAX_BODY = 64 * 1024  # a label request: a class name and up to MAX_ITEMS file names


def _handler(labeller: Labeller) -> type[BaseHTTPRequestHandler]:
    class Handler(LiveHandler):
        page = "label"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?")[0]
            if self.send_static(path):
                return
            if path == "/state":
                items = labeller.items()
                listed = [item.as_dict() for item in items[:MAX_ITEMS]]
                undo = len(labeller.history)
                self.send_json(
                    {
                        "items": listed,
                        "waiting": len(items),
                        "classes": photos_per_class(labeller.data),
                        "filed": labeller.filed,
                        "undo": undo,
                    }
                )
            elif path.startswith("/image/"):
                from urllib.parse import unquote

                try:
                    self.send_body(labeller.photo(unquote(path[7:])).read_bytes(), "image/jpeg")
                except EdgetlError:
                    self.send_error(HTTPStatus.NOT_FOUND)
            else:
                self.send_error(HTTPStatus.NOT_FOUND)

        def do_POST(self) -> None:  # noqa: N802
            request = self.json_body(MAX_BODY)
            if request is None:
                return
            files = request.get("files", [])
            try:
                if not isinstance(files, list) or not all(isinstance(f, str) for f in files) or len(files) > MAX_ITEMS:
                    raise EdgetlError(f"files must be a list of at most {MAX_ITEMS} names")
                if self.path == "/label":
                    labeller.label(files, request.get("label"))
                elif self.path == "/other":
                    labeller.none_of_these(files)
                elif self.path == "/discard":
                    labeller.discard(files)
                elif self.path == "/undo":
                    if labeller.undo() is None:
                        raise EdgetlError("nothing to undo")
                else:
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                self.send_json({"message": "done"})
            except EdgetlError as error:
                self.send_json({"message": str(error)}, HTTPStatus.BAD_REQUEST)

    return Handler


def serve_label(labeller: Labeller, address: str, console, auth: Credentials | None) -> ThreadingHTTPServer:
    server = start_server(address, None, _handler(labeller), auth)
    announce(server, console, f"labelling {for_console(str(labeller.folder))}", "can file or discard these photos")
    return server
