"""The device runtime against the interpreter's own rate: one camera, and two cameras with three regions.

    python benchmarks/device_runtime.py MODEL.tflite [--runs 5] [--results 2000]
    python benchmarks/device_runtime.py --make-model /tmp/mnv2_int8.tflite   # needs TensorFlow and ../shared

The rate is the interpreter alone: 1 / the median `invoke()` of MODEL on a zeroed input, one thread (LiteRT, no
edgetl code around it). Against it, in alternating runs (this machine is noisy), `edgetl camera` with one
interpreter thread over unpaced 640×480 MJPEG video (TensorFlow blocked, as on an `[edge]` install):
1. one camera, one whole-frame region: results/s after 200 of warm-up; target ≥ 0.95 × the rate;
2. one process, two cameras (two captures of the video), three regions (the whole frame of one, two halves of
   the other), one model: region results/s in total; target ≥ 0.90 × the rate;
3. that process's peak RSS (VmHWM, the kernel's high-water mark, read from /proc just before it ends);
   target < 160 MB; one camera's is printed beside it.
4. whether `invoke()` lets other Python threads run meanwhile (the results thread's design rests on it).
Prints one table: medians over the runs, with the range. `--breakdown` instead says where one camera's time
goes, in this process (no CLI, no consumers): the loop's own time per result beside `invoke()`, waits for a
frame, `invoke()` inside the loop against alone, and the rate when FFmpeg decodes the video (edgetl's reader
decodes the JPEG frames itself) and when the frames come already decoded; first, how far each decode's colours
are from the image that was encoded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from edge_pipeline import CLI, make_video
from rich.console import Console
from rich.table import Table
from shared_data import SHARED

WARMUP = 200


def invoke_rate(model: Path, runs: int = 1000) -> float:
    """1 / median invoke() on a zeroed input, one thread: the bound no camera loop can beat."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model), num_threads=1)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    times = []
    for i in range(runs + WARMUP):
        started = time.perf_counter()
        interpreter.invoke()
        if i >= WARMUP:
            times.append(time.perf_counter() - started)
    return 1 / statistics.median(times)


def invoke_lets_python_run(model: Path, calls: int = 50) -> bool:
    """Does `invoke()` release Python's lock while it runs? The runtime's results thread relies on it: a thread
    that only counts must advance across a single call (it cannot, if the lock is held throughout)."""
    import threading

    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model), num_threads=1)
    interpreter.allocate_tensors()
    count, stop = [0], threading.Event()

    def spin() -> None:
        while not stop.is_set():
            count[0] += 1

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    advances = []
    for _ in range(calls):
        before = count[0]
        interpreter.invoke()
        advances.append(count[0] - before)
    stop.set()
    thread.join()
    return statistics.median(advances) > 0


class Decoded:
    """A reader handing out frames decoded beforehand: the camera loop without the JPEG decode beside it."""

    frames: list[np.ndarray] = []

    def __init__(self, spec) -> None:
        self.fps, self.count = None, 0

    def read(self) -> np.ndarray:
        self.count += 1
        return self.frames[self.count % len(self.frames)]

    def release(self) -> None:
        pass


class FFmpegDecoding:
    """The video decoded by FFmpeg (decode, swscale to BGR), as edgetl read MJPEG before it decoded JPEG itself."""

    def __init__(self, spec) -> None:
        import cv2

        self.capture, self.fps = cv2.VideoCapture(spec.text), None

    def read(self) -> np.ndarray | None:
        ok, frame = self.capture.read()
        return frame if ok else None

    def release(self) -> None:
        self.capture.release()


def breakdown(model: Path, video: Path, results: int) -> dict[str, float]:
    """One camera run in this process: where a result's time goes (ms), and the rate ÷ invoke's, with the video
    decoded as it plays (by edgetl's reader, and by FFmpeg as before) and with frames decoded beforehand."""
    import cv2

    from edgetl.edge.camera import CameraOptions
    from edgetl.edge.capture import Capture, SourceSpec, open_reader
    from edgetl.edge.classifier import Classifier, ClassifierOptions
    from edgetl.edge.runtime import run_camera

    reader = cv2.VideoCapture(str(video))
    Decoded.frames = [reader.read()[1] for _ in range(50)]
    out = {}
    for name, opener in (("decoding", open_reader), ("FFmpeg decoding", FFmpegDecoding), ("decoded", Decoded)):
        rate = invoke_rate(model)
        seen = []
        capture = Capture(SourceSpec(str(video)), loop=True, opener=opener)
        classifier = Classifier(model, ClassifierOptions(threads=1))
        run_camera(
            classifier,
            capture,
            CameraOptions(max_frames=results + WARMUP),
            on_result=lambda r, f, seen=seen: seen.append(r),
        )
        capture.close()
        seen = seen[WARMUP:]
        camera = (len(seen) - 1) / (seen[-1].time - seen[0].time)
        inference = statistics.fmean(r.latency_ms["inference"] for r in seen)
        wait = statistics.fmean(r.latency_ms["capture_wait"] for r in seen)
        out[f"{name}: rate ÷ invoke rate"] = camera / rate
        if name == "decoding":
            out["invoke() alone, ms"] = 1000 / rate
            out["invoke() in the loop (set, invoke, copy out), mean ms"] = inference
            out["waiting for a frame, mean ms"] = wait
            out["the loop's own time per result, ms"] = 1000 / camera - inference - wait
    return out


def colour_error(folder: Path) -> dict[str, float]:
    """Mean absolute difference (0–255) between one MJPEG frame as decoded and the image that was encoded, for
    edgetl's reader (libjpeg-turbo) and for FFmpeg's decode."""
    import cv2

    from edgetl.edge.capture import SourceSpec, open_reader

    small = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    image = cv2.resize(small, (640, 480), interpolation=cv2.INTER_CUBIC)  # smooth, like make_video's frames
    path = folder / "one_frame.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    writer.write(image)
    writer.release()
    out = {}
    for name, opener in (("edgetl's reader", open_reader), ("FFmpeg", FFmpegDecoding)):
        reader = opener(SourceSpec(str(path)))
        out[f"colour error, {name}"] = float(np.abs(reader.read().astype(int) - image).mean())
        reader.release()
    return out


def device_file(folder: Path, model: Path, video: Path) -> Path:
    path = folder / "device.toml"
    path.write_text(f"""
[[cameras]]
name = "one"
source = "{video}"
loop = true
[[cameras.regions]]
name = "frame"
model = "{model}"
[[cameras]]
name = "two"
source = "{video}"
loop = true
[[cameras.regions]]
name = "left"
model = "{model}"
roi = [0, 0, 0.5, 1]
[[cameras.regions]]
name = "right"
model = "{model}"
roi = [0.5, 0, 0.5, 1]
""")
    return path


def camera_rate(args: list[str], results: int, folder: Path) -> tuple[float, float]:
    """(results/s after warm-up, peak RSS in MB) of one `edgetl camera` process."""
    out = folder / "results.jsonl"
    out.unlink(missing_ok=True)
    command = [sys.executable, "-c", CLI, "camera", *args, "--threads", "1", "--no-window", "--json", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    while process.poll() is None:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
            peak = max(peak, int(status.split("VmHWM:")[1].split()[0]) / 1024)
        except (OSError, IndexError):
            pass
        time.sleep(0.1)
    if process.returncode != 0:
        raise SystemExit(f"edgetl camera failed: {process.stderr.read()[-2000:]}")
    times = [json.loads(line)["time"] for line in out.read_text().splitlines()][WARMUP:]
    span = times[-1] - times[0]
    return (len(times) - 1) / span, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, nargs="?")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--results", type=int, default=2000, help="Results per run after the warm-up.")
    parser.add_argument("--make-model", type=Path, help="Write MobileNetV2 1.0 @224 int8 (ImageNet) here and stop.")
    parser.add_argument("--breakdown", action="store_true", help="Where one camera's time goes, then stop.")
    args = parser.parse_args()
    if args.make_model:
        make_model(args.make_model)
        return
    console = Console()
    args.model = args.model.resolve()  # the device file names it from a temporary folder
    if args.breakdown:
        with tempfile.TemporaryDirectory() as tmp:
            video = make_video(Path(tmp) / "video.avi", 300)
            console.print("; ".join(f"{k} {v:.2f}" for k, v in colour_error(Path(tmp)).items()))
            for run in range(args.runs):
                figures = breakdown(args.model, video, args.results)
                console.print(f"run {run + 1}: " + "; ".join(f"{k} {v:.3f}" for k, v in figures.items()))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        video = make_video(folder / "video.avi", 300)
        config = device_file(folder, args.model, video)
        per_camera = (args.results + WARMUP) // 3 + 1  # the limit is per camera; three regions share the results
        rates: dict[str, list[float]] = {"invoke": [], "single": [], "device": []}
        rss: dict[str, list[float]] = {"single": [], "device": []}
        for run in range(args.runs):
            rates["invoke"].append(invoke_rate(args.model))
            single, peak = camera_rate([str(args.model), "--source", str(video), "--loop", "--max-frames",
                                        str(args.results + WARMUP)], args.results, folder)  # fmt: skip
            rates["single"].append(single)
            rss["single"].append(peak)
            device, peak = camera_rate(["--config", str(config), "--max-frames", str(per_camera)], args.results, folder)
            rates["device"].append(device)
            rss["device"].append(peak)
            console.print(f"run {run + 1}: invoke {rates['invoke'][-1]:.1f}/s, one camera {single:.1f}/s, "
                          f"two cameras three regions {device:.1f}/s ({peak:.0f} MB)")  # fmt: skip
    ratios = {name: [r / i for r, i in zip(rates[name], rates["invoke"])] for name in ("single", "device")}
    table = Table(title=f"{args.model.name} · one interpreter thread · medians of {args.runs} alternating runs")
    for column in ("measure", "median", "range", "target"):
        table.add_column(column)

    def spread(values: list[float], form: str) -> tuple[str, str]:
        return format(statistics.median(values), form), f"{format(min(values), form)}–{format(max(values), form)}"

    table.add_row("invoke() alone, results/s", *spread(rates["invoke"], ".1f"), "")
    table.add_row("one camera, one region: results/s ÷ invoke rate", *spread(ratios["single"], ".3f"), "≥ 0.95")
    table.add_row("two cameras, three regions: region results/s ÷ invoke rate", *spread(ratios["device"], ".3f"),
                  "≥ 0.90")  # fmt: skip
    table.add_row("peak RSS, two cameras and three regions, MB", *spread(rss["device"], ".0f"), "< 160")
    table.add_row("peak RSS, one camera, MB", *spread(rss["single"], ".0f"), "")
    table.add_row(
        "invoke() lets other Python threads run", "yes" if invoke_lets_python_run(args.model) else "NO", "", ""
    )
    console.print(table)


def make_model(path: Path) -> None:
    """MobileNetV2 1.0 @224 with its ImageNet top, int8 in and out, from the weights in ../shared: the model the
    issue's targets name, without a training run (its 1,000 classes cost the same per result as any head)."""
    import keras
    import tensorflow as tf

    weights = SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet_with_top.h5"
    backbone = keras.applications.MobileNetV2(weights=str(weights))
    inputs = keras.Input((224, 224, 3))
    model = keras.Model(inputs, backbone(keras.applications.mobilenet_v2.preprocess_input(inputs)))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: ([rng.uniform(0, 255, (1, 224, 224, 3)).astype(np.float32)]
                                                for _ in range(20))  # fmt: skip
    converter.inference_input_type = converter.inference_output_type = tf.uint8
    path.write_bytes(converter.convert())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
