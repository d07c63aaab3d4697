"""Read what a `.tflite` says about itself — labels, input normalisation, resize policy — without TensorFlow.

Models from `edgetl convert` (and other tools that write standard TFLite Model Metadata) carry
a "TFLITE_METADATA" flatbuffer and their associated files in a zip appended to the model.
Only a few fields are needed, so they are read with the `flatbuffers` runtime directly; the
slot numbers are the field order in TFLite's schema.fbs and metadata_schema.fbs.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import flatbuffers
from flatbuffers.table import Table

from edgetl.rundir import parse_labels

METADATA_NAME = "TFLITE_METADATA"
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union member
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType


MODEL_CARD_FILE = "model_card.json"
_OLD_MODEL_CARD_FILE = "edgetl.json"  # its name in models converted by edgetl 0.1.0: same content


@dataclass(frozen=True)
class ModelCard:
    """What edgetl packs into a `.tflite` beside labels.txt, so that the file alone tells the device how to use it.

    Not the run directory's `edgetl.json` (`rundir.RunInfo`): this one travels inside the model.
    """

    labels: list[str]
    size: int  # square input, pixels
    resize: str  # "stretch" or "crop", as in training
    open_world: dict | None = None  # temperature, OOD threshold, per-class thresholds (from `edgetl train`)

    def to_bytes(self) -> bytes:
        card: dict = {"labels": self.labels, "input": {"size": self.size, "range": [0, 255], "resize": self.resize}}
        if self.open_world:
            card["open_world"] = self.open_world
        return json.dumps(card).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelCard:
        card = json.loads(data)
        entry = card.get("input", {})
        return cls(card.get("labels", []), int(entry.get("size", 0)), entry.get("resize"), card.get("open_world"))


@dataclass
class ModelInfo:
    """What the model file itself says; empty fields when it says nothing."""

    labels: list[str] = field(default_factory=list)
    mean: list[float] | None = None  # caller's normalisation for a float input: (x - mean) / std
    std: list[float] | None = None
    name: str = ""
    card: ModelCard | None = None  # edgetl models only


def _table(buffer: bytes, position: int) -> Table:
    return Table(bytearray(buffer), position)


def _field(table: Table, slot: int) -> int:
    return table.Offset(4 + 2 * slot)


def _child(table: Table, slot: int) -> Table | None:
    offset = _field(table, slot)
    return Table(table.Bytes, table.Indirect(offset + table.Pos)) if offset else None


def _vector(table: Table, slot: int) -> list[Table]:
    offset = _field(table, slot)
    if not offset:
        return []
    start, length = table.Vector(offset), table.VectorLen(offset)
    return [Table(table.Bytes, table.Indirect(start + 4 * i)) for i in range(length)]


def _string(table: Table, slot: int) -> str:
    offset = _field(table, slot)
    return table.String(offset + table.Pos).decode() if offset else ""


def _floats(table: Table, slot: int) -> list[float]:
    offset = _field(table, slot)
    if not offset:
        return []
    start = table.Vector(offset)
    return [table.Get(flatbuffers.number_types.Float32Flags, start + 4 * i) for i in range(table.VectorLen(offset))]


def _uint8(table: Table, slot: int) -> int:
    offset = _field(table, slot)
    return table.Get(flatbuffers.number_types.Uint8Flags, offset + table.Pos) if offset else 0


def _metadata_buffer(model: bytes) -> bytes | None:
    """The TFLITE_METADATA buffer of a TFLite model (schema.fbs: Model.metadata = slot 6, buffers = 4)."""
    root = _table(model, flatbuffers.encode.Get(flatbuffers.packer.uoffset, model, 0))
    buffers = _vector(root, 4)
    for entry in _vector(root, 6):
        if _string(entry, 0) == METADATA_NAME:
            index = entry.Get(flatbuffers.number_types.Uint32Flags, _field(entry, 1) + entry.Pos)
            data = _field(buffers[index], 0)
            start = buffers[index].Vector(data)
            return bytes(model[start : start + buffers[index].VectorLen(data)])
    return None


def associated_file(model: bytes, name: str) -> bytes | None:
    """A file packed into the model's zip (labels.txt, model_card.json), or None."""
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as bundle:
            return bundle.read(name)
    except (zipfile.BadZipFile, KeyError):
        return None


def read_model_info(model: bytes | Path) -> ModelInfo:
    """Labels, normalisation and resize policy from the model's metadata; nothing raises for plain models."""
    content = model.read_bytes() if isinstance(model, Path) else model
    info = ModelInfo()
    try:
        metadata = _metadata_buffer(content)
    except Exception:  # not a flatbuffer we understand: treat as a model without metadata
        metadata = None
    labels_file = "labels.txt"
    if metadata:
        root = _table(metadata, flatbuffers.encode.Get(flatbuffers.packer.uoffset, metadata, 0))
        info.name = _string(root, 0)
        subgraphs = _vector(root, 3)
        if subgraphs:
            inputs, outputs = _vector(subgraphs[0], 2), _vector(subgraphs[0], 3)
            for unit in _vector(inputs[0], 4) if inputs else []:
                if _uint8(unit, 0) == _NORMALIZATION_OPTIONS and (options := _child(unit, 1)):
                    info.mean, info.std = _floats(options, 0), _floats(options, 1)
            for entry in _vector(outputs[0], 6) if outputs else []:
                if _uint8(entry, 2) == _TENSOR_AXIS_LABELS:
                    labels_file = _string(entry, 0)
    labels = associated_file(content, labels_file)
    if labels:
        info.labels = parse_labels(labels.decode())
    card = associated_file(content, MODEL_CARD_FILE) or associated_file(content, _OLD_MODEL_CARD_FILE)
    if card:
        info.card = ModelCard.from_bytes(card)
    return info
