"""Warm start against cold start for `edgetl train … --from v1` (issue 22 §1), on flowers, over seeds.

    python benchmarks/warm_start.py [--seeds 1 2 3] [--per-class 120] [--new 60] [--set alpha=0.35 --set size=160]
                                    [--work DIR]   (finished runs found there are reused, not retrained)

Per seed: v1 learns daisy, dandelion and rose (`--per-class` photos each); v2's data adds sunflower and tulip
(`--new` photos each, what a few labelling sessions give). v2 is trained twice `--from v1`, on the same split:
cold (ImageNet weights) and warm (v1's weights, fresh rows for the new classes). Printed per seed and as
medians: training time, the time each needs to reach the cold run's best epoch validation accuracy
(cumulative epoch seconds from history.csv, the same measurement for both), and test top-1 on the five-class
split (the two new classes apart).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
import tempfile
from pathlib import Path

from shared_data import SHARED, settings, use_shared_keras_weights

OLD, NEW = ["daisy", "dandelion", "rose"], ["sunflower", "tulip"]


def build(work: Path, per_class: int, new: int) -> tuple[Path, Path]:
    """v1's dataset and v2's (v1's photos plus the new classes), as symlinks into ../shared."""
    flowers, rng = SHARED / "datasets" / "flowers", random.Random(0)
    v1_data, v2_data = work / "v1-data", work / "v2-data"
    for name in OLD + NEW:
        photos = sorted((flowers / name).glob("*.jpg"))
        rng.shuffle(photos)
        chosen = photos[:per_class] if name in OLD else photos[:new]
        for folder in (v1_data, v2_data) if name in OLD else (v2_data,):
            (folder / name).mkdir(parents=True, exist_ok=True)
            for photo in chosen:
                if not (folder / name / photo.name).is_symlink():
                    (folder / name / photo.name).symlink_to(photo)
    return v1_data, v2_data


def history(run: Path) -> list[tuple[float, float]]:
    """(cumulative training seconds, validation accuracy) after each epoch of both phases."""
    elapsed, rows = 0.0, []
    with open(run / "history.csv") as file:
        for row in csv.DictReader(file):
            elapsed += float(row["seconds"])
            rows.append((elapsed, float(row["val_accuracy"])))
    return rows


def seconds_to(run: Path, accuracy: float) -> float | None:
    """Cumulative training seconds until an epoch's validation accuracy first reached `accuracy`."""
    return next((elapsed for elapsed, reached in history(run) if reached >= accuracy - 1e-9), None)


def trained(data: Path, out: Path, config) -> Path:
    from edgetl.train.run import train

    if (out / "edgetl.json").exists():
        return out
    from rich.console import Console

    return train(data, out, config, console=Console(quiet=True))


def measure(run: Path, target: float) -> dict:
    from edgetl.rundir import read_json

    info, metrics = read_json(run / "edgetl.json"), read_json(run / "metrics.json")
    recall = {name: metrics["test"]["per_class"][name]["recall"] for name in NEW}
    seconds = info["training"]["seconds"]
    return {
        "train_s": seconds["total"],
        "phases": f"phase 1 {seconds['head']:.0f} s of which epoch 1 (the cache) {history(run)[0][0]:.0f} s, "
        f"phase 2 {seconds['finetune']:.0f} s",
        "to_target_s": seconds_to(run, target),
        "val": metrics["validation"]["top1"],
        "test": metrics["test"]["top1"],
        "test_new": statistics.mean(recall.values()),
        "images": metrics["test"]["count"],
    }


def describe(row: dict) -> str:
    reached = f"{row['to_target_s']:.0f} s" if row["to_target_s"] is not None else "never"
    return (
        f"train {row['train_s']:.0f} s ({row['phases']}), reached the target in {reached}, val {row['val']:.1%}, "
        f"test {row['test']:.1%} (sunflower+tulip {row['test_new']:.1%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--per-class", type=int, default=120)
    parser.add_argument("--new", type=int, default=60, help="photos of each new class in v2's data")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a TrainConfig field")
    parser.add_argument("--work", type=Path, help="folder for the data and runs (default: a new temporary one)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    use_shared_keras_weights()
    from edgetl.train.config import TrainConfig

    work = args.work or Path(tempfile.mkdtemp(prefix="edgetl-warm-start-"))
    v1_data, v2_data = build(work, args.per_class, args.new)
    changes = settings(args.set)
    print(
        f"flowers: v1 {', '.join(OLD)} ({args.per_class} each); v2 adds {', '.join(NEW)} ({args.new} each); {changes}"
    )
    rows: dict[str, list[dict]] = {"cold": [], "warm": []}
    for seed in args.seeds:
        v1 = trained(v1_data, work / f"v1-{seed}", TrainConfig(**changes, seed=seed))
        runs = {
            how: trained(
                v2_data,
                work / f"v2-{how}-{seed}",
                TrainConfig(**changes, seed=seed, parent=str(v1), warm_start=how == "warm"),
            )
            for how in rows
        }
        target = max(accuracy for _, accuracy in history(runs["cold"]))
        for how, run in runs.items():
            rows[how].append(measure(run, target))
            print(f"seed {seed} {how}: {describe(rows[how][-1])}  [target: cold's best epoch, val {target:.1%}]")
    for how, measured in rows.items():
        reached = [row["to_target_s"] for row in measured if row["to_target_s"] is not None]
        print(
            f"{how}: train {spread([row['train_s'] for row in measured], '{:.0f} s')}; reached the target in "
            f"{len(reached)}/{len(measured)} seeds ({spread(reached, '{:.0f} s') if reached else 'never'}); "
            f"test {spread([row['test'] for row in measured], '{:.1%}')}; "
            f"new classes {spread([row['test_new'] for row in measured], '{:.1%}')} on {measured[0]['images']} images"
        )


def spread(values: list[float], form: str) -> str:
    """Median (range)."""
    median, low, high = (form.format(v) for v in (statistics.median(values), min(values), max(values)))
    return f"{median} ({low}–{high})"


if __name__ == "__main__":
    main()
