"""What the device decides for in-class photos and for photos of other subjects, under each candidate rule.

    python benchmarks/decisions.py                                  # beans, defaults, seeds 1 2 3
    python benchmarks/decisions.py --data ../shared/datasets/flowers --set finetune_epochs=0

Trains one run per seed (or reuses `--runs DIR/seedN` from an earlier call), then scores the run's float
Keras model — calibrated probabilities and the OOD score, the outputs every `.tflite` carries — on the
validation split (where every threshold is fitted, as training and convert fit them), the test split and
the photos of the other datasets in ../shared. For each rule it prints the share of in-class test photos
decided as a class (neither "unknown" nor "unsure") and the share of other-dataset photos decided "unknown",
per seed, then the median and range over seeds. Quote those, never one seed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
from shared_data import SHARED, settings, use_shared_keras_weights

MAX_OOD_IMAGES = 300  # per other dataset, a seeded sample
RETENTIONS = (0.96, 0.99, 0.995, 1.0)  # 0.96: edgetl 0.2's; 1.0: the validation maximum
SCALES = (1.25, 1.5)  # thresholds above the 99 % quantile of validation: room for test photos a little off
PRECISION = 0.95  # the class thresholds' target (training's TARGET_PRECISION)


def other_datasets(data: Path) -> list[Path]:
    """Every dataset in ../shared but the one trained on (ImageNet's photos: its images/ folder)."""
    found = [SHARED / "datasets" / "beans", SHARED / "datasets" / "flowers", SHARED / "datasets" / "imagenet-samples"]
    return [folder for folder in found if folder.resolve() != data.resolve() and folder.is_dir()]


def outputs(model, paths: list[Path], size: int, resize: str) -> tuple[np.ndarray, np.ndarray]:
    """(calibrated probabilities, OOD scores) of the float model, in batches."""
    from edgetl.images import load_for_model

    probs, ood = [], []
    for start in range(0, len(paths), 64):
        batch = np.stack([load_for_model(p, size, resize) for p in paths[start : start + 64]]).astype(np.float32)
        p, o = model.predict(batch, verbose=0)
        probs.append(np.asarray(p))
        ood.append(np.asarray(o).reshape(-1))
    return np.concatenate(probs), np.concatenate(ood)


def measure(run_dir: Path, data: Path) -> dict[str, tuple[float, float]]:
    """Per rule: (share of in-class test photos decided as a class, share of other photos decided unknown)."""
    import keras

    from edgetl.images import list_images
    from edgetl.metrics import retention_threshold
    from edgetl.rundir import RunInfo
    from edgetl.train.open_world import class_thresholds

    run = RunInfo.load(run_dir)
    model = keras.models.load_model(run.model_path, compile=False)
    split = {name: run.samples(name) for name in ("validation", "test")}
    val_probs, val_ood = outputs(model, [s.path for s in split["validation"]], run.size, run.resize)
    test_probs, test_ood = outputs(model, [s.path for s in split["test"]], run.size, run.resize)
    rng = np.random.default_rng(0)
    others = []
    for folder in other_datasets(data):
        paths = list_images(folder)
        others += [paths[i] for i in sorted(rng.choice(len(paths), min(len(paths), MAX_OOD_IMAGES), replace=False))]
    _, out_ood = outputs(model, others, run.size, run.resize)
    val_labels = np.array([s.label for s in split["validation"]])
    floors = class_thresholds(val_probs, val_labels, target=PRECISION)
    sure = test_probs.max(1) >= np.array([floors[c] or 0.0 for c in test_probs.argmax(1)])
    thresholds = {f"OOD keeps {r:.1%} of validation": retention_threshold(val_ood, r) for r in RETENTIONS}
    for scale in SCALES:
        thresholds[f"OOD over {scale} × its validation 99 % quantile"] = scale * retention_threshold(val_ood, 0.99)
    rules = {}
    for name, threshold in thresholds.items():
        in_class, rejected = test_ood <= threshold, float((out_ood > threshold).mean())
        rules[name] = (float(in_class.mean()), rejected)
        rules[f"{name} + unsure ({PRECISION:.0%}-precision class thresholds)"] = (
            float((in_class & sure).mean()),
            rejected,
        )
    return rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "beans")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--runs", type=Path, default=None, help="Keep (and reuse) the runs here: DIR/seedN.")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="A TrainConfig field.")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    use_shared_keras_weights()

    from rich.console import Console
    from rich.table import Table

    from edgetl.train.config import TrainConfig
    from edgetl.train.run import train

    console = Console()
    runs = args.runs or Path(tempfile.mkdtemp(prefix="edgetl-decisions-"))
    changes = settings(args.set)
    per_seed: dict[str, list[tuple[float, float]]] = {}
    for seed in args.seeds:
        run_dir = runs / f"seed{seed}"
        if not (run_dir / "edgetl.json").exists():
            console.print(f"training seed {seed} → {run_dir}")
            train(args.data, run_dir, TrainConfig(seed=seed, **changes), console=Console(quiet=True))
        for rule, shares in measure(run_dir, args.data).items():
            per_seed.setdefault(rule, []).append(shares)
    table = Table(title=f"{args.data.name}: decisions under each rule (seeds {args.seeds}; {args.set or 'defaults'})")
    for column in ("rule", "in-class test decided as a class", "other photos decided unknown"):
        table.add_column(column, justify="left" if column == "rule" else "right")
    for rule, shares in per_seed.items():
        cells = []
        for values in zip(*shares):
            cells.append(
                f"{statistics.median(values):.1%} ({min(values):.1%}–{max(values):.1%}): "
                + " ".join(f"{v:.1%}" for v in values)
            )
        table.add_row(rule, *cells)
    console.print(table)
    console.print(f"median (range): per seed. Other photos: {[p.name for p in other_datasets(args.data)]}")


if __name__ == "__main__":
    main()
