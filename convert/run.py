"""`edgetl convert`: Keras model → checked `.tflite` files with metadata, and conversion.json.

Order of work: load SOURCE and its images (bad input fails here, before anything is written),
float reference scores, then per format: convert → (int8: calibrate, quantize, repair) →
embed metadata → stage → check on the test images → report; then every file is put in place as one
set (edgetl/outputs.py): an interrupt or a full disk leaves the previous set whole.
"""

from __future__ import annotations

import platform
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from rich.console import Console
from rich.table import Table

import edgetl
from edgetl.convert.calibration import load_with_progress
from edgetl.convert.evaluate import keras_scores, open_world_check, tflite_scores
from edgetl.convert.int8 import Int8Conversion, describe_repair
from edgetl.convert.metadata import ClassifierMetadata, attach_metadata, build_metadata
from edgetl.convert.options import DEFAULT_MIN_AGREEMENT, MIN_IMAGES_FOR_AGREEMENT, BareModel, ConvertOptions
from edgetl.convert.source import Source, load_source
from edgetl.convert.tflite import (
    FLOAT_FORMATS,
    check_builtin,
    convert_float,
    float_ops,
    op_counts,
    prototypes_in_8_bits,
    saved_model,
)
from edgetl.edge.metadata import MODEL_CARD_FILE, ModelCard
from edgetl.errors import EdgetlError
from edgetl.metrics import (
    AccuracyRecord,
    accuracy,
    near_chance,
    near_chance_message,
    sure_images,
    top1,
)
from edgetl.open_world_card import OpenWorldCard, UnknownMeasured
from edgetl.outputs import OutputSet
from edgetl.rundir import LABELS_FILE, json_text, labels_text, read_json, refuse_existing

REPORT_FILE = "conversion.json"
REPORT_VERSION = 1


def model_file(fmt: str) -> str:
    return f"model_{fmt}.tflite"


def convert(
    source_path: Path, options: ConvertOptions, *, console: Console | None = None, bare: BareModel | None = None
) -> dict:
    """Convert, check and report; returns the report. Raises EdgetlError on bad input."""
    console = console or Console()
    source = load_source(source_path, bare, options.out)
    targets = {fmt: source.out / model_file(fmt) for fmt in options.formats}
    for path in targets.values():
        refuse_existing(path, "--out another folder", force=options.force)
    for note in source.notes:
        console.print(f"[yellow]note:[/] {note}")
    with OutputSet(source.out, "convert") as outputs:  # a read-only or missing folder fails here, before work
        report = _convert_and_check(source, options, outputs, console)
        outputs.commit()
    print_table(report, console)
    return report


def _convert_and_check(source: Source, options: ConvertOptions, outputs: OutputSet, console: Console) -> dict:
    """Each format converted, checked on the test images and staged in `outputs`, with conversion.json."""
    test_images, test_labels = load_with_progress(source.test, source, "Loading test images", console)
    if len(test_images) == 0:
        raise EdgetlError("No readable test images to check the conversion on.", "Check the dataset paths.")
    labels = test_labels if source.test_labelled else None
    console.print(f"Float Keras model on {len(test_images)} test images…")
    float_scores = keras_scores(source.model, test_images)
    reference = float_scores.values
    min_agreement, note = _min_agreement(options.min_agreement, int(sure_images(reference).sum()))
    options = replace(options, min_agreement=min_agreement)
    if note:
        source.notes.append(note)  # kept in conversion.json with the other notes
        console.print(f"[yellow]note:[/] {note}")
    if labels is not None and near_chance(float_top1 := top1(reference, labels), len(source.labels)):
        message = near_chance_message(float_top1, len(source.labels))
        console.print(f"[bold yellow]warning:[/] the float model's {message}.")

    validation = other = None
    if source.open_world:  # each file's OOD threshold is refitted on these, from its own scores
        validation, _ = load_with_progress(source.repair, source, "Loading validation images", console)
    if source.open_world and source.other:  # and each says how many held-out "other" photos it calls unknown
        other, _ = load_with_progress(source.other, source, "Loading other photos", console)
    entries: dict[str, dict] = {}
    with saved_model(source.model) as saved:
        float32 = convert_float(saved, "float32")
        for fmt in options.formats:
            console.print(f"Converting to [bold]{fmt}[/]…")
            if fmt in FLOAT_FORMATS:
                content = float32 if fmt == "float32" else convert_float(saved, fmt)
                extra: dict = {}
            else:
                content, extra = Int8Conversion(saved, source, options, test_images, labels, reference, console).run()
                content = prototypes_in_8_bits(content)
            check_builtin(content)
            card = _open_world_card(content, source, validation)
            scores = tflite_scores(content, test_images, options.threads)
            other_ood = tflite_scores(content, other, options.threads).ood if other is not None else None
            card = _measured(card, scores.ood, other_ood)
            content = _with_metadata(content, source, fmt, card)
            outputs.write(model_file(fmt), content)
            entry = {
                "file": model_file(fmt),
                "bytes": len(content),
                "size_vs_float32": round(len(content) / len(float32), 4),
                "ops": op_counts(content),
                "float_ops": float_ops(content) if fmt == "int8" else None,
                "median_invoke_ms": scores.median_ms,
                **(record := accuracy(scores.values, labels, source.labels, reference)).to_json(),
                **open_world_check(float_scores, scores, labels, card),
                **extra,
            }
            if card and card.measured and "ood" in entry:
                entry["ood"] |= {"measured": card.measured.to_json()}
            entry["passed"] = options.passes(record)
            entries[fmt] = entry

    return _write_report(source, options, entries, len(float32), outputs)


def _min_agreement(requested: float | None, sure: int) -> tuple[float, str | None]:
    """(the agreement target to apply, a note when the default is not applied): the user's target, else the
    default where the test images the float model is sure of (`metrics.sure_images`) can measure it."""
    if requested is not None:
        return requested, None
    if sure >= MIN_IMAGES_FOR_AGREEMENT:
        return DEFAULT_MIN_AGREEMENT, None
    return 0.0, (
        f"Agreement target ({DEFAULT_MIN_AGREEMENT:g} %) not applied: the float model is sure of only {sure} test "
        f"images, too few to measure it (one image is {100 / max(sure, 1):.1f} points); pass --min-agreement to "
        "apply one anyway."
    )


def _open_world_card(content: bytes, source: Source, validation: np.ndarray | None) -> OpenWorldCard | None:
    """Training's calibration and thresholds, with the OOD threshold refitted to this file's own scores.

    Same rule, same images (the validation split): int8 features are slightly noisier, which shifts
    the OOD scores up; a threshold fitted to the float model would reject more in-class images.
    """
    card = source.open_world
    if not (card and card.ood and card.ood.retention) or validation is None or not len(validation):
        return card
    scores = tflite_scores(content, validation)
    return card if scores.ood is None else card.refitted(card.ood.refit(scores.ood))


def _measured(card: OpenWorldCard | None, test: np.ndarray | None, other: np.ndarray | None) -> OpenWorldCard | None:
    """The card with both sides of "unknown" as this file decides them: held-out in-class test photos decided as a
    class, held-out "other" photos (train/other.py) called unknown."""
    if not (card and card.ood) or test is None or not len(test):
        return card
    return replace(card, measured=UnknownMeasured.of(test, other, card.ood.threshold))


def _with_metadata(content: bytes, source: Source, fmt: str, open_world: OpenWorldCard | None) -> bytes:
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
    run = source.run
    version = f"{run.directory.name} {run.created}".strip() if run and run.directory else ""
    card = ModelCard(source.labels, source.size, source.resize, open_world, version)
    files = {LABELS_FILE: labels_text(source.labels).encode(), MODEL_CARD_FILE: card.to_bytes()}
    metadata = build_metadata(meta, LABELS_FILE, [MODEL_CARD_FILE], ood_output=len(source.model.outputs) == 2)
    return attach_metadata(content, metadata, files)


def _write_report(
    source: Source, options: ConvertOptions, entries: dict, float32_bytes: int, outputs: OutputSet
) -> dict:
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
    outputs.write(REPORT_FILE, json_text(report))
    if not (source.out / LABELS_FILE).exists():  # beside the .tflite files, for tools that want it separate
        outputs.write(LABELS_FILE, labels_text(source.labels))
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
            f"{100 * AccuracyRecord.from_json(entry).judged_agreement:.1f}%",
            *([_percent(entry, "top5")] if top5 else []),
            *([_percent(entry, "ece")] if ece else []),
            f"{entry['median_invoke_ms']:.1f}" if entry.get("median_invoke_ms") else "–",
            "[green]ok[/]" if entry["passed"] else "[bold red]FAIL[/]",
        )
    console.print(table)
    if first.get("sure_images", report["test_images"]) < report["test_images"]:
        on_all = ", ".join(f"{fmt} {100 * entry['agreement']:.1f}%" for fmt, entry in models.items())
        console.print(
            f"agree: on the {first['sure_images']} test images the float model gives ≥ 50 % "
            f"(on all {report['test_images']}: {on_all})."
        )
    for fmt, entry in models.items():
        if entry.get("repair") and len(entry["repair"]) > 1:
            console.print(f"[bold]{fmt}:[/] {describe_repair(entry)}")
        if entry.get("drop_pp", 0.0) > report["max_drop_pp"] and entry["passed"]:
            console.print(
                f"[yellow]note:[/] {fmt} lost {entry['lost']} and gained {entry['gained']} of {entry['images']} test "
                f"images ({entry['drop_pp']:+.2f} pt): chance explains that (McNemar p = {entry['drop_p']:.2f}), so it "
                "passes; more test images would tell a real drop apart."
            )
    console.print(f"Report: {report['path']}")
