"""Hostile and broken input to the field loop's surfaces: dataset layouts, names, sidecars, requests, servers.

Each test here failed on the code before the hardening round that added it (issue 30)."""

from __future__ import annotations

import http.client
import json
import os
import re
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


def test_a_secret_file_gives_its_first_line_to_pages_and_mqtt_alike(tmp_path: Path) -> None:
    from edgetl.edge.auth import AuthOptions, credentials, read_secret
    from edgetl.edge.mqtt import _password

    secret = tmp_path / "token"
    secret.write_text("tok123\n# rotate monthly\n")
    assert read_secret(secret, "--auth-token-file") == _password(secret) == "tok123"
    assert credentials(AuthOptions(auth_token_file=secret)).allow("Bearer tok123")
    secret.write_text("\nsecret on line two\n")
    for read in (lambda: read_secret(secret, "--auth-token-file"), lambda: _password(secret)):
        with pytest.raises(EdgetlError, match="nothing on its first line"):
            read()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--mqtt-topic", "edgetl/#", "wildcard"),
        ("--mqtt-topic", "edgetl/+/x", "wildcard"),
        ("--mqtt-topic", "$SYS/x", r"starts with \$"),
        ("--mqtt-topic", "a\x01b", "control character"),
        ("--mqtt-discovery", "home#", "wildcard"),
        ("--mqtt", "mqtt://127.0.0.1:99999", "port is not a number"),
        ("--mqtt", "mqtt://127.0.0.1:abc", "port is not a number"),
    ],
)
def test_mqtt_topics_and_ports_mqtt_forbids_are_one_line(option: str, value: str, message: str) -> None:
    from edgetl.edge.mqtt import MqttOptions

    settings = {"mqtt": "mqtt://127.0.0.1", option.lstrip("-").replace("-", "_"): value}
    with pytest.raises(EdgetlError, match=message):
        MqttOptions(**settings)


def test_an_unreachable_broker_is_said_once_and_its_states_counted_as_dropped(converted, tmp_path: Path) -> None:
    from test_edge import edge_cli, write_video

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    video = write_video(tmp_path / "clip.avi", 30)
    model = str(converted[0] / "model_int8.tflite")
    args = ["--source", str(video), "--loop", "--realtime", "--no-window", "--duration", "2", "--mqtt-publish", "every"]
    done = edge_cli("camera", model, *args, "--mqtt", f"mqtt://127.0.0.1:{port}")
    output = done.stdout + done.stderr
    assert done.returncode == 0 and output.count("cannot reach the broker at 127.0.0.1") == 1, output[-2000:]
    published, dropped = (int(n) for n in re.search(r"(\d+) states published, (\d+) dropped", output).groups())
    assert published == 0 and dropped > 0
    assert "model updates" in output and "0 taken" in output


def test_a_deleted_model_file_is_said_and_the_same_model_again_is_no_update(
    converted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgetl.edge import hot_swap
    from edgetl.edge.classifier import Classifier

    monkeypatch.setattr(hot_swap, "POLL_S", 0.1)
    model = tmp_path / "model.tflite"
    model.write_bytes((converted[0] / "model_int8.tflite").read_bytes())
    (tmp_path / "labels.txt").write_text((converted[0] / "labels.txt").read_text())
    said: list[str] = []
    slot = hot_swap.ModelSlot(Classifier(model), Classifier, said.append)
    try:
        incoming = tmp_path / ".incoming"
        incoming.write_bytes(model.read_bytes())
        os.replace(incoming, model)  # a new file, the same model
        wait_for(lambda: any("already running" in line for line in said), "the same model noticed")
        assert slot.status.updates == 0 and not any("model updated" in line for line in said)
        model.unlink()
        wait_for(lambda: any("is gone" in line for line in said), "the deletion said")
        time.sleep(0.5)
        assert sum("is gone" in line for line in said) == 1  # once, not every poll
    finally:
        slot.close()


def wait_for(condition, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_collect_says_when_the_source_ends_before_the_burst(tmp_path: Path) -> None:
    from test_edge import edge_cli, write_video

    video = write_video(tmp_path / "one.avi", 1)
    done = edge_cli("collect", str(tmp_path / "data"), "--source", str(video), "--label", "a", "--count", "5")
    assert done.returncode == 1 and "the source ended after 1 of 5 shots" in done.stdout + done.stderr
    assert len(list((tmp_path / "data" / "a").glob("*.jpg"))) == 1


COLLECT_UNDER_A_FILE_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path
import numpy as np
from edgetl.edge.collect import CollectOptions, Collector
from edgetl.errors import EdgetlError
data = Path(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails (EFBIG) instead of killing us
log = data / "collect.jsonl"
limit = log.stat().st_size + 40  # room for part of one more line, not all of it
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
collector = Collector(data, CollectOptions(label="a", min_free=0))
try:
    collector.take(np.random.default_rng(1).integers(0, 255, (8, 8, 3), dtype=np.uint8), "a", 1)
except EdgetlError as error:
    print("refused:", error)
"""


def test_a_full_disk_while_logging_leaves_whole_lines_and_no_photo_without_its_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    (data / "collect.jsonl").write_text('{"file": "a/old.jpg", "class": "a"}\n' * 50)
    done = subprocess.run(
        [sys.executable, "-c", COLLECT_UNDER_A_FILE_SIZE_LIMIT, str(data)], capture_output=True, text=True, timeout=60
    )
    assert "refused: The disk that holds" in done.stdout, done.stdout + done.stderr
    lines = (data / "collect.jsonl").read_text().splitlines()
    assert len(lines) == 50 and all(json.loads(line)["class"] == "a" for line in lines)  # whole lines only
    assert list((data / "a").iterdir()) == []  # the photo went with its line


def test_a_burst_that_fails_tells_the_page_why(tmp_path: Path) -> None:
    import threading

    from edgetl.edge.capture import Frame
    from edgetl.edge.collect import CollectOptions, Collector
    from edgetl.edge.collect_page import Bursts

    collector = Collector(tmp_path / "data", CollectOptions(label="a"))

    def broken(*args) -> None:
        raise IsADirectoryError("[Errno 21] Is a directory: 'collect.jsonl'")

    collector.take = broken
    stop = threading.Event()
    bursts = Bursts(collector, stop)
    bursts.show(Frame(np.zeros((8, 8, 3), np.uint8), 1, time.monotonic()))
    assert bursts.start("a", 3, 0.0)
    bursts.show(Frame(np.zeros((8, 8, 3), np.uint8), 2, time.monotonic()))
    wait_for(lambda: bursts.busy is None, "the burst to end")
    stop.set()
    assert bursts.error and "Is a directory" in bursts.error


def test_collect_serve_says_when_its_source_ends(tmp_path: Path) -> None:
    from test_edge import edge_cli, write_video

    video = write_video(tmp_path / "clip.avi", 10)
    done = edge_cli("collect", str(tmp_path / "data"), "--source", str(video), "--serve", "127.0.0.1:0")
    assert done.returncode == 0 and "the source ended, so the page closed" in done.stdout + done.stderr
