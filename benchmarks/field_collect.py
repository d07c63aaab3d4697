"""The field loop's device side, measured in one run: what `camera --keep` costs and keeps, and how fast
`collect` writes and how well it skips a still scene.

    python benchmarks/field_collect.py runs/beans/model_int8.tflite [--rounds 3] [--seconds 8]

1. Keep cost: results/s of the camera loop (in-process, one interpreter thread, an unpaced video so inference is
   the bottleneck) without --keep, with the default --keep, and with --keep-interval 0 (the worst case), in
   alternating rounds. Target: default ≥ 0.98 × without.
2. Doubt enrichment: over the same video (beans test photos and, after every two, a photo of another
   dataset; each held for 3 frames), the share of kept frames that are out-of-class or misclassified
   against that share among all frames. Target ≥ 3×.
3. Collect: photos/s written at 640×480 and 1920×1080 (JPEG quality 90, distinct scenes), and the share of
   shots skipped on a still scene with sensor noise and exposure flicker (target ≥ 95 %) against the share
   of distinct photos kept.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from shared_data import SHARED

FRAME = (320, 240)


def field_video(path: Path, labels: list[str], every: int = 2) -> list[int | None]:
    """The video (a photo of another dataset after every `every` beans photos), and per frame the true class
    index (None: another dataset)."""
    beans = SHARED / "datasets" / "beans" / "test"
    inside = [
        (p, labels.index(folder.name)) for folder in sorted(beans.iterdir()) for p in sorted(folder.glob("*.jpg"))
    ]
    flowers = sorted((SHARED / "datasets" / "flowers").rglob("*.jpg"))[::37]
    imagenet = sorted((SHARED / "datasets" / "imagenet-samples" / "images").glob("*.jpg"))[::17]
    outside = [p for pair in zip(flowers, imagenet) for p in pair]
    scenes: list[tuple[Path, int | None]] = []
    for i, scene in enumerate(inside):
        scenes.append(scene)
        if i % every == every - 1 and outside:
            scenes.append((outside.pop(0), None))
    writer, truth = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, FRAME), []
    for photo, label in scenes:
        image = cv2.resize(cv2.imread(str(photo)), FRAME)
        for _ in range(3):
            writer.write(image)
            truth.append(label)
    writer.release()
    return truth


def camera_run(model: Path, video: Path, seconds: float | None, keep: dict | None, folder: Path) -> tuple[float, list]:
    """(results/s, kept records) of one in-process camera run: `seconds` of the looping video, or one pass."""
    from edgetl.edge.camera import CameraOptions
    from edgetl.edge.capture import Capture, SourceSpec
    from edgetl.edge.classifier import Classifier, ClassifierOptions
    from edgetl.edge.keep import Keeper, KeepOptions
    from edgetl.edge.runtime import run_camera

    classifier = Classifier(model, ClassifierOptions(threads=1))
    capture = Capture(SourceSpec(str(video)), loop=seconds is not None)
    keeper = None
    if keep is not None:
        keeper = Keeper(KeepOptions(keep=folder, keep_max=100_000, **keep), str(video), log=print)
    try:
        on_result = keeper.on_result if keeper else None
        stats = run_camera(classifier, capture, CameraOptions(duration=seconds), on_result=on_result)
    finally:
        capture.close()
        if keeper:
            keeper.close()
    stats = stats.regions[0].stats
    elapsed = time.monotonic() - stats.started
    kept = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if keep is not None else []
    return stats.results / elapsed, kept


def keep_cost(model: Path, video: Path, rounds: int, seconds: float, work: Path, console: Console) -> None:
    variants = {"without --keep": None, "--keep (defaults)": {}, "--keep --keep-interval 0": {"keep_interval": 0.0}}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(rounds):
        for name, keep in variants.items():  # alternating: drifts in the machine's speed hit all alike
            folder = work / f"keep-{round_index}-{len(rates[name])}-{abs(hash(name))}"
            rates[name].append(camera_run(model, video, seconds, keep, folder)[0])
    base = statistics.median(rates["without --keep"])
    for name, values in rates.items():
        console.print(
            f"{name:<28} results/s median {statistics.median(values):7.1f} (rounds: "
            f"{', '.join(f'{v:.1f}' for v in values)}) · {statistics.median(values) / base:.3f}× without"
        )


def enrichment(model: Path, video: Path, truth: list[int | None], work: Path, console: Console) -> None:
    from edgetl.edge.classifier import Classifier, ClassifierOptions

    labels = Classifier(model).labels
    frames = len(truth)
    _, first = camera_run(model, video, None, {"keep_interval": 0.0}, work / "enrichment")  # one pass
    worth = [truth[k["frame"] - 1] is None or labels[truth[k["frame"] - 1]] != k["labels"][0] for k in first]
    console.print(f"--keep-interval 0, one pass: kept {len(first)} of {frames} frames")
    # the base rate: out-of-class frames plus in-class frames the model gets wrong, from a plain pass
    from edgetl.edge.camera import CameraOptions
    from edgetl.edge.capture import Capture, SourceSpec
    from edgetl.edge.runtime import run_camera

    classifier = Classifier(model, ClassifierOptions(threads=1))
    seen: dict[int, str] = {}
    capture = Capture(SourceSpec(str(video)))
    try:
        run_camera(
            classifier,
            capture,
            CameraOptions(),
            on_result=lambda r, f: seen.update({f.number: r.prediction.best.label}),
        )
    finally:
        capture.close()
    base = [truth[n - 1] is None or labels[truth[n - 1]] != label for n, label in seen.items()]
    share_kept, share_all = float(np.mean(worth)) if worth else 0.0, float(np.mean(base))
    console.print(
        f"out-of-class or misclassified: {share_kept:.1%} of kept frames vs {share_all:.1%} of all frames "
        f"({share_kept / share_all:.1f}×, the most possible {1 / share_all:.1f}×; target ≥ 3×); reasons: "
        f"{ {r: sum(k['kept_because'] == r for k in first) for r in ('unknown', 'unsure', 'sample')} }"
    )


def collect_speed(work: Path, console: Console) -> None:
    from edgetl.edge.collect import CollectOptions, Collector

    photos = sorted((SHARED / "datasets" / "beans" / "validation").rglob("*.jpg"))[:40]
    for size in ((640, 480), (1920, 1080)):
        scenes = [cv2.resize(cv2.imread(str(p)), size) for p in photos]
        collector = Collector(work / f"collect-{size[0]}", CollectOptions(label="x", min_free=0))
        started = time.perf_counter()
        for i, scene in enumerate(scenes):
            collector.take(scene, "x", i)
        rate = len(scenes) / (time.perf_counter() - started)
        console.print(
            f"collect {size[0]}×{size[1]}: {rate:.1f} photos/s written "
            f"({collector.written} of {len(scenes)} distinct scenes kept)"
        )
    rng = np.random.default_rng(0)
    still = cv2.resize(cv2.imread(str(photos[0])), (640, 480)).astype(np.int16)
    collector = Collector(work / "collect-still", CollectOptions(label="x", min_free=0))
    for i in range(200):
        noisy = still + rng.normal(0, 3, still.shape).astype(np.int16) + int(rng.integers(-3, 4))
        collector.take(np.clip(noisy, 0, 255).astype(np.uint8), "x", i)
    console.print(
        f"still scene, 200 shots (noise σ 3, exposure ±3): {collector.skipped / 199:.1%} of the repeats "
        f"skipped ({collector.written} written)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an int8 .tflite of a beans run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    from edgetl.edge.classifier import Classifier

    console = Console()
    work = Path(tempfile.mkdtemp(prefix="edgetl-field-"))
    truth = field_video(work / "field.avi", Classifier(args.model).labels)
    console.print(f"video: {len(truth)} frames, {np.mean([t is None for t in truth]):.0%} of them another dataset")
    keep_cost(args.model, work / "field.avi", args.rounds, args.seconds, work, console)
    enrichment(args.model, work / "field.avi", truth, work, console)
    sparse = field_video(work / "sparse.avi", Classifier(args.model).labels, every=8)
    console.print(f"video 2: {len(sparse)} frames, {np.mean([t is None for t in sparse]):.0%} of them another dataset")
    enrichment(args.model, work / "sparse.avi", sparse, work / "sparse", console)
    collect_speed(work, console)


if __name__ == "__main__":
    main()
