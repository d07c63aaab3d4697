"""Metrics and pictures of a trained model: accuracy, per-class precision/recall/F1, confusion matrix,
training curves. NumPy for the numbers (no scikit-learn needed for this much), matplotlib for the PNGs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgetl.metrics import TOP5_FROM_CLASSES, top1, topk


def classification_metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Top-1 (and top-5 with more than five classes), per-class P/R/F1 and the confusion matrix."""
    k = len(classes)
    predicted = probs.argmax(axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    metrics: dict[str, Any] = {
        "count": int(len(labels)),
        "top1": top1(probs, labels),
    }
    if k >= TOP5_FROM_CLASSES:
        metrics["top5"] = topk(probs, labels, 5)
    per_class = {}
    for i, name in enumerate(classes):
        tp = confusion[i, i]
        precision = tp / confusion[:, i].sum() if confusion[:, i].sum() else 0.0
        recall = tp / confusion[i].sum() if confusion[i].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(confusion[i].sum()),
        }
    metrics["per_class"] = per_class
    metrics["macro_f1"] = float(np.mean([c["f1"] for c in per_class.values()]))
    metrics["confusion_matrix"] = confusion.tolist()
    return metrics


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works on headless machines
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Loss and accuracy per epoch, both phases on one time axis, with the phase boundary marked."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(1, len(history) + 1)
    names = {"head": "feature extraction", "finetune": "fine-tuning"}
    phases = [names[p] for p in dict.fromkeys(row["phase"] for row in history)]  # only the phases that ran
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = [row.get(prefix + metric, np.nan) for row in history]
            ax.plot(x, values, style, marker="o", markersize=3, label=("validation " if prefix else "train ") + metric)
        boundaries = [i + 0.5 for i in range(1, len(history)) if history[i]["phase"] != history[i - 1]["phase"]]
        for b in boundaries:
            ax.axvline(b, color="grey", linewidth=1, linestyle=":")
            ax.text(b, ax.get_ylim()[1], " fine-tuning", va="top", fontsize=8, color="grey")
        ax.set_xlabel(f"epoch ({', then '.join(phases)})")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def plot_confusion(confusion: list[list[int]], classes: list[str], path: Path, title: str = "Test set") -> None:
    """Row-normalised confusion matrix with counts in the cells."""
    plt = pyplot()
    matrix = np.asarray(confusion, dtype=float)
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    side = max(4.0, 0.6 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    if len(classes) <= 30:
        for i in range(len(classes)):
            for j in range(len(classes)):
                colour = "white" if normalised[i, j] > 0.5 else "black"
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", color=colour, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: accuracy {np.trace(matrix) / max(matrix.sum(), 1):.1%}")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
