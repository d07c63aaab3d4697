"""The hot model update's gap: a camera runs model A over a looping video, B is renamed over A's file, and the
gap is the time between A's last result and B's first (issue 22 §3; target ≤ 2 inference times).

    python benchmarks/swap_gap.py A.tflite B.tflite [--video clip.avi] [--swaps 5]

A and B need the same input size (a camera refuses another). The video is unpaced (frames back to back), the
interpreter has 2 threads; each swap runs in a fresh camera. Prints each swap and the median (range) of the
gap in inference times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SWAPS = 5


@dataclass
class Swap:
    gap_ms: float  # between the last result of A and the first of B
    inference_ms: float  # median over the whole run
    between_ms: float  # median time between two results
    first: dict[str, float]  # the first B result's stages (capture wait, preprocess, inference, postprocess)
    last: dict[str, float]  # the last A result's, while B was loading and checked beside it


def swap_gap(v1: Path, v2: Path, clip: Path, work: Path) -> Swap:
    """One swap in a camera that keeps running."""
    from functools import partial

    from edgetl.edge.camera import CameraOptions
    from edgetl.edge.capture import Capture, SourceSpec
    from edgetl.edge.classifier import Classifier, ClassifierOptions
    from edgetl.edge.hot_swap import ModelSlot
    from edgetl.edge.result import Result
    from edgetl.edge.runtime import run_camera

    deployed = work / "deploy" / "model.tflite"
    deployed.parent.mkdir()
    shutil.copy(v1, deployed)
    classifier = Classifier(deployed, ClassifierOptions(threads=2))
    slot = ModelSlot(classifier, partial(Classifier, threads=2), print)
    results: list[Result] = []
    capture = Capture(SourceSpec(str(clip)), loop=True)  # unpaced: back to back

    def replace_later() -> None:
        time.sleep(3)
        shutil.copy(v2, deployed.with_name(".incoming"))
        os.replace(deployed.with_name(".incoming"), deployed)

    threading.Thread(target=replace_later, daemon=True).start()
    try:
        run_camera(classifier, capture, CameraOptions(duration=8), on_result=lambda r, f: results.append(r), slot=slot)
    finally:
        capture.close()
        slot.close()
    models = [r.model for r in results]
    switch = next(i for i, m in enumerate(models) if m != models[0])
    return Swap(
        1000 * (results[switch].time - results[switch - 1].time),
        statistics.median(r.latency_ms["inference"] for r in results),
        statistics.median(1000 * (b.time - a.time) for a, b in zip(results, results[1:])),
        results[switch].latency_ms,
        results[switch - 1].latency_ms,
    )


def swaps(v1: Path, v2: Path, clip: Path, count: int = SWAPS) -> str:
    """`count` swaps, each in a fresh camera: every gap, then the median (range) in inference times."""
    ratios, lines = [], []
    for _ in range(count):
        swap = swap_gap(v1, v2, clip, Path(tempfile.mkdtemp(prefix="edgetl-swap-")))
        ratios.append(swap.gap_ms / swap.inference_ms)
        stages = {"last A": swap.last, "first B": swap.first}
        lines.append(
            f"  gap {swap.gap_ms:.2f} ms; median inference {swap.inference_ms:.2f} ms, between results "
            f"{swap.between_ms:.2f} ms; "
            + "; ".join(
                f"{name}: capture wait {ms['capture_wait']:.2f}, inference {ms['inference']:.2f} ms"
                for name, ms in stages.items()
            )
        )
    summary = f"gap {statistics.median(ratios):.2f} inference times ({min(ratios):.2f}–{max(ratios):.2f}); target ≤ 2"
    return "\n".join([summary, *lines])


def write_video(path: Path, photos: list[Path]) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240))
    for photo in photos:
        image = cv2.resize(cv2.imread(str(photo)), (320, 240))
        for _ in range(3):
            writer.write(image)
    writer.release()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--video", type=Path, help="default: 100 flowers photos from ../shared, 3 frames each")
    parser.add_argument("--swaps", type=int, default=SWAPS)
    args = parser.parse_args()
    if args.video is None:
        from shared_data import SHARED

        photos = sorted((SHARED / "datasets" / "flowers").glob("*/*.jpg"))[::40][:100]
        args.video = write_video(Path(tempfile.mkdtemp(prefix="edgetl-swap-")) / "clip.avi", photos)
    print(f"swap {args.a.name} → {args.b.name} ({args.swaps} times): {swaps(args.a, args.b, args.video, args.swaps)}")


if __name__ == "__main__":
    main()
