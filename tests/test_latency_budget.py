"""A device latency profile (convert, time on the device, read back) and the search that uses it: the most
accurate candidate within a budget, nothing over the budget trained, and `bench` checking the budget."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from rich.console import Console
from test_cli import edgetl_cli

from conftest import copy_run
from edgetl.edge.bench import BenchOptions, run_bench
from edgetl.edge.bench_report import budget_line
from edgetl.errors import EdgetlError
from edgetl.latency import Candidate, camera_threads, profiled_latencies, read_manifest
from edgetl.profiling import local_profile, make_profile
from edgetl.train.config import TrainConfig

TINY_GRID = [Candidate("mobilenet_v2", 0.35, 32), Candidate("mobilenet_v2", 0.35, 64)]


def test_a_profile_is_converted_timed_like_any_model_and_read_back(tmp_path: Path) -> None:
    folder = make_profile(tmp_path / "profile", Console(quiet=True), candidates=TINY_GRID)
    assert set(read_manifest(folder).values()) == set(TINY_GRID)
    with pytest.raises(EdgetlError, match="already exists"):
        make_profile(folder, Console(quiet=True), candidates=TINY_GRID)

    result = edgetl_cli("bench", str(folder), "--runs", "5", "--warmup", "1", block_tensorflow=True)  # as on a Pi
    assert result.returncode == 0, result.stderr
    report = json.loads((folder / "bench" / "bench.json").read_text())
    camera = camera_threads(os.cpu_count() or 1)
    assert report["options"]["threads"] == [camera]  # what the camera leaves the interpreter
    assert "Device profile: 2 of 2 candidates" in report["recommendation"]
    for row in report["models"]:
        assert "error" not in row and "accuracy" not in row  # random weights: latency only
        assert row["latency"][str(camera)]["median_ms"] > 0

    profiled, environment = profiled_latencies(folder / "bench" / "bench.json")
    assert {p.candidate for p in profiled} == set(TINY_GRID)
    assert all(p.threads == camera for p in profiled) and environment["cores"] == os.cpu_count()


def test_this_machines_profile_is_made_once_and_reused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = local_profile(Console(quiet=True), candidates=TINY_GRID[:1])
    made = first.stat().st_mtime_ns
    assert local_profile(Console(quiet=True), candidates=TINY_GRID[:1]) == first
    assert first.stat().st_mtime_ns == made and first.is_relative_to(tmp_path)


def _profile(folder: Path, latencies: dict[Candidate, float], cores: int = 2) -> Path:
    """A device's bench.json as `edgetl bench PROFILE` writes it, with chosen latencies."""
    threads = str(camera_threads(cores))
    rows = [
        {
            "name": c.name,
            "kind": "tflite",
            "file": f"{c.name}.tflite",
            "candidate": vars(c),
            "latency": {threads: {"median_ms": ms}},
        }
        for c, ms in latencies.items()
    ]
    path = folder / "device.json"
    path.write_text(json.dumps({"environment": {"cores": cores, "machine": "aarch64"}, "models": rows}))
    return path


def test_the_search_estimates_what_fits_and_picks_the_most_accurate(
    beans_subset: Path, keras_home: Path, tmp_path: Path, monkeypatch
) -> None:
    from edgetl.train.data import scan
    from edgetl.train.search import SEARCH_FILE, SEARCH_PLOT, search, write_search

    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    weights = keras_home / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
    small, large = Candidate("mobilenet_v2", 0.35, 48), Candidate("mobilenet_v2", 0.35, 96)
    other_width, too_slow = Candidate("mobilenet_v2", 0.5, 64), Candidate("mobilenet_v2", 1.0, 96)
    profile = _profile(tmp_path, {small: 1.0, large: 4.0, other_width: 2.0, too_slow: 9.0})
    config = TrainConfig(alpha=0.35, weights=str(weights), batch_size=16, max_latency=5.0, device_profile=str(profile))

    chosen, estimates, report = search(scan(beans_subset), config)
    write_search(tmp_path, estimates, report)

    status = {e.candidate: e.status for e in estimates}
    assert status[too_slow] == "over budget"
    assert status[other_width].startswith("skipped: --weights")  # a weights file fits its own width only
    estimated = [e for e in estimates if e.val_top1 is not None]
    assert {e.candidate for e in estimated} == {small, large}
    winner = max(estimated, key=lambda e: (e.val_top1, -e.latency_ms))
    assert winner.status == "chosen" and (chosen.alpha, chosen.size) == (winner.candidate.alpha, winner.candidate.size)
    assert chosen.max_latency == 5.0 and chosen.weights == config.weights
    record = json.loads((tmp_path / SEARCH_FILE).read_text())
    assert record["chosen"] == winner.candidate.name and len(record["candidates"]) == 4
    assert (tmp_path / SEARCH_PLOT).stat().st_size > 10_000

    with pytest.raises(EdgetlError, match="No profiled model runs within 0.5 ms"):
        search(scan(beans_subset), TrainConfig(max_latency=0.5, device_profile=str(profile)))


def test_a_budget_nothing_meets_is_one_line_and_leaves_no_run(sample_data: Path, tmp_path: Path) -> None:
    profile = _profile(tmp_path, {Candidate("mobilenet_v2", 0.35, 96): 3.0})
    out = tmp_path / "run"
    result = edgetl_cli(
        "train", str(sample_data), "--out", str(out), "--max-latency", "1", "--device-profile", str(profile)
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "No profiled model runs within 1.0 ms" in result.stderr and "mobilenet_v2 0.35 @ 96 px" in result.stderr
    assert not out.exists() and not (tmp_path / "run.partial").exists()  # nothing that looks resumable


def test_latency_options_are_checked_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(EdgetlError, match="not a latency"):
        TrainConfig(max_latency=0)
    with pytest.raises(EdgetlError, match="needs --max-latency"):
        TrainConfig(device_profile="bench.json")
    (tmp_path / "bench.json").write_text(
        json.dumps({"models": [{"name": "int8", "kind": "tflite", "file": "model_int8.tflite", "latency": {}}]})
    )
    with pytest.raises(EdgetlError, match="times no profile candidates"):
        profiled_latencies(tmp_path / "bench.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(EdgetlError, match="is not a device profile"):
        profiled_latencies(tmp_path / "bad.json")
    (tmp_path / "profile.json").write_text(json.dumps({"models": {"a.tflite": {"width": 1}}}))
    with pytest.raises(EdgetlError, match="is not a profile manifest"):
        read_manifest(tmp_path)


def test_bench_checks_a_run_against_its_latency_budget(converted: tuple[Path, dict], tmp_path: Path) -> None:
    run = copy_run(converted[0], tmp_path / "run")
    meta = json.loads((run / "edgetl.json").read_text())
    meta["training"]["max_latency"] = 1000.0
    (run / "edgetl.json").write_text(json.dumps(meta))
    report = run_bench([run / "model_int8.tflite"], BenchOptions(runs=3, warmup=1), progress=lambda text: None)
    budget = report["latency_budget"]
    assert budget["threads"] == camera_threads(os.cpu_count() or 1) and budget["max_ms"] == 1000.0
    assert 0 < budget["median_ms"]["model_int8"] < 1000.0
    assert "model_int8" in budget_line(report) and "within" in budget_line(report)
