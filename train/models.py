"""Backbones from keras.applications, with their preprocessing inside the model and a new head.

The model takes raw RGB pixels 0–255: each backbone's own scaling is a layer in the graph, so
conversion, calibration and the camera feed raw pixels and cannot get normalisation wrong.
(The classic tutorial rescales by 1/255 for every backbone; MobileNetV2 expects [-1, 1].)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from edgetl.backbones import backbone_spec
from edgetl.errors import EdgetlError


@dataclass
class Classifier:
    """The full model and the two views of it that phase 1 trains through."""

    model: keras.Model  # raw pixels → class probabilities
    backbone: keras.Model
    features: keras.Model  # raw pixels → pooled backbone features
    head: keras.Model  # pooled features → class probabilities (shares its layers with `model`)
    pretrained: bool  # False: random initialisation, so fine-tuning trains everything, BatchNorm included


def keras_cache_dir() -> Path:
    """Keras' cache folder: `$KERAS_HOME`, else `~/.keras`; downloaded weights go in `models/`."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def resolve_weights(backbone: str, weights: str, alpha: float, size: int) -> str | None:
    """Turn --weights (imagenet | none | PATH) into what keras.applications accepts.

    Keras picks a backbone's ImageNet file by input size; the weights fit any size, so a cached
    file for the same width at another size is used by path instead of downloading.
    """
    if weights == "none":
        return None
    if weights != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise EdgetlError(f"Weights file {path} does not exist.", "Pass --weights imagenet, none, or a .h5 file.")
        return str(path)
    cache = keras_cache_dir() / "models"
    own, *others = backbone_spec(backbone).weights_files(alpha, size)
    if not (cache / own).exists():
        for name in others:
            if (cache / name).exists():
                return str(cache / name)
    return "imagenet"


def expected_weights_file(backbone: str, alpha: float, size: int) -> Path:
    return keras_cache_dir() / "models" / backbone_spec(backbone).weights_files(alpha, size)[0]


def build_backbone(backbone: str, size: int, alpha: float, weights: str | None) -> keras.Model:
    """An ImageNet backbone without its classifier, global-average pooled."""
    spec = backbone_spec(backbone)
    spec.check_width(alpha)
    width = {"alpha": alpha} if spec.has_width else {}
    try:
        return getattr(keras.applications, spec.keras_name)(
            input_shape=(size, size, 3), include_top=False, weights=weights, pooling="avg", **width
        )
    except Exception as error:
        if weights == "imagenet":
            raise EdgetlError(
                f"Could not download the ImageNet weights for {backbone} (no internet?).",
                f"Pass --weights PATH to a local .h5 file, or put it in Keras' cache as "
                f"{expected_weights_file(backbone, alpha, size)} (or --weights none).",
            ) from error
        raise EdgetlError(
            f"Could not load weights {weights} into {backbone} (alpha {alpha}): {str(error).splitlines()[0]}",
            "Check that the file is a no-top weights file for this backbone and alpha.",
        ) from error


def inference(model: keras.Model) -> Callable[[Any], tf.Tensor]:
    """`model` in inference mode as one compiled graph: eager calls run op by op, much slower on a CPU
    (benchmarks/finetune_step.py times both)."""
    return tf.function(lambda images: model(images, training=False), reduce_retracing=True)


def preprocessing_layer(backbone: str) -> keras.layers.Layer:
    """Raw 0–255 RGB → what the backbone was trained on."""
    spec = backbone_spec(backbone)
    if (spec.mean, spec.std) == (0.0, 1.0):
        return keras.layers.Identity(name="preprocess")  # it rescales and normalises inside itself
    return keras.layers.Rescaling(1 / spec.std, offset=-spec.mean / spec.std, name="preprocess")


def build_classifier(
    backbone_name: str,
    num_classes: int,
    *,
    size: int = 224,
    alpha: float = 1.0,
    weights: str | None = "imagenet",
    dropout: float = 0.2,
) -> Classifier:
    """Input(0–255 RGB) → preprocessing → frozen backbone (BatchNorm in inference mode) → dropout → softmax."""
    backbone = build_backbone(backbone_name, size, alpha, weights)
    backbone.trainable = False
    pretrained = weights is not None
    if not pretrained:
        # Keras' MobileNetV2 BatchNorm momentum (0.999) needs thousands of steps before its moving
        # statistics are usable; a small dataset trained from scratch never gets there.
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.9
    inputs = keras.Input(shape=(size, size, 3), name="image")
    # Pretrained: BatchNorm always in inference mode, keeping ImageNet statistics. From scratch
    # (weights None) there are no statistics to keep, so BatchNorm follows fit()'s training flag.
    features = backbone(preprocessing_layer(backbone_name)(inputs), training=False if pretrained else None)
    dropout_layer = keras.layers.Dropout(dropout, name="head_dropout")
    # float32 output keeps softmax stable under mixed precision.
    dense = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")
    outputs = dense(dropout_layer(features))
    model = keras.Model(inputs, outputs, name=f"edgetl_{backbone_name}")
    feature_input = keras.Input(shape=(features.shape[-1],), name="features")
    head = keras.Model(feature_input, dense(dropout_layer(feature_input)), name="head")
    return Classifier(model, backbone, keras.Model(inputs, features, name="features"), head, pretrained)


def unfreeze_start(backbone: keras.Model, *, from_layer: str | None = None, top_layers: int | None = None) -> int:
    """Index of the first backbone layer that fine-tuning trains: the top N layers, or from a named block."""
    layers = backbone.layers
    if top_layers is not None:
        if not 0 < top_layers <= len(layers):
            raise EdgetlError(f"--unfreeze {top_layers} is out of range.", f"The backbone has {len(layers)} layers.")
        return len(layers) - top_layers
    names = [layer.name for layer in layers]
    matches = [i for i, name in enumerate(names) if name.startswith(from_layer or "")]
    if not from_layer or not matches:
        blocks = sorted({m.group(0) for name in names if (m := re.match(r"block_?\d+[a-z]?", name))})
        raise EdgetlError(f"The backbone has no layer named like '{from_layer}'.", f"Blocks: {', '.join(blocks)}.")
    return matches[0]


def unfreeze_top(
    backbone: keras.Model,
    *,
    from_layer: str | None = None,
    top_layers: int | None = None,
    batchnorm: bool = False,
) -> int:
    """Make the top of the backbone trainable; return how many layers with weights will train.

    BatchNorm stays frozen unless `batchnorm` (pretrained backbones are also called with
    training=False), so fine-tuning on a small dataset does not wreck the ImageNet statistics.
    """
    start = unfreeze_start(backbone, from_layer=from_layer, top_layers=top_layers)
    backbone.trainable = True
    trainable = 0
    for i, layer in enumerate(backbone.layers):
        layer.trainable = i >= start and (batchnorm or not isinstance(layer, keras.layers.BatchNormalization))
        trainable += int(layer.trainable and bool(layer.weights))
    return trainable
