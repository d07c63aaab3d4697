""" "Unknown" fitted with photos of none of the classes (issue 32): how each rule decides, and how many to take.

    python benchmarks/other_photos.py --runs /tmp/o32/runs/beans     # DIR/seedN: default runs of one dataset
    python benchmarks/other_photos.py --runs /tmp/o32/runs/flowers --data ../shared/datasets/flowers

For each run (an `edgetl train` with defaults, one per seed), the float model's OOD score is computed on its
validation and test photos and on photos of the other sources in ../shared: each other dataset, and a
"looks like the scene" set of ImageNet photos of plants, leaves and gardens (SCENE: none of the classes).
Each rule is then fitted the way training fits it, on the validation split and on the validation share of N
"other" photos from ONE source (train/other.py splits them), and judged on the in-class test split and on
photos from a source it was NOT given: the share of in-class test photos decided as a class (not "unknown")
and the share of the unseen source's photos called "unknown"; and once given half of the scene-like photos,
judged on their other half. Median (range) over seeds; quote those.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np
from shared_data import SHARED

SPLITS = ("validation", "test")
GIVEN_MAX = 240  # the largest "other" set given to a rule; the smaller ones are its first N
COUNTS = (30, 60, 120, 240)
EVAL_PHOTOS = 300  # per unseen source, a seeded sample disjoint from the given ones
SCENE_HALF = "scene-like, half"  # given half of the SCENE photos, judged on the other half
# ImageNet classes that look like each dataset's scene but are none of its classes (labels.csv names).
SCENE = {
    "flowers": "greenhouse vase pot patio picket_fence lawn_mower hay lakeside valley rapeseed yellow_lady's_slipper "
    "hip buckeye acorn corn head_cabbage broccoli cauliflower artichoke cardoon strawberry fig pomegranate admiral "
    "monarch cabbage_butterfly sulphur_butterfly ringlet lycaenid mushroom agaric leaf_beetle mantis leafhopper",
    "beans": "leaf_beetle walking_stick mantis leafhopper head_cabbage broccoli cauliflower zucchini cucumber "
    "artichoke cardoon bell_pepper corn rapeseed hay greenhouse acorn buckeye hip fig strawberry spaghetti_squash "
    "acorn_squash butternut_squash lawn_mower pot vase patio",
}


def sources(data: Path) -> dict[str, list[Path]]:
    """Each other source's photos, seeded order: beans, flowers, imagenet (the dataset trained on left out)."""
    from edgetl.images import list_images

    found = {}
    for name in ("beans", "flowers", "imagenet-samples"):
        folder = SHARED / "datasets" / name
        if folder.is_dir() and folder.resolve() != data.resolve():
            paths = list_images(folder)
            order = np.random.default_rng(0).permutation(len(paths))
            found[name] = [paths[i] for i in order[: GIVEN_MAX + EVAL_PHOTOS]]
    return found


def scene(data: Path) -> list[Path]:
    names = set(SCENE.get(data.name, "").split())
    folder = SHARED / "datasets" / "imagenet-samples"
    with open(folder / "labels.csv", newline="") as handle:
        return [folder / "images" / row["file"] for row in csv.DictReader(handle) if row["name"] in names]


def ood_scores(model, paths: list[Path], size: int, resize: str) -> np.ndarray:
    from edgetl.images import load_for_model

    scores = []
    for start in range(0, len(paths), 64):
        batch = np.stack([load_for_model(p, size, resize) for p in paths[start : start + 64]]).astype(np.float32)
        scores.append(np.asarray(model.predict(batch, verbose=0)[1]).reshape(-1))
    return np.concatenate(scores)


def measure(run_dir: Path, data: Path) -> dict[tuple[str, str, int], tuple[float, float, float]]:
    """{(rule, given source, N): (in-class test decided as a class, unseen photos "unknown", scene "unknown")}.

    Given one of the other datasets, the unseen photos are the other dataset(s)' EVAL_PHOTOS; given half of the
    scene-like photos, they are its other half (and the scene column is that half too)."""
    import keras

    from edgetl.digests import content_digest
    from edgetl.rundir import RunInfo
    from edgetl.train.open_world import OTHER_CAP, RETENTION, other_threshold
    from edgetl.train.other import split_other

    run = RunInfo.load(run_dir)
    model = keras.models.load_model(run.model_path, compile=False)
    score = {split: ood_scores(model, [s.path for s in run.samples(split)], run.size, run.resize) for split in SPLITS}
    pools = sources(data)
    given = {name: ood_scores(model, paths, run.size, run.resize) for name, paths in pools.items()}
    looks_like = ood_scores(model, scene(data), run.size, run.resize)
    half = len(looks_like) // 2
    digests = {name: [content_digest(p) for p in paths[:GIVEN_MAX]] for name, paths in pools.items()}
    digests[SCENE_HALF] = [content_digest(p) for p in scene(data)[:half]]
    given[SCENE_HALF] = looks_like[:half]
    inside, results = score["validation"], {}
    for name in given:
        if name == SCENE_HALF:
            unseen = scene_eval = looks_like[half:]
        else:
            unseen = np.concatenate([given[other][GIVEN_MAX:] for other in pools if other != name])
            scene_eval = looks_like
        for count in COUNTS if name != SCENE_HALF else (half,):
            sides = split_other(digests[name][:count], seed=run.training.settings["seed"])
            fit_on = given[name][:count][np.array(sides) == "validation"]
            today, cap = float(np.quantile(inside, RETENTION)), OTHER_CAP * float(np.quantile(inside, 0.99))
            rules = {
                "classes only (edgetl 0.2–0.4)": today,
                "balanced accuracy (also tightens)": balanced(inside, fit_on),
            }
            for share in (0.02, 0.10):
                rules[f"other's {share:.0%} quantile within [classes only, cap]"] = float(
                    np.clip(np.quantile(fit_on, share), today, max(cap, today))
                )
            rules["the default: other's 5% quantile within [classes only, cap]"] = other_threshold(inside, fit_on)
            for rule, threshold in rules.items():
                results[(rule, name, count)] = (
                    float(np.mean(score["test"] <= threshold)),
                    float(np.mean(unseen > threshold)),
                    float(np.mean(scene_eval > threshold)),
                )
    return results


def balanced(inside: np.ndarray, other: np.ndarray) -> float:
    """The threshold with the most in-class validation photos kept plus other photos rejected, in the middle of the
    widest range of thresholds that do so (a candidate that also tightens; not edgetl's rule)."""
    candidates = np.unique(np.concatenate([inside, other]))
    kept = np.searchsorted(np.sort(inside), candidates, side="right") / len(inside)
    rejected = 1.0 - np.searchsorted(np.sort(other), candidates, side="right") / len(other)
    best = np.flatnonzero(kept + rejected >= (kept + rejected).max() - 1e-12)
    runs = np.split(best, np.flatnonzero(np.diff(best) > 1) + 1)
    ends = [(candidates[run[0]], candidates[min(run[-1] + 1, len(candidates) - 1)]) for run in runs]
    low, high = max(ends, key=lambda end: end[1] - end[0])
    return float((low + high) / 2)


def cell(values: list[float]) -> str:
    return f"{statistics.median(values):.1%} ({min(values):.1%}–{max(values):.1%})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="DIR/seedN: one default run per seed.")
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "beans")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # noqa: SIM112

    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    per_seed: dict[tuple[str, str, int], list[tuple[float, float, float]]] = defaultdict(list)
    runs = sorted(p for p in args.runs.iterdir() if (p / "edgetl.json").exists())
    for run_dir in runs:
        console.print(f"scoring {run_dir}")
        for key, shares in measure(run_dir, args.data).items():
            per_seed[key].append(shares)
    table = Table(title=f"{args.data.name}: 'unknown' fitted with N other photos of one source ({len(runs)} seeds)")
    for column in ("rule", "other photos given", "N", "in-class test as a class", "unseen sources unknown"):
        table.add_column(column)
    table.add_column(f"scene-like ({len(scene(args.data))}) unknown")
    for (rule, name, count), shares in per_seed.items():
        table.add_row(rule, name, str(count), *(cell(list(values)) for values in zip(*shares)))
    console.print(table)
    console.print("median (range) over seeds; per seed: " + ", ".join(p.name for p in runs))


if __name__ == "__main__":
    main()
