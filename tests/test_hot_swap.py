"""A running camera takes a new model file without stopping, and keeps the old one when the new one is broken."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import threading
import time
import urllib.request
from pathlib import Path

from test_edge import write_video

from conftest import Process
from edgetl.rundir import RunInfo


def _replace(target: Path, content: bytes) -> None:
    """As a deployment does it: copy to a temporary name beside the model, then rename over it."""
    temporary = target.with_name(".incoming.tflite")
    temporary.write_bytes(content)
    os.replace(temporary, target)


def _watch(url: str, arrivals: list[float]) -> None:
    """Read the MJPEG stream as a browser would, noting when each frame arrives, until it closes."""
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=30) as stream:
        while chunk := stream.read(4096):
            arrivals.extend([time.monotonic()] * chunk.count(b"--frame"))


def _wait_for(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_the_camera_swaps_in_a_new_model_and_refuses_a_broken_one(
    converted: tuple[Path, dict], beans_int8: Path, tmp_path: Path
) -> None:
    run = converted[0]
    model, results = tmp_path / "deploy" / "model.tflite", tmp_path / "results.jsonl"
    model.parent.mkdir()
    model.write_bytes((run / "model_int8.tflite").read_bytes())
    (model.parent / "labels.txt").write_text((run / "labels.txt").read_text())
    video = write_video(tmp_path / "clip.avi", 90, size=(96, 72))
    args = ["camera", str(model), "--source", str(video), "--loop", "--realtime", "--no-window", "--json", str(results)]
    camera = Process(*args, "--serve", "127.0.0.1:0")
    camera.wait_for("Serving http://", timeout=60)
    url = camera.output.split("Serving ")[1].split()[0]
    viewed: list[float] = []  # arrival times of the MJPEG frames one connected viewer receives
    viewer = threading.Thread(target=_watch, args=(url + "stream.mjpg", viewed), daemon=True)
    viewer.start()

    def models() -> list[str]:
        text = results.read_text() if results.exists() else ""
        return [json.loads(line)["model"] for line in text.splitlines() if line.endswith("}")]

    old, new = (hashlib.sha256((run / f"model_{n}.tflite").read_bytes()).hexdigest()[:16] for n in ("int8", "float32"))
    try:
        _wait_for(lambda: len(models()) > 10, "the first results")
        _wait_for(lambda: len(viewed) > 5, "the viewer's first frames")
        _replace(model, (run / "model_float32.tflite").read_bytes())
        _wait_for(lambda: models()[-1] == new, "results from the new model")
        swapped = time.monotonic()
        _wait_for(lambda: viewed[-1] > swapped + 1, "the viewer's frames after the swap")  # still connected
        camera.proc.send_signal(signal.SIGHUP)  # asks for a check now: the file is the running one
        camera.wait_for("SIGHUP: model.tflite is the model already running", timeout=20)
        _replace(model, b"not a model at all")
        _wait_for(lambda: camera.output.count("model update refused") == 1, "the first refusal")
        _replace(model, (beans_int8 / "model_int8.tflite").read_bytes())  # another input size (96 px)
        _wait_for(lambda: camera.output.count("model update refused") == 2, "the second refusal")
        count = len(models())
        _wait_for(lambda: len(models()) > count + 10, "results after the refusals")
    finally:
        camera.proc.send_signal(signal.SIGTERM)
        code = camera.finish(timeout=30)
    stdout = camera.output
    assert code == 143, stdout[-3000:]
    seen = models()
    switch = seen.index(new)
    assert set(seen[:switch]) == {old} and set(seen[switch:]) == {new}  # one switch, and the new model kept
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    frames = [line["frame"] for line in lines]
    assert {line["model_version"] for line in lines} == {f"run {RunInfo.load(run).created}"}  # from the model card
    assert frames == sorted(frames)  # the camera was never reopened: frame numbers run on
    assert "model updated: model.tflite sha256" in stdout
    refusals = [line for line in stdout.splitlines() if "model update refused" in line]
    assert len(refusals) == 2 and "takes 96 px" in refusals[1], stdout
