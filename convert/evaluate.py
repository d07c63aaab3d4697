"""The check: the converted model against the float Keras model, on the same images.

The `.tflite` runs in the edge interpreter (`edgetl.edge.interpreter`), one image per invoke
as on the device, so the accuracy reported here is the accuracy that gets deployed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from edgetl.edge.interpreter import ImageClassifierModel
from edgetl.metrics import TOP5_FROM_CLASSES, agreement, ece, fidelity, per_class, top1, topk


@dataclass
class Scores:
    values: np.ndarray  # N × classes
    median_ms: float | None = None  # per-image invoke time, when measured
    ood: np.ndarray | None = None  # N out-of-distribution scores, for models that compute one


def keras_scores(model: keras.Model, images: np.ndarray, batch_size: int = 32) -> Scores:
    outputs = model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)
    if isinstance(outputs, list | tuple):  # edgetl models: [probabilities, OOD score]
        return Scores(np.asarray(outputs[0], dtype=np.float32), ood=np.asarray(outputs[1], dtype=np.float32)[:, 0])
    return Scores(np.asarray(outputs, dtype=np.float32))


def tflite_scores(
    model: bytes, images: np.ndarray, threads: int | None = None, advance: Callable[[], None] | None = None
) -> Scores:
    runner = ImageClassifierModel(model, threads=threads)
    values, times, ood = [], [], []
    for image in images:
        started = time.perf_counter()
        values.append(runner.scores(image))
        times.append(time.perf_counter() - started)
        ood.append(runner.ood_score())
        if advance:
            advance()
    median = float(np.median(times) * 1000) if times else None
    stacked = np.stack(values) if values else np.zeros((0, runner.classes), np.float32)
    return Scores(stacked, median, np.asarray(ood, np.float32) if runner.has_ood_score else None)


def compare(reference: np.ndarray, values: np.ndarray, labels: np.ndarray | None, names: list[str]) -> dict:
    """Top-1 (top-5 with more than five classes), drop in points, agreement, per-class accuracy."""
    result: dict = {
        "images": int(len(values)),
        "agreement": agreement(reference, values),
        "mean_abs_score_diff": fidelity(reference, values)[1],
    }
    if labels is None or len(values) == 0:
        return result
    result["float_top1"] = top1(reference, labels)
    result["top1"] = top1(values, labels)
    result["drop_pp"] = round(100 * (result["float_top1"] - result["top1"]), 4)
    if len(names) >= TOP5_FROM_CLASSES:
        result["float_top5"] = topk(reference, labels, 5)
        result["top5"] = topk(values, labels, 5)
    result["per_class"] = per_class(values, labels, names)
    return result


def open_world_check(reference: Scores, scores: Scores, labels: np.ndarray | None, card: dict | None) -> dict:
    """Calibration (ECE, float and converted) and, for models with an OOD score, how the converted score
    follows the float one: share of test images each rejects at its own threshold, and their correlation."""
    result: dict = {}
    if labels is not None and len(labels):
        result["float_ece"], result["ece"] = ece(reference.values, labels), ece(scores.values, labels)
    if reference.ood is not None and scores.ood is not None and card and len(scores.ood) > 1:
        threshold = card["ood"]["threshold"]
        float_threshold = card["ood"].get("float_threshold", threshold)
        result["ood"] = {
            "threshold": threshold,  # this file's, refitted on the validation split
            "float_threshold": float_threshold,
            "float_rejected_in": float(np.mean(reference.ood > float_threshold)),
            "rejected_in": float(np.mean(scores.ood > threshold)),
            # None when either score is constant (a degenerate model): no NaN in the JSON
            "correlation": float(np.corrcoef(reference.ood, scores.ood)[0, 1])
            if np.std(reference.ood) > 0 and np.std(scores.ood) > 0
            else None,
        }
    return result
