"""Read what a `.tflite` says about itself — labels, input normalisation, resize policy — without TensorFlow.

Models from `edgetl convert` (and other tools that write standard TFLite Model Metadata) carry
a "TFLITE_METADATA" flatbuffer and their associated files in a zip appended to the model.
Only a few fields are needed, so they are read with the `flatbuffers` runtime directly; the
slot numbers are the field order in TFLite's schema.fbs and metadata_schema.fbs.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import flatbuffers
from flatbuffers.table import Table

from edgetl.errors import EdgetlError
from edgetl.open_world_card import OpenWorldCard
from edgetl.rundir import parse_labels

METADATA_NAME = "TFLITE_METADATA"
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union member
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType


MODEL_CARD_FILE = "model_card.json"
# The SHA-256 of the model's flatbuffer (everything before the zip), packed by `edgetl convert` (older files have none):
# LiteRT's verifier lets some damaged models through and then aborts the process while loading them.
CHECKSUM_FILE = "model.sha256"
MAX_VERSION_CHARS = 200  # a run's folder name and time; longer is not a version (it goes into pages and logs)
_OLD_MODEL_CARD_FILE = "edgetl.json"  # its name in models converted by edgetl 0.1.0: same content


@dataclass(frozen=True)
class ModelCard:
    """What edgetl packs into a `.tflite` beside labels.txt, so that the file alone tells the device how to use it.

    Not the run directory's `edgetl.json` (`rundir.RunInfo`): this one travels inside the model.
    """

    labels: list[str]
    size: int  # square input, pixels
    resize: str  # "stretch" or "crop", as in training
    open_world: OpenWorldCard | None = None  # temperature, OOD threshold, per-class thresholds (`edgetl train`)
    version: str = ""  # the run it came from: folder name and creation time ("" for a bare model or older files)

    def to_bytes(self) -> bytes:
        card: dict = {"labels": self.labels, "input": {"size": self.size, "range": [0, 255], "resize": self.resize}}
        if self.open_world:
            card["open_world"] = self.open_world.to_json()
        if self.version:
            card["version"] = self.version
        return json.dumps(card).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelCard:
        """The card, checked field by field; ValueError says which field is wrong."""
        card = json.loads(data.decode("utf-8"))
        if not isinstance(card, dict):
            raise ValueError("the model card is not a JSON object")
        labels, entry = card.get("labels", []), card.get("input", {})
        if not (isinstance(labels, list) and all(isinstance(label, str) and label for label in labels)):
            raise ValueError("the model card's labels are not a list of names")
        size = entry.get("size", 0) if isinstance(entry, dict) else None
        if not (isinstance(size, int) and 0 <= size <= 10_000):
            raise ValueError(f"the model card's input size {size!r} is not a pixel count")
        resize = entry.get("resize")
        if resize not in (None, "stretch", "crop"):
            raise ValueError(f"the model card's resize policy {resize!r} is not stretch or crop")
        open_world = card.get("open_world")
        if open_world is not None:
            try:
                open_world = OpenWorldCard.from_json(open_world, len(labels))
            except ValueError as error:
                raise ValueError(f"the model card's {str(error).removeprefix('the ')}") from None
        version = card.get("version", "")
        if not (isinstance(version, str) and len(version) <= MAX_VERSION_CHARS):
            raise ValueError(f"the model card's version is not a string of at most {MAX_VERSION_CHARS} characters")
        return cls(labels, size, resize, open_world, version)


@dataclass
class ModelInfo:
    """What the model file itself says; empty fields when it says nothing."""

    labels: list[str] = field(default_factory=list)
    mean: list[float] | None = None  # caller's normalisation for a float input: (x - mean) / std
    std: list[float] | None = None
    name: str = ""
    card: ModelCard | None = None  # edgetl models only
    warnings: list[str] = field(default_factory=list)  # parts the metadata names that could not be read


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


def read_model_info(model: bytes | Path, name: str = "the model") -> ModelInfo:
    """Labels, normalisation and resize policy from the model's metadata; nothing raises for plain models.

    A damaged part (metadata flatbuffer, labels that are not UTF-8, a model card that is not valid) is one
    EdgetlError naming `name`; packed files the metadata names but that cannot be found are a warning,
    because the model still runs without them.
    """
    content = model.read_bytes() if isinstance(model, Path) else model
    name = str(model) if isinstance(model, Path) else name
    try:
        verify_checksum(content)
        if content[4:8] != b"TFL3":  # not a TFLite flatbuffer at all: the runtime's loader says so
            return ModelInfo()
        return _read_model_info(content)
    except Exception as error:  # struct.error, IndexError, UnicodeDecodeError, JSONDecodeError, ValueError…
        reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise EdgetlError(
            f"{name} is damaged: {reason}.",
            "Convert the model again (edgetl convert), or copy it again if it was cut short on the way.",
        ) from None


def verify_checksum(content: bytes) -> None:
    """Raise ValueError when the model's packed checksum does not match its flatbuffer (no checksum: no check)."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as bundle:
            expected = bundle.read(CHECKSUM_FILE).decode("ascii").strip()
            flatbuffer_end = min(entry.header_offset for entry in bundle.infolist())
    except (zipfile.BadZipFile, KeyError):
        return
    if hashlib.sha256(content[:flatbuffer_end]).hexdigest() != expected:
        raise ValueError("its checksum does not match (changed or damaged after edgetl wrote it)")


def _read_model_info(content: bytes) -> ModelInfo:
    info = ModelInfo()
    metadata = _metadata_buffer(content)
    labels_file = None
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
    labels = associated_file(content, labels_file or "labels.txt")
    if labels:
        info.labels = parse_labels(labels.decode("utf-8"))
    elif labels_file:
        info.warnings.append(
            f"its metadata names the labels file {labels_file}, which is missing from the file (a damaged or "
            "cut-short copy?): labels show as class_0, class_1…; pass --labels, or copy the model again"
        )
    card = associated_file(content, MODEL_CARD_FILE) or associated_file(content, _OLD_MODEL_CARD_FILE)
    if card:
        info.card = ModelCard.from_bytes(card)
    elif metadata and b"converted by edgetl" in metadata:  # its description: an edgetl model always has a card
        info.warnings.append(
            "its edgetl model card is missing (a damaged or cut-short copy?): no calibrated confidence, "
            "'unknown' thresholds or resize policy; copy the model again"
        )
    return info
