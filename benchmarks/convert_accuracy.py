"""int8 conversion targets: accuracy kept, agreement with float, file size.

    python benchmarks/convert_accuracy.py runs/flowers runs/beans --imagenet

For each run directory: `edgetl convert RUN --int8 --float32 --min-agreement 99` into a scratch
copy (the run itself is not touched). With --imagenet: the pretrained MobileNetV2 classifier from
../shared/weights, saved as a .keras file and converted as a user's own model
(`--preprocessing tf`), calibrated on 300 of ../shared/datasets/imagenet-samples and checked on
all 1000 (labels from its labels.csv). Prints one table against the targets of the issue.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from shared_data import SHARED

RUN_FILES = ("edgetl.json", "model.keras", "labels.txt", "split")


def _scratch_copy(run: Path, scratch: Path) -> Path:
    copy = scratch / run.name
    copy.mkdir()
    for name in RUN_FILES:
        source = run / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, copy / name)
    return copy


def imagenet_model(scratch: Path, calibration_images: int = 300, seed: int = 0) -> dict:
    """A .keras classifier, labels, calibration folder and class-folder test set from ../shared."""
    import keras

    samples = SHARED / "datasets" / "imagenet-samples"
    rows = list(csv.DictReader((samples / "labels.csv").open()))
    rows.sort(key=lambda row: int(row["class_index"]))
    names = [row["name"] for row in rows]
    labels = [name if names.count(name) == 1 else f"{name}_{row['wnid']}" for name, row in zip(names, rows)]
    (scratch / "labels.txt").write_text("".join(f"{label}\n" for label in labels))
    test = scratch / "test"
    for label, row in zip(labels, rows):
        (test / label).mkdir(parents=True)
        (test / label / row["file"]).symlink_to(samples / "images" / row["file"])
    calibration = scratch / "calibration"
    calibration.mkdir()
    for row in random.Random(seed).sample(rows, calibration_images):
        (calibration / row["file"]).symlink_to(samples / "images" / row["file"])
    model = keras.applications.MobileNetV2(weights=None, include_top=True)
    model.load_weights(SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet_with_top.h5")
    model.save(scratch / "mobilenet_v2_imagenet.keras")
    return {
        "source": scratch / "mobilenet_v2_imagenet.keras",
        "labels": scratch / "labels.txt",
        "calibration": calibration,
        "test": test,
        "preprocessing": "tf",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run directories from `edgetl train`")
    parser.add_argument("--imagenet", action="store_true", help="also the ImageNet classifier from ../shared")
    parser.add_argument("--min-agreement", type=float, default=99.0)
    parser.add_argument("--max-drop", type=float, default=0.5)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edgetl.convert.options import BareModel, ConvertOptions
    from edgetl.convert.run import convert

    console = Console(width=150)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgetl-bench-convert-") as folder:
        scratch = Path(folder)
        jobs = [(run.name, {"source_path": _scratch_copy(run, scratch)}, args.min_agreement) for run in args.runs]
        if args.imagenet:
            (scratch / "imagenet").mkdir()
            imagenet = imagenet_model(scratch / "imagenet")
            source = imagenet.pop("source")
            # The same target: agreement is judged on the images the float model gives ≥ 50 %, for 1000 classes too.
            jobs.append(
                ("imagenet (1000 classes)", {"source_path": source, "bare": BareModel(**imagenet)}, args.min_agreement)
            )
        for name, source_args, min_agreement in jobs:
            console.rule(name)
            options = ConvertOptions(
                formats=("int8", "float32"), max_drop=args.max_drop, min_agreement=min_agreement, force=True
            )
            started = time.perf_counter()
            report = convert(console=console, options=options, **source_args)
            int8, float32 = report["models"]["int8"], report["models"]["float32"]
            rows.append((name, int8, float32, time.perf_counter() - started))

    table = Table(title=f"int8 targets: drop ≤ {args.max_drop} pt, agreement ≥ {args.min_agreement}%, size ≤ 30%")
    columns = ("model", "float top-1", "plain int8 drop", "int8 top-1", "drop (pt)", "agreement: all")
    columns += ("sure (images)", "int8/f32 size")
    for column in (*columns, "float layers"):
        table.add_column(column, justify="left" if column == "model" else "right")
    table.add_column("convert s", justify="right")
    for name, int8, float32, seconds in rows:
        table.add_row(
            name,
            f"{100 * int8['float_top1']:.2f}%",
            f"{int8['repair'][0]['drop_pp']:+.2f}",
            f"{100 * int8['top1']:.2f}%",
            f"{int8['drop_pp']:+.2f}",
            f"{100 * int8['agreement']:.2f}%",
            f"{100 * int8['sure_agreement']:.2f}% ({int8['sure_images']})",
            f"{int8['bytes'] / float32['bytes']:.1%}",
            ", ".join(int8.get("float_layers", [])) or "none",
            f"{seconds:.0f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
