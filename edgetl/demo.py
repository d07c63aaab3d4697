"""`edgetl demo`: the whole pipeline on a generated dataset of shapes — train, convert, camera, bench.

With ImageNet weights (Keras' cache, or one download) it fine-tunes a pretrained MobileNetV2 0.35, as a
user would. Without them (offline, nothing cached) transfer learning is impossible, so it says so and
trains the same backbone from random initialisation instead, on more generated images at a smaller size:
a configuration measured to converge on the shapes, so the rest of the pipeline still shows a model
that works. No other network access.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.console import Console

from edgetl.backbones import MOBILENET_V2
from edgetl.errors import EdgetlError
from edgetl.outputs import OutputSet

DEFAULT_IMAGES_PER_CLASS = 100
# Pretrained: a short head phase on cached features, then a little fine-tuning.
PRETRAINED = {"alpha": 0.35, "size": 96, "head_epochs": 15, "finetune_epochs": 4, "finetune_lr": 3e-4}
# From scratch: every layer trains from the first epoch; no augmentation (it costs more than generating data).
SCRATCH = {
    "alpha": 0.35,
    "size": 48,
    "weights": "none",
    "head_epochs": 0,
    "finetune_epochs": 14,
    "finetune_lr": 3e-3,
    "augment": False,
    "patience": 14,
}
SCRATCH_IMAGES_PER_CLASS = 1500  # fewer images overfit (benchmarks/README.md, "The demo without ImageNet weights")


def next_free(path: Path) -> Path:
    """runs/demo, then runs/demo2, runs/demo3…: a demo never replaces an earlier run."""
    candidate, n = path, 1
    while candidate.exists() or candidate.with_name(candidate.name + ".partial").exists():
        n += 1
        candidate = path.with_name(f"{path.name}{n}")
    return candidate


def _pretrained_available(console: Console) -> bool:
    from edgetl.train.models import build_backbone, expected_weights_file, resolve_weights

    alpha, size = PRETRAINED["alpha"], PRETRAINED["size"]
    try:
        build_backbone(MOBILENET_V2.name, size, alpha, resolve_weights(MOBILENET_V2.name, "imagenet", alpha, size))
        return True
    except EdgetlError as error:
        wanted = expected_weights_file(MOBILENET_V2.name, alpha, 224)
        console.print(
            f"[bold yellow]No ImageNet weights:[/] {error.message} Transfer learning needs them: put "
            f"{wanted.name} in {wanted.parent} "
            f"(or run once with internet). The demo now trains MobileNetV2 from RANDOM weights instead "
            f"({SCRATCH_IMAGES_PER_CLASS} images per class at {SCRATCH['size']} px, every layer trained): the "
            f"pipeline is the same, the accuracy says nothing about transfer learning."
        )
        return False


def run_demo(out: Path, images_per_class: int | None, console: Console) -> Path:
    """Generate data, train, convert, run the camera pipeline on a video, benchmark; return the run."""
    from edgetl.train.config import TrainConfig
    from edgetl.train.run import train
    from edgetl.train.sample import SHAPES, make_sample_dataset

    pretrained = _pretrained_available(console)
    changes = PRETRAINED if pretrained else SCRATCH
    per_class = images_per_class or (DEFAULT_IMAGES_PER_CLASS if pretrained else SCRATCH_IMAGES_PER_CLASS)
    data = out / f"demo-data-{per_class}"
    if not data.exists():
        console.print(f"Drawing the sample dataset ({len(SHAPES)} shapes × {per_class} images) in {data}…")
        partial = data.with_name(data.name + ".partial")
        make_sample_dataset(partial, per_class=per_class).rename(data)
    run_dir = train(data, next_free(out / "demo"), replace(TrainConfig(), **changes), console=console)

    from edgetl.convert.options import ConvertOptions
    from edgetl.convert.run import convert

    console.rule("Conversion: int8 (and float32 for reference), checked against the float model")
    convert(run_dir, ConvertOptions(formats=("int8", "float32")), console=console)

    console.rule("Camera: a headless run over a video made from the test images (no TensorFlow on this path)")
    _camera(run_dir, console)

    console.rule("Benchmark: every model variant on the test images")
    from edgetl.edge.bench import BenchOptions, run_bench
    from edgetl.edge.bench_report import print_table, write_reports

    report = run_bench([run_dir], BenchOptions(threads=[1, 2], runs=50), progress=lambda text: None)
    print_table(report, console)
    with OutputSet(run_dir / "bench", "bench") as outputs:
        page = write_reports(report, outputs)
        outputs.commit()
    console.print(f"Report: {page}")
    return run_dir


def _camera(run_dir: Path, console: Console) -> None:
    """Write a 30 fps video of the held-out test images and classify it as a camera would."""
    import cv2

    from edgetl.edge.camera import CameraOptions, print_summary
    from edgetl.edge.capture import Capture, SourceSpec
    from edgetl.edge.classifier import Classifier, ClassifierOptions
    from edgetl.edge.runtime import run_camera
    from edgetl.images import load_rgb
    from edgetl.rundir import RunInfo

    test = RunInfo.load(run_dir).samples("test")
    video = run_dir / "demo-camera.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240))
    for sample in test[:60]:  # a 10-second clip is plenty
        frame = cv2.cvtColor(load_rgb(sample.path), cv2.COLOR_RGB2BGR)
        for _ in range(5):  # each image held for 5 frames, like an object in front of a camera
            writer.write(cv2.resize(frame, (320, 240)))
    writer.release()
    classifier = Classifier(run_dir / "model_int8.tflite", ClassifierOptions(threads=2))
    capture = Capture(SourceSpec(str(video)), realtime=True)
    try:
        camera = run_camera(classifier, capture, CameraOptions(smooth=3))
    finally:
        capture.close()
    console.print(f"`edgetl camera {run_dir / 'model_int8.tflite'} --source {video} --realtime` gave:")
    print_summary({"threads": 2, "cameras": [camera.summary()]}, console)
