"""An image classifier ready for the device: model, labels, resize policy, top-k.

Labels come from `--labels`, else the model's own metadata, else a `labels.txt` beside it.
Third-party models are handled from their tensors: float or quantized input and output, and
label files that carry a leading "background" class the model does not score.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgetl.edge.interpreter import ImageClassifierModel
from edgetl.edge.metadata import read_model_info
from edgetl.edge.result import UNKNOWN, UNSURE, ClassScore, Prediction
from edgetl.errors import EdgetlError
from edgetl.images import check_resize, resize_rgb
from edgetl.open_world_card import OpenWorldCard
from edgetl.rundir import LABELS_FILE, read_labels, require_file

# A float model with no metadata is assumed to want [-1, 1], the convention of TFLite's
# label_image example and most published float classifiers; --input-mean/--input-std override it.
DEFAULT_FLOAT_MEAN = 127.5
DEFAULT_FLOAT_STD = 127.5


TOP_K = 3  # labels per result, in classify and camera


@dataclass(frozen=True)
class ClassifierOptions:
    """How a model file becomes a classifier on the device; every default stated once."""

    labels: Path | None = None
    """A labels file (one class per line); default: the model's metadata, else a labels.txt beside it."""
    threads: int | None = None
    """Interpreter threads; None: the runtime's default."""
    backend: str = "auto"
    """auto | litert | tflite-runtime | tensorflow (edge/interpreter.py)."""
    input_mean: float | None = None
    """Float models without metadata: (pixel - mean) / std; default 127.5 and 127.5."""
    input_std: float | None = None
    resize: str | None = None
    """stretch | crop; default: the model card's, else stretch."""
    threshold: float | None = None
    """One top-1 probability threshold for every class (implies `unsure`)."""
    ood_threshold: float | None = None
    """OOD score above it → "unknown" (replaces the model's own)."""
    unsure: bool = False
    """Top-1 probability under its class's threshold (fitted in training) → "unsure"."""


class Classifier:
    def __init__(self, model_path: Path, options: ClassifierOptions = ClassifierOptions()) -> None:  # noqa: B008
        """The model, checked, with its labels, input contract and decision rule."""
        labels, threads, backend = options.labels, options.threads, options.backend
        input_mean, input_std, resize = options.input_mean, options.input_std, options.resize
        threshold, ood_threshold, unsure = options.threshold, options.ood_threshold, options.unsure
        require_file(model_path, "Model", "Pass a .tflite file from `edgetl convert`.")
        if threads is not None and threads < 1:
            raise EdgetlError(f"--threads {threads} is not a thread count.", "Use 1 or more (a Pi 4/5 has 4 cores).")
        if threshold is not None and not 0 <= threshold <= 1:
            raise EdgetlError(f"--threshold {threshold} is not a probability.", "Use a value from 0 to 1, e.g. 0.5.")
        content = model_path.read_bytes()
        self.sha256 = hashlib.sha256(content).hexdigest()  # every kept frame and result can say which model
        info = read_model_info(content, str(model_path))
        self.version = info.card.version if info.card else ""  # the run it came from, when its card says
        self.warnings = [f"{model_path}: {warning}" for warning in info.warnings]  # the commands print them
        self.model = ImageClassifierModel(content, threads=threads, backend=backend, name=str(model_path))
        self.model.set_normalization(self._normalization(self.model, info.mean, info.std, input_mean, input_std))
        if self.model.height != self.model.width:
            raise EdgetlError(
                f"{model_path.name} takes {self.model.height}x{self.model.width} images.", "edgetl needs square inputs."
            )
        self.size = self.model.height
        self.resize = resize or (info.card.resize if info.card else None) or "stretch"
        check_resize(self.resize)
        self.labels = self._labels(model_path, labels, info.labels)
        self.path = model_path
        self.fitted = (info.card.open_world if info.card else None) or OpenWorldCard()  # what training fitted
        self.ood_threshold, self.class_thresholds = self._rejection(self.fitted, threshold, ood_threshold)
        self.unsure = unsure or threshold is not None

    def with_rule(self, threshold: float | None, ood_threshold: float | None, unsure: bool) -> Classifier:
        """This model with other decision options (a region's): a shallow copy sharing the interpreter."""
        if threshold is None and ood_threshold is None and not unsure:
            return self  # as loaded (the command line's options, else what training fitted)
        if threshold is not None and not 0 <= threshold <= 1:
            raise EdgetlError(f"threshold {threshold} is not a probability.", "Use a value from 0 to 1, e.g. 0.5.")
        ruled = copy.copy(self)
        ruled.ood_threshold, ruled.class_thresholds = self._rejection(self.fitted, threshold, ood_threshold)
        ruled.unsure = unsure or threshold is not None
        return ruled

    def _rejection(self, fitted: OpenWorldCard, threshold: float | None, ood_threshold: float | None) -> tuple:
        """(OOD threshold, per-class probability thresholds): the options win, then what training fitted."""
        if ood_threshold is not None and not self.model.has_ood_score:
            raise EdgetlError(
                f"{self.path.name} has no out-of-distribution score, so --ood-threshold cannot apply.",
                "Use --threshold (top-1 probability), or a model trained by this edgetl version.",
            )
        if ood_threshold is None and self.model.has_ood_score and fitted.ood:
            ood_threshold = fitted.ood.threshold
        per_class = fitted.class_thresholds or [None] * self.model.classes
        if threshold is not None:
            per_class = [threshold] * self.model.classes
        return ood_threshold, list(per_class)

    @staticmethod
    def _normalization(model, meta_mean, meta_std, input_mean, input_std) -> tuple | None:
        """The options win, then the model's metadata; without either, float models get [-1, 1] and
        quantized ones raw pixels (the conventions of published classifiers)."""
        if input_mean is not None or input_std is not None:
            return (0.0 if input_mean is None else input_mean), (1.0 if input_std is None else input_std)
        if meta_mean and meta_std:
            mean = meta_mean if len(meta_mean) > 1 else meta_mean[0]
            std = meta_std if len(meta_std) > 1 else meta_std[0]
            return (0.0, 1.0) if (np.allclose(mean, 0) and np.allclose(std, 1)) else (mean, std)
        if np.issubdtype(model.input_dtype, np.floating):
            return DEFAULT_FLOAT_MEAN, DEFAULT_FLOAT_STD
        return None

    def _labels(self, model_path: Path, option: Path | None, embedded: list[str]) -> list[str]:
        if option is not None:
            names, source = read_labels(option), str(option)
        elif embedded:
            names, source = embedded, "the model's metadata"
        elif (model_path.parent / LABELS_FILE).is_file():
            names = read_labels(model_path.parent / LABELS_FILE)
            source = str(model_path.parent / LABELS_FILE)
        else:
            return [f"class_{i}" for i in range(self.model.classes)]
        if len(names) == self.model.classes + 1 and names[0].lower() in ("background", "__background__", "???"):
            names = names[1:]  # a label file written for a model that also scored "background"
        if len(names) != self.model.classes:
            raise EdgetlError(
                f"{source} names {len(names)} classes but the model scores {self.model.classes}.",
                "Pass the labels file that belongs to this model with --labels.",
            )
        return names

    def prepare_rgb(self, rgb: np.ndarray) -> np.ndarray:
        return resize_rgb(rgb, self.size, self.resize)  # type: ignore[arg-type]

    def prepare_bgr(self, frame: np.ndarray) -> np.ndarray:
        """A camera frame (OpenCV BGR) → model-size RGB: resize first, then swap channels on the small image.

        Resizing is per channel, so the result equals converting first (what training did) bit for bit."""
        return cv2.cvtColor(resize_rgb(frame, self.size, self.resize), cv2.COLOR_BGR2RGB)  # type: ignore[arg-type]

    def scores(self, prepared: np.ndarray) -> tuple[np.ndarray, float | None]:
        """(class probabilities, OOD score or None) for one prepared image."""
        return self.model.scores(prepared), self.model.ood_score()

    def decide(self, scores: np.ndarray, ood_score: float | None, k: int) -> Prediction:
        """Top-k and the decision: "unknown" when the OOD score is over its threshold, else (when asked for)
        "unsure" when the top-1 probability is under its class's threshold, else the top class. The one rule
        classify, camera and bench apply."""
        order = np.argsort(-scores)
        top, floor = int(order[0]), self.class_thresholds[int(order[0])]
        under = floor is not None and scores[top] < floor
        if ood_score is not None and self.ood_threshold is not None and ood_score > self.ood_threshold:
            decision = UNKNOWN
        else:
            decision = UNSURE if self.unsure and under else self.labels[top]
        margin = float(scores[top] - scores[order[1]]) if len(order) > 1 else 1.0
        top_k = tuple(ClassScore(self.labels[i], float(scores[i])) for i in order[:k])
        return Prediction(top_k, decision, ood_score, bool(under), margin)
