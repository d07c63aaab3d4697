"""Hostile and broken input to the field loop's surfaces: dataset layouts, names, sidecars, requests, servers.

Each test here failed on the code before the hardening round that added it (issue 30)."""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from edgetl.edge import serve
from edgetl.edge.label import Labeller
from edgetl.edge.label_page import serve_label
from edgetl.errors import EdgetlError
from edgetl.layout import check_class_name, class_folder


def photo(path: Path, shade: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(shade)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def presplit(root: Path) -> Path:
    for split in ("train", "validation", "test"):
        for name in ("healthy", "bean_rust"):
            photo(root / split / name / "a.jpg")
    return root


def test_label_files_into_the_train_split_of_a_presplit_dataset_and_reserves_its_names(tmp_path: Path) -> None:
    data, kept = presplit(tmp_path / "beans"), tmp_path / "kept"
    for i in range(4):
        photo(kept / f"{i}.jpg", i)
    labeller = Labeller(kept, data)
    [target] = labeller.label(["0.jpg"], "Healthy")  # reads the same as an existing class: that class
    assert target == data / "train" / "healthy" / "0.jpg"
    for reserved in ("train", "Validation", "val", "test", "collect.jsonl"):
        with pytest.raises(EdgetlError, match="is reserved"):
            labeller.label(["1.jpg"], reserved)
    with pytest.raises(EdgetlError, match="split into train/validation/test: a new class 'angular'"):
        labeller.label(["1.jpg"], "angular")
    assert not (data / "train" / "angular").exists() and not (data / "angular").exists()
    assert json.loads((data / "collect.jsonl").read_text())["file"] == "train/healthy/0.jpg"

    flat = tmp_path / "flat"
    with pytest.raises(EdgetlError, match="is reserved"):
        class_folder(flat, "train")  # `collect D --label train` would make D look pre-split
    assert class_folder(flat, "Caf\u0065\u0301") == flat / "Caf\u00e9"


def test_class_names_are_checked_in_bytes_and_must_be_text() -> None:
    assert check_class_name("é" * 64) == "é" * 64  # 128 bytes
    with pytest.raises(EdgetlError, match="255 bytes"):
        check_class_name("\U0001d538" * 64)  # 64 characters, 256 bytes: no file system takes it
    for bad in (["healthy"], {"a": 1}, None, 3):
        with pytest.raises(EdgetlError, match="must be text"):
            check_class_name(bad)


def test_label_refuses_a_folder_inside_the_dataset_or_around_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    photo(data / "healthy" / "a.jpg")
    os.link(data / "healthy" / "a.jpg", data / "healthy" / "b.jpg")
    for folder, dataset in ((data / "healthy", data), (tmp_path, data), (data, data)):
        with pytest.raises(EdgetlError, match="inside one another"):
            Labeller(folder, dataset)
    assert {p.name for p in (data / "healthy").iterdir()} == {"a.jpg", "b.jpg"}  # nothing removed


@pytest.fixture
def label_server(tmp_path: Path):
    data, kept = tmp_path / "data", tmp_path / "kept"
    photo(data / "healthy" / "x.jpg")
    warnings: list[str] = []
    labeller = Labeller(kept if kept.mkdir() is None else kept, data, warn=warnings.append)
    server = serve_label(labeller, "127.0.0.1:0", Console(quiet=True), None)
    yield server.server_address[1], labeller, warnings
    server.shutdown()
    server.server_close()


def request(port: int, method: str, path: str, body: object = None, headers: dict | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    payload = json.dumps(body).encode() if body is not None else None
    connection.request(method, path, payload, {"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    return response.status, json.loads(raw) if raw.startswith(b"{") else {}


def test_one_bad_sidecar_spoils_only_its_own_photo(label_server, tmp_path: Path) -> None:
    port, labeller, warnings = label_server
    kept = labeller.folder
    sidecars = {
        "a": {"kept_because": "unknown", "ood_score": "high"},
        "b": {"kept_because": "unknown", "ood_score": "0.5"},
        "c": {"labels": ["x", "y"], "scores": [0.5]},
        "d": {"kept_because": "unknown", "ood_score": 2.5, "decision": "unknown", "labels": ["x"], "scores": [0.9]},
    }
    for i, (name, sidecar) in enumerate(sidecars.items()):
        photo(kept / f"{name}.jpg", i)
        (kept / f"{name}.json").write_text(json.dumps(sidecar))
    photo(kept / "e.jpg", 9)
    (kept / "e.json").write_bytes(b'{"pad": "' + b"x" * (1 << 20) + b'"}')  # 1 MB: not a sidecar camera wrote
    status, state = request(port, "GET", "/state")
    assert status == 200 and state["waiting"] == 5
    assert state["items"][0] == {"name": "d.jpg", **sidecars["d"]}  # the one good sidecar: first, as before
    assert all(set(item) == {"name"} for item in state["items"][1:])  # the others: photos without a sidecar
    assert len(warnings) == 4 and all(line.startswith("ignored ") for line in warnings)
    request(port, "GET", "/state")
    assert len(warnings) == 4  # one line each, not one per request


def test_a_batch_is_filed_whole_or_not_at_all_and_odd_names_are_handled(label_server) -> None:
    port, labeller, _ = label_server
    kept = labeller.folder
    for i, name in enumerate(("a.jpg", "b\\c.jpg", "d.jpg")):
        photo(kept / name, i)
    status, answer = request(port, "POST", "/label", {"label": "healthy", "files": ["a.jpg", "missing.jpg"]})
    assert status == 400 and "no longer waiting" in answer["message"]
    assert (kept / "a.jpg").exists() and labeller.filed == 0 and not labeller.history
    assert request(port, "POST", "/label", {"label": "healthy", "files": ["a.jpg", "b\\c.jpg"]})[0] == 200
    assert (labeller.data / "healthy" / "b\\c.jpg").exists()
    for label in (["healthy"], {"a": 1}, 7, "collect.jsonl"):
        status, answer = request(port, "POST", "/label", {"label": label, "files": ["d.jpg"]})
        assert status == 400 and answer["message"], label
    assert request(port, "POST", "/undo", {})[0] == 200
    assert request(port, "GET", "/state")[1]["filed"] == len(labeller.history) == 1

    odd = os.fsencode(str(kept)) + b"/\xff\xfe.jpg"  # a name that is not UTF-8 text
    with open(odd, "wb") as handle:
        handle.write((kept / "d.jpg").read_bytes())
    status, state = request(port, "GET", "/state")
    assert status == 200 and {item["name"] for item in state["items"]} == {"b\\c.jpg", "d.jpg"}


def test_a_bad_content_length_is_one_answer_not_a_traceback(label_server, capfd) -> None:
    port, _, _ = label_server
    for length in ("abc", "-5", "1e3", ""):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            head = (
                f"POST /label HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
            )
            connection.sendall(head.encode())
            answer = connection.recv(4096)
        assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400"), (length, answer)
    assert "Traceback" not in capfd.readouterr().err


def test_servers_bound_connections_idle_time_and_slow_requests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve, "MAX_CONNECTIONS", 3)
    monkeypatch.setattr(serve.LiveHandler, "timeout", 1.0)
    monkeypatch.setattr(serve, "REQUEST_SECONDS", 2.0)
    (tmp_path / "kept").mkdir()
    server = serve_label(Labeller(tmp_path / "kept", tmp_path / "data"), "127.0.0.1:0", Console(quiet=True), None)
    port = server.server_address[1]
    try:
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as extra:
            assert extra.recv(4096).startswith(b"HTTP/1.1 503")  # the fourth is turned away at once
        started = time.monotonic()
        assert all(connection.recv(1) == b"" for connection in held)  # idle: closed by the server
        assert time.monotonic() - started < 5
        for connection in held:
            connection.close()
        time.sleep(0.2)
        trickle = socket.create_connection(("127.0.0.1", port), timeout=10)
        started, closed = time.monotonic(), False
        for byte in b"GET /state HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 100:
            try:
                trickle.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            if select.select([trickle], [], [], 0.3)[0]:  # under the idle timeout: only the deadline can end it
                closed = trickle.recv(4096) == b""
                break
        assert closed and time.monotonic() - started < 5
        trickle.close()
        assert request(port, "GET", "/state")[0] == 200  # and the server still serves
    finally:
        server.shutdown()
        server.server_close()
