"""`edgetl convert` on a tiny trained run and on bare Keras models: files, checks, metadata, errors."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from rich.console import Console
from typer.testing import CliRunner

from conftest import LOOSE, copy_run
from edgetl.cli import app
from edgetl.convert.calibration import load_images, stratified_sample
from edgetl.convert.options import BareModel, ConvertOptions
from edgetl.convert.run import REPORT_FILE, convert
from edgetl.convert.tflite import float_ops, op_counts, prototypes_in_8_bits
from edgetl.edge.interpreter import ImageClassifierModel
from edgetl.edge.metadata import METADATA_NAME, associated_file, read_model_info
from edgetl.errors import EdgetlError
from edgetl.images import load_for_model
from edgetl.open_world_card import OpenWorldCard
from edgetl.rundir import Sample

QUIET = Console(quiet=True)


def test_every_format_is_written_checked_and_reported(converted: tuple[Path, dict]) -> None:
    run, report = converted
    on_disk = json.loads((run / REPORT_FILE).read_text())
    assert set(on_disk["models"]) == {"int8", "float32", "fp16", "dynamic"}
    test_count = len((run / "split" / "test.txt").read_text().splitlines())
    for fmt, entry in on_disk["models"].items():
        path = run / entry["file"]
        assert path.exists() and path.stat().st_size == entry["bytes"], fmt
        assert entry["images"] == test_count and 0.0 <= entry["agreement"] <= 1.0
        assert entry["drop_pp"] == pytest.approx(100 * (entry["float_top1"] - entry["top1"]), abs=1e-3)
        assert set(entry["per_class"]) == set(on_disk["labels"])
    assert on_disk["models"]["float32"]["agreement"] == 1.0  # float32 TFLite is the Keras model
    # int8 weights are a quarter of float32, the OOD head's prototypes included (stored in 8 bits, computed in float)
    from tensorflow.lite.tools import flatbuffer_utils

    def weight_bytes(path: Path) -> int:
        return sum(len(b.data) for b in flatbuffer_utils.read_model(str(path)).buffers if b.data is not None)

    assert weight_bytes(run / "model_int8.tflite") < 0.3 * weight_bytes(run / "model_float32.tflite")
    assert report["models"]["int8"]["ood"]["threshold"] > 0  # refitted on the int8 model's own scores


def test_int8_is_full_integer_with_uint8_pixels_in(converted: tuple[Path, dict]) -> None:
    run, report = converted
    content = (run / "model_int8.tflite").read_bytes()
    model = ImageClassifierModel(content)
    assert model.input_dtype == np.uint8 and model.output_dtype == np.uint8
    assert (model.input_quantization.scale, model.input_quantization.zero_point) == (1.0, 0)  # raw pixels go in
    assert float_ops(content) == 0 and report["models"]["int8"]["float_ops"] == 0
    assert model.has_ood_score and model._ood["dtype"] == np.uint8  # noqa: SLF001 - MediaPipe: all outputs quantized
    assert "CONV_2D" in op_counts(content) and not any(name.startswith("Flex") for name in op_counts(content))


def test_int8_follows_the_float_model_on_its_test_images(converted: tuple[Path, dict]) -> None:
    """The edge interpreter on the written file reproduces the reported agreement."""
    run, report = converted
    meta = json.loads((run / "edgetl.json").read_text())
    lines = (run / "split" / "test.txt").read_text().splitlines()
    images = np.stack([load_for_model(Path(meta["data"]["root"]) / line.split("\t")[0], 64) for line in lines])
    int8 = ImageClassifierModel(run / "model_int8.tflite").scores_batch(images)
    float32 = ImageClassifierModel(run / "model_float32.tflite").scores_batch(images)
    agreement = float(np.mean(int8.argmax(1) == float32.argmax(1)))
    assert agreement == pytest.approx(report["models"]["int8"]["agreement"], abs=1 / len(lines) + 1e-9)


def test_metadata_is_standard_and_carries_the_labels(converted: tuple[Path, dict]) -> None:
    from mediapipe.tasks.metadata import metadata_schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    run, report = converted
    content = (run / "model_int8.tflite").read_bytes()
    labels = (run / "labels.txt").read_text()
    assert associated_file(content, "labels.txt").decode() == labels
    assert json.loads(associated_file(content, "model_card.json"))["input"]["size"] == 64
    tflite = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    (entry,) = [m for m in tflite.metadata if m.name.decode() == METADATA_NAME]
    data = bytes(tflite.buffers[entry.buffer].data)
    assert schema.ModelMetadata.ModelMetadataBufferHasIdentifier(data, 0)
    meta = schema.ModelMetadataT.InitFromObj(schema.ModelMetadata.GetRootAs(data, 0))
    subgraph = meta.subgraphMetadata[0]
    image = subgraph.inputTensorMetadata[0]
    assert image.content.contentPropertiesType == schema.ContentProperties.ImageProperties
    assert image.content.contentProperties.colorSpace == schema.ColorSpaceType.RGB
    assert image.content.contentProperties.defaultSize.width == 64
    assert (
        list(image.processUnits[0].options.mean) == [0.0] * 3 and list(image.processUnits[0].options.std) == [1.0] * 3
    )
    output = subgraph.outputTensorMetadata[0]
    assert output.associatedFiles[0].name.decode() == "labels.txt"
    assert output.associatedFiles[0].type == schema.AssociatedFileType.TENSOR_AXIS_LABELS
    assert meta.minParserVersion.decode() == "1.0.0"
    info = read_model_info(content)  # the device's own reader, no TensorFlow
    assert info.labels == labels.split() and info.mean == [0.0] * 3 and info.std == [1.0] * 3
    assert info.card is not None and info.card.resize == "stretch" and info.card.size == 64


@pytest.mark.parametrize("fmt", ["int8", "float32"])
def test_mediapipe_image_classifier_reads_the_model_and_agrees(converted: tuple[Path, dict], fmt: str) -> None:
    """Another runtime, knowing only the .tflite and its metadata, gives edgetl's top-1 and label names."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    run, _ = converted
    path = run / f"model_{fmt}.tflite"
    labels = (run / "labels.txt").read_text().split()
    meta = json.loads((run / "edgetl.json").read_text())
    lines = (run / "split" / "test.txt").read_text().splitlines()
    images = [load_for_model(Path(meta["data"]["root"]) / line.split("\t")[0], 64) for line in lines]
    ours = ImageClassifierModel(path).scores_batch(np.stack(images)).argmax(1)
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)), max_results=1)
    classifier = vision.ImageClassifier.create_from_options(options)
    try:
        theirs = [
            classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=image)).classifications[0].categories[0]
            for image in images
        ]
    finally:
        classifier.close()
    assert [category.index for category in theirs] == list(ours)
    assert [category.category_name for category in theirs] == [labels[i] for i in ours]


def test_existing_files_are_not_replaced_without_force(converted: tuple[Path, dict]) -> None:
    run, _ = converted
    before = (run / "model_int8.tflite").read_bytes()
    with pytest.raises(EdgetlError, match="already exists.*--force"):
        convert(run, ConvertOptions(formats=("int8",), **LOOSE), console=QUIET)
    assert (run / "model_int8.tflite").read_bytes() == before


def test_missing_the_budget_fails_but_keeps_the_file_and_marks_the_report(tiny_run: Path, tmp_path: Path) -> None:
    run = copy_run(tiny_run, tmp_path / "run")
    result = CliRunner().invoke(
        app,
        [
            "convert",
            str(run),
            "--int8",
            "--min-agreement",
            "101",
            "--no-repair",
            "--calibration-samples",
            "40",
        ],
    )
    assert result.exit_code == 1, result.output
    assert "missed the accuracy budget" in result.output
    report = json.loads((run / REPORT_FILE).read_text())
    assert report["models"]["int8"]["passed"] is False and (run / "model_int8.tflite").exists()


def test_repair_ranks_layers_searches_and_keeps_none_that_miss_the_budget(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an impossible agreement target the repair runs all its steps, says what it did, and hands back
    plain int8: layers in float that do not reach the budget would cost latency for nothing."""
    from edgetl.convert import int8

    monkeypatch.setattr(int8, "CANDIDATES_PER_ROUND", 3)  # each round still has a choice to make
    run = copy_run(tiny_run, tmp_path / "run")
    options = ConvertOptions(formats=("int8",), min_agreement=101, max_float_layers=2, **LOOSE)
    entry = convert(run, options, console=QUIET)["models"]["int8"]
    actions = [step["action"] for step in entry["repair"]]
    assert actions[:2] == ["calibrate", "bias_correction"] and "choose_calibration" in actions
    worst = entry["worst_layers"]
    assert worst and worst[0]["rmse_over_scale"] >= worst[-1]["rmse_over_scale"]
    kept = [step for step in entry["repair"] if step["action"] == "keep_layer_in_float"]
    assert len(kept) <= 2 and (len(kept) == 2 or "stop" in actions)  # the limit, or no layer helped (more)
    fidelity = [(step["repair_disagreements"], step["repair_mean_abs_diff"]) for step in kept]
    assert fidelity == sorted(fidelity, reverse=True) and len(set(fidelity)) == len(fidelity)  # each one helped
    reasons = [step["reason"] for step in entry["repair"] if step["action"] == "revert"]
    assert entry["float_layers"] == [] and len(reasons) == bool(kept), reasons  # none kept: nothing to revert
    assert "repair_cost" not in actions  # a fail is not timed: nothing would justify the cost
    assert float_ops((run / "model_int8.tflite").read_bytes()) == 0 and entry["passed"] is False


def test_layers_in_float_stay_only_within_the_budget_and_the_latency_cost() -> None:
    from edgetl.convert.int8 import RepairLog, worth_its_cost

    def log_with(passes: bool) -> RepairLog:
        log = RepairLog()
        log.add("keep_layer_in_float", layer="block_1", passes=passes)
        return log

    failing = log_with(False)
    assert worth_its_cost(["block_1"], failing, lambda: pytest.fail("a fail is not timed"), 10.0) == []
    assert "did not reach the budget" in failing.steps[-1]["reason"]
    costly = log_with(True)
    assert worth_its_cost(["block_1"], costly, lambda: 0.25, 10.0) == []
    assert "add +25 % latency, over --max-repair-cost 10" in costly.steps[-1]["reason"]
    cheap = log_with(True)
    assert worth_its_cost(["block_1"], cheap, lambda: 0.04, 10.0) == ["block_1"]
    assert cheap.steps[-1] == {"action": "repair_cost", "latency_pct": 4.0, "max_pct": 10.0}
    with pytest.raises(EdgetlError, match="--max-repair-cost -1"):
        ConvertOptions(max_repair_cost=-1)


def test_a_latency_cost_is_timed_in_alternating_rounds(converted: tuple[Path, dict]) -> None:
    from edgetl.convert.evaluate import latency_cost

    run, _ = converted
    int8 = (run / "model_int8.tflite").read_bytes()
    image = np.zeros((64, 64, 3), np.uint8)
    assert abs(latency_cost(int8, int8, image, threads=1)) < 0.5  # the same file: no cost beyond noise


def test_stratified_calibration_takes_every_class_evenly() -> None:
    samples = [Sample(Path(f"{label}_{i}.jpg"), label) for label in range(3) for i in range(50 if label else 5)]
    picked = stratified_sample(samples, 30, seed=1)
    counts = np.bincount([s.label for s in picked], minlength=3)
    assert len(picked) == 30 and counts[0] == 5 and abs(int(counts[1]) - int(counts[2])) <= 1
    assert stratified_sample(samples, 30, seed=1) == picked and stratified_sample(samples, 30, seed=2) != picked


# --- bare model files ---------------------------------------------------------------------------------------------


def _bare_model(classes: int = 4, size: int = 32) -> keras.Model:
    """A model that expects MobileNet-style [-1, 1] input, as users' own models often do."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))


@pytest.fixture
def bare(sample_data: Path, tmp_path: Path) -> dict:
    model = _bare_model()
    model.save(tmp_path / "mine.keras")
    classes = sorted(p.name for p in sample_data.iterdir() if p.is_dir())
    (tmp_path / "labels.txt").write_text("\n".join(classes) + "\n")
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for path in sorted((sample_data / classes[0]).iterdir())[:5] + sorted((sample_data / classes[1]).iterdir())[:5]:
        (calibration / f"{path.parent.name}_{path.name}").symlink_to(path)
    return {"model": model, "path": tmp_path / "mine.keras", "labels": tmp_path / "labels.txt", "calib": calibration}


def test_bare_model_gets_its_normalisation_folded_in(bare: dict, sample_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = convert(
        bare["path"],
        ConvertOptions(formats=("float32",), max_drop=100.0, out=out),
        console=QUIET,
        bare=BareModel(labels=bare["labels"], calibration=bare["calib"], test=sample_data, preprocessing="tf"),
    )
    entry = report["models"]["float32"]
    assert entry["agreement"] == 1.0 and entry["images"] == 4 * 24
    pixels = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    expected = bare["model"].predict(pixels.astype(np.float32) / 127.5 - 1.0, verbose=0)
    got = ImageClassifierModel(out / "model_float32.tflite").scores_batch(pixels)
    np.testing.assert_allclose(got, expected, atol=1e-5)  # raw pixels in, same answer as the model on [-1, 1]
    assert (out / "labels.txt").read_text() == bare["labels"].read_text()


def test_int8_input_type_is_handled_from_the_tensor_parameters(bare: dict, sample_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    options = ConvertOptions(formats=("int8", "float32"), input_type="int8", max_drop=100.0, out=out)
    report = convert(
        bare["path"],
        options,
        console=QUIET,
        bare=BareModel(labels=bare["labels"], calibration=bare["calib"], test=sample_data),
    )
    model = ImageClassifierModel(out / "model_int8.tflite")
    assert model.input_dtype == np.int8 and model.output_dtype == np.int8
    assert model.input_quantization.zero_point == -128  # 0–255 pixels map onto int8 with one shift
    assert report["models"]["int8"]["images"] == 4 * 24


def test_bare_model_without_test_folder_says_the_check_used_calibration_images(bare: dict, tmp_path: Path) -> None:
    report = convert(
        bare["path"],
        ConvertOptions(formats=("int8",), max_drop=100.0, min_agreement=0.0, out=tmp_path / "out"),
        console=QUIET,
        bare=BareModel(labels=bare["labels"], calibration=bare["calib"], preprocessing="tf"),
    )
    assert any("calibration images" in note for note in report["notes"])
    assert "top1" not in report["models"]["int8"]  # flat folder: no classes, so agreement only


def _expect_error(match: str, source: Path, **kwargs) -> None:
    with pytest.raises(EdgetlError, match=match):
        convert(source, ConvertOptions(formats=("int8",)), console=QUIET, bare=BareModel(**kwargs))


def test_bad_inputs_get_clear_errors(bare: dict, tiny_run: Path, sample_data: Path, tmp_path: Path) -> None:
    args = {"labels": bare["labels"], "calibration": bare["calib"]}
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a model")
    _expect_error("junk.keras is not a .keras model: it is not a zip archive", junk, **args)  # was "File not found"
    _expect_error("not a Keras model file", bare["labels"], **args)
    _expect_error("needs --labels and --calibration.*--calibration", bare["path"], labels=bare["labels"])
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    _expect_error(
        "scores 4 classes but the labels file names 3", bare["path"], **{**args, "labels": tmp_path / "three.txt"}
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    _expect_error("holds no images", bare["path"], **{**args, "calibration": empty})
    foreign = tmp_path / "foreign" / "giraffe"
    foreign.mkdir(parents=True)
    _expect_error("classes the model does not know.*giraffe", bare["path"], **{**args, "calibration": foreign.parent})
    _expect_error("--labels, --calibration and --test are for bare model files", tiny_run, labels=bare["labels"])
    unwritable = ConvertOptions(formats=("int8",), out=tmp_path / "three.txt" / "out")  # checked before the work
    with pytest.raises(EdgetlError, match="three.txt/out: Not a directory.*previous outputs are untouched"):
        convert(bare["path"], unwritable, console=QUIET, bare=BareModel(**args))

    two_inputs = keras.Model(
        [a := keras.Input((8, 8, 3)), b := keras.Input((8, 8, 3))], keras.layers.Dense(4)(keras.layers.Flatten()(a + b))
    )
    two_inputs.save(tmp_path / "two.keras")
    _expect_error("not one image tensor", tmp_path / "two.keras", **args)

    broken = copy_run(tiny_run, tmp_path / "broken")
    (broken / "model.keras").unlink()
    _expect_error("has no model.keras", broken)
    (broken / "edgetl.json").unlink()
    _expect_error("not a finished edgetl run", broken)


@keras.saving.register_keras_serializable(package="edgetl_tests")
class Erfinv(keras.layers.Layer):
    """A layer whose TF op (Erfinv) has no TFLite builtin kernel."""

    def call(self, inputs):
        return tf.math.erfinv(inputs)


def test_ops_without_a_builtin_kernel_are_refused(bare: dict, tmp_path: Path) -> None:
    inputs = keras.Input((32, 32, 3))
    x = Erfinv()(inputs / 255.0)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x)))
    model.save(tmp_path / "flex.keras")
    _expect_error(
        "no builtin kernel for \\(Erfinv\\)", tmp_path / "flex.keras", labels=bare["labels"], calibration=bare["calib"]
    )


def test_calibration_loader_skips_unreadable_files(tmp_path: Path, sample_data: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    good = next((sample_data / "circle").iterdir())
    images, labels, skipped = load_images([Sample(good, 0), Sample(bad, 1)], 32, "stretch")
    assert images.shape == (1, 32, 32, 3) and list(labels) == [0] and skipped == [str(bad)]


def test_associated_files_are_a_plain_zip(converted: tuple[Path, dict]) -> None:
    run, _ = converted
    with zipfile.ZipFile(run / "model_int8.tflite") as bundle:
        assert {info.compress_type for info in bundle.infolist()} == {zipfile.ZIP_STORED}
        assert set(bundle.namelist()) == {"labels.txt", "model_card.json", "model.sha256"}


def test_models_whose_card_has_the_old_name_still_read(converted: tuple[Path, dict], tmp_path: Path) -> None:
    """edgetl 0.1.0 packed the model card as edgetl.json: those files keep their resize policy and thresholds."""
    from edgetl.edge.metadata import read_model_info

    content = (converted[0] / "model_int8.tflite").read_bytes()
    with zipfile.ZipFile(io.BytesIO(content)) as bundle:
        start = min(info.header_offset for info in bundle.infolist())  # the zip appended after the flatbuffer
        files = {name: bundle.read(name) for name in bundle.namelist()}
    renamed = io.BytesIO()
    with zipfile.ZipFile(renamed, "w", zipfile.ZIP_STORED) as bundle:
        bundle.writestr("labels.txt", files["labels.txt"])
        bundle.writestr("edgetl.json", files["model_card.json"])
    old = read_model_info(content[:start] + renamed.getvalue())
    new = read_model_info(content)
    assert old.card == new.card and new.card.open_world.ood.threshold > 0 and old.labels == new.labels


def test_efficientnet_converts_and_its_repair_path_runs(
    efficientnet_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EfficientNetB0 (swish, squeeze-and-excite), trained a little from random weights, then int8 + repair."""
    from edgetl.convert import int8

    monkeypatch.setattr(int8, "CANDIDATES_PER_ROUND", 1)  # the search runs on it: its breadth is tested above
    run = copy_run(efficientnet_run, tmp_path / "eff")
    # Calibrating on the whole (small) pool leaves no cheaper subset to try, and without bias correction the
    # repair goes straight to the layer search: every step that is EfficientNet's own, none twice.
    options = ConvertOptions(("int8",), min_agreement=101, max_float_layers=1, max_drop=100, calibration_samples=1000)
    options = replace(options, bias_correction=False)
    entry = convert(run, options, console=QUIET)["models"]["int8"]
    assert entry["images"] > 0 and entry["worst_layers"]  # the debugger ranked EfficientNet's layers
    actions = [step["action"] for step in entry["repair"]]
    assert "keep_layer_in_float" in actions or "stop" in actions  # the layer search ran on it
    assert any("LOGISTIC" in name or "MUL" in name for name in entry["ops"])  # swish / squeeze-and-excite made it


@pytest.mark.parametrize(
    ("kind", "stride", "padding"), [("conv", 1, "SAME"), ("conv", 2, "VALID"), ("depthwise", 2, "SAME")]
)
def test_bias_correction_predicts_the_mean_output_error_exactly(kind: str, stride: int, padding: str) -> None:
    """E[conv(x, ΔW)] from the per-tap input means equals the mean of the real convolution, borders included."""
    from types import SimpleNamespace

    from tensorflow.lite.python import schema_py_generated as schema

    from edgetl.convert.bias_correction import tap_means, weight_rounding_error

    rng = np.random.default_rng(0)
    x = rng.random((3, 9, 9, 4)).astype(np.float32)
    if kind == "conv":
        kernel = rng.normal(size=(3, 3, 4, 5)).astype(np.float32)  # TF layout (kh, kw, in, out)
        error = weight_rounding_error(kernel, 3)
        out = tf.nn.conv2d(x, error, stride, padding).numpy()
    else:
        kernel = rng.normal(size=(3, 3, 4, 1)).astype(np.float32)
        error = weight_rounding_error(kernel, 2)
        out = tf.nn.depthwise_conv2d(x, error, [1, stride, stride, 1], padding).numpy()
    options = SimpleNamespace(
        strideH=stride, strideW=stride, dilationHFactor=1, dilationWFactor=1, padding=getattr(schema.Padding, padding)
    )
    means = tap_means(x, (3, 3), options, out.shape[1:3])
    predicted = (
        np.einsum("ijco,ijc->o", error, means) if kind == "conv" else np.einsum("ijc,ijc->c", error[..., 0], means)
    )
    np.testing.assert_allclose(predicted, out.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-7)


def test_weight_rounding_error_is_per_channel_symmetric_int8() -> None:
    from edgetl.convert.bias_correction import weight_rounding_error

    weights = np.array([[1.0, -0.5, 0.25], [100.0, 3.0, -50.0]])  # channel 1 has a much larger range
    error = weight_rounding_error(weights, 0)
    steps = np.abs(weights).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(error) <= steps / 2 + 1e-12)  # at most half a step of its own channel
    assert error[0, 0] == 0 and error[1, 0] == 0  # each channel's largest weight is exact


def test_the_edge_interpreter_runs_converted_models_without_tensorflow(converted: tuple[Path, dict]) -> None:
    import subprocess
    import sys

    from test_cli import BLOCK_TF

    run, _ = converted
    pixels = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.save(run / "pixels.npy", pixels)
    code = BLOCK_TF + (
        "import sys, numpy as np\n"
        "from edgetl.edge.interpreter import ImageClassifierModel\n"
        f"model = ImageClassifierModel({str(run / 'model_int8.tflite')!r})\n"
        f"print(model.backend, *model.scores(np.load({str(run / 'pixels.npy')!r})))\n"
        "assert 'tensorflow' not in sys.modules or sys.modules['tensorflow'] is None\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    backend, *scores = result.stdout.split()
    assert backend == "litert"
    expected = ImageClassifierModel(run / "model_int8.tflite").scores(pixels)
    np.testing.assert_allclose(np.array(scores, dtype=np.float32), expected, atol=1e-6)


def test_agreement_target_defaults_to_99_where_the_test_split_can_measure_it() -> None:
    from edgetl.convert.run import _min_agreement

    assert _min_agreement(None, 128) == (99.0, None)
    target, note = _min_agreement(None, 60)
    assert target == 0.0 and "sure of only 60 test images, too few" in note
    assert _min_agreement(95.0, 10)[0] == 95.0  # an explicit target always applies


def test_agreement_is_judged_on_the_images_the_float_model_is_sure_of() -> None:
    """A 1000-class model flips between near-tied classes where it is itself unsure: that is not a conversion
    error. Where the float model gives its top-1 at least half the probability, int8 must agree."""
    from edgetl.metrics import AccuracyRecord, accuracy, sure_images

    sure, unsure = [0.9, 0.05, 0.05], [0.34, 0.33, 0.33]
    reference = np.array([sure] * 95 + [unsure] * 5)
    converted = reference.copy()
    converted[95:] = [0.33, 0.34, 0.33]  # the unsure five flip to a near-tied class
    record = accuracy(converted, None, ["a", "b", "c"], reference)  # unlabelled, as a bare model's test set can be
    assert record.agreement == 0.95 and (record.sure_agreement, record.sure_images) == (1.0, 95)
    assert record.judged_agreement == 1.0 and ConvertOptions(min_agreement=99).passes(record)
    converted[0] = [0.05, 0.9, 0.05]  # one image the float model was sure of disagrees: 98.9 %, chance (p = 0.6)
    assert ConvertOptions(min_agreement=99).passes(accuracy(converted, None, ["a", "b", "c"], reference))
    converted[:6] = [0.05, 0.9, 0.05]  # six of 95: 93.7 %, which a 1 % flip rate gives once in thousands
    assert not ConvertOptions(min_agreement=99).passes(accuracy(converted, None, ["a", "b", "c"], reference))
    logits = np.log(reference)  # a bare model's logits: judged through a softmax, alike
    np.testing.assert_array_equal(sure_images(logits), sure_images(reference))
    old = AccuracyRecord(images=10, agreement=0.9)  # a report from before: its plain agreement is what counts
    assert old.judged_agreement == 0.9


def test_agreement_fails_the_budget_only_when_the_test_images_show_the_shortfall_is_real() -> None:
    """A default beans run (seed 1, this session): int8 kept 124 of the 127 judged images (97.6 %, top-1 better than
    float); against a 99 % target that is p = 0.14: chance. A target of 100 % or more is exact."""
    from edgetl.metrics import AccuracyRecord, agreement_within_budget, disagreement_p_value

    beans = AccuracyRecord(images=128, agreement=0.977, sure_agreement=124 / 127, sure_images=127)
    assert abs(disagreement_p_value(3, 127, 0.01) - 0.1356) < 0.001  # 1 − P(0, 1 or 2 flips), by hand
    assert agreement_within_budget(beans, 99.0) and not agreement_within_budget(beans, 100.0)
    assert not agreement_within_budget(AccuracyRecord(images=300, sure_agreement=0.917, sure_images=300), 99.0)
    assert agreement_within_budget(AccuracyRecord(images=10, agreement=0.9), 0.0)


def test_a_drop_fails_the_budget_only_when_the_test_images_show_it_is_real() -> None:
    """McNemar's exact test on the paired answers: 1 image lost of 36 (2.8 pt) is chance; 6 of 600 is not."""
    from edgetl.metrics import AccuracyRecord, accuracy, drop_p_value, drop_within_budget

    assert drop_p_value(1, 0) == 0.5 and drop_p_value(0, 0) == 1.0
    assert drop_p_value(5, 0) == 1 / 32 and abs(drop_p_value(3, 1) - 5 / 16) < 1e-12
    targets = np.zeros(36, int)
    reference = np.tile([1.0, 0.0], (36, 1))
    one_lost = reference.copy()
    one_lost[0] = [0.0, 1.0]
    record = accuracy(one_lost, targets, ["a", "b"], reference)
    assert (record.lost, record.gained, record.drop_pp) == (1, 0, 2.7778)
    assert AccuracyRecord.from_json(record.to_json()) == record and "top5" not in record.to_json()  # 2 classes
    assert drop_within_budget(record, 1.0) and ConvertOptions(min_agreement=0).passes(record)
    many = np.tile([1.0, 0.0], (600, 1))
    six_lost = many.copy()
    six_lost[:6] = [0.0, 1.0]
    record = accuracy(six_lost, np.zeros(600, int), ["a", "b"], many)  # 1.0 pt: within the budget as it stands
    assert drop_within_budget(record, 1.0) and not drop_within_budget(record, 0.5)  # p = 1/64: a real drop
    assert drop_within_budget(AccuracyRecord(images=10, agreement=1.0), 1.0)  # unlabelled: no drop to judge


def test_the_ood_prototypes_are_stored_in_8_bits_and_score_as_in_float(
    converted: tuple[Path, dict], sample_data: Path
) -> None:
    """The int8 file carries the OOD head's prototype matrix as int8 (a quarter of its float32 bytes); the head
    still computes in float. On the float32 file the rounding's effect is visible unquantized: it is tiny."""
    run, _ = converted
    int8 = (run / "model_int8.tflite").read_bytes()
    assert prototypes_in_8_bits(int8) == int8 and op_counts(int8)["DEQUANTIZE"] >= 1  # already compact

    float32 = (run / "model_float32.tflite").read_bytes()
    compact = prototypes_in_8_bits(float32)
    prototypes = read_model_info(float32, "float32").card.open_world.ood.prototypes
    assert len(float32) - len(compact) > 2.99 * prototypes * 1280  # 4 bytes → 1 per weight, plus a scale each
    images = np.stack([load_for_model(path, 64) for path in sorted(sample_data.rglob("*.jpg"))[:40]])
    before, after = ImageClassifierModel(float32), ImageClassifierModel(compact)
    np.testing.assert_allclose(
        _ood_scores(after, images), _ood_scores(before, images), atol=2e-3
    )  # cosine distances; thresholds are ~0.1–0.5
    np.testing.assert_allclose(after.scores_batch(images), before.scores_batch(images), atol=1e-6)


def _ood_scores(model: ImageClassifierModel, images: np.ndarray) -> np.ndarray:
    scores = []
    for image in images:
        model.scores(image)
        scores.append(model.ood_score())
    return np.array(scores)


def test_the_open_world_card_reads_back_key_for_key(converted: tuple[Path, dict]) -> None:
    """edgetl.json's card and the refitted one inside a .tflite go through the typed record unchanged, and a
    damaged field is named."""
    run, _ = converted
    trained = json.loads((run / "edgetl.json").read_text())["open_world"]
    assert OpenWorldCard.from_json(trained).to_json() == trained
    packed = json.loads(associated_file((run / "model_int8.tflite").read_bytes(), "model_card.json"))
    card = packed["open_world"]
    assert "float_threshold" in card["ood"]  # refitted to the int8 file's own scores
    assert OpenWorldCard.from_json(card, len(packed["labels"])).to_json() == card
    with pytest.raises(ValueError, match="OOD rule's retention 1.5"):
        OpenWorldCard.from_json({**card, "ood": {**card["ood"], "retention": 1.5}})
