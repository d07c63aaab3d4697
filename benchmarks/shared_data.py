"""Where the benchmark scripts find `../shared` (or $EDGETL_SHARED), and its ImageNet weights for Keras."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

SHARED = Path(os.environ.get("EDGETL_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def use_shared_keras_weights() -> None:
    """Point KERAS_HOME at a temporary copy of ../shared/keras/models, unless the user chose one.

    This machine cannot download ImageNet weights; a copy, because Keras also writes keras.json there.
    """
    source = SHARED / "keras" / "models"
    if "KERAS_HOME" in os.environ or not source.is_dir():
        return
    home = Path(tempfile.mkdtemp(prefix="edgetl-keras-"))
    shutil.copytree(source, home / "models")
    os.environ["KERAS_HOME"] = str(home)


def settings(pairs: list[str]) -> dict:
    """`--set FIELD=VALUE` pairs as TrainConfig changes: VALUE as JSON (0.35, 160, true, null), else as text."""
    import json

    changes = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        try:
            changes[key] = json.loads(value)
        except ValueError:
            changes[key] = value
    return changes
