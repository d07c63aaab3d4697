"""Hostile input from files: a decompression bomb is refused from its header, before it is decoded, and label
text cannot drive the terminal."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from test_cli import BLOCK_TF
from test_edge import FlakyReader, edge_cli

from edgetl.errors import EdgetlError
from edgetl.images import ImageTooLarge, load_rgb, max_pixels
from edgetl.text import printable
from edgetl.train.data import _check_image

WIDE = {**os.environ, "COLUMNS": "200"}


def write_png_bomb(path: Path, side: int = 20000) -> Path:
    """A real PNG of side×side black pixels (1-bit greyscale): 400 Mpx in a file of a few tens of KB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + side // 8)  # filter byte + packed pixels
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png")


def test_a_decompression_bomb_is_refused_from_its_header(bomb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert bomb.stat().st_size < 2_000_000
    started = time.monotonic()
    with pytest.raises(ImageTooLarge, match=r"20000×20000 pixels is over the 50 Mpx limit.*EDGETL_MAX_MEGAPIXELS"):
        load_rgb(bomb)
    assert time.monotonic() - started < 1  # decoding it would take tens of seconds and gigabytes
    digest, reason = _check_image(bomb)  # training's scan: skipped and listed like any unreadable file
    assert digest is None and "over the 50 Mpx limit" in reason
    monkeypatch.setenv("EDGETL_MAX_MEGAPIXELS", "0.0001")  # 100 pixels: an ordinary small image is over it too
    assert max_pixels() == 100
    monkeypatch.setenv("EDGETL_MAX_MEGAPIXELS", "lots")
    with pytest.raises(EdgetlError, match="not a positive number"):
        max_pixels()


def _peak_rss_kib(proc: subprocess.Popen) -> int:
    """The process's peak resident memory (VmHWM, counted from its exec), read until it exits."""
    peak = 0
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peak = max(peak, int(status.split("VmHWM:")[1].split()[0]))
        except (OSError, IndexError):
            pass
        time.sleep(0.01)
    return peak


def test_classify_skips_a_bomb_with_one_line_in_bounded_memory(converted: tuple[Path, dict], bomb: Path) -> None:
    code = BLOCK_TF + "import sys\nfrom edgetl.cli import run\nsys.argv = ['edgetl', *sys.argv[1:]]\nrun()\n"
    args = [sys.executable, "-c", code, "classify", str(converted[0] / "model_int8.tflite"), str(bomb)]
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(args, stderr=stderr, stdout=subprocess.DEVNULL, text=True, env=WIDE)
        peak_kib = _peak_rss_kib(proc)
        stderr.seek(0)
        output = stderr.read()
    assert proc.returncode == 1 and "Traceback" not in output and "Warning" not in output
    assert f"skipped {bomb}: 20000×20000 pixels is over the 50 Mpx limit" in " ".join(output.split())
    assert 0 < peak_kib < 500_000, peak_kib  # measured 97 MB; the landed code took 4.8-7.1 GB and 17-22 s


def test_a_bad_pixel_limit_is_one_line(converted: tuple[Path, dict], bomb: Path) -> None:
    code = "import sys\nfrom edgetl.cli import run\nsys.argv = ['edgetl', *sys.argv[1:]]\nrun()\n"
    args = [sys.executable, "-c", code, "classify", str(converted[0] / "model_int8.tflite"), str(bomb)]
    done = subprocess.run(
        args, capture_output=True, text=True, env={**WIDE, "EDGETL_MAX_MEGAPIXELS": "-5"}, timeout=120
    )
    assert done.returncode == 2 and "EDGETL_MAX_MEGAPIXELS='-5' is not a positive number" in done.stderr
    assert "Traceback" not in done.stderr


def test_label_text_cannot_drive_the_terminal(converted: tuple[Path, dict], sample_data: Path, tmp_path: Path) -> None:
    run = converted[0]
    classes = len((run / "labels.txt").read_text().split())
    hostile = [f"\x1b[2J\x1b[31mred{i}\x1b]0;title\x07\u202eevil" for i in range(classes)]
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(hostile) + "\n")
    image = next((sample_data / "square").iterdir())
    result = edge_cli("classify", str(run / "model_int8.tflite"), str(image), "--labels", str(labels))
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout and "\x07" not in result.stdout
    assert "\\x1b" in result.stdout and "\\u202e" in result.stdout  # shown, escaped, not acted on
    assert printable("tab\there é ü 中") == "tab\\there é ü 中"  # letters of any script stay as they are


def test_serving_beyond_loopback_is_recognised_and_a_bad_host_is_not_called_a_busy_port() -> None:
    from edgetl.edge.serve import LiveState, is_loopback, start_server

    assert is_loopback("127.0.0.1") and is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not any(is_loopback(host) for host in ("0.0.0.0", "::", "192.168.1.20", "raspberrypi.local"))
    with pytest.raises(EdgetlError) as caught:
        start_server("nohost.invalid:8080", {"camera": LiveState()})
    assert "address of this machine" in caught.value.hint and "port" not in caught.value.hint


def test_viewers_that_go_away_are_not_errors(capfd: pytest.CaptureFixture) -> None:
    """20 stream viewers and 5 page loads that reset their connection: no traceback, the server keeps serving."""
    import socket
    import threading

    from edgetl.edge.capture import Frame
    from edgetl.edge.serve import LiveState, start_server

    state, stop = LiveState(), threading.Event()
    server = start_server("127.0.0.1:0", {"camera": state})
    port = server.server_address[1]

    def feed() -> None:
        number = 0
        while not stop.is_set():
            number += 1
            state.update(None, Frame(np.zeros((48, 64, 3), np.uint8), number, time.monotonic()), 1.0)
            time.sleep(0.005)

    threading.Thread(target=feed, daemon=True).start()
    try:
        for path in ["/stream.mjpg"] * 20 + ["/"] * 5:
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            client.sendall(f"GET {path} HTTP/1.1\r\nHost: edgetl\r\n\r\n".encode())
            assert client.recv(64).startswith(b"HTTP/1.0 200")
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not close
            client.close()
        time.sleep(0.5)  # the stream threads notice on their next frame
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: edgetl\r\n\r\n")
            assert client.recv(64).startswith(b"HTTP/1.0 200")
    finally:
        stop.set()
        state.close()
        server.shutdown()
    assert "Traceback" not in capfd.readouterr().err


def test_a_labels_file_that_is_not_utf8_is_one_line(converted: tuple[Path, dict], tmp_path: Path) -> None:
    from edgetl.rundir import read_labels

    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café\ncrème\nnaïve\nsoupçon\n".encode("latin-1"))
    with pytest.raises(EdgetlError, match=r"latin1.txt is not UTF-8 text \(byte 3\)"):
        read_labels(latin1)
    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeffcafé\ncrème\n".encode())  # Windows Notepad's UTF-8
    assert read_labels(bom) == ["café", "crème"]
    result = edge_cli("classify", str(converted[0] / "model_int8.tflite"), str(latin1), "--labels", str(latin1))
    assert result.returncode == 2 and "is not UTF-8 text" in result.stderr and "Traceback" not in result.stderr


def test_a_split_file_line_without_a_tab_names_the_file_and_line(tmp_path: Path) -> None:
    from edgetl.rundir import read_split_file

    split = tmp_path / "test.txt"
    split.write_text("a/1.jpg\ta\n\na/2.jpg a\n")
    with pytest.raises(EdgetlError, match=r"test.txt, line 3: no tab"):
        read_split_file(split, tmp_path, ["a"])
    split.write_text("a/with\ttab.jpg\ta\n")  # a file name may hold a tab: the class is after the last one
    assert read_split_file(split, tmp_path, ["a"])[0].path == tmp_path / "a/with\ttab.jpg"


def test_special_files_are_refused_up_front_not_read(converted: tuple[Path, dict], tmp_path: Path) -> None:
    model = str(converted[0] / "model_int8.tflite")
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    image = edge_cli("classify", model, str(fifo))  # the landed code waited forever for a writer
    assert image.returncode == 1 and "not a regular file" in image.stderr and "Traceback" not in image.stderr
    as_model = edge_cli("classify", str(fifo), str(fifo))
    assert as_model.returncode == 2 and "is not a regular file (a FIFO" in as_model.stderr
    folder = edge_cli("classify", str(tmp_path), str(fifo))
    assert folder.returncode == 2 and "is a folder, not a file" in folder.stderr
    camera = edge_cli("camera", model, "--source", str(fifo), "--no-window", "--max-frames", "1")
    assert camera.returncode == 2 and "is not a regular file (a FIFO" in camera.stderr  # ignored Ctrl-C before
    (tmp_path / "empty.tflite").touch()  # a copy that failed: the runtime said "model_path must be specified"
    empty = edge_cli("classify", str(tmp_path / "empty.tflite"), str(fifo))
    assert empty.returncode == 2 and "empty.tflite is empty (0 bytes)" in empty.stderr


def test_a_results_file_in_a_missing_folder_is_refused_by_classify_and_camera_alike(
    converted: tuple[Path, dict], sample_data: Path, tmp_path: Path
) -> None:
    model, target = str(converted[0] / "model_int8.tflite"), str(tmp_path / "missing" / "results.jsonl")
    image = str(next((sample_data / "square").iterdir()))
    classify = edge_cli("classify", model, image, "--json", target)
    camera = edge_cli("camera", model, "--source", image, "--json", target, "--no-window")
    for result in (classify, camera):  # the landed classify made the folders; camera gave a traceback
        assert result.returncode == 2 and "missing does not exist" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "missing").exists()


FUZZ = """
import json, sys
from pathlib import Path
import numpy as np
from edgetl.edge.classifier import Classifier
from edgetl.errors import EdgetlError
from edgetl.edge.metadata import _metadata_buffer

original, folder, cases = Path(sys.argv[1]).read_bytes(), Path(sys.argv[2]), int(sys.argv[3])
metadata = _metadata_buffer(original)
start = original.find(metadata)
zip_start = original.find(b"PK\\x03\\x04")
regions = {"anywhere": (0, len(original)), "metadata": (start, start + len(metadata))}
regions["zip"] = (zip_start, len(original))
rng = np.random.default_rng(0)
pixels = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
outcomes = {}
for case in range(cases):
    region = list(regions)[case % 3]
    low, high = regions[region]
    damaged = bytearray(original)
    if case % 2:
        damaged = damaged[: int(rng.integers(low, high))]
        how = "truncated"
    else:
        for position in rng.integers(low, high, size=int(rng.integers(1, 9))):
            damaged[position] = int(rng.integers(0, 256))
        how = "flipped"
    path = folder / f"case{case}.tflite"
    path.write_bytes(bytes(damaged))
    print(f"case {case}: {how} in {region}", file=sys.stderr, flush=True)  # the last line names a crash
    try:
        classifier = Classifier(path)
        classifier.decide(*classifier.scores(classifier.prepare_bgr(pixels)), 3)
        outcome = "works"
    except EdgetlError as error:
        _, damaged, reason = str(error).partition(" is damaged: ")
        outcome = f"damaged: {reason[:30]}" if damaged else f"error: {str(error)[-50:]}"
    path.unlink()
    outcomes[outcome] = outcomes.get(outcome, 0) + 1
print(json.dumps(outcomes))
"""


def test_damaged_models_load_or_are_one_clear_error(converted: tuple[Path, dict], tmp_path: Path) -> None:
    """Seeded byte flips and truncations of a real edgetl model, anywhere and inside its metadata and its packed
    files: every case works or is one EdgetlError (any other exception, or a crash, fails), within a minute."""
    model = converted[0] / "model_int8.tflite"
    done = subprocess.run(
        [sys.executable, "-c", FUZZ, str(model), str(tmp_path), "300"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcomes = json.loads(done.stdout.strip().splitlines()[-1])
    assert sum(outcomes.values()) == 300 and outcomes.get("works", 0) < 300, outcomes
    assert any(outcome.startswith("damaged: ") for outcome in outcomes), outcomes  # the metadata reader said so


def _repacked(model: bytes, **files: bytes) -> bytes:
    """`model` with its packed files replaced (the zip rewritten at the same place)."""
    start = model.find(b"PK\x03\x04")
    with zipfile.ZipFile(io.BytesIO(model[start:])) as bundle:
        contents = {name: bundle.read(name) for name in bundle.namelist()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in {**contents, **files}.items():
            bundle.writestr(name, data)
    return model[:start] + buffer.getvalue()


def test_each_damaged_metadata_part_is_named(converted: tuple[Path, dict], tmp_path: Path) -> None:
    from edgetl.edge.classifier import Classifier

    model = (converted[0] / "model_int8.tflite").read_bytes()
    with zipfile.ZipFile(io.BytesIO(model[model.find(b"PK\x03\x04") :])) as bundle:
        card = json.loads(bundle.read("model_card.json"))
    short = {**card, "open_world": {**card["open_world"], "class_thresholds": [0.5]}}
    damaged = {
        "card not JSON": _repacked(model, **{"model_card.json": b"{not json"}),
        "labels not UTF-8": _repacked(model, **{"labels.txt": "café\n".encode("latin-1") * 4}),
        "thresholds shorter than labels": _repacked(model, **{"model_card.json": json.dumps(short).encode()}),
        "size not a number": _repacked(
            model, **{"model_card.json": json.dumps({**card, "input": {"size": "x"}}).encode()}
        ),
        "version a page of text": _repacked(
            model, **{"model_card.json": json.dumps({**card, "version": "v" * 201}).encode()}
        ),
        "version not a string": _repacked(
            model, **{"model_card.json": json.dumps({**card, "version": ["v2"]}).encode()}
        ),
    }
    for what, content in damaged.items():
        path = tmp_path / "model.tflite"
        path.write_bytes(content)
        with pytest.raises(EdgetlError, match=r"model.tflite is damaged: ") as caught:
            Classifier(path)
        assert "Convert the model again" in caught.value.hint, what
    start = model.find(b"PK\x03\x04")
    path.write_bytes(model[: start + 10])  # the packed files cut short: the model runs, and says what is missing
    classifier = Classifier(path)
    assert classifier.labels[0] == "class_0" and any("labels file labels.txt" in w for w in classifier.warnings)
    assert any("model card is missing" in w for w in classifier.warnings) and classifier.ood_threshold is None


class FileReader(FlakyReader):
    """A video file as OpenCV reads it: `frames` frames, then None; opening fails once the file is gone."""

    def __init__(self, spec, frames: int = 3) -> None:  # noqa: ANN001 - Capture's opener signature
        if not Path(spec.text).exists():
            raise OSError(f"video file {spec.text} does not exist")
        self.left = frames


def _run_to_the_end(capture) -> None:  # noqa: ANN001
    deadline = time.monotonic() + 10
    while not capture.finished and time.monotonic() < deadline:
        capture.latest(timeout=0.1)
    capture.close()


def test_a_file_that_gives_no_frame_is_an_error_not_a_spin(tmp_path: Path) -> None:
    from edgetl.edge.capture import Capture, SourceSpec

    video = tmp_path / "undecodable.avi"
    video.write_bytes(b"RIFF junk")
    for loop in (True, False):  # the landed code reopened it 59,466 times in 5 s (loop), or ended with exit 0
        capture = Capture(SourceSpec(str(video)), loop=loop, opener=lambda spec: FileReader(spec, frames=0))
        _run_to_the_end(capture)
        assert capture.finished and capture.stats.loops == 0 and "gave no frame" in capture.error


def test_a_video_deleted_while_looping_ends_the_run_with_one_line(tmp_path: Path) -> None:
    import threading

    from edgetl.edge.capture import Capture, SourceSpec

    video = tmp_path / "clip.avi"
    video.write_bytes(b"frames")
    crashed: list = []
    previous, threading.excepthook = threading.excepthook, crashed.append
    try:
        capture = Capture(SourceSpec(str(video)), loop=True, opener=FileReader)
        while capture.stats.loops < 2:
            capture.latest(timeout=0.1)
        video.unlink()
        _run_to_the_end(capture)
    finally:
        threading.excepthook = previous
    assert not crashed and capture.finished and "does not exist" in capture.error
    assert capture.stats.captured >= 6  # it played (and looped) until the file went


def test_viewers_share_one_paced_jpeg_and_one_too_many_gets_503() -> None:
    """Encoding work is fixed (STREAM_FPS JPEGs a second, whatever the viewer count): viewers cannot slow
    inference (benchmarks/viewers.py measures it), and beyond the cap a viewer is refused, not served slowly."""
    import socket
    import threading

    from edgetl.edge.capture import Frame
    from edgetl.edge.serve import STREAM_FPS, LiveState, start_server

    state, stop = LiveState(max_viewers=3), threading.Event()
    server = start_server("127.0.0.1:0", {"camera": state})

    def feed() -> None:
        number = 0
        while not stop.is_set():  # ~500 results a second, as from an unpaced video
            number += 1
            state.update(None, Frame(np.full((48, 64, 3), number % 256, np.uint8), number, time.monotonic()), 0.0)
            time.sleep(0.002)

    def watch(received: list[bytes]) -> None:
        with socket.create_connection(server.server_address[:2], timeout=5) as client:
            client.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: edgetl\r\n\r\n")
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                received.append(client.recv(1 << 16))

    threading.Thread(target=feed, daemon=True).start()
    streams: list[list[bytes]] = [[], [], []]
    watchers = [threading.Thread(target=watch, args=(stream,)) for stream in streams]
    try:
        for watcher in watchers:
            watcher.start()
        time.sleep(0.5)
        with socket.create_connection(server.server_address[:2], timeout=5) as extra:
            extra.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: edgetl\r\n\r\n")
            assert extra.recv(64).startswith(b"HTTP/1.0 503")
        for watcher in watchers:
            watcher.join(timeout=10)
    finally:
        stop.set()
        state.close()
        server.shutdown()
    frames = [b"".join(stream).count(b"--frame") for stream in streams]
    assert all(5 <= count <= 2.0 * STREAM_FPS * 1.5 for count in frames), frames  # ~30 in 2 s, not ~1000


def test_camera_json_on_a_full_disk_ends_with_the_summary_and_whole_lines(
    converted: tuple[Path, dict], tmp_path: Path
) -> None:
    import resource
    import signal

    from test_edge import write_video

    def full_at_3_kb() -> None:  # RLIMIT_FSIZE: writes past 3 kB fail (EFBIG) as on a full disk, without root
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))

    video, results = write_video(tmp_path / "clip.avi", frames=60), tmp_path / "results.jsonl"
    model = str(converted[0] / "model_int8.tflite")
    done = edge_cli(
        "camera", model, "--source", str(video), "--no-window", "--json", str(results), preexec_fn=full_at_3_kb
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"writing the results to {results} failed (File too large)" in done.stdout + done.stderr
    assert "median latency ms" in done.stdout  # the summary, as after any run
    text = results.read_text()
    assert 0 < len(text) <= 3000 and text.endswith("\n")  # the line cut by the limit was taken back
    assert all(json.loads(line)["frame"] >= 0 for line in text.splitlines())
