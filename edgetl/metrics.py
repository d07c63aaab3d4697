"""Judgements on classification results shared by conversion and bench (no TensorFlow)."""

from __future__ import annotations

# A model whose top-1 is within this many points of chance (1 / classes) has not learned the task.
CHANCE_MARGIN_PP = 10.0


def near_chance(top1: float, classes: int) -> bool:
    """True when `top1` (a fraction) is too close to guessing to deploy the model."""
    return 100 * (top1 - 1 / max(classes, 1)) < CHANCE_MARGIN_PP


def near_chance_message(top1: float, classes: int) -> str:
    return (
        f"top-1 {100 * top1:.1f}% is within {CHANCE_MARGIN_PP:.0f} points of chance ({100 / classes:.1f}% for "
        f"{classes} classes): the model has not learned the classes, do not deploy it"
    )
