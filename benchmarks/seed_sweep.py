"""Train the same configuration with several seeds: the spread of test accuracy, calibration, time and int8 agreement.

Each seed is one full `edgetl train` (defaults unless told) and `edgetl convert --int8` with its default
budget (agreement ≥ 99 % with ≥ 100 test images, repair when missed). The first seed is trained once more
with --no-deterministic to measure what determinism costs (and, with --repeat, a third time to show
that a run repeats exactly; tests/test_precision_and_determinism.py checks that on a small subset;
--no-determinism-cost skips it).

    python benchmarks/seed_sweep.py                         # beans, MobileNetV2 1.0 @224, seeds 1 2 3
    python benchmarks/seed_sweep.py --seeds 1 2 3 --size 160 --repeat
    python benchmarks/seed_sweep.py --set finetune_views=0 --no-convert   # any TrainConfig field; Keras only

Prints one table and the median and range; quote those, never one seed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from shared_data import SHARED, use_shared_keras_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "beans")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--repeat", action="store_true", help="Also train the first seed a second time.")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="A TrainConfig field, e.g. finetune_epochs=12.",
    )
    parser.add_argument("--no-convert", action="store_true", help="Skip the int8 conversion (Keras figures only).")
    parser.add_argument(
        "--no-determinism-cost", action="store_true", help="Skip the --no-deterministic run of the first seed."
    )
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    work = Path(tempfile.mkdtemp(prefix="edgetl-seed-sweep-"))
    use_shared_keras_weights()

    from rich.console import Console
    from rich.table import Table

    from edgetl.convert.options import ConvertOptions
    from edgetl.convert.run import convert
    from edgetl.rundir import RunInfo
    from edgetl.train.config import TrainConfig
    from edgetl.train.run import train

    console = Console()
    quiet = Console(quiet=True)
    plan = [(seed, True, "") for seed in args.seeds]
    if not args.no_determinism_cost:
        plan.append((args.seeds[0], False, "no-deterministic"))
    if args.repeat:
        plan.append((args.seeds[0], True, "repeat"))
    changes = _changes(args.set, TrainConfig)
    rows = []
    for seed, deterministic, note in plan:
        console.print(f"[bold]seed {seed}[/] {note}…")
        config = TrainConfig(alpha=args.alpha, size=args.size, seed=seed, deterministic=deterministic, **changes)
        started = time.perf_counter()
        run = train(args.data, work / f"seed{seed}{note}", config, console=quiet)
        train_seconds = time.perf_counter() - started
        nan = float("nan")
        int8 = {"top1": nan, "ece": nan, "ece_floor": {"median": nan}, "agreement": nan, "passed": None}
        if not args.no_convert:
            int8 = convert(run, ConvertOptions(formats=("int8",)), console=quiet)["models"]["int8"]
        info = RunInfo.load(run)
        rows.append(
            {
                "seed": seed,
                "note": note,
                "test_top1": info.metrics.test_top1,
                "val_top1": info.metrics.validation_top1,
                "train_s": train_seconds,
                "finetune_s": info.training.seconds.get("finetune", 0.0),
                "int8_top1": int8["top1"],
                "ece": json.loads((run / "metrics.json").read_text())["test"]["calibration"]["ece"],
                "int8_ece": int8["ece"],
                "int8_ece_floor": int8["ece_floor"]["median"],
                "agreement": int8["agreement"],
                "repaired": any(step["action"] == "choose_calibration" for step in int8.get("repair", [])),
                "passed": int8["passed"],
            }
        )

    settings = ", ".join(args.set) or "defaults"
    table = Table(title=f"{args.data.name}: MobileNetV2 {args.alpha} @{args.size}, {settings}")
    columns = ("seed", "test top-1", "val top-1", "train s", "int8 top-1", "ECE", "int8 ECE", "agreement", "repair")
    for column in (*columns, "passed"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            f"{row['seed']} {row['note']}".strip(),
            f"{100 * row['test_top1']:.1f} %",
            f"{100 * row['val_top1']:.1f} %",
            f"{row['train_s']:.0f}",
            f"{100 * row['int8_top1']:.1f} %",
            f"{100 * row['ece']:.1f} %",
            f"{100 * row['int8_ece']:.1f} %",
            f"{100 * row['agreement']:.1f} %",
            "yes" if row["repaired"] else "no",
            {True: "yes", False: "NO", None: "–"}[row["passed"]],
        )
    console.print(table)
    sweep = [row for row in rows if not row["note"]]
    for key, label, scale in (
        ("test_top1", "test top-1 %", 100),
        ("agreement", "int8 agreement %", 100),
        ("ece", "test ECE (Keras, calibrated) %", 100),
        ("int8_ece", "test ECE (int8) %", 100),
        ("int8_ece_floor", "test ECE a perfectly calibrated int8 model would measure %", 100),
        ("train_s", "train seconds", 1),
    ):
        values = [scale * row[key] for row in sweep]
        console.print(
            f"{label}: median {statistics.median(values):.1f}, range {min(values):.1f}–{max(values):.1f} "
            f"over {len(values)} seeds"
        )
    first = rows[0]
    if args.repeat:
        same = first["test_top1"] == rows[-1]["test_top1"] and _same_weights(work, args.seeds[0])
        console.print(f"repeat of seed {args.seeds[0]}: {'identical metrics and weights' if same else 'DIFFERENT'}")
    loose = next((row for row in rows if row["note"] == "no-deterministic"), None)
    if loose:
        console.print(
            f"determinism cost: deterministic {first['train_s']:.0f} s vs --no-deterministic "
            f"{loose['train_s']:.0f} s (ratio {first['train_s'] / loose['train_s']:.2f}, one run each)"
        )
    shutil.rmtree(work, ignore_errors=True)


def _changes(pairs: list[str], config_type: type) -> dict:
    """--set FIELD=VALUE pairs as TrainConfig keyword arguments, each value parsed as its default's type."""
    defaults = config_type()
    changes = {}
    for pair in pairs:
        field, _, value = pair.partition("=")
        default = getattr(defaults, field)  # AttributeError names an unknown field
        if isinstance(default, bool):
            changes[field] = value.lower() in ("1", "true", "yes")
        else:
            changes[field] = value if default is None else type(default)(value)
    return changes


def _same_weights(work: Path, seed: int) -> bool:
    import keras
    import numpy as np

    a = keras.saving.load_model(work / f"seed{seed}" / "model.keras").get_weights()
    b = keras.saving.load_model(work / f"seed{seed}repeat" / "model.keras").get_weights()
    return all(np.array_equal(x, y) for x, y in zip(a, b))


if __name__ == "__main__":
    main()
