"""`edgetl train` end to end: data → model → phase 1 → phase 2 → evaluation → run directory.

Works in `NAME.partial/` and renames it to `NAME` only when everything is written, so a run
directory that exists is complete; `--resume` picks up the partial one after an interruption.
"""

from __future__ import annotations

import platform
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from rich.console import Console
from rich.progress import Progress

import edgetl
from edgetl import interrupt
from edgetl.backbones import backbone_spec
from edgetl.digests import OTHER, write_digests
from edgetl.errors import EdgetlError
from edgetl.float32 import as_float32
from edgetl.open_world_card import OpenWorldCard
from edgetl.progress import progress_bar
from edgetl.rundir import (
    LABELS_FILE,
    MODEL_FILE,
    SPLIT_DIR,
    SPLITS,
    DataRecord,
    ModelRecord,
    RunInfo,
    RunMetrics,
    TrainingRecord,
    check_output,
    labels_text,
    partial_dir,
    prepare_output,
    publish,
    read_json,
    write_atomic,
    write_json,
)
from edgetl.train import lineage, open_world, other, warm_start
from edgetl.train.config import TrainConfig
from edgetl.train.data import DatasetIndex, scan, write_split_files
from edgetl.train.fit import (
    Activations,
    TrainState,
    activations,
    choose_strategy,
    cluster_task,
    evaluation_features,
    fine_tune,
    other_features,
    remove_training_files,
    restore,
    save_final_weights,
    train_head,
    use_mixed_precision,
    write_history_csv,
)
from edgetl.train.models import Classifier, build_classifier, resolve_weights
from edgetl.train.multi_worker import lost_peer_is_an_error
from edgetl.train.report import classification_metrics, plot_confusion, plot_curves
from edgetl.train.search import SEARCH_FILE, SEARCH_PLOT, Estimate, search, write_search
from edgetl.train.shares import Share

CONFIG = "config.json"


class BatchProgress(keras.callbacks.Callback):
    """A Rich progress bar over the batches of each epoch: fine-tuning epochs take minutes on a CPU."""

    def __init__(self, progress: Progress, label: str, steps: int) -> None:
        super().__init__()
        self.progress, self.label, self.steps = progress, label, steps
        self.task = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        steps = self.params.get("steps") or self.steps  # what fit() runs where it knows (a worker's share), else ours
        self.task = self.progress.add_task(f"{self.label} epoch {epoch + 1}", total=steps)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.progress.advance(self.task)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.progress.remove_task(self.task)


def index_data(data: Path, config: TrainConfig, console: Console, resumed: Path | None = None) -> DatasetIndex:
    """The dataset, checked and split; with --from, the parent's photos keep their splits; other photos (train/
    other.py) keep the side the parent, or the `resumed` partial run, gave them."""
    parent = lineage.read_parent(Path(config.parent)) if config.parent else None
    with progress_bar(console) as progress:

        def start(total: int):
            task = progress.add_task("Checking images", total=total)
            return lambda n: progress.advance(task, n)

        fractions = {"val_fraction": config.val_fraction, "test_fraction": config.test_fraction}
        keep = parent.split_of if parent else None
        index = scan(data, **fractions, seed=config.seed, progress=start, keep_splits=keep)
    if parent:
        _compare_with_parent(index, parent)
    _index_other(index, data, config, parent, resumed)
    return index


def _index_other(
    index: DatasetIndex, data: Path, config: TrainConfig, parent: lineage.Parent | None, resumed: Path | None
) -> None:
    """The "other" photos (train/other.py), when there are any, on the sides the parent or the partial run gave."""
    folder = other.resolve(Path(config.other) if config.other else None, data)
    if folder is None:
        return
    keep = parent.sides_for_other() if parent else {}
    keep |= other.read_sides(resumed / SPLIT_DIR / OTHER) if resumed else {}
    index.other = other.scan_other(folder, data, index.digests, seed=config.seed, keep_sides=keep)
    index.warnings += index.other.warnings


def _compare_with_parent(index: DatasetIndex, parent: lineage.Parent) -> None:
    """--from: what changed since the parent, in data_report.json, and a warning for what a person should know."""
    since = lineage.changes(parent, index.root, index.classes, index.splits, index.digests)
    index.since_parent = since | {"moved_to_parent_split": index.moved_to_parent_split}
    if not since["in_common"]:
        index.warnings.append(
            f"{parent.directory} has no photo in common with this data: its split constrains nothing."
        )
    if index.moved_to_parent_split:
        index.warnings.append(
            f"{index.moved_to_parent_split} photo(s) of this pre-split folder were put in the split "
            f"{parent.directory} gave them (by content), so its test photos stay out of training."
        )
    if since["relabelled"]:
        index.warnings.append(
            f"{len(since['relabelled'])} photo(s) changed class since {parent.directory} (data_report.json)."
        )


def _print_data_summary(index: DatasetIndex, console: Console, report: Path) -> None:
    counts = {split: sum(index.counts(split)) for split in SPLITS}
    layout = "pre-split" if index.presplit else "split here (stratified, seeded)"
    console.print(
        f"Data: {len(index.classes)} classes, {counts['train']} train / {counts['validation']} validation / "
        f"{counts['test']} test images ({layout})."
    )
    if index.other:
        sides = index.other.counts()
        console.print(
            f"Other (none of the classes): {sides['validation']} photos to fit 'unknown' on, {sides['test']} to "
            f"test it, from {index.other.root}."
        )
    for warning in index.warnings:
        console.print(f"[yellow]warning:[/] {warning.replace('data_report.json', str(report))}")


def _environment() -> dict[str, Any]:
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "edgetl": edgetl.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "device": f"{len(gpus)} GPU(s)" if gpus else f"CPU ({platform.processor() or platform.machine()})",
    }


@dataclass
class _Run:
    """What the phases work with: decided once per session, alike on --resume."""

    work: Path  # the partial run directory
    config: TrainConfig
    index: DatasetIndex
    state: TrainState
    weights: str | None  # what keras.applications loads: a path, "imagenet" or None
    mixed: bool
    strategy: tf.distribute.Strategy
    share: Share  # this worker's photos in a cluster (train/shares.py); everything alone
    class_weight: dict[int, float] | None  # None: balanced classes
    parent_weights: warm_start.ParentWeights | None  # --from with --warm-start: what the model starts from


def train(
    data: Path | str,
    out: Path | str,
    config: TrainConfig,
    *,
    force: bool = False,
    resume: bool = False,
    console: Console | None = None,
) -> Path:
    """Train a classifier on `data` and write the run directory `out`; return it."""
    console = console or Console()
    data, out = Path(data), Path(out)
    kind, task_index, chief = cluster_task()
    # In a cluster only the chief writes the run; every other worker trains in its own folder beside
    # it (checkpoints for --resume) and deletes it at the end, so shared storage or not, nothing clashes.
    target = out if chief else out.with_name(f"{out.name}.{kind}-{task_index}")
    check_output(target, force=force, resume=resume)
    if resume:
        config = TrainConfig(**read_json(partial_dir(target) / CONFIG))
    if config.parent and config.warm_start:
        warm_start.check_architecture(RunInfo.load(Path(config.parent)), config)
    resumed = partial_dir(target) if resume else None
    index = index_data(data, config, console, resumed)  # bad data fails here, before anything is written
    _print_data_summary(index, console, report=out / "data_report.json")
    searched = None
    if config.max_latency is not None and not resume:  # a resumed run already holds the chosen config
        config, *searched = _choose_configuration(index, config, console)
    run = _start(target, index, config, searched, resume=resume, force=force, console=console)
    clf, trainable, features, others = _train_phases(run, console)
    if not chief:
        shutil.rmtree(run.work)
        console.print(f"{kind} {task_index} finished its share; the chief writes {out}.")
        return out
    return _finish(run, clf, trainable, features, others, out, console)


def _start(
    target: Path,
    index: DatasetIndex,
    config: TrainConfig,
    searched: list | None,
    *,
    resume: bool,
    force: bool,
    console: Console,
) -> _Run:
    """The partial run directory with its config, state and split; seeds, precision, strategy and weights."""
    work = prepare_output(target, force=force, resume=resume)
    if searched:
        write_search(work, *searched)
    if resume:
        state = TrainState.load(work)
        console.print(f"Resuming {work} at phase '{state.phase}', epoch {state.epoch}.")
    else:
        write_json(work / CONFIG, asdict(config))
        state = TrainState()
        state.save(work)  # from now on --resume works, even when stopped during the first feature pass
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()  # same seed, data and machine → same weights
    write_split_files(index, work / SPLIT_DIR)
    write_digests(work / SPLIT_DIR, index.root, index.classes, index.splits, index.digests)
    if index.other:
        other.write_other_file(work / SPLIT_DIR / OTHER, index.other)
    write_json(work / "data_report.json", index.report())
    mixed = use_mixed_precision(config.mixed_precision)
    strategy = choose_strategy(config.strategy)
    interrupt.reclaim()  # a multi-worker strategy installs its own SIGTERM handler, which never exits
    share = Share.of(strategy, config.batch_size)
    for split in ("train", "validation"):
        share.check(len(index.splits[split]), split)
    weights = resolve_weights(config.backbone, config.weights, config.alpha, config.size)
    console.print(
        f"Model: {config.backbone} (alpha {config.alpha}) at {config.size}px, weights {weights or 'none (random)'}; "
        f"{strategy.num_replicas_in_sync} replica(s), {'mixed float16' if mixed else 'float32'}."
    )
    if not share.alone:
        console.print(
            f"Worker {share.worker + 1} of {share.workers} caches and trains on its share: "
            f"{len(share.take(index.splits['train']))} of {len(index.splits['train'])} training photos."
        )
    parent = None
    if config.parent and config.warm_start:  # read outside the strategy's scope: loading makes variables
        parent = warm_start.read_parent_weights(RunInfo.load(Path(config.parent)))
        console.print(f"Starting from {config.parent}'s weights (warm start).")
    return _Run(work, config, index, state, weights, mixed, strategy, share, index.class_weights(), parent)


def _train_phases(run: _Run, console: Console) -> tuple[Classifier, int, dict, dict]:
    """Phase 1 and phase 2 from wherever the state says, then the features evaluation needs.

    Returns (the classifier, how many backbone layers phase 2 trained, evaluation features, other photos'
    features)."""
    config, index, state, work = run.config, run.index, run.state, run.work
    train_steps = -(-len(index.splits["train"]) // config.batch_size)
    with progress_bar(console) as progress, lost_peer_is_an_error(run.strategy, work):
        with run.strategy.scope():
            clf = build_classifier(
                config.backbone,
                len(index.classes),
                size=config.size,
                alpha=config.alpha,
                weights=run.weights,  # on resume too: it decides BatchNorm's mode; the checkpoint then overwrites
                dropout=config.dropout,
            )
            if run.parent_weights:  # before restore, which may hold only the head (phase 1 on cached features)
                warm_start.apply(clf, run.parent_weights, index.classes)
            restore(clf, work)  # --resume: the last finished epoch (a new run has no checkpoint)
            cut = activations(clf, config, work, run.share, _cache_progress(progress))
        hooks = {"on_epoch": _epoch_printer(console), "class_weight": run.class_weight}
        if state.phase == "head" and config.head_epochs > state.epoch:
            console.print(
                f"Phase 1, feature extraction ({'cached features' if config.feature_cache else 'end to end'}):"
            )
            extra = [] if config.feature_cache else [BatchProgress(progress, "feature extraction", train_steps)]
            train_head(clf, index, config, work, state, cut, run.strategy, **hooks, extra_callbacks=extra)
        with run.strategy.scope():
            bar = BatchProgress(progress, "fine-tuning", train_steps)
            return _fine_tune_and_evaluate(run, clf, cut, bar, hooks, console)


def _fine_tune_and_evaluate(
    run: _Run, clf: Classifier, cut: Activations, bar: BatchProgress, hooks: dict, console: Console
) -> tuple[Classifier, int, dict, dict]:
    """Phase 2 (unless done), then the features evaluation needs; under the run's strategy."""
    config, index, state, work = run.config, run.index, run.state, run.work
    if state.phase == "head":
        state.phase, state.epoch = "finetune", 0
        state.save(work)
    trainable = state.finetuned_layers
    if state.phase == "finetune" and config.finetune_epochs > state.epoch:
        how = f"on cached activations below {cut.cut.boundary}" if cut.phase_2_on_cache else "end to end"
        console.print(f"Phase 2, fine-tuning ({how}):")
        trainable = fine_tune(clf, index, config, work, state, cut, **hooks, extra_callbacks=[bar])
    if state.phase != "done":  # the weights training ended with (early stopping's best), for --resume
        save_final_weights(clf, work)
        state.phase, state.finetuned_layers = "done", trainable
        state.save(work)
    console.print("Evaluating, calibrating confidence and fitting the out-of-distribution score…")
    # Every worker computes its share of the features and receives everyone's (a collective); building the
    # cut's top model under the strategy also creates variables, which the chief broadcasts.
    features = evaluation_features(clf, index, config, cut)
    return clf, trainable, features, other_features(clf, index, config, run.share)


def _cache_progress(progress: Progress) -> Callable[[int], Callable[[int], None]]:
    def on_cache(total: int) -> Callable[[int], None]:
        task = progress.add_task("Computing backbone activations", total=total)
        return lambda n: progress.advance(task, n)

    return on_cache


def _epoch_printer(console: Console) -> Callable[[str, int, dict], None]:
    def on_epoch(phase: str, epoch: int, logs: dict) -> None:
        name = "feature extraction" if phase == "head" else "fine-tuning"
        console.print(
            f"  {name} epoch {epoch}: loss {logs.get('loss', 0):.3f} acc {logs.get('accuracy', 0):.3f} "
            f"| val loss {logs.get('val_loss', 0):.3f} val acc {logs.get('val_accuracy', 0):.3f}"
        )

    return on_epoch


def _finish(
    run: _Run, clf: Classifier, trainable: int, features: dict, others: dict, out: Path, console: Console
) -> Path:
    """Calibration, the OOD score, reports and edgetl.json; then the run is published as `out`."""
    keras.mixed_precision.set_global_policy("float32")  # what the device runs; and later stages in this process
    world = open_world.fit(as_float32(clf.model), features, len(run.index.classes), others)
    results = {
        split: classification_metrics(world.probabilities(split), world.labels[split], run.index.classes)
        for split in ("validation", "test")
    }
    for split in results:
        results[split]["calibration"] = dict(world.report[split])
        results[split]["unknown"] = results[split]["calibration"].pop("unknown")
    world.model.save(run.work / MODEL_FILE)
    _write_reports(run.work, run.index, run.state, results)
    open_world.plot(world, run.work / "reliability.png")
    seconds = {**run.state.seconds(), "total": round(run.state.total_seconds(), 3)}  # across --resume sessions
    info = _run_info(run, trainable, results, seconds, world.card)
    remove_training_files(run.work)
    (run.work / CONFIG).unlink(missing_ok=True)
    info.write(run.work)  # last: its presence marks the run complete
    publish(run.work, out)
    _print_summary(out, results, seconds, world.card, console)
    return out


def _choose_configuration(
    index: DatasetIndex, config: TrainConfig, console: Console
) -> tuple[TrainConfig, list[Estimate], dict]:
    """--max-latency: the most accurate profiled candidate within the budget (train/search.py)."""
    if cluster_task()[0]:  # each worker would search alone, and every worker must build the same model
        raise EdgetlError(
            "--max-latency cannot run in a multi-worker cluster.",
            "Search on one machine (its search.json names the choice), then train with that --alpha and --size.",
        )
    console.print(f"Choosing the most accurate model within {config.max_latency} ms ({config.device_profile}):")

    def show(estimate: Estimate, done: int, total: int) -> None:
        found = f"estimated val top-1 {estimate.val_top1:.1%}" if estimate.val_top1 is not None else estimate.status
        console.print(
            f"  [{done}/{total}] {estimate.candidate.describe()}: {estimate.latency_ms:.2f} ms, {found} "
            f"({estimate.seconds:.0f}s)"
        )

    chosen, estimates, report = search(index, config, show)
    over = sum(e.status == "over budget" for e in estimates)
    console.print(
        f"Chosen: {chosen.backbone} (alpha {chosen.alpha}) at {chosen.size}px; {over} candidate(s) over budget. "
        f"See {SEARCH_PLOT} and {SEARCH_FILE}."
    )
    return chosen, estimates, report


def _write_reports(work: Path, index: DatasetIndex, state: TrainState, results: dict) -> None:
    write_atomic(work / LABELS_FILE, labels_text(index.classes))
    write_history_csv(work / "history.csv", state.history)
    write_json(work / "metrics.json", results)
    if state.history:
        plot_curves(state.history, work / "curves.png")
    plot_confusion(results["test"]["confusion_matrix"], index.classes, work / "confusion.png")


def _run_info(run: _Run, trainable: int, results: dict, seconds: dict, card: OpenWorldCard) -> RunInfo:
    """edgetl.json: the one thing every later stage trusts."""
    config, index = run.config, run.index
    spec = backbone_spec(config.backbone)
    return RunInfo(
        labels=index.classes,
        size=config.size,
        resize=config.resize,
        preprocessing=spec.preprocessing(),
        data=DataRecord(
            root=index.root,
            presplit=index.presplit,
            split_files={split: f"{SPLIT_DIR}/{split}.txt" for split in SPLITS},
            counts={split: sum(index.counts(split)) for split in SPLITS},
            parent=config.parent,
            version=lineage.dataset_version(index.classes, index.splits, index.digests),
            other_root=index.other.root if index.other else None,
        ),
        metrics=RunMetrics(
            results["validation"]["top1"],
            results["test"]["top1"],
            results["test"]["unknown"]["in_class_decided"],
            results["test"]["unknown"].get("other_unknown"),
        ),
        open_world=card,
        model=ModelRecord(
            config.backbone, config.alpha if spec.has_width else None, config.weights, run.weights, trainable
        ),
        training=TrainingRecord(
            asdict(config),
            {str(label): weight for label, weight in run.class_weight.items()} if run.class_weight else None,
            run.mixed,
            run.strategy.num_replicas_in_sync,
            seconds,
        ),
        environment=_environment(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _print_summary(out: Path, results: dict, seconds: dict, card: OpenWorldCard, console: Console) -> None:
    phases = ", ".join(
        f"{name} {seconds[key]:.0f}s"
        for key, name in (("head", "feature extraction"), ("finetune", "fine-tuning"))
        if key in seconds
    )
    console.print(
        f"[bold green]Done[/] in {seconds['total']:.0f}s ({phases}). "
        f"Test accuracy [bold]{results['test']['top1']:.1%}[/] on {results['test']['count']} images "
        f"(validation {results['validation']['top1']:.1%})."
    )
    calibration = results["test"]["calibration"]
    console.print(
        f"Confidence calibrated: test ECE {calibration['ece_before']:.1%} → {calibration['ece']:.1%} "
        f"(perfect calibration would measure {calibration['ece_floor']['median']:.1%} on these images); "
        f"'unknown' above OOD score {card.ood.threshold:.2f} ({calibration['rejected_in']:.1%} of test images)."
    )
    unknown = results["test"]["unknown"]
    if "other_unknown" in unknown:
        console.print(
            f"'Unknown' placed with {card.ood.other_photos} other photos: test photos decided as a class "
            f"[bold]{unknown['in_class_decided']:.1%}[/], held-out other photos called unknown "
            f"[bold]{unknown['other_unknown']:.1%}[/] ({unknown['other_photos']})."
        )
    console.print(
        f"Run directory: {out}  (model.keras, metrics.json, curves.png, confusion.png, reliability.png, split/)"
    )
