"""Backbones, in-model preprocessing, fine-tuning's frozen BatchNorm, and how weights are found."""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
import pytest

from edgetl.backbones import BACKBONES, EFFICIENTNET_B0, MOBILENET_V2, backbone_spec
from edgetl.errors import EdgetlError
from edgetl.latency import default_candidates
from edgetl.train.models import build_backbone, build_classifier, preprocessing_layer, resolve_weights, unfreeze_top


def test_mobilenet_preprocessing_maps_raw_pixels_to_minus_one_one() -> None:
    layer = preprocessing_layer("mobilenet_v2")
    out = np.asarray(layer(np.array([[0.0, 127.5, 255.0]], dtype=np.float32)))
    np.testing.assert_allclose(out, [[-1.0, 0.0, 1.0]], atol=1e-6)


def test_classifier_outputs_probabilities_and_shares_its_head() -> None:
    clf = build_classifier("mobilenet_v2", 3, size=64, alpha=0.35, weights=None)
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    probs = np.asarray(clf.model(x, training=False))
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    via_head = np.asarray(clf.head(clf.features(x, training=False), training=False))
    np.testing.assert_allclose(probs, via_head, atol=1e-5)
    assert not clf.backbone.trainable


def test_unfreeze_from_block_keeps_batchnorm_frozen() -> None:
    clf = build_classifier("mobilenet_v2", 3, size=64, alpha=0.35, weights=None)
    count = unfreeze_top(clf.backbone, from_layer="block_15")
    trainable = [layer for layer in clf.backbone.layers if layer.trainable]
    assert count > 0 and all(not isinstance(layer, keras.layers.BatchNormalization) for layer in trainable)
    names = [layer.name for layer in clf.backbone.layers]
    assert all(names.index(layer.name) >= names.index("block_15_expand") for layer in trainable)
    assert unfreeze_top(clf.backbone, top_layers=5) <= 5
    with pytest.raises(EdgetlError, match="no layer named like 'block_99'"):
        unfreeze_top(clf.backbone, from_layer="block_99")


def test_cached_imagenet_file_for_another_size_is_used_by_path(keras_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    resolved = resolve_weights("mobilenet_v2", "imagenet", 0.35, 96)  # Keras would want the _96_ file
    assert resolved.endswith("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5")
    assert resolve_weights("mobilenet_v2", "imagenet", 1.0, 224) == "imagenet"  # exact file: Keras' own path
    clf = build_classifier("mobilenet_v2", 2, size=96, alpha=0.35, weights=resolved)
    assert clf.model.output.shape[-1] == 2


def test_missing_download_names_the_way_out(tmp_path: Path, monkeypatch) -> None:
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid: None -- [Errno -3] name resolution")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(EdgetlError) as caught:
        build_classifier(
            "mobilenet_v2", 2, size=96, alpha=0.35, weights=resolve_weights("mobilenet_v2", "imagenet", 0.35, 96)
        )
    assert "--weights PATH" in str(caught.value) and str(tmp_path / "models") in str(caught.value)


def test_bad_weights_arguments() -> None:
    with pytest.raises(EdgetlError, match="does not exist"):
        resolve_weights("mobilenet_v2", "/nowhere/weights.h5", 1.0, 224)
    with pytest.raises(EdgetlError, match="no alpha 0.6"):
        build_classifier("mobilenet_v2", 2, size=96, alpha=0.6, weights=None)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_each_registered_backbone_builds_with_its_own_facts(name: str) -> None:
    """What adding a backbone asks of its registry entry: it builds, its default fine-tuning block exists,
    its preprocessing is what edgetl.json records, and its profile candidates are named by it."""
    spec = BACKBONES[name]
    clf = build_classifier(name, 2, size=32 if spec.has_width else 64, alpha=spec.widths[0], weights=None)
    assert unfreeze_top(clf.backbone, from_layer=spec.unfreeze_from) > 0
    raw = np.array([[0.0, 255.0]], dtype=np.float32)
    expected = (raw - spec.preprocessing()["mean"][0]) / spec.preprocessing()["std"][0]
    np.testing.assert_allclose(np.asarray(preprocessing_layer(name)(raw)), expected, atol=1e-6)
    names = {candidate.name for candidate in default_candidates() if candidate.backbone == name}
    assert len(names) == len(spec.widths) * len(spec.profile_sizes)
    if spec.has_width:
        with pytest.raises(EdgetlError, match=re.escape(f"has no alpha 0.6. Use one of {list(spec.widths)}")):
            build_backbone(name, 32, 0.6, None)


def test_keras_own_weights_file_comes_first_then_other_sizes_of_the_same_width() -> None:
    assert MOBILENET_V2.weights_files(0.5, 96)[0] == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_96_no_top.h5"
    assert MOBILENET_V2.weights_files(0.5, 100)[0].endswith("_0.5_224_no_top.h5")  # Keras' choice off its sizes
    assert len(MOBILENET_V2.weights_files(1.0, 224)) == 5 and EFFICIENTNET_B0.weights_files(1.0, 96) == [
        "efficientnetb0_notop.h5"
    ]
    with pytest.raises(EdgetlError, match="Unknown --model 'resnet'. Use one of: mobilenet_v2, efficientnet_b0"):
        backbone_spec("resnet")
