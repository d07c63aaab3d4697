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
OOD_RANGE = 8.0  # the int8 OOD score spans 0 to this many times its threshold

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
    """Full-integer model from a calibrated one; `keep_float` names op outputs left in float.

    An edgetl model's out-of-distribution head always computes in float: calibration sees in-class
    images only, and int8 ranges fitted to them clip exactly the large values that mark an unfamiliar
    image (measured: the int8 score lost its ranking entirely). Its weights are ~0.35 MB of float32 and
    its multiply-adds well under 1 % of MobileNetV2's. The score output itself is uint8, like the
    probabilities (MediaPipe wants all outputs quantized or none), over the range `widen_ood_range` set.
    """
    dtype = IO_TYPES[io_type]
    head = ood_head_ops(calibrated)
    try:
        with quiet_native_output():
            quantized = tflite_convert.mlir_quantize(
                calibrated,
                input_data_type=dtype,
                output_data_type=dtype,
                denylisted_nodes=[*(keep_float or []), *head] or None,
            )
    except Exception as error:
        raise EdgetlError(
            f"int8 quantization failed: {str(error).splitlines()[0][:300]}",
            "Try --fp16 or --dynamic, which do not quantize activations.",
        ) from None
    return quantized


def _ood_output(subgraph) -> int | None:
    """Index of the OOD score output ([1, 1] beside the class scores), or None."""
    found = [index for index in subgraph.outputs if list(subgraph.tensors[index].shape) == [1, 1]]
    return found[0] if len(subgraph.outputs) == 2 and found else None


def widen_ood_range(calibrated: bytes, threshold: float) -> bytes:
    """Let the quantized OOD score span [0, OOD_RANGE × threshold]: calibration saw only in-class scores, and
    an unfamiliar image scores several times higher (`edgetl bench --ood` reports how many are rejected).
    Beyond the range it saturates, still far over the threshold; a uint8 step is 8/255 ≈ 3 % of the threshold."""
    high = OOD_RANGE * threshold
    tflite = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    subgraph = tflite.subgraphs[0]
    output = _ood_output(subgraph)
    quantization = subgraph.tensors[output].quantization if output is not None else None
    if quantization is None or quantization.min is None:
        return calibrated
    quantization.min, quantization.max = np.array([0.0], np.float32), np.array([high], np.float32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(tflite))


def prototypes_in_8_bits(model: bytes) -> bytes:
    """Store the OOD head's prototype matrix as int8, one scale per prototype, dequantized when the model loads.

    `quantize` keeps the head's arithmetic float (see there), and with it this matrix: on beans
    192 × 1280 float32, 1 MB, a quarter of the int8 file. The DEQUANTIZE of a constant is folded when
    the model loads, so the head still computes in float: the rounding moves a cosine distance by under
    2e-3 (tested), and on beans rejections and OOD AUROC are unchanged (benchmarks/prototype_bits.py).
    """
    tflite = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    subgraph = tflite.subgraphs[0]
    position = next((i for i, op in enumerate(subgraph.operators) if _is_prototype_product(tflite, op)), None)
    if position is None:
        return model  # no OOD head, or already compact
    product = subgraph.operators[position]
    weights = subgraph.tensors[product.inputs[1]]
    values = np.frombuffer(bytes(tflite.buffers[weights.buffer].data), np.float32).reshape(weights.shape)
    scale = np.maximum(np.abs(values).max(axis=1), 1e-12) / 127.0
    stored = schema.TensorT()
    stored.name, stored.shape, stored.type = weights.name + b"/int8", weights.shape, schema.TensorType.INT8
    stored.quantization = schema.QuantizationParametersT()
    stored.quantization.scale, stored.quantization.zeroPoint = scale.astype(np.float32), np.zeros(len(scale), np.int64)
    stored.quantization.quantizedDimension = 0
    stored.buffer = _add_buffer(tflite, np.clip(np.round(values / scale[:, None]), -127, 127).astype(np.int8))
    tflite.buffers[weights.buffer].data, weights.buffer = None, 0  # now the DEQUANTIZE's output
    subgraph.tensors.append(stored)
    dequantize = schema.OperatorT()
    dequantize.opcodeIndex = _opcode(tflite, schema.BuiltinOperator.DEQUANTIZE, version=5)  # 5: int8 per channel
    dequantize.inputs, dequantize.outputs = [len(subgraph.tensors) - 1], [product.inputs[1]]
    subgraph.operators.insert(position, dequantize)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(tflite))


def _is_prototype_product(tflite, op) -> bool:
    """The OOD head's FULLY_CONNECTED with its prototypes still a float32 constant."""
    subgraph = tflite.subgraphs[0]
    code = tflite.operatorCodes[op.opcodeIndex]
    if max(code.builtinCode, code.deprecatedBuiltinCode) != schema.BuiltinOperator.FULLY_CONNECTED:
        return False
    weights = subgraph.tensors[op.inputs[1]]
    return (
        any(b"ood_similarity" in subgraph.tensors[t].name for t in op.outputs)
        and weights.type == schema.TensorType.FLOAT32
        and tflite.buffers[weights.buffer].data is not None
    )


def _add_buffer(tflite, values: np.ndarray) -> int:
    buffer = schema.BufferT()
    buffer.data = values.tobytes()
    tflite.buffers.append(buffer)
    return len(tflite.buffers) - 1


def _opcode(tflite, builtin: int, version: int) -> int:
    """Index of `builtin` in the model's operator codes, added (or its version raised) as needed."""
    for index, code in enumerate(tflite.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            code.version = max(code.version, version)
            return index
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), version
    tflite.operatorCodes.append(code)
    return len(tflite.operatorCodes) - 1


def ood_head_ops(model: bytes) -> list[str]:
    """Output names of the ops that compute the OOD score: edgetl's `ood_*` layers and the score itself."""
    tflite = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    subgraph = tflite.subgraphs[0]
    output = _ood_output(subgraph)
    if output is None:
        return []
    names = [subgraph.tensors[op.outputs[0]].name.decode() for op in subgraph.operators if op.outputs]
    return [name for name in names if "ood_" in name] + [subgraph.tensors[output].name.decode()]


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


def _float_head(subgraph, names: list[str], float_types: set[int]) -> set[int]:
    """Indices of the float ops computing the OOD output, walked back from it to the DEQUANTIZE of the features."""
    output = _ood_output(subgraph)
    producers = {tensor: index for index, op in enumerate(subgraph.operators) for tensor in op.outputs}
    head: set[int] = set()
    pending = [output] if output is not None else []
    while pending:
        index = producers.get(pending.pop())
        if index is None or index in head:
            continue
        op = subgraph.operators[index]
        name = names[op.opcodeIndex]
        if name == "DEQUANTIZE" or (name != "QUANTIZE" and subgraph.tensors[op.outputs[0]].type not in float_types):
            continue  # the int8 backbone starts here
        head.add(index)
        pending.extend(i for i in op.inputs if i >= 0)
    return head


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
    """How many compute ops of the classifier run in float in a quantized model (0: all int8).

    The OOD head is float by design (see `quantize`) and not counted."""
    tflite = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    names = [_opcode_name(tflite, index) for index in range(len(tflite.operatorCodes))]
    float_types = {0, 1}  # FLOAT32, FLOAT16 in schema.fbs TensorType
    count = 0
    for subgraph in tflite.subgraphs:
        head = _float_head(subgraph, names, float_types)
        for index, op in enumerate(subgraph.operators):
            name = names[op.opcodeIndex]
            if name in ("QUANTIZE", "DEQUANTIZE") or index in head:
                continue
            outputs = [subgraph.tensors[i] for i in op.outputs if i >= 0]
            if any(tensor.type in float_types for tensor in outputs):
                count += 1
    return count
