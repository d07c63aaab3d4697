"""Classification metrics and judgements shared by training reports, conversion checks and bench (no TensorFlow).

One implementation of each figure, so `conversion.json` and `bench.json` can never disagree on what
"top-1" or "agreement" means.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from math import comb
from typing import Any

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


# Agreement is judged on the images the float model is sure of: where its own top-1 has less than half the
# probability, a flip between near-tied classes is the model's doubt, not a conversion error. Measured on the
# 1000-class ImageNet MobileNetV2 (unlabelled photos): agreement 95.8 % on all, 99.7 % on the 69 % it is sure of;
# on 3-class beans every test image counts.
SURE = 0.5


def sure_images(reference: np.ndarray) -> np.ndarray:
    """Which images the reference model gives at least SURE probability (scores that are not probabilities,
    e.g. a bare model's logits, through a softmax first)."""
    probabilities = reference
    if len(reference) and not (np.all(reference >= 0) and np.allclose(reference.sum(1), 1, atol=1e-3)):
        shifted = np.exp(reference - reference.max(1, keepdims=True))
        probabilities = shifted / shifted.sum(1, keepdims=True)
    return probabilities.max(1) >= SURE if len(reference) else np.zeros(0, bool)


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


@dataclass(frozen=True)
class AccuracyRecord:
    """One model's accuracy on a set of images, the same in `conversion.json` and `bench.json`.

    Against a reference (the float model's scores on the same images) it has agreement and the score
    difference; on labelled images top-1 (top-5 with five classes or more) and per-class accuracy; with
    both, the reference's top-1, the drop in points and the paired answers the budget's test counts.
    """

    images: int
    agreement: float | None = None
    mean_abs_score_diff: float | None = None
    sure_agreement: float | None = None
    """Agreement on the `sure_images` alone: what the budget judges."""
    sure_images: int | None = None
    top1: float | None = None
    top5: float | None = None
    float_top1: float | None = None
    drop_pp: float | None = None
    lost: int | None = None
    gained: int | None = None
    drop_p: float | None = None
    float_top5: float | None = None
    per_class: dict[str, float] | None = None

    @property
    def judged_agreement(self) -> float | None:
        """The agreement the budget judges: on the images the float model is sure of (files before 0.3: all)."""
        return self.sure_agreement if self.sure_agreement is not None else self.agreement

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> AccuracyRecord:
        return cls(**{item.name: value.get(item.name) for item in fields(cls)})


def accuracy(
    scores: np.ndarray, targets: np.ndarray | None, names: list[str], reference: np.ndarray | None = None
) -> AccuracyRecord:
    """The accuracy record of one model on `scores` (and `targets` where the images are labelled)."""
    against: dict[str, Any] = {}
    if reference is not None:
        sure = sure_images(reference)
        against = {"agreement": agreement(reference, scores), "mean_abs_score_diff": fidelity(reference, scores)[1]}
        against |= {"sure_agreement": agreement(reference[sure], scores[sure]), "sure_images": int(sure.sum())}
    if targets is None or not len(scores):
        return AccuracyRecord(int(len(scores)), **against)
    top5 = len(names) >= TOP5_FROM_CLASSES
    labelled: dict[str, Any] = {"top1": top1(scores, targets), "top5": topk(scores, targets, 5) if top5 else None}
    if reference is not None:
        lost, gained = changed_answers(reference, scores, targets)
        labelled |= {
            "float_top1": top1(reference, targets),
            "drop_pp": round(100 * (top1(reference, targets) - labelled["top1"]), 4),
            "lost": lost,
            "gained": gained,
            "drop_p": drop_p_value(lost, gained),
            "float_top5": topk(reference, targets, 5) if top5 else None,
        }
    return AccuracyRecord(int(len(scores)), **against, **labelled, per_class=per_class(scores, targets, names))


def changed_answers(reference: np.ndarray, scores: np.ndarray, targets: np.ndarray) -> tuple[int, int]:
    """(lost, gained): images the reference got right and this model wrong, and the other way round."""
    right, reference_right = scores.argmax(1) == targets, reference.argmax(1) == targets
    return int(np.sum(reference_right & ~right)), int(np.sum(right & ~reference_right))


def drop_p_value(lost: int, gained: int) -> float:
    """One-sided exact McNemar test: the chance of losing at least `lost` of the `lost + gained` changed
    answers if the model were as accurate as the reference (each change a fair coin)."""
    changed = lost + gained
    return sum(comb(changed, k) for k in range(lost, changed + 1)) / 2**changed if changed else 1.0


# A drop counts against the budget only when chance explains it less than 1 time in 20: on 36 test images
# one image is 2.8 points, and a model that loses 1 image and gains none is indistinguishable from the float one.
DROP_SIGNIFICANCE = 0.05


def drop_within_budget(record: AccuracyRecord, max_drop_pp: float) -> bool:
    """The accuracy budget: top-1 drop at most `max_drop_pp` points, or a larger drop that the test images
    cannot tell from chance (McNemar p ≥ DROP_SIGNIFICANCE). Unlabelled images (no drop) pass."""
    if record.drop_pp is None or record.drop_pp <= max_drop_pp:
        return True
    return (record.drop_p or 0.0) >= DROP_SIGNIFICANCE


def disagreement_p_value(flips: int, images: int, allowed: float) -> float:
    """One-sided exact binomial test: the chance of at least `flips` disagreements among `images` if the true
    disagreement rate were `allowed` (the budget's 1 − target)."""
    if allowed <= 0:
        return 0.0 if flips else 1.0
    return float(sum(comb(images, k) * allowed**k * (1 - allowed) ** (images - k) for k in range(flips, images + 1)))


def agreement_within_budget(record: AccuracyRecord, min_agreement_pct: float) -> bool:
    """The agreement budget, in the drop budget's form: at least `min_agreement_pct` % of the judged images keep
    the reference's top-1, or fewer by a margin the images cannot tell from chance (binomial p ≥
    DROP_SIGNIFICANCE). 3 flips among beans' 127 judged images is p = 0.14 against a 99 % target; 6 among 95 is
    p < 0.001. A target of 100 % or more is exact."""
    agreement, judged = record.judged_agreement, record.sure_images or record.images
    if agreement is None or 100 * agreement >= min_agreement_pct:
        return True
    if min_agreement_pct >= 100:
        return False
    flips = round((1 - agreement) * judged)
    return disagreement_p_value(flips, judged, 1 - min_agreement_pct / 100) >= DROP_SIGNIFICANCE


def near_chance(top1_fraction: float, classes: int) -> bool:
    """True when a top-1 (a fraction) is too close to guessing to deploy the model."""
    return 100 * (top1_fraction - 1 / max(classes, 1)) < CHANCE_MARGIN_PP


def near_chance_message(top1_fraction: float, classes: int) -> str:
    return (
        f"top-1 {100 * top1_fraction:.1f}% is within {CHANCE_MARGIN_PP:.0f} points of chance ({100 / classes:.1f}% "
        f"for {classes} classes): the model has not learned the classes, do not deploy it"
    )


ECE_BINS = 15  # equal-width confidence bins, as in Guo et al. (2017)


def reliability(scores: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per confidence bin (top-1 probability): image count, mean confidence, accuracy. Empty bins omitted."""
    confidence, correct = scores.max(1), scores.argmax(1) == targets
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    return [
        {
            "low": b / bins,
            "high": (b + 1) / bins,
            "count": int(np.sum(index == b)),
            "confidence": float(confidence[index == b].mean()),
            "accuracy": float(correct[index == b].mean()),
        }
        for b in range(bins)
        if np.any(index == b)
    ]


def ece(scores: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error (a fraction): the count-weighted gap between confidence and accuracy."""
    rows = reliability(scores, targets, bins)
    total = sum(row["count"] for row in rows)
    return float(sum(row["count"] * abs(row["confidence"] - row["accuracy"]) for row in rows) / total) if total else 0.0


CONSISTENCY_DRAWS = 1000  # simulated label sets: the floor's median and 90th percentile to two decimals
FLOOR_CHUNK = 1 << 22  # random draws made at once (32 MB of float64): all 1,000 sets at once cost 8 KB a photo


def ece_floor(scores: np.ndarray, bins: int = ECE_BINS, draws: int = CONSISTENCY_DRAWS, seed: int = 0) -> dict:
    """The ECE a perfectly calibrated model with these confidences would show on this many images.

    ECE is biased upward on small sets: each bin's accuracy is a sample mean. Consistency resampling
    (Bröcker & Smith, 2007) draws "correct" with probability = confidence for every image, `draws`
    times, and measures ECE each time. A measured ECE inside this range cannot be told apart from
    perfect calibration on this data (beans' 128 test images: 3.6 %, by `edgetl bench`). The sets are
    drawn a few at a time, from one generator: the same numbers as all at once, in flat memory.
    """
    confidence = np.asarray(scores, dtype=np.float64).max(1)
    if not len(confidence):
        return {"median": 0.0, "p90": 0.0}
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    rng = np.random.default_rng(seed)
    confidence_sum = np.bincount(index, weights=confidence, minlength=bins)
    per_chunk, gaps = max(1, FLOOR_CHUNK // len(confidence)), []
    for start in range(0, draws, per_chunk):
        correct = rng.random((min(per_chunk, draws - start), len(confidence))) < confidence
        correct_sum = np.stack([np.bincount(index, weights=row, minlength=bins) for row in correct])
        gaps.append(np.abs(confidence_sum - correct_sum).sum(1) / len(confidence))  # Σ_bins count·|conf − acc| / total
    every = np.concatenate(gaps)
    return {"median": float(np.median(every)), "p90": float(np.quantile(every, 0.9))}


def retention_threshold(inside: np.ndarray, retention: float) -> float:
    """The score below which `retention` of these in-class images fall: the rejection threshold that keeps them."""
    return float(np.quantile(inside, retention))


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """Probability that an out-of-distribution image scores higher than an in-class one (ties count half)."""
    if not len(inside) or not len(outside):
        return float("nan")
    values = np.concatenate([inside, outside]).astype(np.float64)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # rank (0-based) of the first of each group of equal values
    ranks = first[inverse] + (counts[inverse] + 1) / 2  # mid-ranks, 1-based
    outside_ranks = ranks[len(inside) :].sum()
    return float((outside_ranks - len(outside) * (len(outside) + 1) / 2) / (len(inside) * len(outside)))
