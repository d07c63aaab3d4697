"""`camera --serve` for the systems a Pi runs: Prometheus /metrics, /healthz for probes, systemd's notify socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from test_edge import write_video

from conftest import Process


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _metrics(url: str) -> dict[str, list]:
    families = text_string_to_metric_families(_get(url + "metrics")[1])  # the Prometheus client's own parser
    return {family.name: family.samples for family in families}


def _serving(process: Process) -> str:
    process.wait_for("Serving http://", timeout=60)
    return process.output.split("Serving ")[1].split()[0]


def test_metrics_advance_health_is_ok_and_systemd_hears_ready_and_the_watchdog(
    converted: tuple[Path, dict], tmp_path: Path
) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # stands in for systemd's $NOTIFY_SOCKET
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(10)
    video = write_video(tmp_path / "clip.avi", 60)
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "400000"}  # a ping every 0.2 s at most
    model = str(converted[0] / "model_int8.tflite")
    camera = Process("camera", model, "--source", str(video), "--loop", "--realtime", "--serve", "127.0.0.1:0", env=env)
    try:
        url = _serving(camera)
        messages = [notify.recv(4096).decode() for _ in range(4)]
        first = _metrics(url)
        time.sleep(1.0)
        second = _metrics(url)
        status, body = _get(url + "healthz")
    finally:
        camera.proc.send_signal(signal.SIGTERM)
        camera.finish(timeout=30)
    assert messages[0].startswith("READY=1") and messages[1:] == ["WATCHDOG=1"] * 3, messages
    assert notify.recv(4096).decode() in ("WATCHDOG=1", "STOPPING=1")
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert json.loads(body)["cameras"]["camera"]["status"] == "ok"  # per camera, and overall
    results = [second["edgetl_results"][0].value, first["edgetl_results"][0].value]
    assert results[0] > results[1] > 0, results  # a counter that advances
    stages = {s.labels["stage"] for s in second["edgetl_stage_latency_ms"] if s.name.endswith("_count")}
    assert stages == {"capture_wait", "preprocess", "inference", "postprocess"}
    infinity = [s for s in second["edgetl_stage_latency_ms"] if s.labels.get("le") == "+Inf"]
    assert all(s.value == results[0] for s in infinity)  # every result in every stage's histogram
    info = second["edgetl_model_info"][0]
    assert info.labels["file"] == "model_int8.tflite" and len(info.labels["sha256"]) == 64
    assert (info.labels["camera"], info.labels["region"]) == ("camera", "frame")
    assert second["edgetl_frames_captured"][0].labels == {"camera": "camera"}
    assert info.labels["version"].startswith("run 20")  # the run's folder name and creation time, from the card
    assert sum(s.value for s in second["edgetl_decisions"]) == results[0]


def test_health_goes_503_when_the_source_stalls_and_back_to_200(converted: tuple[Path, dict], tmp_path: Path) -> None:
    """A camera reading another camera's MJPEG stream: the other is paused (SIGSTOP), the stream goes quiet."""
    model = str(converted[0] / "model_int8.tflite")
    video = write_video(tmp_path / "clip.avi", 60)
    source = Process("camera", model, "--source", str(video), "--loop", "--realtime", "--serve", "127.0.0.1:0")
    try:
        stream = _serving(source) + "stream.mjpg"
        reader = Process("camera", model, "--source", stream, "--serve", "127.0.0.1:0", "--stall", "1")
        try:
            url = _serving(reader)
            deadline = time.monotonic() + 30
            while _get(url + "healthz")[0] != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _get(url + "healthz")[0] == 200
            source.proc.send_signal(signal.SIGSTOP)
            time.sleep(2.5)
            status, body = _get(url + "healthz")
            assert status == 503 and json.loads(body)["status"] == "stalled", body
            source.proc.send_signal(signal.SIGCONT)
            deadline = time.monotonic() + 30
            while _get(url + "healthz")[0] != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _get(url + "healthz")[0] == 200  # frames flow again
        finally:
            reader.proc.send_signal(signal.SIGTERM)
            reader.finish(timeout=30)
    finally:
        source.proc.send_signal(signal.SIGCONT)
        source.proc.send_signal(signal.SIGTERM)
        source.finish(timeout=30)


def test_pi_throttling_and_temperature_come_from_the_firmware_where_it_exists(tmp_path: Path, monkeypatch) -> None:
    from edgetl.edge import telemetry

    tool = tmp_path / "vcgencmd"  # the Pi firmware's tool, as it answers on a Pi that was once under-volted
    tool.write_text("#!/bin/sh\necho throttled=0x50005\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setattr(telemetry, "_THROTTLED", [0.0, None])
    zone = tmp_path / "temp"
    zone.write_text("48312\n")
    read = telemetry.cpu_temperature
    monkeypatch.setattr(telemetry, "cpu_temperature", lambda: read(zone))
    page = telemetry.Telemetry(lambda: {"cameras": []}, 10.0).page()
    families = {family.name: family.samples for family in text_string_to_metric_families(page)}
    assert families["edgetl_throttled"][0].value == 0x50005
    assert families["edgetl_cpu_temperature_celsius"][0].value == 48.3
