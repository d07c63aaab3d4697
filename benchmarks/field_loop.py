"""The field loop end to end on flowers: a 3-class model on the device meets 5 classes, keeps what it doubts, a
script labels the kept frames as a person would, v2 is trained `--from` v1, compared, and swapped into a running
camera.

    python benchmarks/field_loop.py [--per-class 120] [--labels 150] [--set alpha=0.35 --set size=160]

1. v1: `PER_CLASS` photos each of daisy, dandelion and rose (edgetl's split), int8.
2. A "camera" video: other flowers photos of all five classes, shuffled, each held 3 frames. `camera --keep`
   (interval 0, so every doubted frame is offered) keeps frames; a script files at most `--labels` of them under
   their true class with `edgetl label`'s own code (the labels a person would give).
3. v2: `edgetl train … --from v1` on the grown dataset (five classes), int8; `edgetl compare v1 v2`.
4. The swap: a camera runs v1 over the looping video, v2 is renamed over its model file; the gap is the time
   between the last v1 result and the first v2 result, against the median inference time.
Prints every figure; quote them as one run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from shared_data import SHARED, settings, use_shared_keras_weights
from swap_gap import SWAPS, swaps, write_video

OLD, NEW = ["daisy", "dandelion", "rose"], ["sunflower", "tulip"]


def build(work: Path, per_class: int) -> tuple[Path, list[tuple[Path, str]]]:
    """v1's dataset (symlinks) and the photos the camera will see instead, with their true class."""
    flowers, rng = SHARED / "datasets" / "flowers", random.Random(0)
    data, unseen = work / "data", []
    for name in OLD + NEW:
        photos = sorted((flowers / name).glob("*.jpg"))
        rng.shuffle(photos)
        if name in OLD:
            (data / name).mkdir(parents=True)
            for photo in photos[:per_class]:
                (data / name / photo.name).symlink_to(photo)
        unseen += [(photo, name) for photo in photos[per_class : per_class + 60]]
    rng.shuffle(unseen)
    return data, unseen


def keep(model: Path, clip: Path, folder: Path) -> None:
    from edgetl.edge.camera import CameraOptions
    from edgetl.edge.capture import Capture, SourceSpec
    from edgetl.edge.classifier import Classifier, ClassifierOptions
    from edgetl.edge.keep import Keeper, KeepOptions
    from edgetl.edge.runtime import run_camera

    classifier = Classifier(model, ClassifierOptions(threads=2))
    keeper = Keeper(KeepOptions(keep=folder, keep_interval=0.0, keep_max=100_000), str(clip), print)
    capture = Capture(SourceSpec(str(clip)))
    try:
        run_camera(classifier, capture, CameraOptions(), on_result=lambda r, f: keeper.on_result(r, f))
    finally:
        capture.close()
        keeper.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=120)
    parser.add_argument("--labels", type=int, default=150, help="at most this many kept frames are labelled")
    parser.add_argument("--set", action="append", default=["alpha=0.35", "size=160"], metavar="FIELD=VALUE")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    use_shared_keras_weights()
    from rich.console import Console

    from edgetl.convert.options import ConvertOptions
    from edgetl.convert.run import convert
    from edgetl.edge.compare import compare
    from edgetl.edge.label import Labeller
    from edgetl.train.config import TrainConfig
    from edgetl.train.run import train

    quiet, work = Console(quiet=True), Path(tempfile.mkdtemp(prefix="edgetl-field-loop-"))
    data, unseen = build(work, args.per_class)
    changes = settings(args.set)
    started = time.perf_counter()
    v1 = train(data, work / "v1", TrainConfig(**changes), console=quiet)
    convert(v1, ConvertOptions(formats=("int8",), max_drop=100.0, min_agreement=0.0), console=quiet)
    print(f"v1 ({', '.join(OLD)}; {args.per_class} photos each; {changes}): {time.perf_counter() - started:.0f} s")

    write_video(work / "camera.avi", [photo for photo, _ in unseen])  # each photo held 3 frames
    truth = [name for _, name in unseen for _ in range(3)]
    keep(v1 / "model_int8.tflite", work / "camera.avi", work / "kept")
    kept = [json.loads(p.read_text()) for p in sorted((work / "kept").glob("*.json"))]
    new_share = np.mean([truth[k["frame"] - 1] in NEW for k in kept]) if kept else 0.0
    wrong = np.mean([truth[k["frame"] - 1] in NEW or truth[k["frame"] - 1] != k["labels"][0] for k in kept])
    base_new = np.mean([name in NEW for name in truth])
    print(f"camera: {len(truth)} frames ({base_new:.0%} new-class), {len(kept)} kept: {new_share:.0%} new-class, "
          f"{wrong:.0%} new-class or misclassified")  # fmt: skip
    labeller = Labeller(work / "kept", data)
    given = 0
    for record in kept[: args.labels]:
        labeller.label([record["file"]], truth[record["frame"] - 1])
        given += 1
    counts = {name: len(list((data / name).iterdir())) for name in OLD + NEW if (data / name).exists()}
    print(f"labels given: {given}; the dataset now: {counts}")

    started = time.perf_counter()
    v2 = train(data, work / "v2", TrainConfig(**changes, parent=str(v1)), console=quiet)
    convert(v2, ConvertOptions(formats=("int8",), max_drop=100.0, min_agreement=0.0), console=quiet)
    print(f"v2 --from v1: {time.perf_counter() - started:.0f} s")
    result = compare(v1, v2)
    print(f"compare v1 v2 on {result.images} images of the classes both know: {result.verdict}")
    print(
        f"  top-1 v1 {result.a.top1:.1%}, v2 {result.b.top1:.1%}; v1 said unknown for new classes: {result.new_classes}"
    )
    v2_alone = compare(v2, v2, timing=False)
    print(f"v2 on its own five-class test split ({v2_alone.images} images): {v2_alone.b.top1:.1%}, per class "
          f"{ {k: round(v, 3) for k, v in v2_alone.b.per_class.items()} }")  # fmt: skip
    print(
        f"swap ({SWAPS} times): {swaps(v1 / 'model_int8.tflite', v2 / 'model_int8.tflite', work / 'camera.avi', SWAPS)}"
    )


if __name__ == "__main__":
    main()
