"""Embed standard TFLite Model Metadata, so the `.tflite` alone is all a device needs.

The metadata is the published `metadata_schema.fbs` (tflite-support / MediaPipe, file
identifier "M001"): input image properties and normalisation, output scores with the labels
file associated, stored in the model's `metadata` list under "TFLITE_METADATA". Associated
files (labels.txt, model_card.json) are appended as an uncompressed zip, as the reference
populator does, so `zipfile` and MediaPipe read them back.

Why written by hand: MediaPipe 1.2.2's metadata writers fail to import (a compiled module is
missing from its wheel) and tflite-support needs NumPy < 2. Only these few tables are needed;
the slot numbers below are the field order in metadata_schema.fbs, and a test parses the
result with MediaPipe's generated reader and runs it in MediaPipe's ImageClassifier.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass

import flatbuffers
import numpy as np

from edgetl.edge.metadata import CHECKSUM_FILE, METADATA_NAME

METADATA_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"  # every table used here exists since schema 1.0.0

# Enum values from metadata_schema.fbs.
_RGB = 1  # ColorSpaceType
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2  # ContentProperties union
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union
_TENSOR_AXIS_LABELS, _DESCRIPTIONS = 2, 1  # AssociatedFileType


@dataclass(frozen=True)
class ClassifierMetadata:
    """What a device needs to know about an image classifier that the tensors do not say."""

    name: str
    description: str
    version: str
    width: int
    height: int
    mean: Sequence[float]  # what the caller subtracts before a float input tensor (0: raw pixels)
    std: Sequence[float]
    labels: Sequence[str]
    author: str = "edgetl"
    license: str = ""


def _strings(builder: flatbuffers.Builder, **values: str) -> dict[str, int]:
    return {key: builder.CreateString(value) for key, value in values.items() if value}


def _vector(builder: flatbuffers.Builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _floats(builder: flatbuffers.Builder, values: Sequence[float]) -> int:
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependFloat32(float(value))
    return builder.EndVector()


def _table(builder: flatbuffers.Builder, slots: int, offsets: dict[int, int], bytes_: dict[int, int] | None = None):
    """A table from {slot: child offset} and {slot: int8/uint8 value}."""
    builder.StartObject(slots)
    for slot, offset in offsets.items():
        builder.PrependUOffsetTRelativeSlot(slot, offset, 0)
    for slot, value in (bytes_ or {}).items():
        builder.PrependUint8Slot(slot, value, 0)
    return builder.EndObject()


def _empty(builder: flatbuffers.Builder) -> int:
    builder.StartObject(0)
    return builder.EndObject()


def _associated_file(builder: flatbuffers.Builder, name: str, description: str, kind: int) -> int:
    text = _strings(builder, name=name, description=description)
    return _table(builder, 5, {0: text["name"], 1: text["description"]}, {2: kind})


def _stats(builder: flatbuffers.Builder, low: float, high: float) -> int:
    return _table(builder, 2, {0: _floats(builder, [high]), 1: _floats(builder, [low])})


def build_metadata(
    meta: ClassifierMetadata, labels_file: str, extra_files: Sequence[str] = (), *, ood_output: bool = False
) -> bytes:
    """Serialise ModelMetadata for one image input, one class-score output and, optionally, the OOD score."""
    b = flatbuffers.Builder(1024)

    # Input: an RGB image, its normalisation, its value range.
    size = b.StartObject(2)
    b.PrependUint32Slot(0, meta.width, 0)
    b.PrependUint32Slot(1, meta.height, 0)
    size = b.EndObject()
    image = b.StartObject(2)
    b.PrependUOffsetTRelativeSlot(1, size, 0)
    b.PrependInt8Slot(0, _RGB, 0)
    image = b.EndObject()
    input_content = _table(b, 3, {1: image}, {0: _IMAGE_PROPERTIES})
    normalization = _table(b, 2, {0: _floats(b, meta.mean), 1: _floats(b, meta.std)})
    input_unit = _table(b, 2, {1: normalization}, {0: _NORMALIZATION_OPTIONS})
    text = _strings(b, name="image", description=f"RGB image, {meta.width}x{meta.height}, pixel values 0-255.")
    input_tensor = _table(
        b,
        7,
        {0: text["name"], 1: text["description"], 3: input_content, 4: _vector(b, [input_unit]), 5: _stats(b, 0, 255)},
    )

    # Output: one probability per class, named by the labels file.
    output_content = _table(b, 3, {1: _empty(b)}, {0: _FEATURE_PROPERTIES})
    labels = _associated_file(b, labels_file, "Class names, one per line, in score order.", _TENSOR_AXIS_LABELS)
    text = _strings(b, name="probability", description=f"Probabilities of the {len(meta.labels)} classes.")
    output_tensor = _table(
        b,
        7,
        {
            0: text["name"],
            1: text["description"],
            3: output_content,
            5: _stats(b, 0, 1),
            6: _vector(b, [labels]),
        },
    )

    outputs = [output_tensor]
    if ood_output:  # a second output: a score, no labels (MediaPipe reads it as a one-category head)
        text = _strings(
            b, name="ood_score", description="Out-of-distribution score: higher = less like the training data."
        )
        outputs.append(
            _table(
                b,
                7,
                {0: text["name"], 1: text["description"], 3: _table(b, 3, {1: _empty(b)}, {0: _FEATURE_PROPERTIES})},
            )
        )

    text = _strings(b, name="image_classifier", description=meta.description)
    subgraph = _table(
        b,
        10,
        {
            0: text["name"],
            1: text["description"],
            2: _vector(b, [input_tensor]),
            3: _vector(b, outputs),
        },
    )
    extras = [_associated_file(b, name, "edgetl model description (JSON).", _DESCRIPTIONS) for name in extra_files]
    text = _strings(
        b,
        name=meta.name,
        description=meta.description,
        version=meta.version,
        author=meta.author,
        license=meta.license,
        min_parser_version=MIN_PARSER_VERSION,
    )
    slots = {0: "name", 1: "description", 2: "version", 4: "author", 5: "license", 7: "min_parser_version"}
    fields = {slot: text[key] for slot, key in slots.items() if key in text}
    fields[3] = _vector(b, [subgraph])
    if extras:
        fields[6] = _vector(b, extras)
    root = _table(b, 8, fields)
    b.Finish(root, file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


def _scores_first(subgraph) -> None:
    """Put the class scores first among the outputs, as the metadata lists them and MediaPipe reads them.

    The converter orders a two-output model's outputs as it pleases (the OOD score came first here)."""
    subgraph.outputs = sorted(subgraph.outputs, key=lambda index: list(subgraph.tensors[index].shape) == [1, 1])


class _SharingBuilder(flatbuffers.Builder):
    """Stores identical int64 vectors once: per-channel zero points are all-zero arrays, one per
    weight and bias tensor, ~270 KB of a 2.7 MB MobileNetV2 int8 file. Sharing a vector between
    tables is plain FlatBuffers; readers see the same values."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self._shared: dict[tuple[int, bytes], int] = {}

    def CreateNumpyVector(self, x: np.ndarray) -> int:  # noqa: N802 - flatbuffers' name
        if x.dtype != np.int64:
            return super().CreateNumpyVector(x)
        key = (len(x), x.tobytes())
        if key not in self._shared:
            self._shared[key] = super().CreateNumpyVector(x)
        return self._shared[key]


def attach_metadata(model: bytes, metadata: bytes, files: dict[str, bytes]) -> bytes:
    """Return the model with `metadata` in its metadata list and `files` appended as a zip."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    tflite = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    _scores_first(tflite.subgraphs[0])
    tflite.metadata = [entry for entry in (tflite.metadata or []) if entry.name.decode() != METADATA_NAME]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata, dtype=np.uint8)
    tflite.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(tflite.buffers) - 1
    tflite.metadata.append(entry)
    builder = _SharingBuilder(len(model) + len(metadata) + 1024)
    builder.Finish(tflite.Pack(builder), file_identifier=b"TFL3")
    packed = bytes(builder.Output())

    archive = io.BytesIO()
    archive.write(packed)
    checksum = {CHECKSUM_FILE: hashlib.sha256(packed).hexdigest().encode()}  # checked before the runtime sees it
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_STORED) as bundle:
        for name, data in {**files, **checksum}.items():
            bundle.writestr(name, data)
    return archive.getvalue()
