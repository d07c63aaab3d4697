"""The `edgetl` command line: one thin function per command; TensorFlow is imported only by
the commands that need it, so `edgetl --help` and the edge commands start fast without it."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

import edgetl
from edgetl import interrupt
from edgetl.demo import DEFAULT_IMAGES_PER_CLASS, SCRATCH_IMAGES_PER_CLASS
from edgetl.errors import EdgetlError

console = Console(soft_wrap=True)  # long lines stay whole in logs and pipes
err_console = Console(stderr=True)

app = typer.Typer(
    name="edgetl",
    help="From a folder of labelled photos to a fast image classifier on a Raspberry Pi camera.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        console.print(f"edgetl {edgetl.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = None,
) -> None:
    """From a folder of labelled photos to a fast image classifier on a Raspberry Pi camera."""


def require_tensorflow() -> None:
    """Fail plainly when the [train] extra is missing (a Raspberry Pi install has no TensorFlow)."""
    if importlib.util.find_spec("tensorflow") is None:
        raise EdgetlError(
            "This command needs TensorFlow, which is not installed.", 'Install it: pip install "edgetl[train]"'
        )


def _quiet_tensorflow() -> None:
    """Import TensorFlow without its start-up chatter (absl preamble, oneDNN note, CUDA probing).

    Those lines come from C++ at import, before TF_CPP_MIN_LOG_LEVEL applies, so file descriptor 2
    is captured during the import and only the informational lines are dropped; warnings and errors
    are replayed.
    """
    import re
    import tempfile

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    noise = re.compile(r"^(I\d{4} |WARNING: All log messages before absl::InitializeLog)")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines() if not noise.match(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


@app.command()
def train(
    data: Annotated[
        Path, typer.Argument(help="Folder with one sub-folder per class, or train/ validation/ test/ folders.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")] = Path("runs/train"),
    model: Annotated[str, typer.Option(help="Backbone: mobilenet_v2 or efficientnet_b0.")] = "mobilenet_v2",
    alpha: Annotated[float, typer.Option(help="MobileNetV2 width: 0.35, 0.5, 0.75, 1.0, 1.3, 1.4.")] = 1.0,
    size: Annotated[int, typer.Option(help="Input size in pixels (square), 96–224 typical.")] = 224,
    weights: Annotated[
        str, typer.Option(help="imagenet (Keras download/cache), none, or PATH to a .h5 file.")
    ] = "imagenet",
    resize: Annotated[str, typer.Option(help="stretch (whole frame) or crop (centre square).")] = "stretch",
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 32,
    head_epochs: Annotated[int, typer.Option(help="Phase 1 epochs (frozen backbone); 0 skips it.")] = 20,
    finetune_epochs: Annotated[int, typer.Option(help="Phase 2 epochs (top layers unfrozen); 0 skips it.")] = 8,
    head_lr: Annotated[float, typer.Option(help="Phase 1 learning rate (cosine decay).")] = 1e-3,
    finetune_lr: Annotated[float, typer.Option(help="Phase 2 learning rate (cosine decay).")] = 1e-4,
    unfreeze_from: Annotated[str | None, typer.Option(help="Fine-tune from this block, e.g. block_12.")] = None,
    unfreeze: Annotated[int | None, typer.Option(help="Fine-tune the top N backbone layers instead.")] = None,
    dropout: Annotated[float, typer.Option(help="Dropout before the classifier.")] = 0.2,
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing (0 disables).")] = 0.1,
    augment: Annotated[bool, typer.Option(help="Random flip/rotate/zoom/shift/contrast/brightness.")] = True,
    feature_cache: Annotated[bool, typer.Option(help="Phase 1 on cached backbone features (fast).")] = True,
    patience: Annotated[int, typer.Option(help="Early-stopping patience in epochs (best weights kept).")] = 4,
    val_fraction: Annotated[float, typer.Option(help="Validation share when the folder is not pre-split.")] = 0.15,
    test_fraction: Annotated[float, typer.Option(help="Test share when the folder is not pre-split.")] = 0.15,
    seed: Annotated[int, typer.Option(help="Seed for the split, initialisation and shuffling.")] = 42,
    mixed_precision: Annotated[
        bool | None, typer.Option("--mixed-precision/--no-mixed-precision", help="Default: on with a GPU.")
    ] = None,
    strategy: Annotated[str, typer.Option(help="auto, default, mirrored or multi-worker (TF_CONFIG).")] = "auto",
    deterministic: Annotated[
        bool, typer.Option(help="Same seed and data give the same model (TensorFlow op determinism).")
    ] = True,
    force: Annotated[bool, typer.Option(help="Replace an existing run directory.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run from its last epoch.")] = False,
) -> None:
    """Fine-tune an ImageNet backbone on a folder of photos.

    Example: [bold]edgetl train photos/ --model mobilenet_v2 --size 224 --out runs/flowers[/]
    """
    require_tensorflow()
    _quiet_tensorflow()
    interrupt.install("Completed epochs are checkpointed: run the same command with --resume to continue.")
    from edgetl.images import RESIZE_POLICIES
    from edgetl.train.fit import TrainConfig
    from edgetl.train.models import BACKBONES

    if model not in BACKBONES:
        raise EdgetlError(f"Unknown --model '{model}'.", f"Use one of: {', '.join(BACKBONES)}.")
    if resize not in RESIZE_POLICIES:
        raise EdgetlError(f"Unknown --resize '{resize}'.", f"Use one of: {', '.join(RESIZE_POLICIES)}.")
    if not 32 <= size <= 1024:
        raise EdgetlError(f"--size {size} is out of range.", "Use 32–1024 pixels; 96–224 suits MobileNetV2.")
    if batch_size < 1 or head_epochs < 0 or finetune_epochs < 0:
        raise EdgetlError("--batch-size must be at least 1 and epochs not negative.")
    config = TrainConfig(
        backbone=model,
        alpha=alpha,
        size=size,
        weights=weights,
        resize=resize,
        batch_size=batch_size,
        head_epochs=head_epochs,
        finetune_epochs=finetune_epochs,
        head_lr=head_lr,
        finetune_lr=finetune_lr,
        unfreeze_from=unfreeze_from,
        unfreeze_layers=unfreeze,
        dropout=dropout,
        label_smoothing=label_smoothing,
        augment=augment,
        feature_cache=feature_cache,
        patience=patience,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        mixed_precision=mixed_precision,
        strategy=strategy,
        deterministic=deterministic,
    )
    from edgetl.train.run import train as run_training

    run_training(data, out, config, force=force, resume=resume, console=console)


@app.command()
def convert(
    source: Annotated[Path, typer.Argument(help="A run directory from `edgetl train`, or a .keras / .h5 model file.")],
    int8: Annotated[bool, typer.Option("--int8", help="Full-integer int8 (calibrated, checked, repaired).")] = False,
    fp16: Annotated[bool, typer.Option("--fp16", help="float16 weights.")] = False,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="Dynamic range: int8 weights, float activations.")] = False,
    float32: Annotated[bool, typer.Option("--float32", help="Plain float32.")] = False,
    input_type: Annotated[
        str, typer.Option(help="int8 model input/output type: uint8 (raw pixels) or int8.")
    ] = "uint8",
    calibration_samples: Annotated[int, typer.Option(help="Representative images for int8 calibration.")] = 300,
    max_drop: Annotated[float, typer.Option(help="Fail when top-1 drops more than this (points).")] = 1.0,
    min_agreement: Annotated[
        float | None,
        typer.Option(
            help="Fail when fewer test images (percent) keep the float model's top-1 "
            "(default: 99 with at least 100 test images, else not applied)."
        ),
    ] = None,
    bias_correction: Annotated[
        bool, typer.Option(help="int8: cancel the mean error of int8 weights in each layer's bias.")
    ] = True,
    repair: Annotated[
        bool, typer.Option(help="When int8 misses the budget, recalibrate and keep layers in float.")
    ] = True,
    max_float_layers: Annotated[int, typer.Option(help="Repair: at most this many layers kept in float.")] = 8,
    labels: Annotated[Path | None, typer.Option(help="Bare model: labels file, one class per line.")] = None,
    calibration: Annotated[Path | None, typer.Option(help="Bare model: folder of calibration images.")] = None,
    test: Annotated[Path | None, typer.Option(help="Bare model: folder-per-class images to check on.")] = None,
    preprocessing: Annotated[
        str, typer.Option(help="Bare model's expected input: none (0–255), tf (-1..1), unit (0..1) or torch.")
    ] = "none",
    resize: Annotated[str, typer.Option(help="Bare model: stretch or crop, as the camera frames will be resized.")] = (
        "stretch"
    ),
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for the .tflite files (default: SOURCE).")] = (
        None
    ),
    threads: Annotated[int | None, typer.Option(help="Interpreter threads for the check.")] = None,
    force: Annotated[bool, typer.Option(help="Replace existing .tflite files.")] = False,
) -> None:
    """Convert to TFLite, check accuracy against the float model, embed metadata.

    Example: [bold]edgetl convert runs/flowers --int8[/]
    """
    require_tensorflow()
    _quiet_tensorflow()
    interrupt.install("Existing .tflite files are untouched; new ones are written only when complete.")
    formats = tuple(
        name for name, wanted in (("int8", int8), ("fp16", fp16), ("dynamic", dynamic), ("float32", float32)) if wanted
    )
    if input_type not in ("uint8", "int8"):
        raise EdgetlError(f"Unknown --input-type '{input_type}'.", "Use uint8 or int8.")
    if calibration_samples < 1:
        raise EdgetlError("--calibration-samples must be at least 1.", "A few hundred is typical.")
    from edgetl.convert.run import ConvertOptions
    from edgetl.convert.run import convert as run_conversion

    options = ConvertOptions(
        formats=formats or ("int8",),
        input_type=input_type,
        calibration_samples=calibration_samples,
        max_drop=max_drop,
        min_agreement=min_agreement,
        bias_correction=bias_correction,
        repair=repair,
        max_float_layers=max_float_layers,
        threads=threads,
        force=force,
    )
    report = run_conversion(
        source,
        options,
        console=console,
        labels=labels,
        calibration=calibration,
        test=test,
        preprocessing=preprocessing,
        resize=resize,
        out=out,
    )
    failed = [fmt for fmt, entry in report["models"].items() if fmt in options.formats and not entry["passed"]]
    if failed:
        err_console.print(
            f"[bold red]error:[/] {', '.join(failed)} missed the accuracy budget (--max-drop {max_drop}"
            f", --min-agreement {report['min_agreement_pct']}); files kept, marked in the report."
        )
        raise typer.Exit(1)


def _classifier(
    model: Path, labels: Path | None, threads: int | None, backend: str, mean, std, resize, threshold, ood_threshold
):
    from edgetl.edge.classifier import Classifier

    if threads is not None and threads < 1:
        raise EdgetlError(f"--threads {threads} is not a thread count.", "Use 1 or more (a Pi 4/5 has 4 cores).")
    if threshold is not None and not 0 <= threshold <= 1:
        raise EdgetlError(f"--threshold {threshold} is not a probability.", "Use a value from 0 to 1, e.g. 0.5.")
    return Classifier(
        model,
        labels=labels,
        threads=threads,
        backend=backend,
        input_mean=mean,
        input_std=std,
        resize=resize,
        threshold=threshold,
        ood_threshold=ood_threshold,
    )


ModelArg = Annotated[Path, typer.Argument(help="A .tflite image classifier (from `edgetl convert`, or any).")]
ThresholdOpt = Annotated[
    float | None,
    typer.Option(help="Top-1 probability below this → 'unknown', every class (default: the model's per-class ones)."),
]
OodThresholdOpt = Annotated[
    float | None,
    typer.Option(help="Out-of-distribution score above this → 'unknown' (default: the one fitted in training)."),
]
LabelsOpt = Annotated[
    Path | None, typer.Option(help="Labels file (default: the model's metadata, or labels.txt beside it).")
]
ThreadsOpt = Annotated[int | None, typer.Option(help="Interpreter threads (default: the runtime's choice).")]
BackendOpt = Annotated[str, typer.Option(help="auto, litert, tflite-runtime or tensorflow.")]
MeanOpt = Annotated[float | None, typer.Option(help="Float models without metadata: input mean (default: 127.5).")]
StdOpt = Annotated[float | None, typer.Option(help="Float models without metadata: input std (default: 127.5).")]
ResizeOpt = Annotated[str | None, typer.Option(help="stretch or crop (default: from the model, else stretch).")]


@app.command()
def classify(
    model: ModelArg,
    paths: Annotated[list[str], typer.Argument(help="Images, folders (recursive) or glob patterns.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Labels per image.")] = 3,
    labels: LabelsOpt = None,
    json_out: Annotated[
        str | None, typer.Option("--json", help="One JSON object per line to FILE, or - for stdout.")
    ] = None,
    csv_out: Annotated[
        str | None, typer.Option("--csv", help="CSV with a header row to FILE, or - for stdout.")
    ] = None,
    threads: ThreadsOpt = None,
    backend: BackendOpt = "auto",
    input_mean: MeanOpt = None,
    input_std: StdOpt = None,
    resize: ResizeOpt = None,
    threshold: ThresholdOpt = None,
    ood_threshold: OodThresholdOpt = None,
) -> None:
    """Classify image files with a .tflite model (no TensorFlow needed).

    Example: [bold]edgetl classify runs/flowers/model_int8.tflite photos/*.jpg --top-k 3[/]
    """
    from edgetl.edge.classify import as_csv as to_csv
    from edgetl.edge.classify import as_json_lines, classify_files, expand
    from edgetl.rundir import write_atomic

    if json_out and csv_out:
        raise EdgetlError("--json and --csv cannot be combined.", "Pick one output format.")
    target = json_out or csv_out
    if target not in (None, "-") and Path(target).exists():
        raise EdgetlError(f"{target} already exists.", "Choose another file, or remove it first.")
    if top_k < 1:
        raise EdgetlError(f"--top-k {top_k} must be at least 1.")
    files, missing = expand(paths)
    for pattern in missing:
        err_console.print(f"[yellow]warning:[/] nothing matches {escape(pattern)}")
    if not files:
        raise EdgetlError("No images to classify.", "Pass image files, folders or glob patterns that exist.")
    classifier = _classifier(model, labels, threads, backend, input_mean, input_std, resize, threshold, ood_threshold)
    top_k = min(top_k, len(classifier.labels))
    results = list(classify_files(classifier, files, top_k))
    for result in results:
        if "error" in result:
            err_console.print(f"[yellow]skipped[/] {escape(result['path'])}: {escape(result['error'])}")
    if target is not None:
        text = as_json_lines(results) if json_out else to_csv(results, top_k)
        if target == "-":
            print(text, end="")
        else:
            write_atomic(Path(target), text)
            err_console.print(f"Written: {escape(target)} ({len(results)} results)")
    else:
        from rich.table import Table

        shown = [r["path"] for r in results if "error" not in r]
        base = os.path.commonpath([os.path.dirname(p) for p in shown]) if len(shown) > 1 else ""
        title = f"{model.name}: {len(files)} image(s){f' in {base}' if base else ''}, {classifier.model.backend}"
        table = Table(title=escape(title))
        table.add_column("image", overflow="fold")  # the distinguishing end of a path is never cut off
        for rank in range(top_k):
            table.add_column(f"#{rank + 1}")
        with_ood = classifier.model.has_ood_score
        if with_ood:
            table.add_column("OOD", justify="right")  # higher = less like the training data
        table.add_column("ms", justify="right")
        for result in results:
            if "error" not in result:
                cells = [escape(f"{label} {score:.2f}") for label, score in zip(result["labels"], result["scores"])]
                if result["unknown"]:
                    cells[0] = f"[yellow]{cells[0]}[/]"
                name = os.path.relpath(result["path"], base) if base else result["path"]
                ood = [f"{result['ood_score']:.2f}"] if with_ood else []
                table.add_row(escape(name), *cells, *ood, f"{result['ms']:.1f}")
        console.print(table)
    if all("error" in result for result in results):
        raise typer.Exit(1)


@app.command()
def camera(
    model: ModelArg,
    source: Annotated[
        str,
        typer.Option(
            "--source", "-s", help="Camera index, video file, rtsp:// or http:// URL, GStreamer pipeline, picamera2."
        ),
    ] = "0",
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Labels per result.")] = 3,
    smooth: Annotated[int, typer.Option(help="Average scores over this many recent frames.")] = 1,
    threshold: ThresholdOpt = None,
    ood_threshold: OodThresholdOpt = None,
    json_out: Annotated[
        str | None, typer.Option("--json", help="Write one JSON line per result to FILE, or - for stdout.")
    ] = None,
    serve: Annotated[str | None, typer.Option(help="Serve a live web page on HOST:PORT (e.g. 127.0.0.1:8080).")] = None,
    window: Annotated[
        bool | None, typer.Option("--window/--no-window", help="On-screen window (default: when a display is there).")
    ] = None,
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many results.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    loop: Annotated[bool, typer.Option(help="Restart a video file at its end.")] = False,
    realtime: Annotated[bool, typer.Option(help="Play a video file at its own frame rate, like a camera.")] = False,
    max_reconnects: Annotated[
        int | None, typer.Option(help="Give up on a dropped stream after N tries (default: never).")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="Interpreter threads (default: cores − 1: one core stays free for capture).")
    ] = None,
    backend: BackendOpt = "auto",
    labels: LabelsOpt = None,
    input_mean: MeanOpt = None,
    input_std: StdOpt = None,
    resize: ResizeOpt = None,
    force: Annotated[bool, typer.Option(help="Replace an existing --json file.")] = False,
) -> None:
    """Classify live video: camera, file or stream (no TensorFlow needed).

    Example: [bold]edgetl camera model_int8.tflite --source 0 --serve 0.0.0.0:8080[/]
    """
    from edgetl.edge.camera import CameraOptions, RunStats, StopFlag, print_summary, run_camera
    from edgetl.edge.capture import Capture, SourceSpec

    if smooth < 1 or top_k < 1:
        raise EdgetlError("--smooth and --top-k must be at least 1.")
    json_path = None if json_out in (None, "-") else Path(json_out)
    if json_path is not None and json_path.exists() and not force:
        raise EdgetlError(f"{json_path} already exists.", "Pass --force to replace it, or choose another --json file.")
    threads = threads or max((os.cpu_count() or 2) - 1, 1)
    classifier = _classifier(model, labels, threads, backend, input_mean, input_std, resize, threshold, ood_threshold)
    status = err_console if json_out == "-" else console  # keep stdout pure JSON when it carries the results
    server = state = None
    if serve:
        from edgetl.edge.serve import LiveState, start_server

        state = LiveState()
        server = start_server(serve, state)
        host, port = server.server_address[:2]
        status.print(f"Serving http://{host}:{port}/")
    show = window if window is not None else bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    capture = Capture(
        SourceSpec(source),
        loop=loop,
        realtime=realtime,
        max_reconnects=max_reconnects,
        prepare=classifier.prepare_bgr,  # in the capture thread: overlaps the previous inference
    )
    options = CameraOptions(
        top_k=min(top_k, len(classifier.labels)),
        smooth=smooth,
        max_frames=max_frames,
        duration=duration,
    )
    sink = sys.stdout if json_out == "-" else (json_path.open("w") if json_path else None)
    stats, stop, last_print = RunStats(), StopFlag(), [0.0]

    def on_result(result, frame) -> None:
        import time

        if state is not None:
            state.update(result, frame, {**stats.summary(capture, classifier, threads), "fps": stats.fps})
        if show:
            import cv2

            from edgetl.edge.serve import draw_overlay

            cv2.imshow("edgetl", draw_overlay(frame.image, result, stats.fps))
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                stop.event.set()
        if time.monotonic() - last_print[0] > 2.0:
            last_print[0] = time.monotonic()
            top = result.prediction
            status.print(
                f"frame {result.frame}: {escape(top.labels[0])} {top.scores[0]:.2f} · {stats.fps:.1f} FPS · "
                f"inference {result.latency_ms['inference']:.1f} ms · age {result.age_ms:.0f} ms"
            )

    try:
        with stop:
            run_camera(classifier, capture, options, on_result=on_result, json_out=sink, stop=stop, stats=stats)
    finally:
        capture.close()
        if sink is not None and sink is not sys.stdout:
            sink.close()
        if state is not None:
            state.close()
            server.shutdown()
        if show:
            import cv2

            cv2.destroyAllWindows()
    print_summary(stats.summary(capture, classifier, threads), status, stopped_by=stop.signal, error=capture.error)
    if serve and not capture.spec.is_live and not loop and not stop.signal and not capture.error:
        status.print("The video file ended, and the web page with it: add --loop --realtime to keep serving it.")
    if capture.error:
        raise typer.Exit(1)


@app.command()
def bench(
    sources: Annotated[
        list[Path] | None, typer.Argument(help="A run directory (all its models), or .tflite files.")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Labelled images, one folder per class (default: the run's test split).")
    ] = None,
    threads: Annotated[
        str | None, typer.Option(help="Interpreter thread counts to measure, e.g. 1,2,4 (default: 1 and all cores).")
    ] = None,
    runs: Annotated[int, typer.Option(help="Timed single inferences per model and thread count.")] = 100,
    warmup: Annotated[int, typer.Option(help="Untimed runs first.")] = 10,
    backend: BackendOpt = "auto",
    batch_latency: Annotated[bool, typer.Option(help="Also time batched inference (per image).")] = False,
    max_drop: Annotated[float, typer.Option(help="Accuracy budget (top-1 points) for the recommendation.")] = 1.0,
    limit: Annotated[int | None, typer.Option(help="Use at most this many images for accuracy.")] = None,
    ood: Annotated[
        Path | None,
        typer.Option(help="Photos of none of the classes: measure how many each model rejects as 'unknown'."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Report folder (default: RUN/bench or ./bench).")
    ] = None,
    compare: Annotated[
        list[Path] | None, typer.Option(help="Combine bench.json files from several machines into one table.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing report.")] = False,
) -> None:
    """Latency and accuracy of every model variant: table, recommendation, bench.json/.md/.html.

    Example: [bold]edgetl bench runs/flowers --threads 1,2,4[/]
    """
    from edgetl.rundir import read_json, write_atomic

    interrupt.install("No report was written.")
    if compare:
        from edgetl.edge.bench_report import compare as compare_reports

        text = compare_reports([read_json(path) for path in compare], console)
        if out is not None:
            write_atomic(out / "compare.md", text)
            console.print(f"Written: {out / 'compare.md'}")
        return
    if not sources:
        raise EdgetlError(
            "Nothing to benchmark.", "Pass a run directory or .tflite files (or --compare a.json b.json)."
        )
    threads = threads or ",".join(sorted({"1", str(os.cpu_count() or 1)}, key=int))
    try:
        counts = [int(t) for t in threads.split(",") if t.strip()]
    except ValueError:
        raise EdgetlError(f"--threads {threads} is not a list of numbers.", "Example: --threads 1,2,4") from None
    if not counts or min(counts) < 1:
        raise EdgetlError(f"--threads {threads}: thread counts must be 1 or more.", "Example: --threads 1,2,4")
    if runs < 1 or warmup < 0:
        raise EdgetlError("--runs must be at least 1 and --warmup not negative.")
    folder = out or (sources[0] / "bench" if sources[0].is_dir() else Path("bench"))
    if (folder / "bench.json").exists() and not force:
        raise EdgetlError(
            f"{folder / 'bench.json'} already exists.", "Pass --force to replace it, or --out another folder."
        )
    from edgetl.edge.bench import BenchOptions, run_bench
    from edgetl.edge.bench_report import print_table, write_reports

    options = BenchOptions(
        threads=counts,
        runs=runs,
        warmup=warmup,
        backend=backend,
        max_drop=max_drop,
        batch_latency=batch_latency,
        ood=ood,
    )
    report = run_bench(
        sources, options, data=data, limit=limit, progress=lambda text: console.print(f"measuring {text}")
    )
    print_table(report, console)
    for warning in report["warnings"]:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    page = write_reports(report, folder)
    console.print(f"Report: {page}  (bench.json, bench.md, plots)")
    if all("error" in row for row in report["models"]):
        raise typer.Exit(1)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to put the sample data and the run.")] = Path("runs"),
    images_per_class: Annotated[
        int | None,
        typer.Option(
            help=f"Generated images per class (default: {DEFAULT_IMAGES_PER_CLASS}, or "
            f"{SCRATCH_IMAGES_PER_CLASS} without ImageNet weights)."
        ),
    ] = None,
) -> None:
    """Run the pipeline on a generated sample dataset: train, convert, camera, bench (minutes on a CPU).

    Uses the network once, for Keras' download of the ImageNet weights when they are not cached; without
    them it trains from random weights on more images instead (slower, still a working model).
    """
    require_tensorflow()
    _quiet_tensorflow()
    interrupt.install("Run `edgetl demo` again to start a new demo run.")
    from edgetl.demo import run_demo

    run_demo(out, images_per_class, console)


def run() -> None:
    """Console entry point: user errors become one red line and an exit code, never a traceback."""
    try:
        app()
    except EdgetlError as error:
        if interrupt.received():  # e.g. a worker whose peers stopped on the same SIGTERM: the signal explains it
            _interrupted(interrupt.received())
        err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        _exit(2)
    except interrupt.Interrupted as stop:
        _interrupted(stop.signum)
    except Exception:
        if interrupt.received():  # whatever failed, it failed because the process was being stopped
            _interrupted(interrupt.received())
        raise


def _interrupted(signum: int) -> NoReturn:
    err_console.print(f"[yellow]{escape(interrupt.message())}[/]", highlight=False, soft_wrap=True)
    _exit(128 + signum)


def _exit(code: int) -> NoReturn:
    """Exit without TensorFlow's teardown once it is loaded: after a failed collective or an interrupt its
    threads can hang the exit or abort it ("terminate called without an active exception")."""
    if "tensorflow" not in sys.modules:
        raise SystemExit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
