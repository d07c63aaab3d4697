"""benchmarks/gpu_check.py, the one-command GPU check, runs here on the CPU in its quick mode: it cannot rot
between the rare sessions that have a GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import shared_path

REPO = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_on_the_cpu(keras_home: Path, tmp_path: Path) -> None:
    beans = shared_path("datasets", "beans")
    env = {**os.environ, "KERAS_HOME": str(keras_home), "EDGETL_SHARED": str(beans.parents[1])}
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--cpu", "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for line in ("GPUs: none", "run 1:", "run 2:", "determinism: held", "convert:", "int8", "result: OK"):
        assert line in done.stdout, line
