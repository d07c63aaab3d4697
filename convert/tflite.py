"""Keras model → SavedModel → `.tflite`, in the four flavours, builtin ops only.

The SavedModel route (`model.export`) is the one Keras documents for Keras 3;
`TFLiteConverter.from_keras_model` has failed on some Keras 3 models (TF #63867, #63987).
Full-integer quantization is done in two steps, calibrate then quantize, so the repair can
re-quantize with some layers kept in float without calibrating again.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import keras
import numpy as np
import tensorflow as tf
from tensorflow.lite.python import convert as tflite_convert
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from edgetl.edge.interpreter import quiet_native_output
from edgetl.errors import EdgetlError

FLOAT_FORMATS: tuple[str, ...] = ("float32", "fp16", "dynamic")
FORMATS: tuple[str, ...] = ("int8", *FLOAT_FORMATS)
IO_TYPES = {"uint8": tf.uint8, "int8": tf.int8}

Representative = Callable[[], Iterator[list[np.ndarray]]]


@contextmanager
def saved_model(model: keras.Model) -> Iterator[str]:
    """Export the inference graph to a temporary SavedModel."""
    with tempfile.TemporaryDirectory(prefix="edgetl-savedmodel-") as folder:
        path = os.path.join(folder, "model")
        model.export(path, format="tf_saved_model", verbose=False)
        yield path


def _converter(saved: str) -> tf.lite.TFLiteConverter:
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex: the Pi runtimes lack it
    return converter


def _run(converter: tf.lite.TFLiteConverter) -> bytes:
    try:
        with quiet_native_output():
            return converter.convert()
    except Exception as error:  # ConverterError, or ValueError for unsupported graphs
        text = str(error)
        ops = unsupported_ops(text)
        if ops or "ops_custom" in text or "ops_select" in text or "ERROR_NEEDS_FLEX_OPS" in text:
            raise EdgetlError(
                f"The model needs ops that TFLite has no builtin kernel for ({', '.join(ops) or 'names not given'}); "
                "they would need the Flex delegate or custom kernels, which the Raspberry Pi runtimes do not have.",
                "Replace the layers that use them (tensorflow.org/lite/guide/ops_compatibility).",
            ) from None
        first = next((line for line in text.splitlines() if "error" in line.lower()), text.splitlines()[0])
        raise EdgetlError(
            f"TFLite conversion failed: {first.strip()[:300]}", "Check that the model runs in Keras."
        ) from None


def unsupported_ops(converter_error: str) -> list[str]:
    """The TensorFlow op names a converter error says have no builtin kernel, e.g. ['Conv2D', 'Mul']."""
    listed = re.findall(r"(?:Custom|Flex|Select TF) ops: ([\w, ]+)", converter_error)
    named = re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", converter_error)
    return sorted({op.strip() for group in listed for op in group.split(",") if op.strip()} | set(named))


def convert_float(saved: str, kind: str) -> bytes:
    """float32, fp16 (float16 weights) or dynamic (int8 weights, float activations)."""
    converter = _converter(saved)
    if kind == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif kind == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif kind != "float32":
        raise ValueError(kind)
    return _run(converter)


def calibration_converter(saved: str, representative: Representative) -> tf.lite.TFLiteConverter:
    """A converter set up for full-integer quantization (also what the quantization debugger needs)."""
    converter = _converter(saved)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter


def calibrate(saved: str, representative: Representative) -> bytes:
    """A float model annotated with the activation ranges seen on the representative data."""
    converter = calibration_converter(saved, representative)
    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True  # noqa: SLF001 - the documented selective-quantization route
    return _run(converter)


def quantize(calibrated: bytes, io_type: str, keep_float: list[str] | None = None) -> bytes:
    """Full-integer model from a calibrated one; `keep_float` names op outputs left in float."""
    dtype = IO_TYPES[io_type]
    try:
        with quiet_native_output():
            return tflite_convert.mlir_quantize(
                calibrated,
                input_data_type=dtype,
                output_data_type=dtype,
                denylisted_nodes=keep_float or None,
            )
    except Exception as error:
        raise EdgetlError(
            f"int8 quantization failed: {str(error).splitlines()[0][:300]}",
            "Try --fp16 or --dynamic, which do not quantize activations.",
        ) from None


def op_counts(model: bytes) -> dict[str, int]:
    """Operator name → count, e.g. {'CONV_2D': 35, 'DEQUANTIZE': 2}."""
    tflite = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    names = [_opcode_name(tflite, index) for index in range(len(tflite.operatorCodes))]
    counts: dict[str, int] = {}
    for subgraph in tflite.subgraphs:
        for op in subgraph.operators:
            counts[names[op.opcodeIndex]] = counts.get(names[op.opcodeIndex], 0) + 1
    return counts


def _opcode_name(tflite, index: int) -> str:
    custom = tflite.operatorCodes[index].customCode
    return custom.decode() if custom else str(flatbuffer_utils.opcode_to_name(tflite, index))


def check_builtin(model: bytes) -> None:
    """Custom or Flex ops do not run on the Pi runtimes: refuse them."""
    builtin = set(vars(schema.BuiltinOperator))
    custom = sorted(name for name in op_counts(model) if name not in builtin)
    if custom:
        raise EdgetlError(
            f"The converted model uses non-builtin ops ({', '.join(custom)}), which the Pi runtimes cannot run.",
            "Replace the layers that produce them.",
        )


def float_ops(model: bytes) -> int:
    """How many compute ops run in float in a quantized model (0 means every op is int8)."""
    tflite = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    names = [_opcode_name(tflite, index) for index in range(len(tflite.operatorCodes))]
    float_types = {0, 1}  # FLOAT32, FLOAT16 in schema.fbs TensorType
    count = 0
    for subgraph in tflite.subgraphs:
        for op in subgraph.operators:
            name = names[op.opcodeIndex]
            if name in ("QUANTIZE", "DEQUANTIZE"):
                continue
            outputs = [subgraph.tensors[i] for i in op.outputs if i >= 0]
            if any(tensor.type in float_types for tensor in outputs):
                count += 1
    return count
