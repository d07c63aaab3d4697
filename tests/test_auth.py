"""Pages that ask for credentials: every route refuses a request without them, and secrets never go on argv."""

from __future__ import annotations

import base64
import json
import signal
import urllib.error
import urllib.request
from pathlib import Path

from test_edge import edge_cli, write_video
from test_field import ServedPage, kept_folder

from conftest import Process


def _status(url: str, header: str | None = None, body: dict | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data, method="POST" if body is not None else "GET")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if header:
        request.add_header("Authorization", header)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_label_page_needs_its_user_and_password_on_every_route(tmp_path: Path, monkeypatch) -> None:
    kept, data = tmp_path / "kept", tmp_path / "data"
    names = kept_folder(kept, 3)
    monkeypatch.setenv("EDGETL_AUTH_PASSWORD", "s3cret pass")
    with ServedPage("label", str(kept), "--data", str(data), "--auth", "ana") as served:
        for route in ("", "state", "label.js", f"image/{names[0]}"):
            assert _status(served.url + route) == 401, route
            assert _status(served.url + route, _basic("ana", "wrong")) == 401, route
            assert _status(served.url + route, _basic("ana", "s3cret pass")) == 200, route
        refused = _status(served.url + "label", None, {"label": "healthy", "files": [names[0]]})
        assert refused == 401 and (kept / names[0]).exists()  # nothing moved without credentials
        allowed = _status(served.url + "label", _basic("ana", "s3cret pass"), {"label": "healthy", "files": [names[0]]})
        assert allowed == 200 and (data / "healthy" / names[0]).exists()
    assert "s3cret" not in " ".join(served.process.args)  # never on the command line


def test_the_camera_page_takes_a_bearer_token_from_a_file(converted: tuple[Path, dict], tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken-from-a-file\n")
    video = write_video(tmp_path / "clip.avi", 30)
    model = str(converted[0] / "model_int8.tflite")
    args = ["camera", model, "--source", str(video), "--loop", "--realtime", "--serve", "127.0.0.1:0"]
    camera = Process(*args, "--auth-token-file", str(token))
    try:
        camera.wait_for("Serving http://", timeout=60)
        url = camera.output.split("Serving ")[1].split()[0]
        assert _status(url + "metrics") == 401 and _status(url + "stream.mjpg") == 401
        assert _status(url + "metrics", "Bearer wrong") == 401
        assert _status(url + "metrics", "Bearer t0ken-from-a-file") == 200
    finally:
        camera.proc.send_signal(signal.SIGTERM)
        camera.finish(timeout=30)


def test_a_missing_secret_is_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("EDGETL_AUTH_PASSWORD", raising=False)
    done = edge_cli("label", str(tmp_path), "--data", str(tmp_path / "d"), "--auth", "ana")
    assert done.returncode == 2 and "needs a password" in done.stderr and "Traceback" not in done.stderr
    (tmp_path / "empty").write_text("")
    done = edge_cli("label", str(tmp_path), "--data", str(tmp_path / "d"), "--auth-token-file", str(tmp_path / "empty"))
    assert done.returncode == 2 and "nothing on its first line" in done.stderr
