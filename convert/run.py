"""`edgetl convert`: Keras model → checked `.tflite` files with metadata, and conversion.json.

Order of work: load SOURCE and its images (bad input fails here, before anything is written),
float reference scores, then per format: convert → (int8: calibrate, quantize, repair) →
embed metadata → write atomically → check on the test images → report.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from rich.console import Console
from rich.table import Table

import edgetl
from edgetl.convert.bias_correction import BIAS_CORRECTION_IMAGES, correct_biases
from edgetl.convert.calibration import (
    DEFAULT_CALIBRATION_SAMPLES,
    check_calibration,
    load_images,
    representative_dataset,
    stratified_sample,
)
from edgetl.convert.evaluate import keras_scores, open_world_check, tflite_scores
from edgetl.convert.metadata import ClassifierMetadata, attach_metadata, build_metadata
from edgetl.convert.repair import DEFAULT_MAX_FLOAT_LAYERS, RepairLog, keep_layers_in_float, rank_layers
from edgetl.convert.source import Source, load_source
from edgetl.convert.tflite import (
    FLOAT_FORMATS,
    calibrate,
    check_builtin,
    convert_float,
    float_ops,
    ood_head_ops,
    op_counts,
    quantize,
    saved_model,
    widen_ood_range,
)
from edgetl.edge.metadata import MODEL_CARD_FILE, ModelCard
from edgetl.errors import EdgetlError
from edgetl.metrics import accuracy, fidelity, near_chance, near_chance_message, retention_threshold, top1
from edgetl.progress import progress_bar
from edgetl.rundir import LABELS_FILE, labels_text, read_json, write_atomic, write_json

REPORT_FILE = "conversion.json"
REPAIR_IMAGES = 500
REPORT_VERSION = 1
DEFAULT_MIN_AGREEMENT = 99.0
MIN_IMAGES_FOR_AGREEMENT = 100


@dataclass
class ConvertOptions:
    formats: tuple[str, ...] = ("int8",)
    input_type: str = "uint8"
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES
    max_drop: float = 1.0  # percentage points of top-1
    # Percent of test images on which each converted model must give the float model's top-1. None: 99 when
    # the test split has at least 100 images (one image is then at most a point), else not applied.
    min_agreement: float | None = None
    bias_correction: bool = True
    repair: bool = True
    max_float_layers: int = DEFAULT_MAX_FLOAT_LAYERS  # the repair's limit on layers kept in float
    threads: int | None = None
    seed: int = 0
    force: bool = False


def model_file(fmt: str) -> str:
    return f"model_{fmt}.tflite"


def _load(samples, source: Source, label: str, console: Console) -> tuple[np.ndarray, np.ndarray]:
    with progress_bar(console) as progress:
        task = progress.add_task(label, total=len(samples))
        images, labels, bad = load_images(samples, source.size, source.resize, lambda: progress.advance(task))
    if bad:
        console.print(f"[yellow]warning:[/] skipped {len(bad)} unreadable image(s), e.g. {bad[0]}")
    return images, labels


def convert(source_path: Path, options: ConvertOptions, *, console: Console | None = None, **source_args) -> dict:
    """Convert, check and report; returns the report. Raises EdgetlError on bad input."""
    console = console or Console()
    source = load_source(source_path, **source_args)
    targets = {fmt: source.out / model_file(fmt) for fmt in options.formats}
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing and not options.force:
        raise EdgetlError(f"{existing[0]} already exists.", "Pass --force to replace it, or --out another folder.")
    for note in source.notes:
        console.print(f"[yellow]note:[/] {note}")

    test_images, test_labels = _load(source.test, source, "Loading test images", console)
    if len(test_images) == 0:
        raise EdgetlError("No readable test images to check the conversion on.", "Check the dataset paths.")
    labels = test_labels if source.test_labelled else None
    min_agreement, note = _min_agreement(options.min_agreement, len(test_images))
    options = replace(options, min_agreement=min_agreement)
    if note:
        source.notes.append(note)  # kept in conversion.json with the other notes
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"Float Keras model on {len(test_images)} test images…")
    float_scores = keras_scores(source.model, test_images)
    reference = float_scores.values
    if labels is not None and near_chance(float_top1 := top1(reference, labels), len(source.labels)):
        message = near_chance_message(float_top1, len(source.labels))
        console.print(f"[bold yellow]warning:[/] the float model's {message}.")

    validation = None
    if source.open_world:  # each file's OOD threshold is refitted on these, from its own scores
        validation, _ = _load(source.repair, source, "Loading validation images", console)
    entries: dict[str, dict] = {}
    with saved_model(source.model) as saved:
        float32 = convert_float(saved, "float32")
        for fmt in options.formats:
            console.print(f"Converting to [bold]{fmt}[/]…")
            if fmt in FLOAT_FORMATS:
                content = float32 if fmt == "float32" else convert_float(saved, fmt)
                extra: dict = {}
            else:
                content, extra = _int8(saved, source, options, test_images, labels, reference, console)
            check_builtin(content)
            card = _open_world_card(content, source, validation)
            content = _with_metadata(content, source, fmt, card)
            write_atomic(targets[fmt], content)
            scores = tflite_scores(content, test_images, options.threads)
            entry = {
                "file": targets[fmt].name,
                "bytes": len(content),
                "size_vs_float32": round(len(content) / len(float32), 4),
                "ops": op_counts(content),
                "float_ops": float_ops(content) if fmt == "int8" else None,
                "median_invoke_ms": scores.median_ms,
                **accuracy(scores.values, labels, source.labels, reference),
                **open_world_check(float_scores, scores, labels, card),
                **extra,
            }
            entry["passed"] = _passes(entry, options)
            entries[fmt] = entry

    report = _write_report(source, options, entries, len(float32))
    print_table(report, console)
    return report


def _min_agreement(requested: float | None, images: int) -> tuple[float, str | None]:
    """(the agreement target to apply, a note when the default is not applied): the user's target, else the
    default where the test split can measure it."""
    if requested is not None:
        return requested, None
    if images >= MIN_IMAGES_FOR_AGREEMENT:
        return DEFAULT_MIN_AGREEMENT, None
    return 0.0, (
        f"Agreement target ({DEFAULT_MIN_AGREEMENT:g} %) not applied: {images} test images are too few to measure "
        f"it (one image is {100 / images:.1f} points); pass --min-agreement to apply one anyway."
    )


def _passes(entry: dict, options: ConvertOptions) -> bool:
    drop_ok = entry.get("drop_pp") is None or entry["drop_pp"] <= options.max_drop
    return drop_ok and 100 * entry["agreement"] >= options.min_agreement


def _int8(
    saved: str,
    source: Source,
    options: ConvertOptions,
    test_images: np.ndarray,
    test_labels: np.ndarray | None,
    reference: np.ndarray,
    console: Console,
) -> tuple[bytes, dict]:
    """Calibrate and quantize; when the check fails, repair as far as the options allow."""
    log = RepairLog()

    def calibrated_on(count: int, seed: int) -> tuple[bytes, bytes, np.ndarray]:
        """(calibrated model, the same with biases corrected when enabled, the images used)."""
        samples = stratified_sample(source.calibration, count, seed)
        images, _ = _load(samples, source, f"Calibration images (seed {seed})", console)
        check_calibration(images, lambda text: console.print(f"[yellow]warning:[/] {text}"))
        console.print(f"Calibrating on {len(images)} images…")
        calibrated = calibrate(saved, representative_dataset(images))
        if source.open_world:
            calibrated = widen_ood_range(calibrated, source.open_world["ood"]["threshold"])
        if not options.bias_correction:
            return calibrated, calibrated, images
        return calibrated, correct_biases(calibrated, images[:BIAS_CORRECTION_IMAGES]), images

    def check(content: bytes) -> dict:
        scores = tflite_scores(content, test_images, options.threads)
        metrics = accuracy(scores.values, test_labels, source.labels, reference)
        return {**metrics, "bytes": len(content), "median_invoke_ms": scores.median_ms}

    def passes(metrics: dict) -> bool:
        return _passes(metrics, options)

    count = options.calibration_samples
    plain, calibrated, calibration_images = calibrated_on(count, options.seed)
    content = quantize(plain, options.input_type)
    metrics = check(content)
    log.add("calibrate", images=len(calibration_images), seed=options.seed, **_summary(metrics), passes=passes(metrics))
    if options.bias_correction:
        corrected = quantize(calibrated, options.input_type)
        corrected_metrics = check(corrected)
        images = min(len(calibration_images), BIAS_CORRECTION_IMAGES)
        kept = passes(corrected_metrics) or not passes(metrics)  # never trade a passing model for a failing one
        log.add(
            "bias_correction", images=images, **_summary(corrected_metrics), passes=passes(corrected_metrics), kept=kept
        )
        if kept:
            content, metrics = corrected, corrected_metrics
        else:
            calibrated = plain
    if passes(metrics) or not options.repair:
        return content, {"calibration_images": len(calibration_images), "repair": log.steps}

    console.print(f"[yellow]int8 misses the budget[/] ({_describe(metrics)}): repairing.")
    repair_samples = stratified_sample(source.repair, REPAIR_IMAGES, options.seed)
    repair_images, _ = _load(repair_samples, source, "Repair images", console)
    repair_reference = keras_scores(source.model, repair_images).values

    def follow(model: bytes) -> tuple[int, float]:
        return fidelity(repair_reference, tflite_scores(model, repair_images, options.threads).values)

    # Cheap first: a larger and a different calibration subset; keep whichever follows float best.
    best = (follow(content), calibrated, calibration_images, options.seed)
    if len(source.calibration) > count:  # otherwise every subset is the whole pool: nothing cheap to try
        for count_i, seed_i in ((min(2 * count, len(source.calibration)), options.seed + 1), (count, options.seed + 2)):
            _, calibrated_i, images_i = calibrated_on(count_i, seed_i)
            score = follow(quantize(calibrated_i, options.input_type))
            log.add("calibrate", images=len(images_i), seed=seed_i, repair_disagreements=score[0])
            if score < best[0]:
                best = (score, calibrated_i, images_i, seed_i)
    fidelity_now, calibrated, calibration_images, seed = best
    content = quantize(calibrated, options.input_type)
    metrics = check(content)
    log.add(
        "choose_calibration", images=len(calibration_images), seed=seed, **_summary(metrics), passes=passes(metrics)
    )
    if passes(metrics) or options.max_float_layers == 0:
        return content, {"calibration_images": len(calibration_images), "repair": log.steps}

    console.print("Ranking layers with the quantization debugger…")
    ranked = rank_layers(saved, calibration_images, ood_head_ops(plain))
    log.ranked_layers = [
        {"layer": layer.short_name, "op": layer.op, "rmse_over_scale": round(layer.rmse_over_scale, 3)}
        for layer in ranked[:10]
    ]

    def check_with(keep: list[str]) -> dict:
        metrics = check(quantize(calibrated, options.input_type, keep))
        return {**_summary(metrics), "passes": passes(metrics)}

    keep = keep_layers_in_float(
        ranked,
        lambda keep: follow(quantize(calibrated, options.input_type, keep)),
        check_with,
        log,
        lambda text: console.print(f"  {text}"),
        fidelity_now,
        options.max_float_layers,
    )
    kept_steps = [step for step in log.steps if step["action"] == "keep_layer_in_float"]
    if keep and not kept_steps[-1]["passes"] and kept_steps[-1]["agreement"] < metrics["agreement"]:
        # The repair images (validation split) are few: what helped there can hurt on the test split.
        # Never hand back a model that checks worse than the one the repair started from.
        log.add("revert", reason="the layers kept in float lowered test agreement; int8 without them is kept")
        keep = []
    if keep:
        content = quantize(calibrated, options.input_type, keep)
    extra = {
        "calibration_images": len(calibration_images),
        "repair": log.steps,
        "worst_layers": log.ranked_layers,
        "float_layers": [step["layer"] for step in kept_steps] if keep else [],
    }
    return content, extra


def _summary(metrics: dict) -> dict:
    keys = ("top1", "drop_pp", "agreement", "bytes", "median_invoke_ms")
    return {key: metrics[key] for key in keys if key in metrics}


def _describe(metrics: dict) -> str:
    parts = [f"agreement {metrics['agreement']:.1%}"]
    if "drop_pp" in metrics:
        parts.insert(0, f"drop {metrics['drop_pp']:.2f} pt")
    return ", ".join(parts)


def _open_world_card(content: bytes, source: Source, validation: np.ndarray | None) -> dict | None:
    """Training's calibration and thresholds, with the OOD threshold refitted to this file's own scores.

    Same rule, same images (the validation split): int8 features are slightly noisier, which shifts
    the Mahalanobis distances up; a threshold fitted to the float model would reject more in-class images.
    """
    if not source.open_world or validation is None or not len(validation):
        return source.open_world
    scores = tflite_scores(content, validation)
    if scores.ood is None:
        return source.open_world
    ood = source.open_world["ood"]
    refitted = {
        **ood,
        "threshold": retention_threshold(scores.ood, ood["retention"]),
        "float_threshold": ood["threshold"],
    }
    return {**source.open_world, "ood": refitted}


def _with_metadata(content: bytes, source: Source, fmt: str, open_world: dict | None) -> bytes:
    description = f"{source.name}: {len(source.labels)}-class image classifier ({fmt}), converted by edgetl."
    meta = ClassifierMetadata(
        name=source.name,
        description=description,
        version=edgetl.__version__,
        width=source.size,
        height=source.size,
        mean=[0.0] * 3,  # the model takes raw 0–255 pixels: normalisation is inside it
        std=[1.0] * 3,
        labels=source.labels,
    )
    card = ModelCard(source.labels, source.size, source.resize, open_world)
    files = {LABELS_FILE: labels_text(source.labels).encode(), MODEL_CARD_FILE: card.to_bytes()}
    metadata = build_metadata(meta, LABELS_FILE, [MODEL_CARD_FILE], ood_output=len(source.model.outputs) == 2)
    return attach_metadata(content, metadata, files)


def _write_report(source: Source, options: ConvertOptions, entries: dict, float32_bytes: int) -> dict:
    path = source.out / REPORT_FILE
    previous = read_json(path) if path.exists() else {}
    models = {**previous.get("models", {}), **entries}
    report = {
        "report_version": REPORT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": source.name,
        "labels": source.labels,
        "test_images": entries[next(iter(entries))]["images"],
        "float32_bytes": float32_bytes,
        "max_drop_pp": options.max_drop,
        "min_agreement_pct": options.min_agreement,
        "notes": source.notes,
        "environment": {
            "edgetl": edgetl.__version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "models": models,
    }
    write_json(path, report)
    if not (source.out / LABELS_FILE).exists():  # beside the .tflite files, for tools that want it separate
        write_atomic(source.out / LABELS_FILE, labels_text(source.labels))
    report["path"] = str(path)
    return report


def _percent(entry: dict, key: str) -> str:
    return f"{100 * entry[key]:.1f}%" if key in entry else "–"


def print_table(report: dict, console: Console) -> None:
    """One row per format, the float Keras model first as the reference."""
    models = report["models"]
    top5 = any("top5" in entry for entry in models.values())
    table = Table(title=f"{report['source']}: {report['test_images']} test images", title_justify="left")
    ece = any("ece" in entry for entry in models.values())
    extra = [*(["top-5"] if top5 else []), *(["ECE"] if ece else [])]
    columns = ["format", "MB", "×f32", "top-1", "drop pt", "agree", *extra, "ms", "check"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("format", "check") else "right")
    first = next(iter(models.values()))
    if "float_top1" in first:
        keras_row = [
            "keras",
            "",
            "",
            _percent(first, "float_top1"),
            "",
            "",
            *([_percent(first, "float_top5")] if top5 else []),
            *([_percent(first, "float_ece")] if ece else []),
        ]
        table.add_row(*keras_row, "", "reference", style="dim")
    for fmt, entry in models.items():
        table.add_row(
            fmt,
            f"{entry['bytes'] / 1e6:.2f}",
            f"{entry['size_vs_float32']:.2f}",
            _percent(entry, "top1"),
            f"{entry['drop_pp']:+.2f}" if "drop_pp" in entry else "–",
            f"{100 * entry['agreement']:.1f}%",
            *([_percent(entry, "top5")] if top5 else []),
            *([_percent(entry, "ece")] if ece else []),
            f"{entry['median_invoke_ms']:.1f}" if entry.get("median_invoke_ms") else "–",
            "[green]ok[/]" if entry["passed"] else "[bold red]FAIL[/]",
        )
    console.print(table)
    for fmt, entry in models.items():
        if entry.get("repair") and len(entry["repair"]) > 1:
            console.print(f"[bold]{fmt}:[/] {describe_repair(entry)}")
    console.print(f"Report: {report['path']}")


def describe_repair(entry: dict) -> str:
    """What was done to int8 beyond plain quantization, in one sentence, with what it cost."""
    steps = entry["repair"]
    first = steps[0]
    chosen = next((step for step in steps if step["action"] == "choose_calibration"), None)
    parts = [f"plain int8 {_describe(first)}"]
    corrected = next((step for step in steps if step["action"] == "bias_correction"), None)
    if corrected:
        kept = "" if corrected.get("kept", True) else " (not kept: plain int8 passed, this did not)"
        parts.append(f"bias-corrected {_describe(corrected)}{kept}")
    if chosen:
        parts.append(f"calibration: {chosen['images']} images, seed {chosen['seed']} ({_describe(chosen)})")
    layers = entry.get("float_layers") or []
    if any(step["action"] == "revert" for step in steps):
        parts.append("layers kept in float lowered test agreement, so int8 without them was kept")
    if layers:
        last = [step for step in steps if step["action"] == "keep_layer_in_float"][-1]
        cost = f"{last['bytes'] / first['bytes'] - 1:+.0%} size"
        if last.get("median_invoke_ms") and first.get("median_invoke_ms"):
            cost += f", {last['median_invoke_ms'] / first['median_invoke_ms'] - 1:+.0%} latency"
        parts.append(f"kept {len(layers)} layer(s) in float: {', '.join(layers)} ({_describe(last)}; {cost})")
    return "; ".join(parts) + "."
