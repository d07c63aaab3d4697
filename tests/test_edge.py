"""The device side: classify and camera on video files standing in for cameras, with TensorFlow blocked."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_cli import BLOCK_TF

from conftest import REPO
from edgetl.edge.camera import CameraOptions
from edgetl.edge.capture import Capture, SourceSpec
from edgetl.edge.classifier import Classifier, ClassifierOptions
from edgetl.edge.interpreter import ImageClassifierModel
from edgetl.edge.metadata import read_model_info
from edgetl.edge.runtime import run_camera
from edgetl.errors import EdgetlError
from edgetl.interrupt import StopFlag
from edgetl.rundir import RunInfo

UNBUFFERED = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


def edge_cli(*args: str, columns: str | None = "200", **kwargs) -> subprocess.CompletedProcess:
    """The real entry point with TensorFlow and Keras made unimportable, as on a Raspberry Pi; its output is a
    pipe, `columns` wide (None: $COLUMNS unset, as in a log or a systemd journal)."""
    code = BLOCK_TF + "import sys\nfrom edgetl.cli import run\nsys.argv = ['edgetl', *sys.argv[1:]]\nrun()\n"
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env | ({"COLUMNS": columns} if columns else {}),
        timeout=120,
        **kwargs,
    )


def write_video(path: Path, frames: int, size: tuple[int, int] = (96, 72), fps: float = 30.0) -> Path:
    """An MJPG .avi whose frame i carries its number in the red channel of its top-left block."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    rng = np.random.default_rng(0)
    for i in range(frames):
        frame = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        frame[:16, :16] = (0, 0, (i * 7) % 256)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def int8_model(converted: tuple[Path, dict]) -> Path:
    return converted[0] / "model_int8.tflite"


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.avi", 60)


# --- classify ------------------------------------------------------------------------------------------------------


def test_classify_folders_and_globs_as_json_and_csv_without_tensorflow(
    int8_model: Path, sample_data: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    shutil.copytree(sample_data / "circle", folder / "circle")
    (folder / "circle" / "broken.jpg").write_bytes(b"not a jpeg")
    result = edge_cli(
        "classify", str(int8_model), str(folder), str(sample_data / "star" / "*.png"), "--json", "-", "-k", "2"
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    stars = len(list((sample_data / "star").glob("*.png")))
    assert len(lines) == 24 + 1 + stars  # every image, plus the broken one reported
    broken = [line for line in lines if "error" in line]
    assert len(broken) == 1 and broken[0]["path"].endswith("broken.jpg") and "skipped" in result.stderr
    labels = set((int8_model.parent / "labels.txt").read_text().split())
    good = [line for line in lines if "error" not in line]
    assert all(len(line["labels"]) == 2 and set(line["labels"]) <= labels for line in good)  # never replaced
    assert all(line["scores"][0] >= line["scores"][1] for line in good)
    # edgetl models carry an OOD score; "unknown" is exactly "over the threshold packed into this file"
    threshold = read_model_info(int8_model).card.open_world.ood.threshold
    assert all(isinstance(line["ood_score"], float) for line in good)
    assert all(line["unknown"] == (line["decision"] == "unknown") for line in good)
    assert all(line["decision"] in ("unknown", line["labels"][0]) for line in good)  # "unsure" only when asked
    assert all(line["unknown"] or line["ood_score"] <= threshold + 0.5e-4 for line in good)  # JSON: 4 decimals

    csv_out = edge_cli("classify", str(int8_model), str(folder / "circle"), "--csv", "-", "-k", "1")
    header, *rows = csv_out.stdout.splitlines()
    assert header == "path,decision,label1,score1,unknown,ood_score,error" and len(rows) == 25

    to_file = edge_cli("classify", str(int8_model), str(folder / "circle"), "--json", str(tmp_path / "out.jsonl"))
    assert to_file.returncode == 0 and to_file.stdout.count("{") == 0  # the results went to the file only
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 25
    again = edge_cli("classify", str(int8_model), str(folder / "circle"), "--json", str(tmp_path / "out.jsonl"))
    assert again.returncode == 2 and "already exists" in again.stderr  # never overwrites the user's file


def test_rejection_thresholds_can_be_overridden_and_need_a_model_that_has_them(
    int8_model: Path, sample_data: Path, third_party: dict
) -> None:
    folder = str(sample_data / "circle")
    every = edge_cli("classify", str(int8_model), folder, "--json", "-", "--ood-threshold", "-1")
    assert all(json.loads(line)["unknown"] for line in every.stdout.splitlines()), every.stderr
    table = edge_cli("classify", str(int8_model), folder, "--ood-threshold", "-1")
    assert table.returncode == 0 and "unknown" in table.stdout and "OOD" in table.stdout
    none = edge_cli("classify", str(int8_model), folder, "--json", "-", "--threshold", "0", "--ood-threshold", "1e30")
    assert not any(json.loads(line)["unknown"] for line in none.stdout.splitlines()), none.stderr
    unsure = edge_cli("classify", str(int8_model), folder, "--json", "-", "--threshold", "1", "--ood-threshold", "1e30")
    lines = [json.loads(line) for line in unsure.stdout.splitlines()]  # int8 tops out at 255/256: all under 1
    assert lines and all(line["decision"] == "unsure" and not line["unknown"] for line in lines), unsure.stderr
    names = set((int8_model.parent / "labels.txt").read_text().split())
    assert all(line["labels"][0] in names for line in lines)  # the model's guess is kept beside "unsure"
    plain = third_party["folder"] / "float.tflite"
    refused = edge_cli(
        "classify", str(plain), folder, "--ood-threshold", "2", "--labels", str(plain.with_name("labels.txt"))
    )
    assert refused.returncode == 2 and "no out-of-distribution score" in refused.stderr
    no_score = edge_cli("classify", str(plain), folder, "--json", "-", "--labels", str(plain.with_name("labels.txt")))
    assert all(json.loads(line)["ood_score"] is None for line in no_score.stdout.splitlines())
    assert not any(json.loads(line)["unknown"] for line in no_score.stdout.splitlines())  # as before: no rejection
    bad = edge_cli("classify", str(int8_model), folder, "--threshold", "2")
    assert bad.returncode == 2 and "not a probability" in bad.stderr


def test_classify_table_shows_the_distinguishing_end_of_each_path(int8_model: Path, sample_data: Path) -> None:
    files = [sorted((sample_data / shape).iterdir())[0] for shape in ("circle", "star")]
    table = edge_cli("classify", str(int8_model), *map(str, files))
    assert table.returncode == 0, table.stderr
    assert f"circle/{files[0].name}" in table.stdout and f"star/{files[1].name}" in table.stdout


def test_classify_table_and_errors(int8_model: Path, sample_data: Path, tmp_path: Path) -> None:
    table = edge_cli("classify", str(int8_model), str(next((sample_data / "square").iterdir())))
    assert table.returncode == 0 and "#1" in table.stdout and "litert" in table.stdout
    missing = edge_cli("classify", str(tmp_path / "none.tflite"), str(sample_data))
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "junk.tflite").write_bytes(b"junk")
    junk = edge_cli("classify", str(tmp_path / "junk.tflite"), str(sample_data))
    assert junk.returncode == 2 and "could not be loaded as a TFLite model" in junk.stderr
    nothing = edge_cli("classify", str(int8_model), str(tmp_path / "nothing*.jpg"))
    assert nothing.returncode == 2 and "No images to classify" in nothing.stderr


@pytest.fixture(scope="module")
def third_party(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Float and uint8 models without metadata that expect [-1, 1] input, like published classifiers."""
    import keras

    from edgetl.convert.tflite import calibrate, convert_float, quantize, saved_model

    folder = tmp_path_factory.mktemp("third_party")
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x)))
    calibration = np.random.default_rng(0).uniform(-1, 1, (16, 32, 32, 3)).astype(np.float32)
    with saved_model(model) as saved:
        (folder / "float.tflite").write_bytes(convert_float(saved, "float32"))
        calibrated = calibrate(saved, lambda: ([image[None]] for image in calibration))
        (folder / "uint8.tflite").write_bytes(quantize(calibrated, "uint8"))
    (folder / "labels.txt").write_text("background\nred\ngreen\nblue\n")
    return {"model": model, "folder": folder}


def test_third_party_float_model_gets_minus_one_to_one_and_background_label_is_dropped(third_party: dict) -> None:
    folder = third_party["folder"]
    classifier = Classifier(folder / "float.tflite", ClassifierOptions(labels=folder / "labels.txt"))
    assert classifier.labels == ["red", "green", "blue"]
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    expected = third_party["model"].predict(pixels[None].astype(np.float32) / 127.5 - 1, verbose=0)[0]
    np.testing.assert_allclose(classifier.scores(pixels)[0], expected, atol=1e-5)


def test_third_party_uint8_model_is_fed_from_its_own_quantization(third_party: dict) -> None:
    folder = third_party["folder"]
    classifier = Classifier(folder / "uint8.tflite", ClassifierOptions(labels=folder / "labels.txt"))
    model = classifier.model
    assert model.input_dtype == np.uint8 and model.output_dtype == np.uint8
    pixels = np.random.default_rng(2).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    expected = third_party["model"].predict(pixels.astype(np.float32) / 127.5 - 1, verbose=0)
    got = np.stack([classifier.scores(p)[0] for p in pixels])
    assert np.abs(got - expected).max() < 0.05  # int8 noise, not a wrong input mapping


def test_labels_that_do_not_fit_the_model_are_refused(third_party: dict, tmp_path: Path) -> None:
    (tmp_path / "two.txt").write_text("a\nb\n")
    with pytest.raises(EdgetlError, match="names 2 classes but the model scores 3"):
        Classifier(third_party["folder"] / "float.tflite", ClassifierOptions(labels=tmp_path / "two.txt"))


def test_a_model_that_is_not_an_image_classifier_is_refused(tmp_path: Path) -> None:
    import keras

    from edgetl.convert.tflite import convert_float, saved_model

    inputs = keras.Input((10,))
    with saved_model(keras.Model(inputs, keras.layers.Dense(2)(inputs))) as saved:
        content = convert_float(saved, "float32")
    with pytest.raises(EdgetlError, match=r"input is \[1, 10\], not one image tensor"):
        ImageClassifierModel(content)


# --- capture -------------------------------------------------------------------------------------------------------


def test_a_live_source_hands_out_only_the_newest_frame(video: Path) -> None:
    capture = Capture(SourceSpec(str(video)), realtime=True)  # a file paced at 30 fps behaves like a camera
    try:
        time.sleep(0.5)  # a slow consumer: ~15 frames arrive meanwhile
        frame = capture.latest(timeout=2)
        assert frame is not None and frame.number >= 8  # the newest, not the oldest buffered one
        assert capture.stats.captured - frame.number <= 1
        later = capture.latest(timeout=2)
        assert later is not None and later.number > frame.number
    finally:
        capture.close()
    assert capture.stats.dropped >= 7


def test_a_video_file_keeps_every_frame_in_order(video: Path) -> None:
    capture = Capture(SourceSpec(str(video)))
    numbers = []
    try:
        while (frame := capture.latest(timeout=5)) is not None:
            numbers.append(frame.number)
            time.sleep(0.002)  # slower than decoding: frames must wait, not be dropped
    finally:
        capture.close()
    assert numbers == list(range(1, 61)) and capture.finished and capture.stats.dropped == 0


def test_capture_loops_a_file_when_asked(video: Path) -> None:
    capture = Capture(SourceSpec(str(video)), loop=True)
    try:
        numbers = [capture.latest(timeout=5).number for _ in range(130)]
        assert capture.stats.loops >= 2 and not capture.finished
        assert numbers == list(range(1, 131))  # numbering runs on across loops
    finally:
        capture.close()


def test_jpeg_video_is_decoded_from_its_compressed_frames_and_a_damaged_frame_is_counted(tmp_path: Path) -> None:
    """An MJPEG file is read as JPEG frames and decoded by libjpeg-turbo (cheaper than FFmpeg's decode and
    swscale); a frame whose JPEG is damaged counts as corrupt and the video plays on."""
    from edgetl.edge.capture import OpenCVReader

    path = write_video(tmp_path / "clip.avi", 12)
    reader = OpenCVReader(SourceSpec(str(path)))
    ffmpeg = cv2.VideoCapture(str(path))
    try:
        assert reader.compressed
        for i in range(12):
            ours, theirs = reader.read(), ffmpeg.read()[1]
            assert ours.shape == theirs.shape == (72, 96, 3)
            assert abs(int(ours[:16, :16, 2].mean()) - (i * 7) % 256) <= 3  # frame i, in order
            assert np.abs(ours.astype(int) - theirs).mean() < 12  # the same picture (the colour math differs)
        assert reader.read() is None  # the end, as before
    finally:
        reader.release()
        ffmpeg.release()
    data = bytearray(path.read_bytes())
    third = [i for i in range(len(data) - 2) if data[i : i + 3] == b"\xff\xd8\xff"][2]
    data[third : third + 3] = b"\0\0\0"  # frame 3 no longer starts as a JPEG
    (damaged := tmp_path / "damaged.avi").write_bytes(bytes(data))
    capture = Capture(SourceSpec(str(damaged)))
    try:
        while capture.latest(timeout=5) is not None:
            pass
    finally:
        capture.close()
    assert capture.ended and capture.error is None
    assert capture.stats.corrupt == 1 and capture.stats.delivered == 11


class FlakyReader:
    """A stream that delivers `frames` frames and then drops, like a network camera going away."""

    opened = 0

    def __init__(self, spec: SourceSpec, frames: int = 5) -> None:
        FlakyReader.opened += 1
        if FlakyReader.opened not in (1, 4):  # the 1st open and the 3rd reconnect attempt succeed
            raise OSError("connection refused")
        self.left = frames

    def read(self) -> np.ndarray | None:
        time.sleep(0.002)
        if self.left == 0:
            return None
        self.left -= 1
        return np.zeros((8, 8, 3), np.uint8)

    def release(self) -> None:
        pass


def test_a_dropped_stream_reconnects_with_backoff_and_gives_up_when_told() -> None:
    FlakyReader.opened = 0
    capture = Capture(
        SourceSpec("rtsp://camera.invalid/stream"), opener=FlakyReader, backoff=(0.01, 0.05), max_reconnects=3
    )
    try:
        deadline = time.monotonic() + 10
        while not capture.finished and time.monotonic() < deadline:
            capture.latest(timeout=0.1)
        # open → 5 frames → drop; 2 failed attempts, the 3rd works → 5 frames → drop; 3 failed attempts: give up.
        assert capture.finished and capture.stats.reconnects == 1 and capture.stats.captured == 10
        assert "3 reconnect attempt(s) failed" in capture.error
    finally:
        capture.close()


def test_a_source_that_cannot_be_opened_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EdgetlError, match="Cannot open video source"):
        Capture(SourceSpec(str(tmp_path / "missing.avi")))
    result = edge_cli("camera", str(tmp_path / "x.tflite"), "--source", "99")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_a_missing_camera_is_one_line_without_opencv_chatter(int8_model: Path) -> None:
    result = edge_cli("camera", str(int8_model), "--source", "7", "--max-reconnects", "0", "--no-window")
    lines = [line for line in result.stderr.splitlines() if line.strip() and line != "no tensorflow"]
    assert result.returncode == 2 and "Cannot open video source '7'" in result.stderr, result.stderr
    assert not [line for line in lines if "WARN" in line or "global " in line], lines


# --- camera --------------------------------------------------------------------------------------------------------


def test_camera_on_a_video_file_writes_json_lines_and_stops_at_the_end(
    int8_model: Path, video: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results.jsonl"
    result = edge_cli(
        "camera", str(int8_model), "--source", str(video), "--json", str(out), "--realtime", "--no-window"
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert 10 <= len(lines) <= 60
    frames = [line["frame"] for line in lines]
    assert frames == sorted(set(frames))  # each frame at most once, in order
    for line in lines:
        keys = {"time", "frame", "model", "decision", "labels", "scores", "unknown", "ood_score", "latency_ms"}
        keys |= {"age_ms", "model_version", "camera", "region"}
        assert set(line) == keys
        assert isinstance(line["unknown"], bool) and isinstance(line["ood_score"], float)  # an edgetl model has one
        assert set(line["latency_ms"]) == {"capture_wait", "preprocess", "inference", "postprocess"}
    assert "results" in result.stdout and "dropped" in result.stdout
    served = edge_cli("camera", str(int8_model), "--source", str(video), "--serve", "127.0.0.1:0", "--no-window")
    assert served.returncode == 0 and "--loop --realtime" in served.stdout  # the page ends with the file: say so
    limited = edge_cli(*served.args[3:], "--max-frames", "5")  # the same command, ended by a limit instead
    assert limited.returncode == 0 and "video file ended" not in limited.stdout, limited.stdout
    again = edge_cli("camera", str(int8_model), "--source", str(video), "--json", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr  # a results file is not clobbered


def test_camera_json_to_stdout_and_frame_limit(int8_model: Path, video: Path) -> None:
    result = edge_cli("camera", str(int8_model), "--source", str(video), "--json", "-", "--max-frames", "5", "--loop")
    assert result.returncode == 0, result.stderr
    assert len([json.loads(line) for line in result.stdout.splitlines()]) == 5  # stdout is pure JSON
    assert "results" in result.stderr  # the summary went to stderr


def test_sigterm_releases_the_camera_prints_stats_and_leaves_complete_json(
    int8_model: Path, video: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results.jsonl"
    code = BLOCK_TF + "import sys\nfrom edgetl.cli import run\nsys.argv = ['edgetl', *sys.argv[1:]]\nrun()\n"
    args = ["camera", str(int8_model), "--source", str(video), "--loop", "--json", str(out), "--realtime"]
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=UNBUFFERED
    )
    deadline = time.monotonic() + 60
    while (not out.exists() or out.stat().st_size < 200) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 143, stderr  # 128 + SIGTERM, as every edgetl command
    assert "stopped by SIGTERM" in stdout
    assert all(json.loads(line)["frame"] > 0 for line in out.read_text().splitlines())  # every line whole


def test_smoothing_and_threshold(int8_model: Path, video: Path) -> None:
    # int8 probabilities top out at 255/256: all rejected
    classifier = Classifier(int8_model, ClassifierOptions(threshold=1.0))
    capture = Capture(SourceSpec(str(video)), realtime=True)
    seen: list = []
    try:
        options = CameraOptions(top_k=2, smooth=5, max_frames=8)
        camera = run_camera(classifier, capture, options, on_result=lambda result, frame: seen.append(result))
    finally:
        capture.close()
    assert camera.regions[0].stats.results == 8 and all(result.prediction.decision == "unsure" for result in seen)
    assert all(not result.prediction.unknown and result.as_dict()["decision"] == "unsure" for result in seen)
    assert all(result.prediction.best.label in classifier.labels for result in seen)  # the guess is kept
    assert all(len(result.prediction.top) == 2 for result in seen)


def test_result_age_stays_under_one_inference_plus_one_frame_interval(int8_model: Path, tmp_path: Path) -> None:
    """A 30 fps source: each result comes from a frame at most ~1 inference + 1 frame interval old."""
    clip = write_video(tmp_path / "fast.avi", 90, fps=30)
    classifier = Classifier(int8_model)
    capture = Capture(SourceSpec(str(clip)), realtime=True)
    seen: list = []
    try:
        run_camera(classifier, capture, CameraOptions(), on_result=lambda result, frame: seen.append(result))
    finally:
        capture.close()
    ages = np.array([result.age_ms for result in seen[5:]])
    inference = np.median([result.latency_ms["inference"] for result in seen])
    assert len(ages) > 20 and np.median(ages) < inference + 1000 / 30 + 5  # ms; +5 for a noisy shared machine


def test_stop_flag_ends_the_loop_from_another_thread(int8_model: Path, video: Path) -> None:
    classifier, capture, stop = Classifier(int8_model), Capture(SourceSpec(str(video)), loop=True), StopFlag()
    threading.Timer(0.5, stop.event.set).start()
    try:
        camera = run_camera(classifier, capture, CameraOptions(), stop=stop)
    finally:
        capture.close()
    assert camera.regions[0].stats.results > 0


# --- web page ------------------------------------------------------------------------------------------------------


def _chromium() -> list[str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        message = "chromium is not installed (Debian: apt install chromium); the web page test needs it"
        if os.environ.get("EDGETL_REQUIRE_SHARED"):
            pytest.fail(message)
        pytest.skip(message)
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=4000"]


class LivePage:
    """`edgetl camera … --serve 127.0.0.1:0` in its own process (no TensorFlow), stopped by SIGTERM on exit."""

    def __init__(self, model: Path, video: Path, *extra: str) -> None:
        code = BLOCK_TF + "import sys\nfrom edgetl.cli import run\nsys.argv = ['edgetl', *sys.argv[1:]]\nrun()\n"
        args = ["camera", str(model), "--source", str(video), "--loop", "--realtime", "--serve", "127.0.0.1:0", *extra]
        self.server = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=UNBUFFERED,
        )
        line = self.server.stdout.readline()
        assert "Serving http://127.0.0.1:" in line, line + self.server.stderr.read()
        self.url = line.split("Serving ")[1].strip()

    def __enter__(self) -> LivePage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.send_signal(signal.SIGTERM)
        self.stdout, self.stderr = self.server.communicate(timeout=30)


def test_web_page_in_headless_chromium_shows_video_and_predictions(
    int8_model: Path, video: Path, tmp_path: Path
) -> None:
    browser = _chromium()
    with LivePage(int8_model, video) as page:
        dom = subprocess.run([*browser, "--dump-dom", page.url], capture_output=True, text=True, timeout=60).stdout
        labels = (int8_model.parent / "labels.txt").read_text().split()
        top1 = dom.split('<p class="label">')[1].split("<")[0]
        assert top1.split()[0] in labels and "%" in top1  # filled in by the page's script from /stats
        assert "FPS" in dom and "threads" in dom
        created = RunInfo.load(int8_model.parent).created  # which model says this: hash and the run, from the card
        assert re.search(rf"model [0-9a-f]{{8}} \(run {re.escape(created)}\)", dom), dom[-1500:]
        shot = tmp_path / "page.png"
        subprocess.run(
            [*browser, "--window-size=500,400", f"--screenshot={shot}", page.url], capture_output=True, timeout=60
        )
        image = cv2.imread(str(shot))
        video_area = image[80:150, 30:110]  # where the MJPEG stream is drawn
        assert video_area.std() > 20  # random-noise video frames, not an empty box
    assert "no authentication" not in page.stderr  # 127.0.0.1: nobody else can reach it


def test_hostile_labels_show_as_text_in_the_page_and_run_no_script(
    int8_model: Path, video: Path, tmp_path: Path
) -> None:
    """A labels file is data: markup in it is shown literally, and its event handlers never run."""
    classes = len((int8_model.parent / "labels.txt").read_text().split())
    hostile = [f"<img src=x onerror=\"document.title='pwned{i}'\"><b>{i}</b>" for i in range(classes)]
    labels = tmp_path / "hostile.txt"
    labels.write_text("\n".join(hostile) + "\n")
    browser = _chromium()
    with LivePage(int8_model, video, "--labels", str(labels), "--top-k", str(classes)) as page:
        dom = subprocess.run([*browser, "--dump-dom", page.url], capture_output=True, text=True, timeout=60).stdout
    assert "FPS" in dom, dom[-2000:]  # the page's own script ran and filled in the results
    assert "<title>edgetl camera</title>" in dom and "pwned" not in dom.split("<body")[0]  # no handler ran
    assert '<img src="x"' not in dom and "<b>" not in dom  # no element was made from a label
    for label in hostile:  # every label, in the top-1 line and the table, as text
        assert label.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in dom


def test_edge_modules_import_no_tensorflow() -> None:
    modules = ["interpreter", "metadata", "classifier", "classify", "capture", "camera", "serve", "keep", "collect"]
    modules += [
        "collect_page",
        "label",
        "label_page",
        "photos",
        "similar",
        "compare",
        "hot_swap",
        "telemetry",
        "auth",
        "mqtt",
    ]
    code = (
        BLOCK_TF
        + "".join(f"import edgetl.edge.{name}\n" for name in modules)
        + ("import sys\nassert sys.modules.get('tensorflow') is None and sys.modules.get('keras') is None\n")
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_an_http_mjpeg_stream_is_a_source_and_losing_it_is_reported(int8_model: Path, video: Path) -> None:
    """One edgetl camera serves MJPEG; a second reads that URL, then sees the stream end and gives up cleanly."""
    code = BLOCK_TF + "import sys\nfrom edgetl.cli import run\nsys.argv = ['edgetl', *sys.argv[1:]]\nrun()\n"
    serve = ["camera", str(int8_model), "--source", str(video), "--loop", "--realtime", "--serve", "127.0.0.1:0"]
    server = subprocess.Popen(
        [sys.executable, "-c", code, *serve, "--duration", "6", "--threads", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=UNBUFFERED,
    )
    try:
        url = server.stdout.readline().split("Serving ")[1].strip() + "stream.mjpg"
        client = edge_cli(
            "camera", str(int8_model), "--source", url, "--json", "-", "--max-reconnects", "2", "--threads", "1"
        )
    finally:
        server.communicate(timeout=30)
    results = [json.loads(line) for line in client.stdout.splitlines()]
    assert len(results) > 5  # frames came over HTTP
    assert client.returncode == 1 and "2 reconnect attempt(s) failed" in client.stderr  # the stream ended: reported
    assert "results" in client.stderr  # final stats still printed
