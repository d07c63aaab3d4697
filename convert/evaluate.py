"""The check: the converted model against the float Keras model, on the same images.

The `.tflite` runs in the edge interpreter (`edgetl.edge.interpreter`), one image per invoke
as on the device, so the accuracy reported here is the accuracy that gets deployed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import keras
import numpy as np

from edgetl.edge.interpreter import ImageClassifierModel
from edgetl.edge.timing import timed_calls
from edgetl.metrics import ece, ece_floor
from edgetl.open_world_card import OpenWorldCard

LATENCY_RUNS = 20  # single inferences per model and round when two models' latencies are compared


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

    def feed() -> Iterator[np.ndarray]:  # progress advances between the timed calls, not inside them
        for image in images:
            yield image
            if advance:
                advance()

    results, seconds = timed_calls(lambda image: (runner.scores(image), runner.ood_score()), feed())
    median = float(np.median(seconds) * 1000) if seconds else None
    values = np.stack([scores for scores, _ in results]) if results else np.zeros((0, runner.classes), np.float32)
    ood = np.asarray([score for _, score in results], np.float32) if runner.has_ood_score else None
    return Scores(values, median, ood)


def open_world_check(reference: Scores, scores: Scores, labels: np.ndarray | None, card: OpenWorldCard | None) -> dict:
    """Calibration (ECE, float and converted) and, for models with an OOD score, how the converted score
    follows the float one: share of test images each rejects at its own threshold, and their correlation."""
    result: dict = {}
    if labels is not None and len(labels):
        result["float_ece"], result["ece"] = ece(reference.values, labels), ece(scores.values, labels)
        result["ece_floor"] = ece_floor(scores.values)
    if reference.ood is not None and scores.ood is not None and card and card.ood and len(scores.ood) > 1:
        threshold = card.ood.threshold
        float_threshold = card.ood.threshold if card.ood.float_threshold is None else card.ood.float_threshold
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


def latency_cost(model: bytes, baseline: bytes, image: np.ndarray, threads: int | None, rounds: int = 5) -> float:
    """How much slower `model` runs than `baseline`, as a fraction (0.1: 10 % slower).

    One timing on a busy machine can be off by tens of percent, so the two alternate: `rounds` rounds of
    LATENCY_RUNS single inferences each, after a warm-up, and the median of the rounds' ratios counts.
    """
    runners = [ImageClassifierModel(content, threads=threads) for content in (model, baseline)]
    ratios = []
    for _ in range(rounds):
        medians = []
        for runner in runners:
            timed_calls(runner.scores, [image] * 3)  # warm: caches, and the delegate's first call
            medians.append(float(np.median(timed_calls(runner.scores, [image] * LATENCY_RUNS)[1])))
        ratios.append(medians[0] / medians[1])
    return float(np.median(ratios)) - 1.0
