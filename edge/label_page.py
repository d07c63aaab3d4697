"""`edgetl label --serve`: the page a person labels on, most doubtful frame first.

Keys: 1–9 file the frame (and any selected with it) under that class, x discards, u undoes, s skips.
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

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgetl label</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem; background: #111; color: #eee; }
#current { max-width: 100%; max-height: 60vh; border: 1px solid #444; }
#next img { width: 96px; margin: 0 .3rem .3rem 0; border: 3px solid transparent; cursor: pointer; }
#next img.selected { border-color: #4af; }
button { font-size: 1.1rem; margin: 0 .4rem .4rem 0; padding: .3rem .8rem; } .error { color: #f66; }
td { padding: .1rem .8rem .1rem 0; }
</style></head>
<body>
<h1>edgetl label</h1>
<p id="status">loading…</p>
<img id="current" alt="the frame to label">
<p id="why"></p>
<table id="guesses"></table>
<div id="classes"></div>
<p><input id="new-class" placeholder="new class" maxlength="64"> <button id="add">Label as new class</button>
<button id="discard">x · discard</button> <button id="undo">u · undo</button> <button id="skip">s · skip</button></p>
<div id="next"></div>
<script src="/label.js"></script>
</body></html>
"""

SCRIPT = """let items = [], classes = [], position = 0, selected = new Set();
function text(tag, value) { const node = document.createElement(tag); node.textContent = value; return node; }
async function post(path, body) {
  const response = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify(body)});
  const answer = await response.json();
  document.getElementById("status").className = response.ok ? "" : "error";
  if (!response.ok) document.getElementById("status").textContent = answer.message;
  return response.ok;
}
function chosen() { return [items[position].name, ...selected]; }
async function file(label) {
  if (!items[position]) return;
  if (await post("/label", {label, files: chosen()})) load();
}
async function act(path, body) { if (await post(path, body)) load(); }
function show() {
  const item = items[position];
  const buttons = classes.map((name, i) => {
    const button = text("button", `${i < 9 ? (i + 1) + " · " : ""}${name}`);
    button.dataset.label = name;
    button.addEventListener("click", () => file(name));
    return button;
  });
  document.getElementById("classes").replaceChildren(...buttons);
  document.getElementById("current").src = item ? `/image/${encodeURIComponent(item.name)}` : "";
  const decided = item && item.decision ? ` · decided ${item.decision}` : "";
  const ood = item && item.ood_score != null ? ` · OOD score ${item.ood_score.toFixed(2)}` : "";
  document.getElementById("why").textContent = item ?
    `${item.name} · ${item.kept_because ?? "not kept by a model"}${decided}${ood}` : "nothing left to label";
  document.getElementById("guesses").replaceChildren(...(item && item.labels ? item.labels.map((label, i) => {
    const row = document.createElement("tr");
    row.append(text("td", label), text("td", `${(100 * item.scores[i]).toFixed(1)}%`));
    return row;
  }) : []));
  document.getElementById("next").replaceChildren(...items.slice(position + 1, position + 13).map((next) => {
    const image = document.createElement("img");
    image.src = `/image/${encodeURIComponent(next.name)}`;
    image.alt = image.title = next.name;
    image.className = selected.has(next.name) ? "selected" : "";
    image.addEventListener("click", () => {
      selected.has(next.name) ? selected.delete(next.name) : selected.add(next.name);
      show();
    });
    return image;
  }));
}
async function load() {
  const state = await (await fetch("/state", {cache: "no-store"})).json();
  items = state.items; classes = Object.keys(state.classes); position = 0; selected.clear();
  document.getElementById("status").className = "";
  document.getElementById("status").textContent =
    `${state.waiting} waiting · ${state.filed} filed · undo ${state.undo}`;
  show();
}
document.getElementById("add").addEventListener("click", () => file(document.getElementById("new-class").value));
document.getElementById("discard").addEventListener("click", () => act("/discard", {files: chosen()}));
document.getElementById("undo").addEventListener("click", () => act("/undo", {}));
document.getElementById("skip").addEventListener("click", () => { position += 1; selected.clear(); show(); });
document.addEventListener("keydown", (event) => {
  if (event.target.tagName === "INPUT") return;
  if (event.key >= "1" && event.key <= "9" && classes[Number(event.key) - 1]) file(classes[Number(event.key) - 1]);
  else if (event.key === "x" && items[position]) act("/discard", {files: chosen()});
  else if (event.key === "u") act("/undo", {});
  else if (event.key === "s" && items[position]) { position += 1; selected.clear(); show(); }
});
load();
"""


def _handler(labeller: Labeller) -> type[BaseHTTPRequestHandler]:
    class Handler(LiveHandler):
        page, script = PAGE, ("/label.js", SCRIPT)

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
