"""The multi-device path (MirroredStrategy), exercised on CPU with two logical devices."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path


def test_training_runs_under_mirrored_strategy_on_two_logical_cpus(
    sample_data: Path, tiny_weights: str, tmp_path: Path
) -> None:
    out = tmp_path / "mirrored"
    script = textwrap.dedent(
        f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from rich.console import Console
        from edgetl.train.config import TrainConfig
        from edgetl.train.fit import choose_strategy
        from edgetl.train.run import train
        assert choose_strategy("mirrored").num_replicas_in_sync == 2
        config = TrainConfig(alpha=0.35, size=64, weights={tiny_weights!r}, batch_size=16, head_epochs=1,
                             finetune_epochs=1, strategy="mirrored")
        train({str(sample_data)!r}, {str(out)!r}, config, console=Console(quiet=True))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads((out / "edgetl.json").read_text())
    assert meta["training"]["replicas"] == 2
    assert [row["phase"] for row in _history(out)] == ["head", "finetune"]


def _history(run: Path) -> list[dict]:
    import csv

    return list(csv.DictReader((run / "history.csv").open()))
