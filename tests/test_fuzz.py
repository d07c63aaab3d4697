"""Fuzzing the pages' JSON APIs (label, collect): random shapes, types, sizes and encodings of every field,
seeded and bounded in time. Every request gets a complete HTTP answer (never a 5xx or a dropped connection),
the server stays up, nothing outside DATA and DIR changes, and the photos on disk match collect.jsonl."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console
from test_edge import write_video
from test_hardening import photo

from edgetl.edge.capture import Capture, SourceSpec
from edgetl.edge.collect import CollectOptions, Collector
from edgetl.edge.collect_page import serve_collect
from edgetl.edge.label import Labeller
from edgetl.edge.label_page import serve_label

SECONDS = 4  # per page: a few hundred requests
NASTY = ["", ".", "..", "../x", "/etc/passwd", "a/b", "a\\b", "\x00", "collect.jsonl", "train", "Val", "\ud800",
         "\udcff.jpg", "é" * 200, "x" * 70_000, "0.jpg", "1.jpg", "healthy", "Healthy", "ok class", "<b>x</b>",
         "${x}", "\u202egnp.jpg", "CON", "discarded", " ", "\t", "\n"]  # fmt: skip


def value(rng: random.Random, depth: int = 0) -> object:
    """Any JSON value, leaning towards the ones that break code: names, odd numbers, nesting."""
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice(NASTY)
    if kind == 1:
        return "".join(chr(rng.randrange(1, 0x11000)) for _ in range(rng.randrange(1, 40)))
    if kind == 2:
        return rng.choice([0, -1, 1, 3, 500, 501, 2**63, -(2**70), 10**400])
    if kind == 3:
        return rng.choice([0.5, -0.0, 1e308, -1e-308, float("nan"), float("inf")])
    if kind == 4:
        return rng.choice([True, False, None])
    if kind == 5:
        return f"{rng.randrange(4)}.jpg"
    if kind == 6:
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 7:
        return [f"{i}.jpg" for i in range(rng.randrange(1, 6))] + (
            [value(rng, depth + 1)] if rng.random() < 0.3 else []
        )
    return {rng.choice(["label", "files", "count", "interval", "x"]): value(rng, depth + 1) for _ in range(3)}


def body(rng: random.Random) -> tuple[bytes, str]:
    """(the body, its Content-Type): mostly JSON objects of the API's fields, sometimes anything else."""
    roll = rng.random()
    if roll < 0.1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))), "application/json"
    if roll < 0.15:
        return b'{"label": "a"}', rng.choice(["text/plain", "application/x-www-form-urlencoded", ""])
    if roll < 0.25:
        return json.dumps(value(rng)).encode(), "application/json"
    fields = {key: value(rng) for key in rng.sample(["label", "files", "count", "interval", "x"], rng.randrange(1, 5))}
    if rng.random() < 0.5:
        fields["count"], fields["interval"] = rng.choice([1, 2, 3]), 0
    return json.dumps(fields).encode(), "application/json"


def fuzz(port: int, paths: list[str], seed: int) -> int:
    """Requests for SECONDS; each must be answered whole, with a status below 500. Returns how many."""
    rng, sent, deadline = random.Random(seed), 0, time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        method = rng.choice(["POST"] * 8 + ["GET", "PUT", "DELETE"])
        payload, kind = body(rng)
        headers = {"Content-Type": kind} if kind else {}
        connection.request(method, rng.choice(paths), payload if method != "GET" else None, headers)
        response = connection.getresponse()
        answer = response.read()  # complete: http.client checks it against Content-Length
        expected = response.status < 500 or (response.status == 501 and method not in ("GET", "POST"))
        assert expected, (method, response.status, payload[:200], answer[:200])
        connection.close()
        sent += 1
    return sent


def snapshot(root: Path, inside: tuple[Path, ...]) -> dict[str, bytes]:
    """Every file under `root` that is not under one of `inside`, with its content."""
    return {
        str(p): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not any(p == folder or folder in p.parents for folder in inside)
    }


def logged(data: Path) -> set[str]:
    """The photos collect.jsonl says are in DATA: every line's file, less the undone ones."""
    present: dict[str, int] = {}
    for line in (data / "collect.jsonl").read_text().splitlines():
        record = json.loads(line)
        present[record["file"]] = present.get(record["file"], 0) + (-1 if record.get("undone") else 1)
    return {name for name, count in present.items() if count > 0}


def on_disk(data: Path, before: set[str]) -> set[str]:
    return {p.relative_to(data).as_posix() for p in data.rglob("*.jpg") if p.is_file()} - before


@pytest.mark.parametrize("seed", [1])
def test_fuzzing_the_label_page(tmp_path: Path, seed: int) -> None:
    sandbox = tmp_path / "box"
    data, kept = sandbox / "data", sandbox / "kept"
    photo(data / "healthy" / "old.jpg")
    photo(sandbox / "outside" / "keep-me.jpg")
    for i in range(4):
        photo(kept / f"{i}.jpg", i)
    before, outside = {"healthy/old.jpg"}, snapshot(tmp_path, (data, kept))
    labeller = Labeller(kept, data)
    server = serve_label(labeller, "127.0.0.1:0", Console(quiet=True), None)
    try:
        port = server.server_address[1]
        sent = fuzz(port, ["/label", "/discard", "/undo", "/state", "/image/0.jpg", "/nope", "/label?x=1"], seed)
        assert sent > 50
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/state")
        assert connection.getresponse().status == 200  # still up
    finally:
        server.shutdown()
        server.server_close()
    assert snapshot(tmp_path, (data, kept)) == outside
    if (data / "collect.jsonl").exists():
        assert logged(data) == on_disk(data, before)
    photos = [p for p in [*kept.rglob("*.jpg"), *data.rglob("*.jpg")] if p.is_file()]
    assert len(photos) == 5  # each photo exactly once, wherever it was filed


def test_fuzzing_the_collect_page(tmp_path: Path) -> None:
    sandbox = tmp_path / "box"
    data = sandbox / "data"
    photo(sandbox / "outside" / "keep-me.jpg")
    video = write_video(tmp_path / "clip.avi", 60)
    outside = snapshot(tmp_path, (data,))
    collector = Collector(data, CollectOptions(serve="127.0.0.1:0", min_free=0))
    capture = Capture(SourceSpec(str(video)), loop=True, realtime=True)
    stop = threading.Event()
    servers: list = []
    import edgetl.edge.collect_page as page

    original = page.start_server

    def remember(*args, **kwargs):
        servers.append(original(*args, **kwargs))
        return servers[-1]

    page.start_server = remember
    thread = threading.Thread(
        target=serve_collect, args=(collector, capture, "127.0.0.1:0", stop, Console(quiet=True), None)
    )
    thread.start()
    try:
        while not servers:
            time.sleep(0.05)
        port = servers[0].server_address[1]
        assert fuzz(port, ["/class", "/take", "/state", "/thumb/0", "/thumb/%C2%B2", "/thumb/99", "/nope"], seed=2) > 50
    finally:
        stop.set()
        thread.join(timeout=30)
        page.start_server = original
        capture.close()
    assert snapshot(tmp_path, (data,)) == outside
    if (data / "collect.jsonl").exists():
        assert logged(data) == on_disk(data, set())
    assert all(
        p.parent.parent == data for p in data.rglob("*.jpg") if p.is_file()
    )  # DATA/<class>/photo.jpg, nothing deeper
