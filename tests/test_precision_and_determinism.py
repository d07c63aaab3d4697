"""The GPU path's mixed float16, forced on CPU, through training and every conversion; and same seed → same model,
through the GPU check itself."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from rich.console import Console

from conftest import PRETRAINED, shared_path
from edgetl.float32 import is_mixed
from edgetl.train.config import TrainConfig
from edgetl.train.run import train

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_mixed_precision_run_converts_to_every_format_and_matches_float32(
    beans_subset: Path, beans_run: Path, tmp_path: Path, imagenet_weights: str
) -> None:
    from edgetl.convert.options import ConvertOptions
    from edgetl.convert.run import convert
    from edgetl.edge.interpreter import ImageClassifierModel

    config = TrainConfig(**PRETRAINED, weights=imagenet_weights, mixed_precision=True)
    runs = {True: train(beans_subset, tmp_path / "mixed", config, console=Console(quiet=True)), False: beans_run}
    assert keras.mixed_precision.global_policy().name == "float32"  # training does not leave it behind
    meta = json.loads((runs[True] / "edgetl.json").read_text())
    assert meta["training"]["mixed_precision"] is True
    model = keras.saving.load_model(runs[True] / "model.keras")
    assert not is_mixed(model) and [output.dtype for output in model.outputs] == ["float32", "float32"]

    report = convert(runs[True], ConvertOptions(formats=("int8", "float32", "fp16")), console=Console(quiet=True))
    for fmt, (input_type, output_type) in {
        "int8": (np.uint8, np.uint8),
        "float32": (np.float32, np.float32),
        "fp16": (np.float32, np.float32),
    }.items():
        interpreter = ImageClassifierModel(runs[True] / f"model_{fmt}.tflite").interpreter
        assert interpreter.get_input_details()[0]["dtype"] == input_type
        assert interpreter.get_output_details()[0]["dtype"] == output_type
        assert report["models"][fmt]["passed"], report["models"][fmt]
    top1 = {mixed: json.loads((run / "metrics.json").read_text())["test"]["top1"] for mixed, run in runs.items()}
    assert top1[True] > 0.5 and abs(top1[True] - top1[False]) <= 0.15, top1  # 36 test images: ±5 of them


def test_same_seed_same_data_gives_the_same_model_and_the_gpu_check_runs(
    imagenet_weights: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """benchmarks/gpu_check.py, the one-command GPU check, in its CPU quick mode (so that it cannot rot between
    the rare sessions with a GPU): its two runs of one seed, through both phases (phase 2 on the boundary cache,
    as with any pretrained backbone), evaluation and reports, are the same model; it converts and says so. In
    this process (TensorFlow is loaded already): the script's own `main`, with its own arguments."""
    beans = shared_path("datasets", "beans")
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    args = ["--cpu", "--quick", "--data", str(beans), "--weights", imagenet_weights, "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", *args])
    import gpu_check

    assert gpu_check.main() == 0, capsys.readouterr().out[-3000:]
    printed = capsys.readouterr().out
    for line in ("GPUs: none", "run 1:", "run 2:", "determinism: held", "convert:", "int8", "result: OK"):
        assert line in printed, line
    runs = [tmp_path / "run1", tmp_path / "run2"]
    metrics = [json.loads((run / "metrics.json").read_text()) for run in runs]
    assert metrics[0] == metrics[1]
    weights = [keras.saving.load_model(run / "model.keras").get_weights() for run in runs]
    assert all(np.array_equal(a, b) for a, b in zip(*weights))
    history = [(run / "history.csv").read_text().splitlines() for run in runs]
    assert [line.rsplit(",", 1)[0] for line in history[0]] == [line.rsplit(",", 1)[0] for line in history[1]]
    assert {row.split(",")[0] for row in history[0][1:]} == {"head", "finetune"}  # both phases ran
