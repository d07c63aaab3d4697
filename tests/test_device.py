"""`edgetl camera --config device.toml`: two cameras and three regions in one process (edge/runtime.py), and a
device file whose every mistake is one line (edge/device_file.py).

The "halves" camera shows a photo of one class in its top half and of another in its bottom half, and each
region's scores must be the model's scores of exactly its half: a region that crops the wrong place fails."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_edge import _chromium, edge_cli, write_video
from test_mqtt import Broker, Listener, _free_port

from conftest import Process
from edgetl.edge.capture import OpenCVReader, SourceSpec
from edgetl.edge.classifier import Classifier
from edgetl.edge.device_file import read_device_file
from edgetl.edge.roi import Region
from edgetl.errors import EdgetlError

TOP, BOTTOM = Region(0.0, 0.0, 1.0, 0.5), Region(0.0, 0.5, 1.0, 0.5)


def halves_video(path: Path, model: Path, photos: Path, frames: int = 30) -> tuple[Path, dict[str, np.ndarray]]:
    """A video whose top and bottom halves show photos the model tells apart; and each half's expected scores."""
    classifier = Classifier(model)
    images = [cv2.resize(cv2.imread(str(p)), (160, 80)) for p in sorted(photos.rglob("*.jpg"))[:12]]
    frame, expected = None, {}
    for upper in images:
        for lower in images:
            frame = np.vstack([upper, lower])
            path.unlink(missing_ok=True)
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (160, 160))
            for _ in range(frames):
                writer.write(frame)
            writer.release()
            reader = OpenCVReader(SourceSpec(str(path)))
            decoded = reader.read()  # what the camera will see, JPEG and all, decoded the camera's way
            reader.release()
            expected = {name: classifier.scores(classifier.prepare_bgr(roi.crop(decoded)))[0]
                        for name, roi in (("top", TOP), ("bottom", BOTTOM))}  # fmt: skip
            if np.argmax(expected["top"]) != np.argmax(expected["bottom"]):
                return path, expected
    raise AssertionError("no two photos the model tells apart")


def device_file(folder: Path, model: Path, halves: Path, door: Path, port: int) -> Path:
    path = folder / "device.toml"
    path.write_text(f"""
[serve]
address = "127.0.0.1:0"
[mqtt]
url = "mqtt://127.0.0.1:{port}"
topic = "test/pi"
publish = "every"
[[cameras]]
name = "halves"
source = "{halves}"
loop = true
realtime = true
[[cameras.regions]]
name = "top"
model = "{model}"
roi = [0, 0, 1, 0.5]
[[cameras.regions]]
name = "bottom"
model = "{model}"
roi = [0, 0.5, 1, 0.5]
keep = "kept"
keep_interval = 0
keep_sample = 1
[[cameras]]
name = "door"
source = "{door}"
realtime = true
[[cameras.regions]]
name = "frame"
model = "{model}"
""")
    return path


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _first_jpeg(url: str) -> np.ndarray:
    with urllib.request.urlopen(url, timeout=10) as stream:
        data = b""
        while (end := data.find(b"\xff\xd9")) < 0:
            data += stream.read(4096)
    return cv2.imdecode(np.frombuffer(data[data.find(b"\xff\xd8") : end + 2], np.uint8), cv2.IMREAD_COLOR)


def test_two_cameras_three_regions_one_process(beans_int8: Path, beans_subset: Path, tmp_path: Path) -> None:
    model = beans_int8 / "model_int8.tflite"
    halves, expected = halves_video(tmp_path / "halves.avi", model, beans_subset / "test")
    door = write_video(tmp_path / "door.avi", 20)  # 20 frames, no loop: this camera ends, the other goes on
    port = _free_port()
    broker, listener = Broker(tmp_path, port), Listener(port)
    results = tmp_path / "results.jsonl"
    camera = Process("camera", "--config", str(device_file(tmp_path, model, halves, door, port)), "--no-window",
                     "--json", str(results))  # fmt: skip
    try:
        camera.wait_for("Serving http://", timeout=60)
        url = camera.output.split("Serving ")[1].split()[0]
        deadline = time.monotonic() + 30
        while json.loads(_get(url + "healthz")[1])["cameras"].get("door", {}).get("status") != "ended":
            assert time.monotonic() < deadline, _get(url + "healthz")
            time.sleep(0.2)
        status, health = _get(url + "healthz")
        health = json.loads(health)
        assert status == 200 and health["cameras"]["halves"]["status"] == "ok", health  # one ended: the rest is ok
        metrics = {f.name: f.samples for f in text_string_to_metric_families(_get(url + "metrics")[1].decode())}
        stats = json.loads(_get(url + "stats")[1])
        listener.wait(lambda: all(listener.on(f"{r}/state") for r in ("top", "bottom", "frame")), "each region's state")
        dom = subprocess.run([*_chromium(), "--dump-dom", url], capture_output=True, text=True, timeout=60).stdout
        streamed = _first_jpeg(url + "stream.mjpg?camera=halves")
    finally:
        camera.proc.send_signal(signal.SIGTERM)
        code = camera.finish(timeout=30)
        listener.close()
        broker.stop()
    assert code == 143, camera.output[-3000:]

    lines = [json.loads(line) for line in results.read_text().splitlines()]
    by_region = {key: [line for line in lines if (line["camera"], line["region"]) == key]
                 for key in (("halves", "top"), ("halves", "bottom"), ("door", "frame"))}  # fmt: skip
    assert all(by_region.values()) and len(lines) == sum(map(len, by_region.values()))
    for name in ("top", "bottom"):  # each region's scores are the model's on exactly its half
        for line in by_region["halves", name][:20]:
            top = int(np.argmax(expected[name]))
            assert abs(line["scores"][0] - expected[name][top]) < 0.02, (name, line, expected[name])
    assert by_region["halves", "top"][0]["labels"][0] != by_region["halves", "bottom"][0]["labels"][0]
    assert 1 <= len(by_region["door", "frame"]) <= 20
    assert by_region["halves", "top"][-1]["time"] > by_region["door", "frame"][-1]["time"] + 0.5  # went on

    assert {(s.labels["camera"], s.labels["region"]) for s in metrics["edgetl_results"]} == set(by_region)
    assert [c["name"] for c in stats["cameras"]] == ["halves", "door"]
    assert [r["name"] for r in stats["cameras"][0]["regions"]] == ["top", "bottom"]
    assert len(stats["model_update"]) == 1  # three regions, one model file: one interpreter, one watch

    configs = [(topic, json.loads(payload)) for topic, payload, _ in listener.messages if topic.startswith("homeas")]
    assert len(configs) == 9 and len({c["device"]["identifiers"][0] for _, c in configs}) == 2  # a device per camera
    assert {c["state_topic"] for _, c in configs} == {f"test/pi/{c}/{r}/state" for c, r in by_region}
    state = json.loads(listener.on("test/pi/halves/bottom/state")[-1][1])
    assert (state["camera"], state["region"]) == ("halves", "bottom")

    assert dom.count('class="camera"') == 2 and "stream.mjpg?camera=door" in dom, dom[-2000:]
    assert all(f"<h3>{name}</h3>" in dom for name in ("top", "bottom", "frame"))
    edge = streamed[80, 30:130].mean(axis=0)  # the bottom box's top edge: yellow (BGR) in a black outline
    assert min(edge[1], edge[2]) > 200 and edge[0] < edge[1] - 50 and streamed[81, 30:130].mean() < 60, edge

    sidecars = [json.loads(p.read_text()) for p in (tmp_path / "kept").glob("*.json")]
    assert sidecars and all((s["camera"], s["region"], s["roi"]) == ("halves", "bottom", [0, 0.5, 1, 0.5])
                            and s["height"] == 80 for s in sidecars)  # fmt: skip
    assert "halves" in camera.output and "door" in camera.output  # a summary table per camera


BASE = """
[[cameras]]
name = "cam"
source = "0"
[[cameras.regions]]
name = "door"
model = "m.tflite"
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE + "colour = 'red'\n", r"cameras\[0\].regions\[0\].colour: unknown key \(expected one of: name, model"),
        (BASE.replace('name = "door"', 'name = "door"\nsmooth = "5"'), r"regions\[0\].smooth: expected int, got text"),
        (
            BASE + BASE.split("[[cameras.regions]]")[1].join(["[[cameras.regions]]", ""]),
            "the name 'door' is used twice",
        ),
        (BASE + BASE, "the name 'cam' is used twice"),
        (BASE.replace("m.tflite", "missing.tflite"), r"regions\[0\].model: .*missing.tflite does not exist"),
        (BASE + "roi = [0.5, 0.5, 0.6, 0.2]\n", r"regions\[0\].roi.*reaches outside the frame"),
        (BASE + "roi = [0.5, 0.5]\n", r"regions\[0\].roi: expected four numbers"),
        (BASE.replace('name = "cam"', 'name = "my cam"'), r"cameras\[0\].name: 'my cam' is not a name"),
        (BASE + 'keep = "k"\n' + BASE.replace('"cam"', '"cam2"') + 'keep = "k"\n', r"cam2/door.keep: .* is also where"),
        ("[serve]\nport = 8080\n" + BASE, r"serve.port: unknown key"),
        ("[mqtt]\nurl = 'http://x'\n" + BASE, r"mqtt: --mqtt http://x is not mqtt://host"),
        ("cameras = 3\n", "cameras: expected list, got an integer"),
        ("", r"cameras: expected 1 to 8 \[\[cameras\]\] tables, got 0"),
        ('[[cameras]]\nname = "x"\n', r"cameras\[0\].regions: missing"),
        ("[[cameras]\n", r"not valid TOML: .*line 1"),
    ],
)
def test_each_mistake_in_a_device_file_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "m.tflite").write_bytes(b"checked when loaded, not here")
    path = tmp_path / "device.toml"
    path.write_text(text)
    with pytest.raises(EdgetlError, match=message) as error:
        read_device_file(path)
    assert str(path) in error.value.message and "\n" not in str(error.value)


def test_the_command_line_refuses_what_the_file_sets(converted: tuple[Path, dict], tmp_path: Path) -> None:
    model = converted[0] / "model_int8.tflite"
    path = tmp_path / "device.toml"
    path.write_text(BASE.replace("m.tflite", str(model)))
    both = edge_cli("camera", str(model), "--config", str(path))
    assert both.returncode == 2 and "Give a model or --config, not both" in both.stderr
    twice = edge_cli("camera", "--config", str(path), "--source", "1", "--smooth", "3")
    assert twice.returncode == 2 and "--source, --smooth: set in the device file" in twice.stderr, twice.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE.replace("m.tflite", str(model)) + "roi = 'top'\n")
    refused = edge_cli("camera", "--config", str(bad))
    assert refused.returncode == 2 and "regions[0].roi: expected list, got text" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) <= 2 and "Traceback" not in refused.stderr
    none = edge_cli("camera")
    assert none.returncode == 2 and "No model to run" in none.stderr


class _Ready:
    """A source whose next frame is always there (a camera faster than the interpreter)."""

    def __init__(self, spec) -> None:
        self.fps, self.frame = None, np.random.default_rng(0).integers(0, 256, (72, 96, 3), dtype=np.uint8)

    def read(self) -> np.ndarray:
        return self.frame

    def release(self) -> None:
        pass


def test_cameras_are_served_in_turn_and_frames_are_prepared_off_the_inference_thread(beans_int8: Path) -> None:
    """Two cameras always ready, the interpreter the bottleneck: each camera gets its turn (a frame each, every
    region of it), neither starves the other; and every crop and resize ran in a capture thread."""
    import threading

    from edgetl.edge.capture import Capture
    from edgetl.edge.device_file import CameraSpec, RegionSpec
    from edgetl.edge.runtime import CameraRun, Fixed, RegionRun, Runtime, preparation

    slot = Fixed(Classifier(beans_int8 / "model_int8.tflite"))
    cameras, prepared_in = [], set()
    for name, rois in (("a", (None,)), ("b", (TOP, BOTTOM))):
        regions = [RegionRun(name, RegionSpec(f"r{i}", slot.current.path, roi), slot) for i, roi in enumerate(rois)]
        for region in regions:
            prepare = region.prepare
            region.prepare = lambda image, p=prepare: (prepared_in.add(threading.current_thread().name), p(image))[1]
        capture = Capture(SourceSpec("ready.avi"), loop=True, opener=_Ready, prepare=preparation(regions))
        cameras.append(CameraRun(CameraSpec(name, "ready.avi"), capture, regions, max_frames=None))
    seen: list[tuple[str, str]] = []
    try:
        Runtime(cameras, lambda result, frame: seen.append((result.camera, result.region)), duration=1.5).run()
    finally:
        for camera in cameras:
            camera.capture.close()
    frames = {name: sum(1 for c, r in seen if c == name and r == "r0") for name in ("a", "b")}
    # b's capture thread prepares two regions a frame, so on a loaded machine its frame is now and then not ready
    # at its turn (CI: 1,250 against 1,375); a loop that served the first ready camera first would starve b
    assert min(frames.values()) > 20 and min(frames.values()) >= 0.8 * max(frames.values()), frames
    assert seen.count(("b", "r0")) == pytest.approx(seen.count(("b", "r1")), abs=1)  # every region of a frame
    assert prepared_in <= {"edgetl-capture"}, prepared_in  # never the inference thread (the main one here)
