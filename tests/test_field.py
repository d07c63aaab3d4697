"""The field loop, part 1: the camera keeps the frames its model doubts; photos go into a dataset safely."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_edge import edge_cli

from conftest import shared_path
from edgetl.edge.capture import Frame
from edgetl.edge.photos import save_new
from edgetl.edge.similar import NoveltyFilter
from edgetl.errors import EdgetlError
from edgetl.layout import check_class_name

FRAME = (320, 240)


def interleaved_video(path: Path, fps: float, repeats: int) -> list[bool]:
    """Beans test photos the fixture model never saw, and one photo of another dataset after every two:
    a third of the scenes are out-of-class. Each photo is held for `repeats` frames. Returns, per frame,
    whether it shows another dataset."""
    beans = shared_path("datasets", "beans", "test")
    inside = [p for folder in sorted(beans.iterdir()) for p in sorted(folder.glob("*.jpg"))[20:30]]
    flowers = sorted(shared_path("datasets", "flowers").rglob("*.jpg"))[::97]
    imagenet = sorted(shared_path("datasets", "imagenet-samples", "images").glob("*.jpg"))[::67]
    outside = [p for pair in zip(flowers, imagenet) for p in pair][: len(inside) // 2]
    scenes: list[tuple[Path, bool]] = []
    for i, photo in enumerate(inside):
        scenes.append((photo, False))
        if i % 2 == 1 and outside:
            scenes.append((outside.pop(0), True))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, FRAME)
    truth = []
    for photo, other in scenes:
        image = cv2.resize(cv2.imread(str(photo)), FRAME)
        for _ in range(repeats):
            writer.write(image)
            truth.append(other)
    writer.release()
    return truth


def kept_records(folder: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def test_camera_keeps_mostly_the_out_of_class_frames_once_each(beans_int8: Path, tmp_path: Path) -> None:
    video = tmp_path / "field.avi"
    truth = interleaved_video(video, 30, repeats=3)
    keep = tmp_path / "kept"
    model = beans_int8 / "model_int8.tflite"
    result = edge_cli(
        "camera", str(model), "--source", str(video), "--no-window", "--keep", str(keep),
        "--keep-interval", "0", "--keep-margin", "0.05", "--json", str(tmp_path / "results.jsonl"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = kept_records(keep)
    assert records and len(list(keep.glob("*.jpg"))) == len(records)
    for record in records:
        image = cv2.imread(str(keep / record["file"]))
        assert image.shape[:2] == (FRAME[1], FRAME[0]) and record["labels"]
        assert record["model"] == hashlib.sha256(model.read_bytes()).hexdigest()[:16]  # as in the JSON lines
        assert record["kept_because"] in ("unknown", "unsure") and record["source"] == str(video)
    frames = [record["frame"] - 1 for record in records]  # frames count from 1
    scenes = {frame // 3 for frame in frames}
    assert len(scenes) == len(frames)  # a photo held for three frames is kept once: near-duplicates skipped
    share_in_video = np.mean(truth)
    share_kept = np.mean([truth[frame] for frame in frames])
    assert share_kept >= 2 * share_in_video and share_kept >= 0.6, (share_kept, share_in_video, records)
    assert "kept frames" in result.stdout and "near-duplicates" in result.stdout
    lines = (keep / "kept.jsonl").read_text().splitlines()
    assert [json.loads(line)["file"] for line in lines] == [record["file"] for record in records]


def test_keeping_respects_the_interval_and_the_maximum(beans_int8: Path, tmp_path: Path) -> None:
    video = tmp_path / "field.avi"
    interleaved_video(video, 20, repeats=2)  # 0.1 s a scene, played in real time
    keep = tmp_path / "kept"
    (keep / "older.jpg").parent.mkdir()
    (keep / "older.jpg").write_bytes(b"a frame kept by an earlier run, not yet labelled")
    result = edge_cli(
        "camera", str(beans_int8 / "model_int8.tflite"), "--source", str(video), "--realtime", "--no-window",
        "--keep", str(keep), "--keep-interval", "0.5", "--keep-sample", "1", "--keep-max", "4",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    times = sorted(record["time"] for record in kept_records(keep))
    assert len(times) == 3 and len(list(keep.glob("*.jpg"))) == 4  # the earlier frame counts toward the maximum
    assert all(later - earlier >= 0.5 for earlier, later in zip(times, times[1:])), times
    assert "keeping stopped" in result.stdout and "--keep-max" in result.stdout
    assert (keep / "older.jpg").read_bytes().startswith(b"a frame kept")  # nothing the user had is touched


def test_a_still_scene_is_skipped_and_a_new_one_is_not() -> None:
    rng = np.random.default_rng(0)
    photo = next(iter(sorted(shared_path("datasets", "flowers").rglob("*.jpg"))))
    scene = cv2.resize(cv2.imread(str(photo)), (640, 480))
    novelty = NoveltyFilter()
    assert novelty.is_new(scene)
    for _ in range(50):  # sensor noise and a flickering exposure
        noisy = scene.astype(np.int16) + rng.normal(0, 4, scene.shape).astype(np.int16) + int(rng.integers(-2, 3))
        assert not novelty.is_new(np.clip(noisy, 0, 255).astype(np.uint8))
    assert novelty.skipped == 50
    assert novelty.is_new(np.roll(scene, 80, axis=1))  # the object moved by an eighth of the frame


@pytest.mark.parametrize(
    "name", ["", "  ", "a/b", "..", ".hidden", "x" * 65, "bad\x1b[31m", "back\\slash", "nul\x00"]
)  # fmt: skip
def test_hostile_class_names_are_refused_with_one_line(name: str) -> None:
    with pytest.raises(EdgetlError) as error:
        check_class_name(name)
    assert "\n" not in str(error.value) and "\x1b" not in str(error.value)


def test_class_names_may_be_any_letters() -> None:
    assert check_class_name(" Bohnenrost ") == "Bohnenrost"
    assert check_class_name("豆の病気") == "豆の病気"
    assert check_class_name("Cafe\u0301") == "Caf\u00e9"  # one spelling on disk (NFC)


def test_photos_never_overwrite_and_respect_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        first = save_new(tmp_path, "20261202T120000.000000Z", ".jpg", b"one", min_free_mb=0)
        second = save_new(tmp_path, "20261202T120000.000000Z", ".jpg", b"two", min_free_mb=0)
    finally:
        os.umask(old)
    assert first.read_bytes() == b"one" and second.read_bytes() == b"two" and first != second
    assert {p.name for p in tmp_path.iterdir()} == {first.name, second.name}  # no temporary file left
    assert first.stat().st_mode & 0o777 == 0o640


def test_the_free_space_guard_and_a_full_disk_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(EdgetlError, match="MB is free .* lower --min-free"):
        save_new(tmp_path, "photo", ".jpg", b"x", min_free_mb=1e12)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_stops_keeping_with_one_line_and_the_camera_goes_on(beans_int8: Path, tmp_path: Path) -> None:
    import resource
    import signal

    def full_at_3_kb() -> None:  # RLIMIT_FSIZE: writes past 3 kB fail (EFBIG) as on a full disk, without root
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))

    video = tmp_path / "field.avi"
    interleaved_video(video, 30, repeats=1)
    keep = tmp_path / "kept"
    result = edge_cli(
        "camera", str(beans_int8 / "model_int8.tflite"), "--source", str(video), "--no-window",
        "--keep", str(keep), "--keep-interval", "0", "--keep-sample", "1", preexec_fn=full_at_3_kb,
    )  # fmt: skip
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "keeping stopped: The disk that holds" in result.stdout and "is full" in result.stdout
    assert "median latency ms" in result.stdout  # the camera ran to the end of the video
    assert list(keep.iterdir()) == []  # no half-written frame, no temporary file


# --- collect ---------------------------------------------------------------------------------------------------------


def scenes_video(path: Path, seconds: float, still: bool = False, fps: float = 30) -> Path:
    """Beans photos, a new one every 0.1 s (or the same photo throughout, with sensor noise, when `still`)."""
    photos = sorted(shared_path("datasets", "beans", "validation").rglob("*.jpg"))
    rng = np.random.default_rng(1)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, FRAME)
    for i in range(int(seconds * fps)):
        image = cv2.resize(cv2.imread(str(photos[0 if still else (i // 3) % len(photos)])), FRAME)
        noise = rng.normal(0, 3, image.shape) if still else 0
        writer.write(np.clip(image + noise, 0, 255).astype(np.uint8))
    writer.release()
    return path


def test_collect_takes_a_burst_into_the_class_folder_and_logs_each_photo(tmp_path: Path) -> None:
    video, data = scenes_video(tmp_path / "scenes.avi", 4), tmp_path / "data"
    (data / "healthy").mkdir(parents=True)
    (data / "healthy" / "mine.jpg").write_bytes(b"the user's photo")
    done = edge_cli("collect", str(data), "--source", str(video), "--label", "healthy", "--count", "5",
                    "--interval", "0.3", "--max-side", "160")  # fmt: skip
    assert done.returncode == 0, done.stderr
    photos = sorted((data / "healthy").glob("2*.jpg"))
    assert len(photos) == 5 and (data / "healthy" / "mine.jpg").read_bytes() == b"the user's photo"
    assert all(max(cv2.imread(str(p)).shape[:2]) == 160 for p in photos)
    lines = [json.loads(line) for line in (data / "collect.jsonl").read_text().splitlines()]
    assert [line["file"] for line in lines] == [f"healthy/{p.name}" for p in photos]  # names sort by time
    assert all(line["class"] == "healthy" and line["source"] == str(video) and line["width"] == 160 for line in lines)
    assert "5 photo(s) written, 0 near-duplicate(s) skipped" in done.stdout
    empty = edge_cli("collect", str(data), "--source", str(video), "--other", "--count", "2", "--interval", "0.3")
    assert empty.returncode == 0 and "none of these 2" in empty.stdout, empty.stderr
    assert len(list((data / "__other__").glob("*.jpg"))) == 2 and len(photos) == 5  # never a class
    added = [json.loads(line) for line in (data / "collect.jsonl").read_text().splitlines()][5:]
    assert [(line["class"], line["other"], line["file"].split("/")[0]) for line in added] == [
        (None, True, "__other__")
    ] * 2
    both = edge_cli("collect", str(data), "--source", str(video), "--other", "--label", "healthy")
    assert both.returncode == 2 and "One of the three" in both.stderr and "Traceback" not in both.stderr


def test_a_burst_of_a_still_scene_gives_one_photo(tmp_path: Path) -> None:
    video, data = scenes_video(tmp_path / "still.avi", 3, still=True), tmp_path / "data"
    done = edge_cli("collect", str(data), "--source", str(video), "--label", "Bohnenrost", "--count", "6",
                    "--interval", "0.2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(list((data / "Bohnenrost").glob("*.jpg"))) == 1
    assert "1 photo(s) written, 5 near-duplicate(s) skipped" in done.stdout


def test_collect_refuses_hostile_class_names_with_one_line(tmp_path: Path) -> None:
    done = edge_cli("collect", str(tmp_path / "data"), "--source", "0", "--label", "../../etc")
    assert done.returncode == 2 and "path separator" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "etc").exists()


class ServedPage:
    """`edgetl ARGS --serve 127.0.0.1:0` in its own process, stopped by SIGTERM on exit."""

    def __init__(self, *args: str) -> None:
        import subprocess
        import sys

        from test_edge import BLOCK_TF

        code = BLOCK_TF + "import sys\nfrom edgetl.cli import run\nsys.argv = ['edgetl', *sys.argv[1:]]\nrun()\n"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, *args, "--serve", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        line = self.process.stdout.readline()
        assert "Serving http://127.0.0.1:" in line, line + self.process.stderr.read()
        self.url = line.split("Serving ")[1].split()[0]

    def __enter__(self) -> ServedPage:
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        self.process.send_signal(signal.SIGTERM)
        self.stdout, self.stderr = self.process.communicate(timeout=30)


def browser_page(playwright):
    from test_edge import _chromium

    browser = playwright.chromium.launch(executable_path=_chromium()[0], args=["--no-sandbox"])
    return browser, browser.new_page()


def test_collect_page_in_headless_chromium_takes_photos_per_class(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    video, data = scenes_video(tmp_path / "scenes.avi", 30, fps=10), tmp_path / "data"
    (data / "healthy").mkdir(parents=True)
    with ServedPage("collect", str(data), "--source", str(video)) as served, sync_playwright() as playwright:
        browser, page = browser_page(playwright)
        page.goto(served.url)
        page.fill("#count", "3")
        page.fill("#interval", "0.4")  # longer than a scene (0.3 s): each shot a new view, none skipped
        page.click("button[data-label='healthy']")  # one button per class folder already in DATA
        expect(page.locator("button[data-label='healthy']")).to_have_text("1 · healthy (3)", timeout=15000)
        page.fill("#new-class", "<b>rust")  # a class name is text, never markup
        page.click("#add")
        expect(page.locator("button[data-label='<b>rust']")).to_be_visible()
        page.keyboard.press("1")  # by its key: "<b>rust" sorts before "healthy"
        expect(page.locator("button[data-label='<b>rust']")).to_have_text("1 · <b>rust (3)", timeout=15000)
        expect(page.locator("#recent img")).to_have_count(6)
        page.click("#other")  # the empty scene: DATA/__other__
        expect(page.locator("#recent img")).to_have_count(8, timeout=15000)
        expect(page.locator("#recent img").first).to_have_attribute("alt", re.compile("^none of these/"))
        page.fill("#new-class", "../etc")
        page.click("#add")
        expect(page.locator("#status")).to_contain_text("path separator")
        assert page.evaluate("document.querySelectorAll('#classes b').length") == 0
        assert page.evaluate("document.getElementById('video').naturalWidth") == FRAME[0]  # the live stream
        browser.close()
    assert len(list((data / "healthy").glob("*.jpg"))) == 3 and len(list((data / "<b>rust").glob("*.jpg"))) == 3
    assert not (tmp_path / "etc").exists()
    assert len(list((data / "__other__").glob("*.jpg"))) == 3  # a class folder it never becomes
    lines = [json.loads(line) for line in (data / "collect.jsonl").read_text().splitlines()]
    assert len(lines) == 9 and all(line["source"] == str(video) for line in lines)
    assert [line.get("other", False) for line in lines] == [False] * 6 + [True] * 3


# --- label -----------------------------------------------------------------------------------------------------------


def kept_folder(folder: Path, count: int) -> list[str]:
    """`count` frames as `camera --keep` writes them (JPEG + sidecar): one unknown (the most doubtful), the
    rest unsure with growing margins, so the page's order is known. Returns the names in that order."""
    photos = sorted(shared_path("datasets", "beans", "validation").rglob("*.jpg"))
    folder.mkdir(parents=True)
    names = []
    for i in range(count):
        name = f"20261202T1200{i:02d}.000000Z.jpg"
        (folder / name).write_bytes(photos[i].read_bytes())
        why = "unknown" if i == count - 1 else "unsure"
        guess = {"labels": ["healthy", "bean_rust"], "scores": [0.5, 0.4], "ood_score": 0.9, "margin": 0.01 * i}
        sidecar = {"file": name, "kept_because": why, "decision": why if why == "unknown" else "healthy", **guess}
        (folder / name).with_suffix(".json").write_text(json.dumps(sidecar))
        names.append(name)
    return [names[-1], *names[:-1]]


def test_label_page_in_headless_chromium_files_discards_and_undoes(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    kept, data = tmp_path / "kept", tmp_path / "data"
    order = kept_folder(kept, 5)
    for name in ("bean_rust", "healthy"):
        (data / name).mkdir(parents=True)
    with ServedPage("label", str(kept), "--data", str(data)) as served, sync_playwright() as playwright:
        browser, page = browser_page(playwright)
        page.goto(served.url)
        expect(page.locator("#why")).to_contain_text(f"{order[0]} · unknown")  # the most doubtful first
        expect(page.locator("#guesses")).to_contain_text("healthy")
        page.keyboard.press("2")  # healthy
        expect(page.locator("#why")).to_contain_text(order[1])
        page.keyboard.press("x")
        expect(page.locator("#why")).to_contain_text(order[2])
        page.click(f"#next img[alt='{order[3]}']")  # select a similar frame: labelled together
        page.keyboard.press("1")  # bean_rust
        expect(page.locator("#why")).to_contain_text(order[4])
        page.keyboard.press("u")  # undo: the last filed photo comes back
        expect(page.locator("#status")).to_contain_text("2 waiting")
        page.click("#other")  # "none of these": DATA/__other__, for the next training's "unknown"
        expect(page.locator("#status")).to_contain_text("1 waiting")
        page.keyboard.press("u")
        expect(page.locator("#status")).to_contain_text("2 waiting")
        page.keyboard.press("o")
        expect(page.locator("#status")).to_contain_text("1 waiting")
        page.fill("#new-class", "../x")
        page.click("#add")
        expect(page.locator("#status")).to_contain_text("path separator")
        browser.close()
    assert [p.name for p in (data / "healthy").iterdir()] == [order[0]]
    assert [p.name for p in (kept / "discarded").iterdir()] == [order[1]]
    assert [p.name for p in (data / "bean_rust").iterdir()] == [order[2]]  # order[3]'s filing was undone
    assert {p.name for p in kept.glob("*.jpg")} == {order[4]}
    assert [p.name for p in (data / "__other__").iterdir()] == [order[3]]
    log = [json.loads(line) for line in (data / "collect.jsonl").read_text().splitlines()]
    assert [(line["class"], line.get("undone", False), line.get("other", False)) for line in log] == [
        ("healthy", False, False), ("bean_rust", False, False), ("bean_rust", False, False),
        ("bean_rust", True, False), (None, False, True), (None, True, True), (None, False, True),
    ]  # fmt: skip
    assert log[0]["result"]["decision"] == "unknown" and log[0]["result"]["labels"] == ["healthy", "bean_rust"]


def test_a_killed_label_server_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    import contextlib
    import signal
    import threading
    import time
    import urllib.request

    kept, data = tmp_path / "kept", tmp_path / "data"
    names = kept_folder(kept, 40)
    contents = {(kept / name).read_bytes() for name in names}
    served = ServedPage("label", str(kept), "--data", str(data))

    def post(path: str, body: dict) -> None:
        request = urllib.request.Request(served.url + path.lstrip("/"), json.dumps(body).encode(), method="POST")
        request.add_header("Content-Type", "application/json")
        with contextlib.suppress(OSError):  # refused once the server is killed
            urllib.request.urlopen(request, timeout=5).read()

    def file_all() -> None:
        for i, name in enumerate(names):
            post("/label" if i % 3 else "/discard", {"label": f"class{i % 2}", "files": [name]})
            if i % 5 == 4:
                post("/undo", {})

    worker = threading.Thread(target=file_all)
    worker.start()
    time.sleep(0.3)
    served.process.send_signal(signal.SIGKILL)  # no clean-up at all, at whatever step it was
    served.process.communicate(timeout=30)
    worker.join(timeout=60)
    restarted = ServedPage("label", str(kept), "--data", str(data))  # finishes a move cut between its two steps
    with restarted:
        pass
    everywhere = [p for p in [*kept.rglob("*.jpg"), *data.rglob("*.jpg")]]
    assert sorted(p.read_bytes() for p in everywhere) == sorted(contents)  # each photo exactly once


def test_moves_never_replace_and_an_interrupted_move_is_finished(tmp_path: Path) -> None:
    from edgetl.edge.label import finish_moves, move_new

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"new")
    (tmp_path / "b" / "x.jpg").write_bytes(b"the user's")
    moved = move_new(tmp_path / "a" / "x.jpg", tmp_path / "b")
    assert moved.name == "x-2.jpg" and (tmp_path / "b" / "x.jpg").read_bytes() == b"the user's"
    os.link(moved, tmp_path / "a" / "y.jpg")  # a move killed after its link, before its unlink
    assert finish_moves(tmp_path / "a", [tmp_path / "b"]) == 1
    assert list((tmp_path / "a").iterdir()) == [] and moved.read_bytes() == b"new"


def test_pages_on_a_network_address_warn_that_anyone_can_use_them() -> None:
    from rich.console import Console

    from edgetl.edge.serve import announce

    class Served:
        def __init__(self, host: str, credentials: object = None) -> None:
            self.server_address = (host, 8080)
            self.RequestHandlerClass = type("Handler", (), {"credentials": credentials})

    console = Console(record=True, width=300)
    announce(Served("0.0.0.0"), console, "labelling kept", "can file or discard these photos")
    text = console.export_text()
    assert "Serving http://0.0.0.0:8080/ (labelling kept)" in text and "anyone who can reach port 8080 can file" in text
    local = Console(record=True, width=300)
    announce(Served("127.0.0.1"), local, "", "sees the camera")
    assert local.export_text().strip() == "Serving http://127.0.0.1:8080/"
    guarded = Console(record=True, width=300)
    announce(Served("0.0.0.0", credentials=object()), guarded, "", "sees the camera")
    assert "unencrypted" in guarded.export_text() and "anyone" not in guarded.export_text()


def test_keeping_resumes_once_frames_are_labelled_away(tmp_path: Path) -> None:
    import time

    from edgetl.edge.keep import Keeper, KeepOptions
    from edgetl.edge.result import ClassScore, Prediction, Result

    said: list[str] = []
    keeper = Keeper(KeepOptions(keep=tmp_path / "kept", keep_interval=0, keep_max=1), "test", said.append)
    prediction = Prediction((ClassScore("a", 0.5), ClassScore("b", 0.45)), "a", 0.1, margin=0.05)
    doubt = Result(1, time.time(), prediction, {}, 0.0, model="0123456789abcdef", model_version="v2 2026-12-02")
    rng = np.random.default_rng(0)

    def offer_until(condition) -> None:
        for _ in range(200):
            if condition():
                return
            keeper.on_result(doubt, Frame(rng.integers(0, 256, (48, 64, 3), np.uint8), 1, 0.0))  # a new view each time
            time.sleep(0.01)
        raise AssertionError(said)

    offer_until(lambda: keeper.stats.stopped is not None)  # one kept, then the folder is full
    assert keeper.stats.kept == 1 and any("--keep-max" in line for line in said)
    for photo in (tmp_path / "kept").glob("*.jpg"):
        photo.rename(tmp_path / photo.name)  # what `edgetl label` does
    keeper.paused_until = 0.0  # as after RETRY_S
    offer_until(lambda: keeper.stats.kept == 2)
    keeper.close()
    assert said[-1] == "keeping resumed" and keeper.stats.stopped is None
    record = kept_records(tmp_path / "kept")[0]  # the model is the result's: after a hot update, the new one
    assert (record["model"], record["model_version"]) == ("0123456789abcdef", "v2 2026-12-02")
