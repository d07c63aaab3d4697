"""Edge runtime targets, measured as ratios inside one run (this machine is noisy).

    python benchmarks/edge_pipeline.py runs/flowers/model_int8.tflite [--frames 20000]

1. Pipeline overhead: `edgetl camera` on a video that decodes faster than the model; results per
   second vs the interpreter alone (1 / median invoke on the same frames). Target ≥ 90 %;
   preprocessing ≤ 10 % of invoke time.
2. Freshness: a 30 fps paced source whose frames are stamped at capture; age of the frame behind
   each result vs one inference time + one frame interval.
3. Cold start of `edgetl classify` on one image (no TensorFlow import): target < 1.5 s.
4. Peak RSS of `edgetl camera` over N frames of a looping video (default 20,000), sampled every
   second from /proc: target < 150 MB and flat (last-quarter mean vs first-quarter mean).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

BLOCK_TF = "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
CLI = BLOCK_TF + "import sys\nfrom edgetl.cli import run\nsys.argv = ['edgetl', *sys.argv[1:]]\nrun()\n"


def make_video(path: Path, frames: int = 300, size: tuple[int, int] = (640, 480), fps: float = 30.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), size, interpolation=cv2.INTER_CUBIC)
    for i in range(frames):
        writer.write(np.roll(base, 4 * i, axis=1))
    writer.release()
    return path


def interpreter_only(model: Path, video: Path, threads: int, count: int = 200) -> dict:
    from edgetl.edge.classifier import Classifier, ClassifierOptions

    classifier = Classifier(model, ClassifierOptions(threads=threads))
    capture = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < 50:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    pre, inv = [], []
    for i in range(count + 20):
        frame = frames[i % len(frames)]
        t0 = time.perf_counter()
        ready = classifier.prepare_bgr(frame)
        t1 = time.perf_counter()
        classifier.scores(ready)
        t2 = time.perf_counter()
        if i >= 20:  # warm-up discarded
            pre.append(t1 - t0)
            inv.append(t2 - t1)
    return {"invoke_ms": 1000 * float(np.median(inv)), "preprocess_ms": 1000 * float(np.median(pre))}


def camera_run(model: Path, video: Path, threads: int, extra: list[str], sample_rss: bool = False) -> dict:
    """Run `edgetl camera` (TensorFlow blocked) and return its JSON results and RSS samples."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "results.jsonl"
        args = ["camera", str(model), "--source", str(video), "--threads", str(threads), "--json", str(out)]
        process = subprocess.Popen([sys.executable, "-c", CLI, *args, *extra], stdout=subprocess.DEVNULL)
        rss = []
        started = time.perf_counter()
        while process.poll() is None:
            if sample_rss:
                try:
                    status = Path(f"/proc/{process.pid}/status").read_text()
                    rss.append(int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]))
                except (FileNotFoundError, StopIteration):
                    pass
            time.sleep(0.2 if sample_rss else 0.05)
        seconds = time.perf_counter() - started
        results = [json.loads(line) for line in out.read_text().splitlines()]
    return {"results": results, "rss_kb": rss, "seconds": seconds, "returncode": process.returncode}


def cold_start(model: Path, image: Path, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", CLI, "classify", str(model), str(image), "--json", "-"],
            capture_output=True,
            check=True,
        )
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an int8 .tflite (MobileNetV2 224 px for the targets)")
    parser.add_argument("--threads", type=int, default=2, help="interpreter threads (this machine has 2 cores)")
    parser.add_argument("--frames", type=int, default=20_000, help="frames for the memory run")
    args = parser.parse_args()
    console = Console(width=130)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        video = make_video(Path(folder) / "fast.avi")
        alone = interpreter_only(args.model, video, args.threads)
        console.print(
            f"interpreter alone: median invoke {alone['invoke_ms']:.2f} ms, preprocess {alone['preprocess_ms']:.2f} ms"
        )

        run = camera_run(args.model, video, args.threads, ["--loop", "--max-frames", "1000"])
        results = run["results"][50:]
        span = results[-1]["time"] - results[0]["time"]
        rate = (len(results) - 1) / span
        ratio = rate * alone["invoke_ms"] / 1000
        rows.append(
            (
                "pipeline results/s vs interpreter-only rate",
                f"{rate:.1f}/s vs {1000 / alone['invoke_ms']:.1f}/s",
                f"{ratio:.0%}",
                "≥ 90 %",
            )
        )
        pre = np.median([r["latency_ms"]["preprocess"] for r in results])
        inv = np.median([r["latency_ms"]["inference"] for r in results])
        rows.append(
            ("preprocess / invoke (in the camera loop)", f"{pre:.2f} / {inv:.2f} ms", f"{pre / inv:.1%}", "≤ 10 %")
        )

        paced = camera_run(args.model, video, args.threads, ["--loop", "--realtime", "--max-frames", "300"])
        ages = np.array([r["age_ms"] for r in paced["results"][10:]])
        inv_paced = np.median([r["latency_ms"]["inference"] for r in paced["results"]])
        bound = inv_paced + 1000 / 30
        rows.append(
            (
                "frame age at output, 30 fps source (median / p99)",
                f"{np.median(ages):.1f} / {np.percentile(ages, 99):.1f} ms",
                f"bound {bound:.1f} ms",
                "median < bound",
            )
        )

        image = Path(folder) / "one.jpg"
        ok, frame = cv2.VideoCapture(str(video)).read()
        cv2.imwrite(str(image), frame)
        start = cold_start(args.model, image)
        rows.append(("cold start: edgetl classify, one image (median of 5)", f"{start:.2f} s", "", "< 1.5 s"))

        long_run = (
            None
            if args.frames == 0
            else camera_run(
                args.model, video, args.threads, ["--loop", "--max-frames", str(args.frames)], sample_rss=True
            )
        )
    if long_run is not None:
        rss = np.array(long_run["rss_kb"]) / 1024
        quarter = max(len(rss) // 4, 1)
        rows.append(
            (
                f"camera RSS over {args.frames} frames (peak; first → last quarter mean)",
                f"{rss.max():.0f} MB; {rss[:quarter].mean():.0f} → {rss[-quarter:].mean():.0f} MB",
                f"{long_run['seconds']:.0f} s",
                "< 150 MB, flat",
            )
        )

    table = Table(title=f"{args.model.name}, {args.threads} threads")
    for column in ("measure", "value", "ratio / note", "target"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
