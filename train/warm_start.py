"""`edgetl train … --from RUN`'s warm start: the new run begins where the parent ended, not at ImageNet.

The backbone takes the parent's weights, its fine-tuned top included. Each class the parent knew keeps its
row of the classifier (as logits before calibration: the saved layer holds them divided by the temperature);
a class the parent never saw starts from a fresh row. Both phases then train as usual, on the parent's split.
`benchmarks/warm_start.py` measures it against a cold start (ImageNet weights, the same split).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass

import keras
import numpy as np

from edgetl.backbones import backbone_spec
from edgetl.errors import EdgetlError
from edgetl.rundir import RunInfo
from edgetl.train.config import TrainConfig
from edgetl.train.models import Classifier
from edgetl.train.open_world import PROBABILITIES_OUTPUT, raw_head

COLD_START = "pass --no-warm-start to start from ImageNet on the same split."


@dataclass(frozen=True)
class ParentWeights:
    """What the new run takes from its parent, read once (before any distribution strategy's scope)."""

    backbone: list[np.ndarray]  # in the backbone's own variable order
    kernel: np.ndarray  # pooled features × the parent's classes, before calibration
    bias: np.ndarray
    labels: list[str]  # the parent's classes, in its output order


def _architecture(backbone: str, alpha: float | None) -> str:
    return f"{backbone}" + (f" (alpha {alpha})" if alpha is not None else "")


def check_architecture(parent: RunInfo, config: TrainConfig) -> None:
    """The parent's weights fit only the same backbone at the same width (any input size fits). Checked before
    anything is written; the weights themselves are read once the distribution strategy exists."""
    if not zipfile.is_zipfile(parent.model_path):  # missing or cut short: a .keras file is a zip
        raise EdgetlError(
            f"{parent.model_path} is missing or damaged.",
            f"Restore the parent run, or {COLD_START}",
        )
    asked = (config.backbone, config.alpha if backbone_spec(config.backbone).has_width else None)
    had = (parent.model.backbone, parent.model.alpha)
    if asked != had:
        raise EdgetlError(
            f"{parent.directory} is a {_architecture(*had)}; this run asks for {_architecture(*asked)}.",
            f"To start from its weights train the same: --model {had[0]}"
            + (f" --alpha {had[1]}" if had[1] is not None else "")
            + f"; or {COLD_START}",
        )


def read_parent_weights(parent: RunInfo) -> ParentWeights:
    """The parent's backbone and classifier weights, from its model.keras."""
    try:
        model = keras.models.load_model(parent.model_path, compile=False)
    except Exception as error:  # a missing, truncated or foreign file: Keras raises many kinds
        raise EdgetlError(
            f"Could not load {parent.model_path} to start from it: {str(error).splitlines()[0]}",
            f"Restore the parent run, or {COLD_START}",
        ) from None
    backbone = next((layer for layer in model.layers if isinstance(layer, keras.Model)), None)
    names = {layer.name for layer in model.layers}
    if backbone is None or not names & {"predictions", PROBABILITIES_OUTPUT}:
        raise EdgetlError(
            f"{parent.model_path} is not a model `edgetl train` wrote (no backbone and classifier).",
            f"Restore the parent run, or {COLD_START}",
        )
    kernel, bias = raw_head(model, parent.open_world.temperature if parent.open_world else None)
    return ParentWeights(backbone.get_weights(), kernel, bias, list(parent.labels))


def apply(clf: Classifier, parent: ParentWeights, classes: list[str]) -> None:
    """Load the parent's weights into `clf` (built for `classes`): its rows for the classes it knew."""
    try:
        clf.backbone.set_weights(parent.backbone)
    except ValueError as error:  # edgetl.json says one architecture, model.keras holds another
        raise EdgetlError(
            f"The parent's backbone weights do not fit this backbone: {str(error).splitlines()[0]}",
            f"Restore the parent run, or {COLD_START}",
        ) from None
    dense = clf.model.get_layer("predictions")
    kernel, bias = dense.get_weights()
    for row, name in enumerate(classes):
        if name in parent.labels:
            was = parent.labels.index(name)
            kernel[:, row], bias[row] = parent.kernel[:, was], parent.bias[was]
    dense.set_weights([kernel, bias])
