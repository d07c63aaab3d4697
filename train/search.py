"""The most accurate configuration within a latency budget, measured on the user's device.

Latencies come from a device profile (`edgetl bench PROFILE_DIR` on the device: int8, at the camera's
thread count). Accuracy is estimated cheaply for each candidate within the budget: one pass of its frozen
ImageNet backbone over a sample of the training split and the validation split, then a softmax
classifier fitted on those features (phase 1 of training, in miniature). Feature extraction ranks
configurations the way fine-tuning does closely enough to choose among them (benchmarks/latency_budget.py
measures how closely); the winner is then trained fully.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import numpy as np

from edgetl.errors import EdgetlError
from edgetl.latency import Candidate, profiled_latencies
from edgetl.rundir import write_json
from edgetl.train.config import TrainConfig
from edgetl.train.data import DatasetIndex
from edgetl.train.models import build_classifier, resolve_weights
from edgetl.train.pipeline import image_dataset
from edgetl.train.report import pyplot, save_figure

SEARCH_FILE = "search.json"
SEARCH_PLOT = "search.png"
ESTIMATE_IMAGES_PER_CLASS = 100  # training images per class the estimate sees (all, if fewer)
ESTIMATE_EPOCHS = 30  # of the softmax classifier on cached features: seconds, not minutes


@dataclass
class Estimate:
    candidate: Candidate
    latency_ms: float
    threads: int
    val_top1: float | None = None  # estimated; None when not estimated
    status: str = "estimated"  # estimated | chosen | over budget | skipped: why
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {**asdict(self), "candidate": asdict(self.candidate), "name": self.candidate.name}


def estimate_accuracy(
    candidate: Candidate, index: DatasetIndex, config: TrainConfig, weights: str | None
) -> tuple[float, float]:
    """(validation top-1 of a softmax classifier on the frozen backbone's features, seconds)."""
    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    k = len(index.classes)
    clf = build_classifier(candidate.backbone, k, size=candidate.size, alpha=candidate.alpha, weights=weights)
    train = _sample(index.splits["train"], k, config.seed)

    def features(samples: list) -> tuple[np.ndarray, np.ndarray]:
        ds = image_dataset(samples, k, size=candidate.size, resize=config.resize, one_hot=False)
        feats, labels = zip(*((np.asarray(clf.features(x, training=False)), np.asarray(y)) for x, y in ds))
        return np.concatenate(feats), np.concatenate(labels)

    (x_train, y_train), (x_val, y_val) = features(train), features(index.splits["validation"])
    head = keras.Sequential([keras.Input((x_train.shape[1],)), keras.layers.Dense(k, activation="softmax")])
    head.compile(optimizer=keras.optimizers.Adam(config.head_lr), loss="sparse_categorical_crossentropy")
    head.fit(x_train, y_train, epochs=ESTIMATE_EPOCHS, batch_size=config.batch_size, verbose=0)
    top1 = float(np.mean(head.predict(x_val, verbose=0).argmax(1) == y_val))
    keras.backend.clear_session()
    return top1, time.perf_counter() - started


def _sample(samples: list, classes: int, seed: int) -> list:
    """At most ESTIMATE_IMAGES_PER_CLASS per class, seeded."""
    rng = random.Random(seed)
    chosen = []
    for label in range(classes):
        of_class = [s for s in samples if s.label == label]
        chosen += rng.sample(of_class, min(len(of_class), ESTIMATE_IMAGES_PER_CLASS))
    return chosen


def _weights_for(candidate: Candidate, config: TrainConfig) -> str | None:
    """The weights the candidate would train from; `--weights PATH` fits one width only (its own)."""
    if config.weights not in ("imagenet", "none") and candidate.alpha != config.alpha:
        raise EdgetlError(f"--weights {config.weights} is for alpha {config.alpha}")
    return resolve_weights(candidate.backbone, config.weights, candidate.alpha, candidate.size)


def search(
    index: DatasetIndex,
    config: TrainConfig,
    progress: Callable[[Estimate, int, int], None] = lambda estimate, done, total: None,
) -> tuple[TrainConfig, list[Estimate], dict]:
    """Rank the profiled candidates within `config.max_latency`: (the config to train, with the winner's
    backbone, width and size; every candidate's estimate; what search.json records)."""
    if config.weights == "none":
        raise EdgetlError(
            "--max-latency ranks candidates by their pretrained features; --weights none has none.",
            "Use --weights imagenet (or a .h5 file), or choose --alpha and --size yourself.",
        )
    started = time.perf_counter()
    profiled, environment = profiled_latencies(Path(config.device_profile or ""))
    estimates = [Estimate(p.candidate, p.median_ms, p.threads) for p in sorted(profiled, key=lambda p: p.median_ms)]
    for estimate in estimates:
        if estimate.latency_ms > config.max_latency:
            estimate.status = "over budget"
    within = [e for e in estimates if e.status != "over budget"]
    if not within:
        fastest = estimates[0]
        raise EdgetlError(
            f"No profiled model runs within {config.max_latency} ms on that device: the fastest, "
            f"{fastest.candidate.describe()}, takes {fastest.latency_ms:.2f} ms.",
            "Raise --max-latency, or profile smaller models (edgetl profile).",
        )
    for done, estimate in enumerate(within):
        try:
            weights = _weights_for(estimate.candidate, config)
            estimate.val_top1, estimate.seconds = estimate_accuracy(estimate.candidate, index, config, weights)
        except EdgetlError as error:  # offline without its weights, or --weights PATH of another width
            estimate.status = f"skipped: {error.message}"
        progress(estimate, done + 1, len(within))
    ranked = [e for e in within if e.val_top1 is not None]
    if not ranked:
        raise EdgetlError(
            f"None of the {len(within)} candidates within {config.max_latency} ms has ImageNet weights here "
            f"({within[0].status}).",
            "Connect to the internet once (Keras caches the weights), or pass --weights PATH.",
        )
    winner = max(ranked, key=lambda e: (e.val_top1, -e.latency_ms))  # the faster on a tie
    winner.status = "chosen"
    chosen = replace(
        config, backbone=winner.candidate.backbone, alpha=winner.candidate.alpha, size=winner.candidate.size
    )
    report = {
        "max_latency_ms": config.max_latency,
        "device_profile": str(config.device_profile),
        "device": environment,
        "threads": winner.threads,
        "estimate": f"frozen features, ≤ {ESTIMATE_IMAGES_PER_CLASS} training images per class, "
        f"{ESTIMATE_EPOCHS} epochs of a softmax classifier; validation top-1",
        "chosen": winner.candidate.name,
        "why": f"the highest estimated validation top-1 ({winner.val_top1:.1%}) of {len(ranked)} candidates "
        f"within {config.max_latency} ms (it takes {winner.latency_ms:.2f} ms at {winner.threads} thread(s))",
        "seconds": round(time.perf_counter() - started, 1),
        "candidates": [e.to_json() for e in estimates],
    }
    return chosen, estimates, report


def write_search(work: Path, estimates: list[Estimate], report: dict) -> None:
    """search.json and search.png in the run directory."""
    write_json(work / SEARCH_FILE, report)
    plot(estimates, report["max_latency_ms"], work / SEARCH_PLOT)


def plot(estimates: list[Estimate], budget: float, path: Path) -> None:
    """Estimated accuracy against device latency: the candidates, the Pareto front, the budget, the winner."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ranked = sorted((e for e in estimates if e.val_top1 is not None), key=lambda e: e.latency_ms)
    ax.scatter([e.latency_ms for e in ranked], [100 * e.val_top1 for e in ranked], color="tab:blue", label="estimated")
    front, best = [], -1.0
    for e in ranked:
        if e.val_top1 > best:
            front.append(e)
            best = e.val_top1
    ax.plot([e.latency_ms for e in front], [100 * e.val_top1 for e in front], color="tab:blue", alpha=0.5)
    for e in ranked:
        ax.annotate(e.candidate.name.replace("mobilenet_v2_", "mnv2 "), (e.latency_ms, 100 * e.val_top1), fontsize=7)
    chosen = [e for e in ranked if e.status == "chosen"]
    ax.scatter([e.latency_ms for e in chosen], [100 * e.val_top1 for e in chosen], marker="*", s=250, color="tab:red")
    ax.axvline(budget, color="red", linestyle="--", label=f"budget {budget} ms")
    over = [e.latency_ms for e in estimates if e.status == "over budget"]
    if over:
        ax.scatter(over, [ax.get_ylim()[0]] * len(over), marker="|", color="grey", label="over budget (not trained)")
    ax.set_xlabel("int8 latency on the profiled device, ms")
    ax.set_ylabel("estimated validation top-1, %")
    ax.set_title("Latency budget: candidates and the chosen one (★)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
