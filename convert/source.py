"""What is converted, and on which images it is calibrated and checked.

A run directory brings everything: model, labels, input size, resize policy and the exact
train/validation/test split. A bare Keras model file needs `--labels` and `--calibration`; its
expected normalisation (`--preprocessing`) is folded in front of it, so every converted model
takes raw 0–255 RGB pixels, like edgetl's own.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from edgetl.convert.options import PREPROCESSING_PRESETS, BareModel
from edgetl.digests import run_other_photos
from edgetl.errors import EdgetlError
from edgetl.float32 import as_float32
from edgetl.images import labelled_samples
from edgetl.open_world_card import OpenWorldCard
from edgetl.rundir import RunInfo, Sample, read_labels

# What a bare model expects, as (mean, std) on raw 0–255 pixels: input = (pixel - mean) / std.


@dataclass
class Source:
    """Everything conversion needs, whatever SOURCE was."""

    model: keras.Model  # takes raw 0–255 RGB pixels
    labels: list[str]
    size: int
    resize: str
    out: Path  # where the .tflite files and conversion.json go
    name: str
    calibration: list[Sample]  # pool to draw the representative dataset from
    repair: list[Sample]  # images the repair search compares float and int8 on (never the test images)
    test: list[Sample]  # held-out images the check reports on
    test_labelled: bool = True
    notes: list[str] = field(default_factory=list)
    run: RunInfo | None = None  # when converting a run directory

    @property
    def other(self) -> list[Sample]:
        """The run's held-out "other" photos (none of the classes, train/other.py): each file reports how many it
        calls "unknown". Label -1: no class."""
        if self.run is None or self.run.data.other_root is None:
            return []
        held_out = [photo for photo in run_other_photos(self.run) if photo.split == "test"]
        return [Sample(self.run.data.other_root / photo.path, -1) for photo in held_out]

    @property
    def open_world(self) -> OpenWorldCard | None:
        """Temperature and rejection thresholds fitted by `edgetl train` (runs before they existed: None)."""
        return self.run.open_world if self.run else None


def load_source(source: Path, bare: BareModel | None = None, out: Path | None = None) -> Source:
    """A run directory, or a bare model file with what `bare` says about it."""
    bare = bare or BareModel()
    if source.is_dir():
        if bare.given:
            raise EdgetlError(
                "--labels, --calibration and --test are for bare model files; a run directory brings its own.",
                "Drop them, or pass the .keras file instead of the run directory.",
            )
        return _from_run(source, out)
    return _from_model_file(source, bare, out)


def _from_run(run: Path, out: Path | None) -> Source:
    info = RunInfo.load(run)
    if not info.model_path.exists():
        raise EdgetlError(f"{run} has no {info.model_file}.", "Re-run `edgetl train` to produce it.")
    splits = {split: info.samples(split) for split in info.data.split_files}
    missing = [s.path for s in splits["test"][:50] if not s.path.exists()]
    if missing:
        raise EdgetlError(
            f"The run's images are not at {info.data.root} any more (e.g. {missing[0]}).",
            "Calibration and the check need them: put the dataset back where it was trained from.",
        )
    return Source(
        model=_load_keras(info.model_path),
        labels=info.labels,
        size=info.size,
        resize=info.resize,
        out=out or run,
        name=run.name,
        calibration=splits["train"],
        repair=splits["validation"] or splits["train"],
        test=splits["test"],
        run=info,
    )


def _from_model_file(path: Path, bare: BareModel, out: Path | None) -> Source:
    labels, calibration, test = bare.labels, bare.calibration, bare.test
    if not path.exists():
        raise EdgetlError(f"{path} does not exist.", "Pass a run directory or a .keras / .h5 model file.")
    if path.suffix not in (".keras", ".h5", ".hdf5"):
        raise EdgetlError(
            f"{path} is not a Keras model file (.keras or .h5).", "Pass a run directory or a .keras / .h5 model."
        )
    if labels is None or calibration is None:
        raise EdgetlError(
            f"Converting a bare model file needs --labels and --calibration (missing: "
            f"{', '.join(n for n, v in (('--labels', labels), ('--calibration', calibration)) if v is None)}).",
            "--labels FILE has one class name per line; --calibration DIR holds representative images.",
        )
    names = read_labels(labels)
    model = _load_keras(path)
    size = _check_image_model(model, path, len(names))
    model = with_preprocessing(model, bare.preprocessing)
    calib = labelled_samples(calibration, names, "--calibration", require_classes=False)
    notes = []
    if test is None:
        test_samples = calib
        notes.append("No --test folder: the check ran on the calibration images, which flatters int8 slightly.")
    else:
        test_samples = labelled_samples(test, names, "--test", require_classes=True)
    labelled = all(s.label >= 0 for s in test_samples)
    if not labelled:
        notes.append("The check images have no class folders: only agreement with the float model is reported.")
    return Source(
        model=model,
        labels=names,
        size=size,
        resize=bare.resize,
        out=out or path.parent,
        name=path.stem,
        calibration=calib,
        repair=calib,
        test=test_samples,
        test_labelled=labelled,
        notes=notes,
    )


def _load_keras(path: Path) -> keras.Model:
    """Load a Keras model in float32: a mixed-precision model (GPU training) is rebuilt, weights kept."""
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):  # Keras says "File not found" for these
        raise EdgetlError(
            f"{path} is not a .keras model: it is not a zip archive (damaged, truncated or another format).",
            "Save the model again with model.save('model.keras'), or re-run `edgetl train` for a run directory.",
        )
    try:
        return as_float32(keras.models.load_model(path, compile=False))
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        hint = "Save the whole model with model.save('model.keras')."
        if "Lambda" in str(error) or "safe_mode" in str(error):
            hint = "It has a Lambda layer, which Keras will not load from a file safely: use a registered custom layer."
        if path.suffix in (".h5", ".hdf5") and "No model config" in str(error):
            hint = "This .h5 holds weights only: build the model, load_weights() it, then model.save('model.keras')."
        raise EdgetlError(f"{path} could not be loaded as a Keras model ({first[:200]}).", hint) from None


def _check_image_model(model: keras.Model, path: Path, classes: int) -> int:
    """The model must take one square RGB image and give one score vector that matches the labels."""
    inputs, outputs = model.inputs, model.outputs
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[-1] != 3:
        shapes = ", ".join(str(tuple(t.shape)) for t in inputs)
        raise EdgetlError(
            f"{path.name} takes {shapes}, not one image tensor (batch, height, width, 3).",
            "edgetl converts image classifiers with a single RGB image input.",
        )
    height, width = inputs[0].shape[1], inputs[0].shape[2]
    if height is None or width is None or height != width:
        raise EdgetlError(
            f"{path.name} has input size {height}x{width}; edgetl needs a fixed square size.",
            "Rebuild the model with a fixed input_shape, e.g. (224, 224, 3).",
        )
    ood_output = len(outputs) == 2 and tuple(outputs[1].shape[1:]) == (1,)  # edgetl: [probabilities, OOD score]
    if len(outputs) not in (1, 2) or len(outputs[0].shape) != 2 or (len(outputs) == 2 and not ood_output):
        raise EdgetlError(f"{path.name} does not give one score vector per image.", "Pass an image classifier.")
    if outputs[0].shape[-1] != classes:
        raise EdgetlError(
            f"{path.name} scores {outputs[0].shape[-1]} classes but the labels file names {classes}.",
            "Pass the labels file that belongs to this model.",
        )
    return int(height)


def with_preprocessing(model: keras.Model, preprocessing: str) -> keras.Model:
    """Fold the model's expected normalisation in front of it, so it takes raw 0–255 pixels."""
    mean, std = PREPROCESSING_PRESETS[preprocessing]
    if preprocessing == "none":
        return model
    inputs = keras.Input(model.inputs[0].shape[1:], name="image")
    scaled = keras.layers.Normalization(mean=mean, variance=np.square(std).tolist(), name="edgetl_normalize")(inputs)
    return keras.Model(inputs, model(scaled, training=False), name=f"{model.name}_raw_pixels")
