"""Classification metrics and judgements shared by training reports, conversion checks and bench (no TensorFlow).

One implementation of each figure, so `conversion.json` and `bench.json` can never disagree on what
"top-1" or "agreement" means.
"""

from __future__ import annotations

import numpy as np

# A model whose top-1 is within this many points of chance (1 / classes) has not learned the task.
CHANCE_MARGIN_PP = 10.0
TOP5_FROM_CLASSES = 6  # top-5 is reported only where it says something: more than five classes


def top1(scores: np.ndarray, targets: np.ndarray) -> float:
    return float(np.mean(scores.argmax(1) == targets)) if len(targets) else 0.0


def topk(scores: np.ndarray, targets: np.ndarray, k: int) -> float:
    top = np.argsort(-scores, axis=1)[:, :k]
    return float(np.mean([target in row for target, row in zip(targets, top)])) if len(targets) else 0.0


def agreement(reference: np.ndarray, scores: np.ndarray) -> float:
    """Share of images on which `scores` gives the reference (float) model's top-1."""
    return float(np.mean(reference.argmax(1) == scores.argmax(1))) if len(scores) else 0.0


def fidelity(reference: np.ndarray, scores: np.ndarray) -> tuple[int, float]:
    """(top-1 disagreements, mean absolute score difference): how closely a model follows the float one."""
    disagreements = int(np.sum(reference.argmax(1) != scores.argmax(1)))
    return disagreements, float(np.mean(np.abs(reference - scores))) if len(scores) else 0.0


def per_class(scores: np.ndarray, targets: np.ndarray, names: list[str]) -> dict[str, float | None]:
    """Accuracy (recall) per class; None for a class with no images."""
    predicted = scores.argmax(1)
    return {
        name: float(np.mean(predicted[targets == index] == index)) if np.any(targets == index) else None
        for index, name in enumerate(names)
    }


def near_chance(top1_fraction: float, classes: int) -> bool:
    """True when a top-1 (a fraction) is too close to guessing to deploy the model."""
    return 100 * (top1_fraction - 1 / max(classes, 1)) < CHANCE_MARGIN_PP


def near_chance_message(top1_fraction: float, classes: int) -> str:
    return (
        f"top-1 {100 * top1_fraction:.1f}% is within {CHANCE_MARGIN_PP:.0f} points of chance ({100 / classes:.1f}% "
        f"for {classes} classes): the model has not learned the classes, do not deploy it"
    )
