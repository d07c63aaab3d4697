"""Write a device latency profile: one int8 `.tflite` per candidate configuration, plus its manifest.

The models have random weights and are calibrated on random pixels: their latency is what matters, and
it depends on the architecture and the int8 kernels only. They are converted exactly as `edgetl convert
--int8` converts a trained model (SavedModel, calibrate, quantize to uint8 input), so the device times
the same ops it will run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from edgetl.convert.calibration import representative_dataset
from edgetl.convert.tflite import calibrate, quantize, saved_model
from edgetl.latency import PROFILE_FILE, Candidate, manifest
from edgetl.rundir import refuse_existing, write_atomic, write_json

CALIBRATION_IMAGES = 4  # random images: enough to set ranges; the values do not matter for timing


def write_profile(
    out: Path,
    candidates: list[Candidate],
    build: Callable[[Candidate], keras.Model],
    *,
    force: bool = False,
    progress: Callable[[Candidate], None] = lambda candidate: None,
) -> Path:
    """Convert every candidate `build` makes into `out`; the manifest is written last (it marks completion)."""
    refuse_existing(out / PROFILE_FILE, "--out another folder", force=force)
    (out / PROFILE_FILE).unlink(missing_ok=True)
    rng = np.random.default_rng(0)
    for candidate in candidates:
        progress(candidate)
        model = build(candidate)
        images = rng.integers(0, 256, (CALIBRATION_IMAGES, candidate.size, candidate.size, 3)).astype(np.float32)
        with saved_model(model) as saved:
            content = quantize(calibrate(saved, representative_dataset(images)), "uint8")
        write_atomic(out / f"{candidate.name}.tflite", content)
        keras.backend.clear_session()  # 31 models in one process: keep memory flat
    write_json(out / PROFILE_FILE, manifest(candidates))
    return out
