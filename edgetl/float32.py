"""A mixed-precision Keras model rebuilt in float32, weights kept.

Training on a GPU runs in mixed float16 (`mixed_float16` layers compute in float16 on float32
weights). Saved as is, the model's SavedModel holds float16 convolutions, which TFLite's builtin
kernels do not take: the converter would need Flex ops the Raspberry Pi runtimes lack. The
device wants float32 (or int8) graphs, so training saves, and conversion loads, this copy.
Keras is imported by the caller, never here: the core imports no TensorFlow.
"""

from __future__ import annotations

from typing import Any

MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")


def is_mixed(model: Any) -> bool:
    """True when any layer (nested models included) computes in a reduced-precision policy."""
    return any(
        getattr(layer, "dtype_policy", None) and layer.dtype_policy.name in MIXED_POLICIES for layer in _walk(model)
    )


def as_float32(model: Any) -> Any:
    """The same architecture with every dtype policy float32, and the same weights (already float32)."""
    if not is_mixed(model):
        return model
    import keras

    config = _float32_config(keras.saving.serialize_keras_object(model))
    rebuilt = keras.saving.deserialize_keras_object(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def _walk(model: Any):
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from _walk(layer)


def _float32_config(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _float32_config(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_float32_config(item) for item in value]
    return "float32" if value in MIXED_POLICIES else value
