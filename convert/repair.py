"""Win back int8 accuracy: first cheap calibration changes, then keep the worst layers in float.

Which layers hurt is measured, not guessed: TensorFlow's quantization debugger runs the float
and int8 graphs side by side and gives each quantized tensor's error; RMSE divided by the
quantization step (`rmse/scale`) ranks them (uniform rounding alone gives ≈ 0.29). The search
then keeps layers in float one at a time, choosing each time the candidate whose model follows
the float model most closely on the repair images (validation split, never the test split),
until the check on the test split passes or the options run out.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from edgetl.convert.calibration import representative_dataset
from edgetl.convert.tflite import calibration_converter, quiet_native_output

DEBUG_IMAGES = 64
CANDIDATES_PER_ROUND = 6
DEFAULT_MAX_FLOAT_LAYERS = 8


@dataclass
class LayerError:
    tensor: str  # the op's output tensor name: what `denylisted_nodes` takes
    op: str
    rmse_over_scale: float

    @property
    def short_name(self) -> str:
        """Keras layer name from TF's ';'-joined fused tensor name, e.g. 'block_1_depthwise'."""
        parts = [p for p in self.tensor.split(";")[0].split("/") if p]
        if "batchnorm" in parts:  # ".../block_13_project_BN_1/batchnorm/add_1"
            return parts[parts.index("batchnorm") - 1]
        return parts[-2] if len(parts) >= 2 else parts[0]


@dataclass
class RepairLog:
    steps: list[dict] = field(default_factory=list)
    ranked_layers: list[dict] = field(default_factory=list)

    def add(self, action: str, **details) -> None:
        self.steps.append({"action": action, **details})


def rank_layers(saved: str, images: np.ndarray, float_head: list[str]) -> list[LayerError]:
    """Quantized tensors, worst first, by the quantization debugger's per-layer error.

    `float_head` names the OOD head's ops, which `quantize` always keeps in float: the debugger leaves them too."""
    converter = calibration_converter(saved, representative_dataset(images[:DEBUG_IMAGES]))
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=float_head or None)
    with warnings.catch_warnings(), quiet_native_output():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")  # the debugger's own use
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=representative_dataset(images[:DEBUG_IMAGES]), debug_options=options
        )
        debugger.run()
    table = io.StringIO()
    debugger.layer_statistics_dump(table)
    table.seek(0)
    layers = []
    for row in csv.DictReader(table):
        scale = float(row["scale"])
        mse = float(row["mean_squared_error"])
        if scale > 0 and math.isfinite(mse):
            layers.append(LayerError(row["tensor_name"], row["op_name"], math.sqrt(mse) / scale))
    return sorted(layers, key=lambda layer: -layer.rmse_over_scale)


def keep_layers_in_float(
    ranked: list[LayerError],
    try_model: Callable[[list[str]], tuple[int, float]],
    check: Callable[[list[str]], dict],
    log: RepairLog,
    progress: Callable[[str], None],
    baseline: tuple[int, float],
    max_layers: int = DEFAULT_MAX_FLOAT_LAYERS,
) -> list[str]:
    """Greedy search: each round keeps one more layer in float, the one that most improves fidelity.

    `try_model(keep)` → (disagreements, mean score diff) on the repair images, `baseline` the same
    for the model as it is; `check(keep)` → the test-split summary with a "passes" flag. A layer is
    only kept if it makes the model follow float more closely on the repair images, so the search
    stops instead of trading speed for nothing. Returns the tensors kept in float (empty when none helped).
    """
    keep: list[str] = []
    current = baseline
    for round_number in range(1, max_layers + 1):
        candidates = [layer for layer in ranked if layer.tensor not in keep][:CANDIDATES_PER_ROUND]
        if not candidates:
            break
        progress(f"repair round {round_number}: trying {len(candidates)} layers in float")
        trials = [(try_model([*keep, layer.tensor]), layer) for layer in candidates]
        (disagreements, diff), best = min(trials, key=lambda trial: trial[0])
        if (disagreements, diff) >= current:
            log.add("stop", reason="no layer in float brings the model closer to float on the repair images")
            break
        current = (disagreements, diff)
        keep.append(best.tensor)
        result = check(keep)
        log.add(
            "keep_layer_in_float",
            layer=best.short_name,
            op=best.op,
            rmse_over_scale=round(best.rmse_over_scale, 3),
            repair_disagreements=disagreements,
            repair_mean_abs_diff=round(diff, 5),
            **result,
        )
        if result["passes"]:
            return keep
    return keep
