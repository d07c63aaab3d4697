"""The `edgetl` command line: wiring only (parse, call, print). Defaults and help come from the options
dataclasses; TensorFlow is imported only by the commands that need it, so `edgetl --help` and the edge
commands start fast without it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from edgetl import interrupt
from edgetl.cli_common import app, console, err_console, opt, pick
from edgetl.convert.options import BareModel, ConvertOptions
from edgetl.demo import DEFAULT_IMAGES_PER_CLASS, SCRATCH_IMAGES_PER_CLASS
from edgetl.errors import EdgetlError
from edgetl.profiling import local_profile, make_profile
from edgetl.rundir import RunInfo, check_output
from edgetl.tf_loader import load_tensorflow
from edgetl.train.config import TrainConfig

T = TrainConfig


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="Folder with one sub-folder per class, or train/ validation/ test/.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")] = Path("runs/train"),
    backbone: Annotated[str, opt(T, "backbone", "--model")] = T.backbone,
    alpha: Annotated[float, opt(T, "alpha")] = T.alpha,
    size: Annotated[int, opt(T, "size")] = T.size,
    weights: Annotated[str, opt(T, "weights")] = T.weights,
    resize: Annotated[str, opt(T, "resize")] = T.resize,
    batch_size: Annotated[int, opt(T, "batch_size")] = T.batch_size,
    head_epochs: Annotated[int, opt(T, "head_epochs")] = T.head_epochs,
    finetune_epochs: Annotated[int, opt(T, "finetune_epochs")] = T.finetune_epochs,
    head_lr: Annotated[float, opt(T, "head_lr")] = T.head_lr,
    finetune_lr: Annotated[float, opt(T, "finetune_lr")] = T.finetune_lr,
    unfreeze_from: Annotated[str | None, opt(T, "unfreeze_from")] = T.unfreeze_from,
    unfreeze_layers: Annotated[int | None, opt(T, "unfreeze_layers", "--unfreeze")] = T.unfreeze_layers,
    dropout: Annotated[float, opt(T, "dropout")] = T.dropout,
    label_smoothing: Annotated[float, opt(T, "label_smoothing")] = T.label_smoothing,
    augment: Annotated[bool, opt(T, "augment", "--augment/--no-augment")] = T.augment,
    feature_cache: Annotated[bool, opt(T, "feature_cache", "--feature-cache/--no-feature-cache")] = T.feature_cache,
    finetune_views: Annotated[int, opt(T, "finetune_views")] = T.finetune_views,
    patience: Annotated[int, opt(T, "patience")] = T.patience,
    val_fraction: Annotated[float, opt(T, "val_fraction")] = T.val_fraction,
    test_fraction: Annotated[float, opt(T, "test_fraction")] = T.test_fraction,
    seed: Annotated[int, opt(T, "seed")] = T.seed,
    mixed_precision: Annotated[
        bool | None, opt(T, "mixed_precision", "--mixed-precision/--no-mixed-precision")
    ] = T.mixed_precision,
    strategy: Annotated[str, opt(T, "strategy")] = T.strategy,
    deterministic: Annotated[bool, opt(T, "deterministic", "--deterministic/--no-deterministic")] = T.deterministic,
    max_latency: Annotated[float | None, opt(T, "max_latency")] = T.max_latency,
    device_profile: Annotated[str | None, opt(T, "device_profile")] = T.device_profile,
    parent: Annotated[str | None, opt(T, "parent", "--from")] = T.parent,
    warm_start: Annotated[bool, opt(T, "warm_start", "--warm-start/--no-warm-start")] = T.warm_start,
    other: Annotated[str | None, opt(T, "other")] = T.other,
    force: Annotated[bool, typer.Option(help="Replace an existing run directory.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run from its last epoch.")] = False,
) -> None:
    """Fine-tune an ImageNet backbone on a folder of photos.

    Example: [bold]edgetl train photos/ --model mobilenet_v2 --size 224 --out runs/flowers[/]
    """
    config = TrainConfig(**pick(TrainConfig, locals()))
    if config.parent and not resume:
        config = _like_parent(ctx, config)
    load_tensorflow()
    if config.max_latency is not None and config.device_profile is None and not resume:
        check_output(out, force=force, resume=resume)  # before minutes of profiling, not after
        config = replace(config, device_profile=str(local_profile(console)))
    interrupt.install("Completed epochs are checkpointed: run the same command with --resume to continue.")
    from edgetl.train.run import train as run_training

    run_training(data, out, config, force=force, resume=resume, console=console)


def _like_parent(ctx: typer.Context, config: TrainConfig) -> TrainConfig:
    """With --from: the model and input options not given on the command line are the parent run's, so that
    v2 fits the same device and (with --warm-start) can start from v1's weights."""
    parent = RunInfo.load(Path(config.parent))  # a missing or unfinished run is one clear line, before TensorFlow
    was = {"backbone": parent.model.backbone, "alpha": parent.model.alpha, "size": parent.size, "resize": parent.resize}
    given = {name for name in was if ctx.get_parameter_source(name).name != "DEFAULT"}  # typed on the command line
    inherited = {name: value for name, value in was.items() if name not in given and value not in (None, "")}
    changed = {name: value for name, value in inherited.items() if getattr(config, name) != value}
    if changed:
        shown = " ".join(f"--{'model' if name == 'backbone' else name} {value}" for name, value in changed.items())
        console.print(f"As {config.parent} was trained: {shown}.")
    return replace(config, **inherited)


C, B = ConvertOptions, BareModel


@app.command()
def convert(
    source: Annotated[Path, typer.Argument(help="A run directory from `edgetl train`, or a .keras / .h5 model file.")],
    int8: Annotated[bool, typer.Option("--int8", help="Full-integer int8 (calibrated, checked, repaired).")] = False,
    fp16: Annotated[bool, typer.Option("--fp16", help="float16 weights.")] = False,
    dynamic: Annotated[bool, typer.Option("--dynamic", help="Dynamic range: int8 weights, float activations.")] = False,
    float32: Annotated[bool, typer.Option("--float32", help="Plain float32.")] = False,
    input_type: Annotated[str, opt(C, "input_type")] = C.input_type,
    calibration_samples: Annotated[int, opt(C, "calibration_samples")] = C.calibration_samples,
    max_drop: Annotated[float, opt(C, "max_drop")] = C.max_drop,
    min_agreement: Annotated[float | None, opt(C, "min_agreement")] = C.min_agreement,
    bias_correction: Annotated[bool, opt(C, "bias_correction", "--bias-correction/--no-bias-correction")] = (
        C.bias_correction
    ),
    repair: Annotated[bool, opt(C, "repair", "--repair/--no-repair")] = C.repair,
    max_float_layers: Annotated[int, opt(C, "max_float_layers")] = C.max_float_layers,
    max_repair_cost: Annotated[float, opt(C, "max_repair_cost")] = C.max_repair_cost,
    labels: Annotated[Path | None, opt(B, "labels")] = B.labels,
    calibration: Annotated[Path | None, opt(B, "calibration")] = B.calibration,
    test: Annotated[Path | None, opt(B, "test")] = B.test,
    preprocessing: Annotated[str, opt(B, "preprocessing")] = B.preprocessing,
    resize: Annotated[str, opt(B, "resize")] = B.resize,
    out: Annotated[Path | None, opt(C, "out", "--out", "-o")] = C.out,
    threads: Annotated[int | None, opt(C, "threads")] = C.threads,
    force: Annotated[bool, opt(C, "force")] = C.force,
) -> None:
    """Convert to TFLite, check accuracy against the float model, embed metadata.

    Example: [bold]edgetl convert runs/flowers --int8[/]
    """
    chosen = {"int8": int8, "fp16": fp16, "dynamic": dynamic, "float32": float32}
    formats = tuple(name for name, wanted in chosen.items() if wanted) or C.formats
    options = ConvertOptions(**pick(ConvertOptions, locals()))  # formats included
    bare = BareModel(**pick(BareModel, locals()))
    load_tensorflow()
    interrupt.install("The previous .tflite files and conversion.json are untouched: a new set appears only whole.")
    from edgetl.convert.run import convert as run_conversion

    report = run_conversion(source, options, console=console, bare=bare)
    failed = [fmt for fmt, entry in report["models"].items() if fmt in options.formats and not entry["passed"]]
    if failed:
        err_console.print(
            f"[bold red]error:[/] {', '.join(failed)} missed the accuracy budget (--max-drop {max_drop}"
            f", --min-agreement {report['min_agreement_pct']}); files kept, marked in the report."
        )
        raise typer.Exit(1)


from edgetl import cli_device  # noqa: E402, F401 - registers classify, camera, collect, label, compare, bench


@app.command()
def profile(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the candidate models.")] = Path("profile"),
    force: Annotated[bool, typer.Option(help="Replace an existing profile.")] = False,
) -> None:
    """Candidate int8 models for a device latency profile (random weights: only their speed matters).

    Copy OUT to the device and run [bold]edgetl bench OUT[/] there; its bench.json is the profile for
    [bold]edgetl train DATA --max-latency MS --device-profile bench.json[/].
    """
    load_tensorflow()
    interrupt.install("The profile is incomplete: run the same command with --force.")
    make_profile(out, console, force=force)
    console.print(
        f"Profile: {out}  ({len(list(out.glob('*.tflite')))} models). Next, on the device: edgetl bench {out}"
    )


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
    load_tensorflow()
    interrupt.install("Run `edgetl demo` again to start a new demo run.")
    from edgetl.demo import run_demo

    run_demo(out, images_per_class, console)


def run() -> None:
    """Console entry point: user errors become one red line and an exit code, never a traceback."""
    try:
        app()
    except EdgetlError as error:
        if interrupt.received():  # e.g. a worker whose peers stopped on the same SIGTERM: the signal explains it
            interrupt.exit_with_hint(interrupt.received(), err_console)
        err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        interrupt.exit_now(2)
    except interrupt.Interrupted as stop:
        interrupt.exit_with_hint(stop.signum, err_console)
    except Exception:
        if interrupt.received():  # whatever failed, it failed because the process was being stopped
            interrupt.exit_with_hint(interrupt.received(), err_console)
        raise
