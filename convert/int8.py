"""The int8 strategy, top to bottom: calibrate → bias-correct → check → recalibrate → keep layers in float → revert.

Each step runs only when the model still misses the budget (`ConvertOptions.passes`) and the options
allow it, and each is logged (`RepairLog`, kept in conversion.json). Which layers to keep in float is
measured, not guessed: TensorFlow's quantization debugger runs the float and int8 graphs side by side
and gives each quantized tensor's error; RMSE divided by the quantization step (`rmse/scale`) ranks
them (uniform rounding alone gives ≈ 0.29). The search then keeps layers in float one at a time,
choosing each time the candidate whose model follows the float model most closely on the repair
images (validation split, never the test split), until the check on the test split passes.
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
from rich.console import Console

from edgetl.convert.bias_correction import BIAS_CORRECTION_IMAGES, correct_biases
from edgetl.convert.calibration import (
    check_calibration,
    load_with_progress,
    representative_dataset,
    stratified_sample,
)
from edgetl.convert.evaluate import keras_scores, latency_cost, tflite_scores
from edgetl.convert.options import ConvertOptions
from edgetl.convert.source import Source
from edgetl.convert.tflite import (
    calibrate,
    calibration_converter,
    ood_head_ops,
    quantize,
    quiet_native_output,
    widen_ood_range,
)
from edgetl.metrics import AccuracyRecord, accuracy, fidelity

REPAIR_IMAGES = 500  # validation images the repair compares float and int8 on
DEBUG_IMAGES = 64  # images the quantization debugger runs
CANDIDATES_PER_ROUND = 6  # worst-ranked layers tried in float per round of the search


@dataclass(frozen=True)
class Checked:
    """One candidate int8 model measured on the check images."""

    accuracy: AccuracyRecord
    bytes: int
    median_invoke_ms: float | None


@dataclass
class RepairLog:
    steps: list[dict] = field(default_factory=list)
    ranked_layers: list[dict] = field(default_factory=list)

    def add(self, action: str, **details) -> None:
        self.steps.append({"action": action, **details})


class Int8Conversion:
    """One int8 model made to pass the check, as far as the options allow; `run()` reads as the strategy."""

    def __init__(
        self,
        saved: str,
        source: Source,
        options: ConvertOptions,
        check_images: np.ndarray,
        check_labels: np.ndarray | None,
        reference: np.ndarray,
        console: Console,
    ) -> None:
        self.saved, self.source, self.options, self.console = saved, source, options, console
        self.check_images, self.check_labels, self.reference = check_images, check_labels, reference
        self.log = RepairLog()

    def run(self) -> tuple[bytes, dict]:
        """(the .tflite, what was done: calibration images, repair steps, layers ranked and kept in float)."""
        options = self.options
        plain, corrected, images = self.calibrated_on(options.calibration_samples, options.seed)
        content, checked, calibrated = self.bias_correct(plain, corrected, images)
        if options.passes(checked.accuracy) or not options.repair:
            return content, {"calibration_images": len(images), "repair": self.log.steps}

        self.console.print(f"[yellow]int8 misses the budget[/] ({describe(summary(checked))}): repairing.")
        self.load_repair_images()
        content, checked, calibrated, images, fidelity_now = self.recalibrate(content, calibrated, images)
        if options.passes(checked.accuracy) or options.max_float_layers == 0:
            return content, {"calibration_images": len(images), "repair": self.log.steps}

        keep = self.keep_layers_in_float(plain, calibrated, images, fidelity_now)
        keep = self.revert_if_worse(keep, checked)
        keep = worth_its_cost(keep, self.log, lambda: self.float_layers_cost(calibrated, keep), options.max_repair_cost)
        if keep:
            content = quantize(calibrated, options.input_type, keep)
        kept_steps = [step for step in self.log.steps if step["action"] == "keep_layer_in_float"]
        return content, {
            "calibration_images": len(images),
            "repair": self.log.steps,
            "worst_layers": self.log.ranked_layers,
            "float_layers": [step["layer"] for step in kept_steps] if keep else [],
        }

    # --- the steps, in the order `run` takes them -----------------------------------------------------------------

    def calibrated_on(self, count: int, seed: int) -> tuple[bytes, bytes, np.ndarray]:
        """(calibrated model, the same with biases corrected when enabled, the images used)."""
        source = self.source
        samples = stratified_sample(source.calibration, count, seed)
        images, _ = load_with_progress(samples, source, f"Calibration images (seed {seed})", self.console)
        check_calibration(images, lambda text: self.console.print(f"[yellow]warning:[/] {text}"))
        self.console.print(f"Calibrating on {len(images)} images…")
        calibrated = calibrate(self.saved, representative_dataset(images))
        if source.open_world and source.open_world.ood:
            calibrated = widen_ood_range(calibrated, source.open_world.ood.threshold)
        if not self.options.bias_correction:
            return calibrated, calibrated, images
        return calibrated, correct_biases(calibrated, images[:BIAS_CORRECTION_IMAGES]), images

    def bias_correct(self, plain: bytes, corrected: bytes, images: np.ndarray) -> tuple[bytes, dict, bytes]:
        """(model, its check, its calibrated model): bias-corrected unless that turns a pass into a fail."""
        options = self.options
        content = quantize(plain, options.input_type)
        checked = self.check(content)
        self.log.add(
            "calibrate",
            images=len(images),
            seed=options.seed,
            **summary(checked),
            passes=options.passes(checked.accuracy),
        )
        if not options.bias_correction:
            return content, checked, plain
        corrected_content = quantize(corrected, options.input_type)
        corrected_check = self.check(corrected_content)
        kept = options.passes(corrected_check.accuracy) or not options.passes(
            checked.accuracy
        )  # never trade a pass for a fail
        self.log.add(
            "bias_correction",
            images=min(len(images), BIAS_CORRECTION_IMAGES),
            **summary(corrected_check),
            passes=options.passes(corrected_check.accuracy),
            kept=kept,
        )
        return (corrected_content, corrected_check, corrected) if kept else (content, checked, plain)

    def load_repair_images(self) -> None:
        samples = stratified_sample(self.source.repair, REPAIR_IMAGES, self.options.seed)
        self.repair_images, _ = load_with_progress(samples, self.source, "Repair images", self.console)
        self.repair_reference = keras_scores(self.source.model, self.repair_images).values

    def recalibrate(self, content: bytes, calibrated: bytes, images: np.ndarray) -> tuple:
        """Cheap first: a larger and a different calibration subset; keep whichever follows float best.

        Returns (model, its check, calibrated model, calibration images, fidelity on the repair images)."""
        options, pool = self.options, len(self.source.calibration)
        best = (self.follow(content), calibrated, images, options.seed)
        count = options.calibration_samples
        if pool > count:  # otherwise every subset is the whole pool: nothing cheap to try
            for count_i, seed_i in ((min(2 * count, pool), options.seed + 1), (count, options.seed + 2)):
                _, calibrated_i, images_i = self.calibrated_on(count_i, seed_i)
                score = self.follow(quantize(calibrated_i, options.input_type))
                self.log.add("calibrate", images=len(images_i), seed=seed_i, repair_disagreements=score[0])
                if score < best[0]:
                    best = (score, calibrated_i, images_i, seed_i)
        fidelity_now, calibrated, images, seed = best
        content = quantize(calibrated, options.input_type)
        checked = self.check(content)
        self.log.add(
            "choose_calibration",
            images=len(images),
            seed=seed,
            **summary(checked),
            passes=options.passes(checked.accuracy),
        )
        return content, checked, calibrated, images, fidelity_now

    def keep_layers_in_float(self, plain: bytes, calibrated: bytes, images: np.ndarray, baseline: tuple) -> list[str]:
        self.console.print("Ranking layers with the quantization debugger…")
        ranked = rank_layers(self.saved, images, ood_head_ops(plain))
        self.log.ranked_layers = [
            {"layer": layer.short_name, "op": layer.op, "rmse_over_scale": round(layer.rmse_over_scale, 3)}
            for layer in ranked[:10]
        ]
        input_type = self.options.input_type

        def check_with(keep: list[str]) -> dict:
            checked = self.check(quantize(calibrated, input_type, keep))
            return {**summary(checked), "passes": self.options.passes(checked.accuracy)}

        return search_float_layers(
            ranked,
            lambda keep: self.follow(quantize(calibrated, input_type, keep)),
            check_with,
            self.log,
            lambda text: self.console.print(f"  {text}"),
            baseline,
            self.options.max_float_layers,
        )

    def revert_if_worse(self, keep: list[str], before: Checked) -> list[str]:
        """The repair images (validation split) are few: what helped there can hurt on the test split.
        Never hand back a model that checks worse than the one the layer search started from."""
        kept_steps = [step for step in self.log.steps if step["action"] == "keep_layer_in_float"]
        if keep and not kept_steps[-1]["passes"] and kept_steps[-1]["agreement"] < before.accuracy.judged_agreement:
            self.log.add("revert", reason="the layers kept in float lowered test agreement; int8 without them is kept")
            return []
        return keep

    # --- measurements ---------------------------------------------------------------------------------------------

    def check(self, content: bytes) -> Checked:
        """The model on the check images, against the float model."""
        scores = tflite_scores(content, self.check_images, self.options.threads)
        record = accuracy(scores.values, self.check_labels, self.source.labels, self.reference)
        return Checked(record, len(content), scores.median_ms)

    def float_layers_cost(self, calibrated: bytes, keep: list[str]) -> float:
        """What keeping `keep` in float adds to plain int8's latency, as a fraction, timed on a check image."""
        input_type, threads = self.options.input_type, self.options.threads
        with_float = quantize(calibrated, input_type, keep)
        return latency_cost(with_float, quantize(calibrated, input_type), self.check_images[0], threads)

    def follow(self, model: bytes) -> tuple[int, float]:
        """(disagreements, mean score difference) with the float model on the repair images: lower follows better."""
        return fidelity(self.repair_reference, tflite_scores(model, self.repair_images, self.options.threads).values)


def worth_its_cost(keep: list[str], log: RepairLog, cost: Callable[[], float], max_cost_pct: float) -> list[str]:
    """Layers in float cost size and latency: keep them only when they bring int8 within the budget, and
    add at most `max_cost_pct` percent to its latency (`cost()` times it); else int8 without them."""
    kept = [step for step in log.steps if step["action"] == "keep_layer_in_float"]
    if not keep:
        return keep
    if not kept[-1]["passes"]:
        log.add("revert", reason="the layers kept in float did not reach the budget: int8 without them is kept")
        return []
    latency_pct = round(100 * cost(), 1)
    log.add("repair_cost", latency_pct=latency_pct, max_pct=max_cost_pct)
    if latency_pct > max_cost_pct:
        reason = f"the layers kept in float add {latency_pct:+.0f} % latency, over --max-repair-cost {max_cost_pct:g}"
        log.add("revert", reason=f"{reason}: int8 without them is kept")
        return []
    return keep


# --- the layer search -------------------------------------------------------------------------------------------------


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


def search_float_layers(
    ranked: list[LayerError],
    try_model: Callable[[list[str]], tuple[int, float]],
    check: Callable[[list[str]], dict],
    log: RepairLog,
    progress: Callable[[str], None],
    baseline: tuple[int, float],
    max_layers: int,
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


# --- telling the user ---------------------------------------------------------------------------------------------


def summary(checked: Checked) -> dict:
    """What the repair log keeps of a check."""
    record = checked.accuracy
    fields = {"top1": record.top1, "drop_pp": record.drop_pp, "agreement": record.judged_agreement}
    fields |= {"bytes": checked.bytes, "median_invoke_ms": checked.median_invoke_ms}
    return {key: value for key, value in fields.items() if value is not None}


def describe(step: dict) -> str:
    """A check as the repair log keeps it (`summary`), in words."""
    parts = [f"agreement {step['agreement']:.1%}"]
    if "drop_pp" in step:
        parts.insert(0, f"drop {step['drop_pp']:.2f} pt")
    return ", ".join(parts)


def describe_repair(entry: dict) -> str:
    """What was done to int8 beyond plain quantization, in one sentence, with what it cost."""
    steps = entry["repair"]
    first = steps[0]
    chosen = next((step for step in steps if step["action"] == "choose_calibration"), None)
    parts = [f"plain int8 {describe(first)}"]
    corrected = next((step for step in steps if step["action"] == "bias_correction"), None)
    if corrected:
        kept = "" if corrected.get("kept", True) else " (not kept: plain int8 passed, this did not)"
        parts.append(f"bias-corrected {describe(corrected)}{kept}")
    if chosen:
        parts.append(f"calibration: {chosen['images']} images, seed {chosen['seed']} ({describe(chosen)})")
    layers = entry.get("float_layers") or []
    parts += [step["reason"] for step in steps if step["action"] == "revert"]
    if layers:
        last = [step for step in steps if step["action"] == "keep_layer_in_float"][-1]
        cost = f"{last['bytes'] / first['bytes'] - 1:+.0%} size"
        timed = next((step for step in steps if step["action"] == "repair_cost"), None)
        cost += f", {timed['latency_pct']:+.0f} % latency" if timed else ""  # alternating rounds, not one timing
        parts.append(f"kept {len(layers)} layer(s) in float: {', '.join(layers)} ({describe(last)}; {cost})")
    return "; ".join(parts) + "."
