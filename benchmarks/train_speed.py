"""Phase 1 with the feature cache vs the plain frozen-backbone fit: seconds per epoch and accuracy.

Both runs use the same data, split, seed, backbone and epochs (augmentation off in both, so they do the
same work); fine-tuning is skipped. The cached run's first epoch includes computing the cache.

    python benchmarks/train_speed.py                       # ../shared/datasets/beans, MobileNetV2 1.0 @224
    python benchmarks/train_speed.py --data DIR --size 160 --epochs 5

Prints one table and the ratio measured in this one run (this machine is noisy: compare within a run).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from shared_data import SHARED, use_shared_keras_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "beans")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--weights", default="imagenet")
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    work = Path(tempfile.mkdtemp(prefix="edgetl-train-speed-"))
    use_shared_keras_weights()

    from rich.console import Console
    from rich.table import Table

    from edgetl.rundir import RunInfo
    from edgetl.train.config import TrainConfig
    from edgetl.train.run import train

    console = Console()
    rows = {}
    for cached in (True, False):
        name = "feature cache" if cached else "plain frozen fit"
        console.print(f"[bold]{name}[/]: {args.epochs} epochs…")
        config = TrainConfig(
            alpha=args.alpha,
            size=args.size,
            weights=args.weights,
            head_epochs=args.epochs,
            finetune_epochs=0,
            augment=False,
            feature_cache=cached,
            patience=args.epochs,
        )
        out = train(args.data, work / name.replace(" ", "-"), config, console=Console(quiet=True))
        history = list(csv.DictReader((out / "history.csv").open()))
        seconds = [float(row["seconds"]) for row in history]
        metrics = RunInfo.load(out).metrics
        rows[name] = {
            "first": seconds[0],
            "later": statistics.median(seconds[1:]) if len(seconds) > 1 else float("nan"),
            "total": sum(seconds),
            "val": metrics["validation_top1"],
            "test": metrics["test_top1"],
        }

    table = Table(title=f"Phase 1 on {args.data.name}: MobileNetV2 {args.alpha} @ {args.size}px, {args.epochs} epochs")
    for column in ("method", "epoch 1 s", "later epochs s (median)", "total s", "val top-1", "test top-1"):
        table.add_column(column, justify="right")
    for name, r in rows.items():
        table.add_row(
            name,
            f"{r['first']:.1f}",
            f"{r['later']:.2f}",
            f"{r['total']:.1f}",
            f"{r['val']:.3f}",
            f"{r['test']:.3f}",
        )
    console.print(table)
    cache, plain = rows["feature cache"], rows["plain frozen fit"]
    console.print(
        f"Speed-up from the second epoch: [bold]{plain['later'] / cache['later']:.0f}×[/] (target ≥ 5×); "
        f"whole phase: {plain['total'] / cache['total']:.1f}×; "
        f"test top-1 difference {100 * (cache['test'] - plain['test']):+.1f} points."
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
