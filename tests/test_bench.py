"""`edgetl bench`: every model measured, a failing one reported in its row, reports written, errors clear."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_edge import edge_cli

from conftest import copy_run
from edgetl.bench_record import BenchRow
from edgetl.edge.bench import BenchOptions, run_bench
from edgetl.edge.bench_report import markdown, table_cells, write_reports
from edgetl.errors import EdgetlError
from edgetl.outputs import OutputSet


@pytest.fixture(scope="module")
def report(converted: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    run = copy_run(converted[0], tmp_path_factory.mktemp("bench") / "run")
    options = BenchOptions(threads=[1, 2], runs=7, warmup=2, ood=_noise_photos(tmp_path_factory.mktemp("ood"), 12))
    return run, run_bench([run], options, progress=lambda text: None)


def _noise_photos(folder: Path, count: int) -> Path:
    """Images of none of the sample classes (shapes): coloured noise, in nested folders."""
    from PIL import Image

    rng = np.random.default_rng(3)
    for i in range(count):
        (folder / f"set{i % 2}").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(folder / f"set{i % 2}" / f"{i}.png")
    return folder


def test_calibration_and_rejection_are_measured_per_model(report: tuple[Path, dict]) -> None:
    run, result = report
    card = json.loads((run / "edgetl.json").read_text())["open_world"]
    assert result["ood_data"]
    for row in result["models"]:
        assert 0 <= row["ece"] <= 1
        if row["kind"] != "tflite":
            continue
        ood = row["ood"]
        assert ood["score"] == "model" and ood["images"] == 12  # edgetl models carry their own OOD score
        assert 0 <= ood["auroc"] <= 1 and 0 <= ood["rejected_ood"] <= 1
        # The rule on in-class images: at least what the OOD threshold alone rejects on validation, never all.
        assert 0 <= ood["rejected_in"] < 1, (ood, card)
    page = markdown(result)
    assert "OOD AUROC" in page and "ECE" in page


def test_every_model_in_the_run_is_measured_at_every_thread_count(report: tuple[Path, dict]) -> None:
    run, result = report
    names = [row["name"] for row in result["models"]]
    assert names[0] == "keras" and set(names[1:]) == {"int8", "float32", "fp16", "dynamic"}
    assert result["reference"] == "keras"
    for row in result["models"]:
        assert "error" not in row, row
        for stats in row["latency"].values():
            assert stats["min_ms"] <= stats["median_ms"] <= stats["p90_ms"] <= stats["p99_ms"]
            assert len(stats["samples_ms"]) == 7 and stats["first_ms"] > 0 and stats["load_ms"] > 0
        accuracy = row["accuracy"]
        assert 0 <= accuracy["top1"] <= 1 and accuracy["images"] == len(
            (run / "split" / "test.txt").read_text().splitlines()
        )
        if row["kind"] == "tflite":
            assert set(row["latency"]) == {"1", "2"}
            assert "agreement" in accuracy and row["peak_rss_mb"] > 10
            assert "CONV_2D" in row["ops"] and isinstance(row["fallback_ops"], dict)
    keras = result["models"][0]
    assert keras["accuracy"]["drop_pp"] == 0.0
    float32 = next(row for row in result["models"] if row["name"] == "float32")
    assert float32["accuracy"]["agreement"] == 1.0  # the float32 file is the Keras model
    for row in json.loads(json.dumps(result["models"])):  # as bench.json holds them: the typed record reads
        assert BenchRow.from_json(row).to_json() == row  # and writes each one key for key
    env = result["environment"]
    assert env["cores"] >= 1 and env["runtime"] == "litert" and env["threads"] == [1, 2] and env["cpu"]
    assert result["recommendation"].startswith(("Deploy model_", "Not usable: model_"))


def test_recommendation_never_deploys_a_model_near_chance(report: tuple[Path, dict]) -> None:
    from edgetl.edge.bench import recommend

    _, result = report
    tflite = next(row for row in result["models"] if row["kind"] == "tflite" and "error" not in row)
    for top1, verdict in ((0.30, "Not usable"), (0.90, "Deploy")):
        row = {**tflite, "accuracy": {**tflite["accuracy"], "top1": top1, "drop_pp": 0.0}}
        text = recommend({**result, "labels": ["a", "b", "c", "d"], "models": [row]})
        assert text.startswith(verdict), text
    assert "chance (25.0% for 4 classes)" in recommend(
        {
            **result,
            "labels": list("abcd"),
            "models": [{**tflite, "accuracy": {**tflite["accuracy"], "top1": 0.3, "drop_pp": 0.0}}],
        }
    )


def test_peak_rss_is_the_childs_own_even_under_a_large_parent(converted: tuple[Path, dict]) -> None:
    """ru_maxrss survives fork+exec; the figure must not: a 700 MB parent, a few-MB model."""
    import numpy as np

    from edgetl.edge.bench import peak_rss_mb

    ballast = np.ones(700 * 2**20, dtype=np.uint8)  # touched: really resident in this (parent) process
    mb, error = peak_rss_mb(converted[0] / "model_int8.tflite", 1, "auto")
    assert error is None and 10 < mb < 150, (mb, error)
    del ballast


def test_reports_are_written_and_self_contained(report: tuple[Path, dict], tmp_path: Path) -> None:
    _, result = report
    with OutputSet(tmp_path, "bench") as outputs:
        page = write_reports(result, outputs)
        assert not page.exists()  # staged until the set is committed
        outputs.commit()
    assert json.loads((tmp_path / "bench.json").read_text())["schema_version"] == 1
    assert {p.name for p in tmp_path.glob("*.png")} == {"pareto.png", "latency.png", "size.png", "reliability.png"}
    text = page.read_text()
    assert "data:image/png;base64," in text and 'src="http' not in text  # one file, nothing fetched
    assert "| model |" in markdown(result) and result["recommendation"] in markdown(result)


def test_tflite_files_benchmark_without_tensorflow_and_a_broken_one_is_reported(
    converted: tuple[Path, dict], sample_data: Path, tmp_path: Path
) -> None:
    run = converted[0]
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model")
    data = shutil.copytree(sample_data, tmp_path / "data")
    truncated = data / "square" / "truncated.jpg"
    truncated.write_bytes(next((data / "square").iterdir()).read_bytes()[:200])
    out = tmp_path / "report"
    # A broken model first and an unreadable image: each is named, and neither spoils the other model's figures.
    args = [str(broken), str(run / "model_int8.tflite"), "--data", str(data), "--runs", "5", "--out", str(out)]
    result = edge_cli("bench", *args, columns=None)  # $COLUMNS unset: Rich would take 80 columns and cut the table
    assert result.returncode == 0, result.stderr
    bench = json.loads((out / "bench.json").read_text())
    columns, rows = table_cells(bench)
    assert "…" not in result.stdout and all(text in result.stdout for text in [*columns, *rows[0], *rows[1]])
    rows = {row["name"]: row for row in bench["models"]}
    assert "keras" not in rows and "error" not in rows["model_int8"] and rows["model_int8"]["accuracy"]["images"] == 96
    assert "could not be loaded" in rows["broken"]["error"]
    assert list(bench["skipped_images"]) == [str(truncated)]
    assert "1 image(s) could not be read" in result.stdout + result.stderr and "truncated.jpg" in result.stdout
    assert "FAILED" in result.stdout
    assert "Deploy model_int8.tflite" in result.stdout or "Not usable: model_int8.tflite" in result.stdout
    again = edge_cli("bench", str(run / "model_int8.tflite"), "--data", str(sample_data), "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr

    other = tmp_path / "other"
    shutil.copytree(out, other)
    compared = edge_cli("bench", "--compare", str(out / "bench.json"), "--compare", str(other / "bench.json"))
    assert compared.returncode == 0 and "model_int8" in compared.stdout


def test_bad_input_gets_clear_errors(converted: tuple[Path, dict], tmp_path: Path) -> None:
    run = converted[0]
    zero = edge_cli("bench", str(run / "model_int8.tflite"), "--threads", "0")
    assert zero.returncode == 2 and "thread counts must be 1 or more" in zero.stderr
    foreign = tmp_path / "data" / "giraffe"
    foreign.mkdir(parents=True)
    wrong = edge_cli("bench", str(run / "model_int8.tflite"), "--data", str(foreign.parent))
    assert wrong.returncode == 2 and "classes the model does not know" in wrong.stderr
    empty_run = copy_run(run, tmp_path / "empty")
    for model in [*empty_run.glob("*.tflite"), empty_run / "model.keras"]:
        model.unlink()
    with pytest.raises(EdgetlError, match="has no models to benchmark"):
        run_bench([empty_run], BenchOptions(), progress=lambda text: None)


def test_ood_folders_that_are_empty_or_look_in_class_are_flagged(converted: tuple[Path, dict], tmp_path: Path) -> None:
    from edgetl.edge.bench import _ood_warnings

    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    result = edge_cli("bench", str(converted[0] / "model_int8.tflite"), "--ood", str(empty), "--out", str(tmp_path))
    assert result.returncode == 2 and "holds no images" in result.stderr
    row = BenchRow("int8", "tflite", "model_int8.tflite", ood={"score": "model", "rejected_ood": 0.2})
    assert "accepts 80% of the --ood images" in _ood_warnings([row])[0]
    row.ood = {"score": "model", "rejected_ood": 0.9}
    assert _ood_warnings([row]) == []
