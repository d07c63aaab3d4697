"""`--roi X,Y,W,H`: a region of the frame, as fractions, for `camera` (classified, kept, drawn) and `collect`
(written). The test video's quadrants have four colours, so a region cropped from the wrong place shows."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_edge import edge_cli

from edgetl.edge.roi import MIN_SIDE_PX, Region
from edgetl.edge.serve import draw_overlay
from edgetl.errors import EdgetlError

BGR = {"top_left": (0, 0, 255), "top_right": (0, 255, 0), "bottom_left": (255, 0, 0), "bottom_right": (255, 255, 255)}


def quadrants(path: Path, frames: int = 20, size: tuple[int, int] = (160, 120)) -> Path:
    width, height = size
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 2, : width // 2] = BGR["top_left"]
    image[: height // 2, width // 2 :] = BGR["top_right"]
    image[height // 2 :, : width // 2] = BGR["bottom_left"]
    image[height // 2 :, width // 2 :] = BGR["bottom_right"]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, size)
    for _ in range(frames):
        writer.write(image)
    writer.release()
    return path


def test_a_region_is_checked_where_it_enters() -> None:
    assert Region.parse(" 0.5, 0, 0.5,0.5 ") == Region(0.5, 0.0, 0.5, 0.5)
    assert Region(0.5, 0.0, 0.5, 0.5).box(160, 120) == (80, 0, 160, 60)
    for bad, message in (
        ("0.5,0.5,0.6,0.1", "outside the frame"),
        ("0.1,0.1,0,0.5", "more than 0"),
        ("-0.1,0,0.5,0.5", "outside the frame"),
        ("a,b,c,d", "not four numbers"),
        ("0.1,0.2,0.3", "not four numbers"),
        ("nan,0,0.5,0.5", "not four numbers"),
    ):
        with pytest.raises(EdgetlError, match=message):
            Region.parse(bad)
    with pytest.raises(EdgetlError, match=f"smaller than {MIN_SIDE_PX} px"):
        Region.parse("0,0,0.05,0.05").check_size(160, 120)  # 8×6 px of this source


def test_the_overlay_draws_the_region() -> None:
    canvas = draw_overlay(np.zeros((120, 160, 3), np.uint8), [("door", Region(0.5, 0.0, 0.5, 0.5), None)], 0.0)
    assert tuple(canvas[30, 80]) == (0, 255, 255)  # on the region's left edge, half-way down it
    assert not canvas[90, 40].any() and not canvas[30, 120].any()  # outside it, and inside it: untouched


def test_collect_writes_only_the_region(tmp_path: Path) -> None:
    video = quadrants(tmp_path / "quadrants.avi")
    data = tmp_path / "data"
    args = ["--source", str(video), "--label", "door", "--count", "1", "--roi", "0.5,0,0.5,0.5"]
    done = edge_cli("collect", str(data), *args)
    assert done.returncode == 0, done.stdout + done.stderr
    [photo] = (data / "door").glob("*.jpg")
    pixels = cv2.imread(str(photo))
    assert pixels.shape[:2] == (60, 80)  # the top-right quarter of 160×120
    assert np.allclose(pixels.reshape(-1, 3).mean(axis=0), BGR["top_right"], atol=12)
    assert json.loads((data / "collect.jsonl").read_text())["roi"] == [0.5, 0.0, 0.5, 0.5]
    too_small = edge_cli("collect", str(data), *args[:-1], "0,0,0.05,0.05")
    assert (
        too_small.returncode == 2 and "smaller than 16 px" in too_small.stderr and "Traceback" not in too_small.stderr
    )


def test_camera_classifies_and_keeps_only_the_region(converted: tuple[Path, dict], tmp_path: Path) -> None:
    video = quadrants(tmp_path / "quadrants.avi", frames=30)
    model = str(converted[0] / "model_int8.tflite")
    kept = tmp_path / "kept"
    keep = ["--keep", str(kept), "--keep-interval", "0", "--keep-sample", "1", "--keep-margin", "1"]
    done = edge_cli("camera", model, "--source", str(video), "--no-window", "--roi", "0,0.5,0.5,0.5", *keep)
    assert done.returncode == 0, done.stdout + done.stderr
    [photo, *_] = sorted(kept.glob("*.jpg"))
    pixels = cv2.imread(str(photo))
    assert pixels.shape[:2] == (60, 80)
    assert np.allclose(pixels.reshape(-1, 3).mean(axis=0), BGR["bottom_left"], atol=12)
    assert json.loads(photo.with_suffix(".json").read_text())["roi"] == [0.0, 0.5, 0.5, 0.5]
    for bad, message in (("0.9,0,0.5,0.5", "outside the frame"), ("0,0,0.05,0.05", "smaller than 16 px")):
        refused = edge_cli("camera", model, "--source", str(video), "--no-window", "--roi", bad)
        assert refused.returncode == 2 and message in refused.stderr and "Traceback" not in refused.stderr
