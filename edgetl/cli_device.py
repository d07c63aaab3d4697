"""The device commands: `classify`, `camera`, `collect`, `label`, `compare`, `bench` (no TensorFlow needed but
for bench's Keras row). Wiring only, like edgetl/cli.py, which registers them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from edgetl import interrupt
from edgetl.cli_common import app, console, err_console, opt, pick
from edgetl.edge.auth import AuthOptions, credentials
from edgetl.edge.bench import BenchOptions
from edgetl.edge.camera import CameraOptions
from edgetl.edge.classifier import DEFAULT_FLOAT_MEAN, DEFAULT_FLOAT_STD, TOP_K
from edgetl.edge.collect import CollectOptions
from edgetl.edge.keep import KeepOptions
from edgetl.edge.mqtt import MqttOptions
from edgetl.errors import EdgetlError
from edgetl.outputs import OutputSet
from edgetl.text import for_console

A = AuthOptions
ModelArg = Annotated[Path, typer.Argument(help="A .tflite image classifier (from `edgetl convert`, or any).")]
TopKOpt = Annotated[int, typer.Option("--top-k", "-k", help="Labels per image.")]
ThresholdOpt = Annotated[
    float | None, typer.Option(help="Top-1 probability under this → 'unsure', for every class (implies --unsure).")
]
UnsureOpt = Annotated[
    bool, typer.Option(help="Decide 'unsure' when the top-1 probability is under its class's fitted threshold.")
]
OodThresholdOpt = Annotated[float | None, typer.Option(help="OOD score above this → 'unknown' (default: fitted).")]
LabelsOpt = Annotated[Path | None, typer.Option(help="Labels file (default: the model's metadata, or labels.txt).")]
ThreadsOpt = Annotated[int | None, typer.Option(help="Interpreter threads (default: the runtime's choice).")]
BackendOpt = Annotated[str, opt(BenchOptions, "backend")]
MeanOpt = Annotated[float | None, typer.Option(help=f"Float model, no metadata: input mean ({DEFAULT_FLOAT_MEAN}).")]
StdOpt = Annotated[float | None, typer.Option(help=f"Float model, no metadata: input std ({DEFAULT_FLOAT_STD}).")]
ResizeOpt = Annotated[str | None, typer.Option(help="stretch or crop (default: from the model, else stretch).")]


@app.command()
def classify(
    model: ModelArg,
    paths: Annotated[list[str], typer.Argument(help="Images, folders (recursive) or glob patterns.")],
    top_k: TopKOpt = TOP_K,
    labels: LabelsOpt = None,
    json_out: Annotated[str | None, typer.Option("--json", help="JSON lines to FILE, or - for stdout.")] = None,
    csv_out: Annotated[str | None, typer.Option("--csv", help="CSV to FILE, or - for stdout.")] = None,
    threads: ThreadsOpt = None,
    backend: BackendOpt = BenchOptions.backend,
    input_mean: MeanOpt = None,
    input_std: StdOpt = None,
    resize: ResizeOpt = None,
    threshold: ThresholdOpt = None,
    ood_threshold: OodThresholdOpt = None,
    unsure: UnsureOpt = False,
) -> None:
    """Classify image files with a .tflite model (no TensorFlow needed).

    Example: [bold]edgetl classify runs/flowers/model_int8.tflite photos/*.jpg --top-k 3[/]
    """
    from edgetl.edge.classify import check_target, classify_files, expand, print_table, write_results

    target = check_target(json_out, csv_out)
    if top_k < 1:
        raise EdgetlError(f"--top-k {top_k} must be at least 1.")
    files, missing = expand(paths)
    for pattern in missing:
        err_console.print(f"[yellow]warning:[/] nothing matches {escape(pattern)}")
    if not files:
        raise EdgetlError("No images to classify.", "Pass image files, folders or glob patterns that exist.")
    classifier = _classifier(model, locals())
    top_k = min(top_k, len(classifier.labels))
    results = list(classify_files(classifier, files, top_k))
    for result in results:
        if "error" in result:
            err_console.print(f"[yellow]skipped[/] {for_console(result['path'])}: {for_console(result['error'])}")
    if target is not None:
        write_results(results, target, bool(json_out), top_k, err_console)
    else:
        print_table(results, classifier, top_k, console)
    if all("error" in result for result in results):
        raise typer.Exit(1)


def _classifier(model: Path, values: dict[str, Any]):
    """The command's classifier, its model's warnings (parts of the file that could not be read) printed."""
    classifier = _loader(values)(model)
    for warning in classifier.warnings:
        err_console.print(f"[yellow]warning:[/] {for_console(warning)}")
    return classifier


def _loader(values: dict[str, Any]):
    """Path → Classifier with the command's options: the first model, and any hot update (camera)."""
    from functools import partial

    from edgetl.edge.classifier import Classifier, ClassifierOptions

    names = (
        "labels",
        "threads",
        "backend",
        "input_mean",
        "input_std",
        "resize",
        "threshold",
        "ood_threshold",
        "unsure",
    )
    return partial(Classifier, options=ClassifierOptions(**{name: values[name] for name in names}))


K, KO, M = CameraOptions, KeepOptions, MqttOptions


@app.command()
def camera(
    model: Annotated[
        Path | None, typer.Argument(help="A .tflite image classifier (or none, with --config).", show_default=False)
    ] = None,
    config: Annotated[Path | None, opt(K, "config")] = K.config,
    source: Annotated[str, opt(K, "source", "--source", "-s")] = K.source,
    top_k: Annotated[int, opt(K, "top_k", "--top-k", "-k")] = K.top_k,
    smooth: Annotated[int, opt(K, "smooth")] = K.smooth,
    threshold: ThresholdOpt = None,
    ood_threshold: OodThresholdOpt = None,
    unsure: UnsureOpt = False,
    json: Annotated[str | None, opt(K, "json", "--json")] = K.json,
    serve: Annotated[str | None, opt(K, "serve")] = K.serve,
    window: Annotated[bool | None, opt(K, "window", "--window/--no-window")] = K.window,
    max_frames: Annotated[int | None, opt(K, "max_frames")] = K.max_frames,
    duration: Annotated[float | None, opt(K, "duration")] = K.duration,
    loop: Annotated[bool, opt(K, "loop")] = K.loop,
    realtime: Annotated[bool, opt(K, "realtime")] = K.realtime,
    max_reconnects: Annotated[int | None, opt(K, "max_reconnects")] = K.max_reconnects,
    threads: Annotated[
        int | None, typer.Option(help="Interpreter threads (default: cores − 1: one core stays free for capture).")
    ] = None,
    backend: BackendOpt = BenchOptions.backend,
    labels: LabelsOpt = None,
    input_mean: MeanOpt = None,
    input_std: StdOpt = None,
    resize: ResizeOpt = None,
    force: Annotated[bool, opt(K, "force")] = K.force,
    stall: Annotated[float, opt(K, "stall")] = K.stall,
    roi: Annotated[str | None, opt(K, "roi")] = K.roi,
    mqtt: Annotated[str | None, opt(M, "mqtt")] = M.mqtt,
    mqtt_topic: Annotated[str | None, opt(M, "mqtt_topic")] = M.mqtt_topic,
    mqtt_publish: Annotated[str, opt(M, "mqtt_publish")] = M.mqtt_publish,
    mqtt_password_file: Annotated[Path | None, opt(M, "mqtt_password_file")] = M.mqtt_password_file,
    mqtt_ca: Annotated[Path | None, opt(M, "mqtt_ca")] = M.mqtt_ca,
    mqtt_discovery: Annotated[str, opt(M, "mqtt_discovery")] = M.mqtt_discovery,
    auth: Annotated[str | None, opt(A, "auth")] = A.auth,
    auth_password_file: Annotated[Path | None, opt(A, "auth_password_file")] = A.auth_password_file,
    auth_token_file: Annotated[Path | None, opt(A, "auth_token_file")] = A.auth_token_file,
    keep: Annotated[Path | None, opt(KO, "keep")] = KO.keep,
    keep_interval: Annotated[float, opt(KO, "keep_interval")] = KO.keep_interval,
    keep_sample: Annotated[float, opt(KO, "keep_sample")] = KO.keep_sample,
    keep_margin: Annotated[float, opt(KO, "keep_margin")] = KO.keep_margin,
    keep_max: Annotated[int, opt(KO, "keep_max")] = KO.keep_max,
    min_free: Annotated[float, opt(KO, "min_free")] = KO.min_free,
) -> None:
    """Classify live video: camera, file or stream; or every camera and region of a device file (no TensorFlow
    needed).

    Example: [bold]edgetl camera model_int8.tflite --source 0 --serve 0.0.0.0:8080[/], or
    [bold]edgetl camera --config device.toml[/]
    """
    from edgetl.edge.run_camera import default_threads, run_live

    options = CameraOptions(**pick(CameraOptions, locals()))
    access = credentials(AuthOptions(**pick(AuthOptions, locals())))
    device = _device(model, options, locals())
    code = run_live(device, options, threads or default_threads(), _loader(locals()), console, err_console, access)
    if code:
        raise typer.Exit(code)


def _device(model: Path | None, options: CameraOptions, values: dict[str, Any]):
    """The device the command runs: the --config file's, or the command line's one camera and region."""
    from edgetl.edge.device_file import file_overrides, read_device_file, single_camera

    if options.config is None:
        if model is None:
            raise EdgetlError("No model to run.", "Give a .tflite file, or --config DEVICE.toml for several cameras.")
        rule = {name: values[name] for name in ("threshold", "unsure", "ood_threshold")}
        keeping, publish = KeepOptions(**pick(KeepOptions, values)), MqttOptions(**pick(MqttOptions, values))
        return single_camera(model, options, keeping, publish, rule)
    if model is not None:
        raise EdgetlError("Give a model or --config, not both.", "The device file names each region's model.")
    given = file_overrides(values) + (["--labels"] if values["labels"] is not None else [])
    if given:
        raise EdgetlError(
            f"{', '.join(given)}: set in the device file with --config, not on the command line.",
            "Put it in the file, under its camera, region, [serve] or [mqtt] (README: 'A device file').",
        )
    return read_device_file(options.config)


CO = CollectOptions


@app.command()
def collect(
    data: Annotated[Path, typer.Argument(help="The dataset folder: photos go into DATA/<class>/.")],
    source: Annotated[str, opt(CO, "source", "--source", "-s")] = CO.source,
    label: Annotated[str | None, opt(CO, "label")] = CO.label,
    other: Annotated[bool, opt(CO, "other", "--other")] = CO.other,
    count: Annotated[int, opt(CO, "count")] = CO.count,
    interval: Annotated[float, opt(CO, "interval")] = CO.interval,
    serve: Annotated[str | None, opt(CO, "serve")] = CO.serve,
    quality: Annotated[int, opt(CO, "quality")] = CO.quality,
    max_side: Annotated[int | None, opt(CO, "max_side")] = CO.max_side,
    min_free: Annotated[float, opt(CO, "min_free")] = CO.min_free,
    roi: Annotated[str | None, opt(CO, "roi")] = CO.roi,
    auth: Annotated[str | None, opt(A, "auth")] = A.auth,
    auth_password_file: Annotated[Path | None, opt(A, "auth_password_file")] = A.auth_password_file,
    auth_token_file: Annotated[Path | None, opt(A, "auth_token_file")] = A.auth_token_file,
) -> None:
    """Take training photos with the device's own camera (no TensorFlow needed).

    Example: [bold]edgetl collect beans --source 0 --label healthy --count 20 --interval 0.5[/], or
    [bold]edgetl collect beans --serve 127.0.0.1:8080[/] for a page with one button per class.
    """
    from edgetl.edge.run_collect import run_collect

    access = credentials(AuthOptions(**pick(AuthOptions, locals())))
    code = run_collect(data, CollectOptions(**pick(CollectOptions, locals())), console, access)
    if code:
        raise typer.Exit(code)


@app.command()
def label(
    folder: Annotated[Path, typer.Argument(help="The photos to label: a `camera --keep` folder, or any.")],
    data: Annotated[Path, typer.Option(help="The dataset: labelled photos move into DATA/<class>/.")],
    serve: Annotated[str, typer.Option(help="The page's HOST:PORT.")] = "127.0.0.1:8080",
    auth: Annotated[str | None, opt(A, "auth")] = A.auth,
    auth_password_file: Annotated[Path | None, opt(A, "auth_password_file")] = A.auth_password_file,
    auth_token_file: Annotated[Path | None, opt(A, "auth_token_file")] = A.auth_token_file,
) -> None:
    """Label photos in a browser, most doubtful first: they move into DATA/<class>/ (no TensorFlow needed).

    Example: [bold]edgetl label kept/ --data beans[/], then open http://127.0.0.1:8080/ (keys 1–9, o: none of
    these, x, u, s). "None of these" photos go to DATA/__other__, where `edgetl train DATA` finds them.
    """
    from edgetl.edge.run_label import run_label

    code = run_label(folder, data, serve, console, credentials(AuthOptions(**pick(AuthOptions, locals()))))
    if code:
        raise typer.Exit(code)


@app.command()
def compare(
    a: Annotated[Path, typer.Argument(help="The model in use: a run or a .tflite file.")],
    b: Annotated[Path, typer.Argument(help="The candidate: a run or a .tflite file.")],
    data: Annotated[
        Path | None, typer.Option(help="Images in class folders (default: both runs' test splits).")
    ] = None,
    json_out: Annotated[
        str | None, typer.Option("--json", help="The full record as JSON to FILE, or - for stdout.")
    ] = None,
    timing: Annotated[bool, typer.Option(help="Also time both models (one thread).")] = True,
    other: Annotated[
        Path | None,
        typer.Option(help="Photos of none of the classes, for 'unknown' (default: both runs' held-out other photos)."),
    ] = None,
) -> None:
    """Is B better than A on the same images, beyond chance? Exit 0 only when it is (no TensorFlow needed).

    Example: [bold]edgetl compare runs/v1 runs/v2 && scp runs/v2/model_int8.tflite pi:[/]
    """
    from edgetl.edge.compare import compare as run_compare
    from edgetl.edge.compare import report

    result = run_compare(a, b, data, timing, json_out, other)
    report(result, json_out, console)
    if not result.better:
        raise typer.Exit(1)


@app.command()
def bench(
    sources: Annotated[list[Path] | None, typer.Argument(help="A run directory, or .tflite files.")] = None,
    data: Annotated[Path | None, typer.Option(help="Images in class folders (default: the test split).")] = None,
    threads: Annotated[str | None, opt(BenchOptions, "threads")] = None,
    runs: Annotated[int, opt(BenchOptions, "runs")] = BenchOptions.runs,
    warmup: Annotated[int, opt(BenchOptions, "warmup")] = BenchOptions.warmup,
    backend: BackendOpt = BenchOptions.backend,
    batch_latency: Annotated[bool, opt(BenchOptions, "batch_latency")] = BenchOptions.batch_latency,
    max_drop: Annotated[float, opt(BenchOptions, "max_drop")] = BenchOptions.max_drop,
    limit: Annotated[int | None, typer.Option(help="Use at most this many images for accuracy.")] = None,
    ood: Annotated[Path | None, opt(BenchOptions, "ood")] = BenchOptions.ood,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Report folder (default: RUN/bench, ./bench).")
    ] = None,
    compare: Annotated[list[Path] | None, typer.Option(help="bench.json files of several machines: one table.")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing report.")] = False,
) -> None:
    """Latency and accuracy of every model variant: table, recommendation, bench.json/.md/.html.

    Example: [bold]edgetl bench runs/flowers --threads 1,2,4[/]
    """
    from edgetl.bench_record import BenchRow
    from edgetl.edge.bench import parse_threads, report_folder, run_bench
    from edgetl.edge.bench_report import compare_files, print_table, write_reports

    interrupt.install("The previous report, if any, is untouched: a new one appears whole, or not at all.")
    if compare:
        compare_files(compare, out, console)
        return
    if not sources:
        raise EdgetlError("Nothing to benchmark.", "Pass a run directory or .tflite files (or --compare A B).")
    options = BenchOptions(**{**pick(BenchOptions, locals()), "threads": parse_threads(threads)})
    measuring = lambda text: console.print(f"measuring {text}")  # noqa: E731
    with OutputSet(report_folder(sources, out, force), "bench") as outputs:  # a read-only folder fails before work
        report = run_bench(sources, options, data=data, limit=limit, progress=measuring)
        print_table(report, console)
        for warning in report["warnings"]:
            console.print(f"[yellow]warning:[/] {for_console(warning)}")
        page = write_reports(report, outputs)
        outputs.commit()
    console.print(f"Report: {page}  (bench.json, bench.md, plots)")
    if all(BenchRow.from_json(row).error for row in report["models"]):
        raise typer.Exit(1)
