"""What `edgetl convert` can be told, each default and its meaning stated once (the CLI shows them).

No TensorFlow here: `edgetl --help` reads these without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.images import RESIZE_POLICIES, check_resize
from edgetl.metrics import AccuracyRecord, agreement_within_budget, drop_within_budget
from edgetl.options import setting

FORMATS: tuple[str, ...] = ("int8", "fp16", "dynamic", "float32")
INPUT_TYPES: tuple[str, ...] = ("uint8", "int8")
# The agreement target when none is given, applied where the test split can measure it (one image ≤ 1 point).
DEFAULT_MIN_AGREEMENT = 99.0
MIN_IMAGES_FOR_AGREEMENT = 100
# The bare model's expected input → (mean, std) to fold in front of it, so every converted model takes 0–255.
PREPROCESSING_PRESETS: dict[str, tuple[list[float], list[float]]] = {
    "none": ([0.0] * 3, [1.0] * 3),  # the model takes raw 0–255 pixels (edgetl, Keras EfficientNet)
    "tf": ([127.5] * 3, [127.5] * 3),  # [-1, 1]: Keras MobileNet/MobileNetV2/Inception preprocess_input
    "unit": ([0.0] * 3, [255.0] * 3),  # [0, 1]
    "torch": ([123.675, 116.28, 103.53], [58.395, 57.12, 57.375]),  # [0, 1] then ImageNet mean/std
}


@dataclass
class ConvertOptions:
    formats: tuple[str, ...] = setting(("int8",), "Formats to write (default: int8).")
    input_type: str = setting("uint8", f"int8 model input/output type: {' (raw pixels) or '.join(INPUT_TYPES)}.")
    calibration_samples: int = setting(300, "Representative images for int8 calibration.")
    max_drop: float = setting(
        1.0, "Fail when top-1 drops more than this (points) and the test images show the drop is real (McNemar p<0.05)."
    )
    min_agreement: float | None = setting(
        None,
        "Fail when fewer test images (percent) keep the float model's top-1, among those it gives ≥ 50 %, and the "
        f"images show the shortfall is real (binomial p<0.05) (default: {DEFAULT_MIN_AGREEMENT:g} with at least "
        f"{MIN_IMAGES_FOR_AGREEMENT} such images, else not applied).",
    )
    bias_correction: bool = setting(True, "int8: cancel the mean error of int8 weights in each layer's bias.")
    repair: bool = setting(True, "When int8 misses the budget, recalibrate and keep layers in float.")
    max_float_layers: int = setting(8, "Repair: at most this many layers kept in float.")
    max_repair_cost: float = setting(
        10.0, "Repair: most latency, percent over plain int8, that layers kept in float may add (else none are)."
    )
    threads: int | None = setting(None, "Interpreter threads for the check.")
    seed: int = setting(0, "Seed for drawing calibration images.")
    out: Path | None = setting(None, "Folder for the .tflite files (default: SOURCE).")
    force: bool = setting(False, "Replace existing .tflite files.")

    def passes(self, record: AccuracyRecord) -> bool:
        """The budget: no significant top-1 drop over `max_drop` points, no significant shortfall of agreement
        under `min_agreement` percent (metrics: one rule for both, tested against chance)."""
        return drop_within_budget(record, self.max_drop) and agreement_within_budget(record, self.min_agreement or 0.0)

    def __post_init__(self) -> None:
        unknown = [fmt for fmt in self.formats if fmt not in FORMATS]
        if unknown or not self.formats:
            raise EdgetlError(f"Unknown format {unknown or '(none)'}.", f"Use some of: {', '.join(FORMATS)}.")
        if self.input_type not in INPUT_TYPES:
            raise EdgetlError(f"Unknown --input-type '{self.input_type}'.", f"Use {' or '.join(INPUT_TYPES)}.")
        if self.max_repair_cost < 0:
            raise EdgetlError(f"--max-repair-cost {self.max_repair_cost} is negative.", "Give a percentage, e.g. 10.")
        if self.calibration_samples < 1:
            raise EdgetlError("--calibration-samples must be at least 1.", "A few hundred is typical.")


@dataclass
class BareModel:
    """A .keras / .h5 file without a run directory: what the run would otherwise tell."""

    labels: Path | None = setting(None, "Bare model: labels file, one class per line.")
    calibration: Path | None = setting(None, "Bare model: folder of calibration images.")
    test: Path | None = setting(None, "Bare model: folder-per-class images to check on.")
    preprocessing: str = setting(
        "none", f"Bare model's expected input: {', '.join(PREPROCESSING_PRESETS)} (none: 0–255, tf: -1..1, unit: 0..1)."
    )
    resize: str = setting("stretch", f"Bare model: {' or '.join(RESIZE_POLICIES)}, as camera frames will be resized.")

    def __post_init__(self) -> None:
        check_resize(self.resize)
        if self.preprocessing not in PREPROCESSING_PRESETS:
            raise EdgetlError(
                f"Unknown --preprocessing '{self.preprocessing}'.", f"Use one of: {', '.join(PREPROCESSING_PRESETS)}."
            )

    @property
    def given(self) -> bool:
        """True when any file or folder was named (a run directory must not get them)."""
        return any(value is not None for value in (self.labels, self.calibration, self.test))
