"""benchmarks/gpu_check.py, the one-command GPU check, runs here on the CPU in its quick mode: it cannot rot
between the rare sessions that have a GPU. In this process (TensorFlow is loaded already): the script's own
`main`, with its own arguments."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import shared_path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_the_gpu_check_runs_on_the_cpu(
    imagenet_weights: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    beans = shared_path("datasets", "beans")
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    args = ["--cpu", "--quick", "--data", str(beans), "--weights", imagenet_weights, "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", *args])
    import gpu_check

    assert gpu_check.main() == 0, capsys.readouterr().out[-3000:]
    printed = capsys.readouterr().out
    for line in ("GPUs: none", "run 1:", "run 2:", "determinism: held", "convert:", "int8", "result: OK"):
        assert line in printed, line
