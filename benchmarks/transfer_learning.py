"""Does transfer learning pay? Training from scratch vs feature extraction vs fine-tuning, measured.

    python benchmarks/transfer_learning.py [--data ../shared/datasets/beans] [--size 160]
    python benchmarks/transfer_learning.py --size 224 --methods finetune   # issue 11's time target

Same data and split (beans' own train/validation/test), same backbone (MobileNetV2 1.0), same input
size, on this machine; for each method: test top-1, wall-clock training time, then float vs int8
top-1 and per-image latency of the converted model (`edgetl convert`, LiteRT). Includes the classic
tutorial recipe the project's seed article follows — rescale 1/255, frozen backbone + Dense(256) +
Dropout, 10 epochs, then the last 10 layers unfrozen for 5 epochs — rebuilt for Keras 3 (whose
ImageDataGenerator is gone: `image_dataset_from_directory` with the same augmentation instead).
ImageNet weights come from Keras' cache; offline, the script copies ../shared/keras/models into a
temporary KERAS_HOME.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from shared_data import SHARED, use_shared_keras_weights


def classic_recipe(data: Path, size: int, weights: str, out: Path, console: Console) -> tuple[Path, float, float]:
    """The tutorial recipe, faithfully: (model file, seconds, test top-1)."""
    import keras

    started = time.perf_counter()
    load = {"image_size": (size, size), "batch_size": 32, "label_mode": "categorical", "seed": 42}
    train = keras.utils.image_dataset_from_directory(data / "train", shuffle=True, **load)
    val = keras.utils.image_dataset_from_directory(data / "validation", shuffle=False, **load)
    test = keras.utils.image_dataset_from_directory(data / "test", shuffle=False, **load)
    classes = len(train.class_names)
    augment = keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(20 / 360)])
    base = keras.applications.MobileNetV2(include_top=False, weights=weights, input_shape=(size, size, 3))
    base.trainable = False
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)  # the tutorial's rescale=1./255 (MobileNetV2 expects [-1, 1])
    x = base(x)  # called without training=False, as in the tutorial
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(256, activation="relu")(x)
    x = keras.layers.Dropout(0.5)(x)
    model = keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))
    augmented = train.map(lambda images, labels: (augment(images, training=True), labels))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(augmented, validation_data=val, epochs=10, verbose=0)
    base.trainable = True
    for layer in base.layers[:-10]:
        layer.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(augmented, validation_data=val, epochs=5, verbose=0)
    seconds = time.perf_counter() - started
    _, top1 = model.evaluate(test, verbose=0)
    path = out / "classic.keras"
    model.save(path)
    (out / "classic_labels.txt").write_text("\n".join(train.class_names) + "\n")
    console.print(f"classic recipe: test top-1 {top1:.3f} in {seconds:.0f} s")
    return path, seconds, float(top1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "beans")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--scratch-epochs", type=int, default=10)
    parser.add_argument(
        "--methods",
        default="scratch,extraction,finetune",
        help="which edgetl methods to run beside the classic recipe (comma-separated)",
    )
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    console = Console(width=150)
    use_shared_keras_weights()

    from edgetl.convert.options import BareModel, ConvertOptions
    from edgetl.convert.run import convert
    from edgetl.train.config import TrainConfig
    from edgetl.train.models import resolve_weights
    from edgetl.train.run import train

    out = args.out or Path(tempfile.mkdtemp(prefix="edgetl-transfer-"))
    out.mkdir(parents=True, exist_ok=True)
    quiet = Console(quiet=True)
    common = {"size": args.size, "seed": 42}
    every = {
        "scratch": "from scratch (random init, all layers)",
        "extraction": "feature extraction (frozen ImageNet backbone)",
        "finetune": "fine-tuning (edgetl default: + top layers)",
    }
    chosen = [every[key] for key in args.methods.split(",")]
    methods = {
        every["scratch"]: TrainConfig(
            weights="none",
            head_epochs=0,
            finetune_epochs=args.scratch_epochs,
            finetune_lr=1e-3,
            patience=args.scratch_epochs,
            **common,
        ),
        every["extraction"]: TrainConfig(head_epochs=20, finetune_epochs=0, **common),
        every["finetune"]: TrainConfig(**common),
    }
    rows = []
    for name, config in ((name, methods[name]) for name in chosen):
        console.rule(name)
        started = time.perf_counter()
        run = train(args.data, out / name.split(" ")[0].replace("-", ""), config, console=quiet, force=True)
        seconds = time.perf_counter() - started
        report = convert(run, ConvertOptions(formats=("int8", "float32"), force=True), console=quiet)
        rows.append((name, seconds, report))
        console.print(f"{name}: {seconds:.0f} s, test top-1 {report['models']['float32']['float_top1']:.3f}")

    console.rule("classic tutorial recipe")
    weights = resolve_weights("mobilenet_v2", "imagenet", 1.0, args.size)
    model_path, seconds, _ = classic_recipe(args.data, args.size, weights, out, console)
    report = convert(
        model_path,
        ConvertOptions(formats=("int8", "float32"), force=True, out=out / "classic"),
        console=quiet,
        bare=BareModel(labels=out / "classic_labels.txt", calibration=args.data / "train", test=args.data / "test"),
    )
    rows.insert(0, ("classic tutorial recipe (rescale 1/255, Dense 256)", seconds, report))

    table = Table(title=f"Transfer learning on {args.data.name}, MobileNetV2 1.0 @ {args.size}, this machine")
    columns = ("method", "train s", "float top-1", "int8 top-1", "int8 agreement", "float ms", "int8 ms", "int8 MB")
    for column in columns:
        table.add_column(column, justify="left" if column == "method" else "right")
    for name, seconds, report in rows:
        int8, f32 = report["models"]["int8"], report["models"]["float32"]
        table.add_row(
            name,
            f"{seconds:.0f}",
            f"{100 * int8['float_top1']:.1f}%",
            f"{100 * int8['top1']:.1f}%",
            f"{100 * int8['agreement']:.1f}%",
            f"{f32['median_invoke_ms']:.2f}",
            f"{int8['median_invoke_ms']:.2f}",
            f"{int8['bytes'] / 1e6:.2f}",
        )
    console.print(table)
    if every["finetune"] in chosen:
        classic_top1 = rows[0][2]["models"]["float32"]["float_top1"]
        tuned = next(row for row in rows if row[0] == every["finetune"])
        tuned_top1 = tuned[2]["models"]["float32"]["float_top1"]
        console.print(
            f"edgetl fine-tuning vs the classic recipe: test top-1 {100 * tuned_top1:.1f}% vs "
            f"{100 * classic_top1:.1f}% ({100 * (tuned_top1 - classic_top1):+.1f} points, target ≥ +10; error rate "
            f"×{(1 - tuned_top1) / max(1 - classic_top1, 1e-9):.2f}); time ×{tuned[1] / rows[0][1]:.2f} "
            "(target ≤ 0.5)."
        )
    console.print(f"Runs kept in {out}")


if __name__ == "__main__":
    main()
