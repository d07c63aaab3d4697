"""The two training phases, checkpoints and the distribution strategy.

Phase 1 (feature extraction) trains only the head. With the backbone frozen its output never
changes, so by default the pooled features are computed once from un-augmented images, from the
activation cache in `cache/` (train/boundary.py, memory-mapped, so size does not matter), and the
head's epochs cost almost nothing; augmentation then applies in phase 2 only (or pass
--no-feature-cache to train phase 1 end to end through augmented images).

Phase 2 (fine-tuning) unfreezes the top of the backbone, BatchNorm excepted, at a lower
learning rate. By default it trains on activations cached where the unfrozen part starts, for a
few augmented copies of each image; that cache's plain copy is also what phase 1's features come
from. Both phases checkpoint every epoch so that --resume continues after a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import keras
import numpy as np
import tensorflow as tf

from edgetl import interrupt
from edgetl.backbones import backbone_spec
from edgetl.errors import EdgetlError
from edgetl.rundir import SPLITS, Sample, write_atomic, write_json
from edgetl.train import boundary
from edgetl.train.config import TrainConfig
from edgetl.train.data import DatasetIndex
from edgetl.train.models import Classifier, inference, unfreeze_start, unfreeze_top
from edgetl.train.multi_worker import prepare_fit
from edgetl.train.pipeline import augmentation, image_dataset
from edgetl.train.shares import ALONE, Share, distribute

# Keras warns about these for every tf.data input of unknown length (ours drop unreadable files,
# so their length is unknown); both are expected here and would bury the training log.
warnings.filterwarnings("ignore", message=".*shuffle=True.*was passed", category=UserWarning)
warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)

CHECKPOINT = "checkpoint.weights.h5"  # the whole model
HEAD_CHECKPOINT = "head.weights.h5"  # phase 1 on cached features: only the head changes, and is saved
STATE = "state.json"
ALL_REDUCE_PACK_BYTES = 64 << 20  # multi-worker: gradients summed in packs this large (all of MobileNetV2 1.0: 14 MB)
Phase = Literal["head", "finetune", "done"]  # the order training goes through them
PHASES: tuple[str, ...] = get_args(Phase)
CACHE = "cache"  # activation caches (train/boundary.py), kept for --resume


@dataclass
class TrainState:
    """What --resume needs: the phase reached, epochs done in it, and the history so far."""

    phase: Phase = "head"
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    elapsed: float = 0.0  # wall seconds of every session of this run, up to the last save
    finetuned_layers: int = 0  # how many backbone layers phase 2 trained (the model card says it)

    def __post_init__(self) -> None:
        self._session = (time.perf_counter(), self.elapsed)  # this session's start, and the time before it

    def total_seconds(self) -> float:
        """Wall time of the whole run so far, earlier sessions (before --resume) included."""
        started, before = self._session
        return before + time.perf_counter() - started

    def seconds(self) -> dict[str, float]:
        """Training time per phase, summed from the per-epoch history."""
        totals: dict[str, float] = {}
        for row in self.history:
            totals[row["phase"]] = totals.get(row["phase"], 0.0) + row["seconds"]
        return totals

    def save(self, work: Path) -> None:
        self.elapsed = round(self.total_seconds(), 3)
        write_json(work / STATE, asdict(self))

    @classmethod
    def load(cls, work: Path) -> TrainState:
        """The saved state; a damaged one is one clear error (it is written atomically, but files get edited)."""
        try:
            state = cls(**json.loads((work / STATE).read_text()))
            if state.phase not in PHASES or not isinstance(state.epoch, int) or state.epoch < 0:
                raise ValueError(f"phase {state.phase!r}, epoch {state.epoch!r}")
        except (OSError, TypeError, ValueError) as error:
            raise EdgetlError(
                f"{work / STATE} is damaged ({error}).", "Start the run again with --force instead of --resume."
            ) from None
        return state


def cluster_task() -> tuple[str, int, bool]:
    """This process's place in a TF_CONFIG cluster: (type, index, is_chief); ("", 0, True) alone.

    The chief is the "chief" task, or worker 0 when the cluster names no chief (TensorFlow's rule).
    """
    try:
        tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        task = tf_config.get("task") or {}
        kind, index = str(task.get("type", "")), int(task.get("index", 0))
    except (ValueError, AttributeError, TypeError):
        raise EdgetlError(
            "TF_CONFIG is not valid JSON with a task type and index.",
            'Example: {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}',
        ) from None
    if not kind:
        return "", 0, True
    has_chief = bool(tf_config.get("cluster", {}).get("chief"))
    return kind, index, kind == "chief" or (kind == "worker" and index == 0 and not has_chief)


def choose_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """GPUs are used when present: several through MirroredStrategy, several machines via TF_CONFIG."""
    if name == "multi-worker" or (name == "auto" and os.environ.get("TF_CONFIG")):
        # No per-collective timeout: TensorFlow keeps a waiting thread for each collective until its timeout
        # passes (with 600 s, a flowers run's worker passed 15,000 threads and crashed in phase 1).
        # A dead or stopped peer is found by the strategy's health check instead (train/multi_worker.py).
        # All of a step's gradients in one all-reduce, not one per tensor: each is a round trip to every worker.
        options = tf.distribute.experimental.CommunicationOptions(bytes_per_pack=ALL_REDUCE_PACK_BYTES)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "auto" and len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def use_mixed_precision(enabled: bool | None) -> bool:
    """float16 compute on GPUs by default (the output layer stays float32); float32 on CPU."""
    if enabled is None:
        enabled = bool(tf.config.list_physical_devices("GPU"))
    keras.mixed_precision.set_global_policy("mixed_float16" if enabled else "float32")
    return enabled


def remove_training_files(work: Path) -> None:
    """What training kept for --resume (checkpoints, state, activation caches), once the run is complete."""
    shutil.rmtree(work / CACHE, ignore_errors=True)
    for name in (CHECKPOINT, HEAD_CHECKPOINT, STATE):
        (work / name).unlink(missing_ok=True)


def restore(clf: Classifier, work: Path) -> None:
    """--resume: the weights of the last finished epoch (none yet when stopped before one ended)."""
    if (work / CHECKPOINT).exists():
        clf.model.load_weights(work / CHECKPOINT)
    elif (work / HEAD_CHECKPOINT).exists():
        clf.head.load_weights(work / HEAD_CHECKPOINT)


def save_final_weights(clf: Classifier, work: Path) -> None:
    """The whole model as training left it, so that a run stopped while it is evaluated resumes from here."""
    tmp = work / f".tmp.{CHECKPOINT}"
    clf.model.save_weights(tmp)
    os.replace(tmp, work / CHECKPOINT)


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves weights + state after every epoch, atomically, so a kill leaves a usable checkpoint."""

    def __init__(
        self, work: Path, state: TrainState, saved: keras.Model, on_epoch: Callable | None, file: str = CHECKPOINT
    ) -> None:
        super().__init__()
        self.work, self.state, self.saved, self.on_epoch, self.file = work, state, saved, on_epoch, file
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        interrupt.check()  # epochs on cached features show no per-batch progress: stop here at the latest
        logs = {k: float(v) for k, v in (logs or {}).items()}
        lr = self.model.optimizer.learning_rate
        logs["learning_rate"] = float(lr.numpy() if hasattr(lr, "numpy") else lr)
        elapsed = time.perf_counter() - self.started  # the first epoch includes building the feature cache
        self.started = time.perf_counter()
        logs["seconds"] = round(elapsed, 3)
        self.state.history.append({"phase": self.state.phase, "epoch": epoch + 1, **logs})
        self.state.epoch = epoch + 1
        tmp = self.work / f".tmp.{self.file}"
        self.saved.save_weights(tmp)
        os.replace(tmp, self.work / self.file)
        self.state.save(self.work)
        if self.on_epoch:
            self.on_epoch(self.state.phase, epoch + 1, logs)


def _callbacks(config: TrainConfig, checkpoint: EpochCheckpoint) -> list[keras.callbacks.Callback]:
    early = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.patience, restore_best_weights=True, verbose=0
    )
    return [early, checkpoint]


def _optimizer(lr: float, steps: int) -> keras.optimizers.Optimizer:
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, steps), alpha=0.05)
    return keras.optimizers.Adam(learning_rate=schedule)


def _loss(config: TrainConfig) -> keras.losses.Loss:
    return keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)


def _image_splits(index: DatasetIndex, config: TrainConfig) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Training batches (shuffled, augmented unless turned off) and validation batches, from image files."""
    common = {"size": config.size, "resize": config.resize, "batch_size": config.batch_size, "seed": config.seed}
    aug = augmentation(config.seed) if config.augment else None
    k = len(index.classes)
    train_ds = image_dataset(index.splits["train"], k, shuffle=True, augment=aug, **common)
    return train_ds, image_dataset(index.splits["validation"], k, **common)


def _compile_and_fit(
    model: keras.Model,
    data: tuple[tf.data.Dataset, tf.data.Dataset],
    *,
    lr: float,
    epochs: int,
    config: TrainConfig,
    state: TrainState,
    checkpoint: EpochCheckpoint,
    class_weight: dict[int, float] | None,
    extra_callbacks: list[keras.callbacks.Callback],
    train_count: int,
    share: Share = ALONE,
) -> None:
    """`data` is the whole splits, or (a `share` in a cluster) this worker's batches, class weights inside."""
    steps_per_epoch = share.train_steps(train_count, config.batch_size)  # alone: ceil(photos / batch)
    strategy = tf.distribute.get_strategy()
    prepare_fit(model, data[0], strategy)
    if not share.alone:  # each worker's own batches, as they are; Keras cannot add class weights to these
        data, class_weight = (distribute(strategy, data[0]), distribute(strategy, data[1])), None
    model.compile(optimizer=_optimizer(lr, steps_per_epoch * epochs), loss=_loss(config), metrics=["accuracy"])
    # On --resume the learning-rate schedule continues where it stopped instead of starting over.
    model.optimizer.iterations.assign(steps_per_epoch * state.epoch)
    model.fit(
        data[0],
        validation_data=data[1],
        steps_per_epoch=None if share.alone else steps_per_epoch,  # endless in a cluster (train/boundary.py)
        epochs=epochs,
        initial_epoch=state.epoch,
        callbacks=[*_callbacks(config, checkpoint), *extra_callbacks],
        class_weight=class_weight,
        verbose=0,
    )


def _unfreeze_from(config: TrainConfig) -> dict:
    """unfreeze_start/unfreeze_top's arguments for a pretrained backbone: --unfreeze N, else a block."""
    default = None if config.unfreeze_layers else backbone_spec(config.backbone).unfreeze_from
    return {"from_layer": config.unfreeze_from or default, "top_layers": config.unfreeze_layers}


def boundary_split(clf: Classifier, config: TrainConfig) -> boundary.Split | None:
    """Where phase 2 trains on cached activations (train/boundary.py); None where it runs end to end.

    End to end: --finetune-views 0, no fine-tuning, a backbone trained from scratch (nothing is
    frozen), or a cut with more than one tensor across it (--unfreeze N in mid-block).
    """
    if not (config.finetune_views and config.finetune_epochs and clf.pretrained):
        return None
    seed = config.seed if config.augment else None
    return boundary.split_at(clf, unfreeze_start(clf.backbone, **_unfreeze_from(config)), seed)


@dataclass
class Activations:
    """The run's one cut of the classifier and its activation cache: decided once (`activations`), computed
    on first use (or found complete on --resume), then shared by phase 1, phase 2 and the evaluation."""

    cut: boundary.Split | None
    """Phase 2's boundary, else (phase 1 on cached features) the top of the backbone; None: nothing cached."""
    phase_2_on_cache: bool
    folder: Path
    share: Share = ALONE
    """This worker's photos in a cluster (train/shares.py): the cache and its epochs hold only those."""
    on_cache: Callable[[int], Callable] | None = None
    _cache: boundary.Cache | None = None

    def cache(self, index: DatasetIndex, config: TrainConfig) -> boundary.Cache:
        if self._cache is None:
            self._cache = boundary.cached(self.cut, index, config, self.folder, self.on_cache, self.share)
        return self._cache

    def pooled(self, index: DatasetIndex, config: TrainConfig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Pooled features and one-hot labels of the whole training and validation splits, through the cut's
        top as it is now; in a cluster each worker computes its share and receives everyone's (a collective)."""
        local = boundary.pooled(self.cut, self.cache(index, config), config.batch_size)
        if self.share.alone:
            return local
        strategy = tf.distribute.get_strategy()
        gathered = {}
        for name, parts in local.items():
            total = len(index.splits[name])
            rows, labels = (self.share.in_split_order(self.share.gather(p, total, strategy)) for p in parts)
            gathered[name] = (rows, labels)
        return gathered

    def class_weight_inside(self, class_weight: dict[int, float] | None, classes: int) -> np.ndarray | None:
        """Class weights for the cached batches to carry themselves: in a cluster only, where Keras cannot."""
        if self.share.alone or not class_weight:
            return None
        return np.array([class_weight[label] for label in range(classes)], np.float32)


def activations(
    clf: Classifier,
    config: TrainConfig,
    work: Path,
    share: Share = ALONE,
    on_cache: Callable[[int], Callable] | None = None,
) -> Activations:
    split = boundary_split(clf, config)
    cut = split or (boundary.above_backbone(clf) if config.feature_cache else None)
    return Activations(cut, split is not None, work / CACHE, share, on_cache)


def train_head(
    clf: Classifier,
    index: DatasetIndex,
    config: TrainConfig,
    work: Path,
    state: TrainState,
    cut: Activations,
    strategy: tf.distribute.Strategy,
    *,
    on_epoch: Callable | None = None,
    class_weight: dict[int, float] | None = None,
    extra_callbacks: list[keras.callbacks.Callback] = (),
) -> None:
    """Phase 1: backbone frozen, head trained — on cached features unless config.feature_cache is off.

    The features come from the boundary cache when phase 2 will use one (its plain copy through the
    frozen top), else from a cache cut above the whole backbone. In a cluster they are gathered, and every
    worker trains a copy of the head on all of them outside the strategy: the steps one machine takes,
    without a collective each (which costs more than the head's step); the chief's head then goes to all.
    """
    local = config.feature_cache and not cut.share.alone
    head = _local_copy(clf.head) if local else clf.head
    # Started now: epoch 1 includes the cache. With cached features only the head trains, so only it is saved.
    saved, file = (head, HEAD_CHECKPOINT) if config.feature_cache else (clf.model, CHECKPOINT)
    checkpoint = EpochCheckpoint(work, state, saved, on_epoch, file)
    with strategy.scope():
        features = cut.pooled(index, config) if config.feature_cache else None
    if features:
        data, model = boundary.feature_batches(features, config.batch_size, config.seed), head
    else:
        data, model = _image_splits(index, config), clf.model
    with contextlib.nullcontext() if local else strategy.scope():
        _compile_and_fit(
            model,
            data,
            lr=config.head_lr,
            epochs=config.head_epochs,
            config=config,
            state=state,
            checkpoint=checkpoint,
            class_weight=class_weight,
            extra_callbacks=extra_callbacks,
            train_count=len(index.splits["train"]),
        )
    if local:
        with strategy.scope():
            for variable, value in zip(
                clf.head.weights, cut.share.from_chief(head.get_weights(), strategy), strict=True
            ):
                variable.assign(value)


def _local_copy(model: keras.Model) -> keras.Model:
    """`model`'s architecture and weights in variables of this process only (call outside any strategy)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def fine_tune(
    clf: Classifier,
    index: DatasetIndex,
    config: TrainConfig,
    work: Path,
    state: TrainState,
    cut: Activations,
    *,
    on_epoch: Callable | None = None,
    class_weight: dict[int, float] | None = None,
    extra_callbacks: list[keras.callbacks.Callback] = (),
) -> int:
    """Phase 2: unfreeze the top of the backbone, recompile at a lower learning rate, train it.

    On the boundary cache when there is one (train/boundary.py), else end to end through freshly
    augmented images. With --weights none the whole backbone trains (BatchNorm included): training
    from scratch. Returns the number of backbone layers that were trained.
    """
    checkpoint = EpochCheckpoint(work, state, clf.model, on_epoch)  # started now: epoch 1 includes any cache
    if not clf.pretrained:  # from scratch: nothing to preserve, train every layer, BatchNorm too
        trainable = unfreeze_top(clf.backbone, top_layers=len(clf.backbone.layers), batchnorm=True)
    else:
        trainable = unfreeze_top(clf.backbone, **_unfreeze_from(config))
    share = cut.share if cut.phase_2_on_cache else ALONE  # end to end, Keras splits the images itself
    if cut.phase_2_on_cache:
        inside = cut.class_weight_inside(class_weight, len(index.classes))
        data = boundary.training_batches(cut.cache(index, config), config.batch_size, config.seed, inside)
        model = cut.cut.top
    else:
        data, model = _image_splits(index, config), clf.model
    _compile_and_fit(
        model,
        data,
        lr=config.finetune_lr,
        epochs=config.finetune_epochs,
        config=config,
        state=state,
        checkpoint=checkpoint,
        class_weight=class_weight,
        extra_callbacks=extra_callbacks,
        train_count=len(index.splits["train"]),
        share=share,
    )
    return trainable


def evaluation_features(
    clf: Classifier, index: DatasetIndex, config: TrainConfig, cut: Activations
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Pooled features and integer labels per split, for calibration and the out-of-distribution fit.

    Training and validation come from the boundary cache when there is one: the layers below the cut
    never train, so their cached activations still hold, and only the top runs again. In a cluster each
    worker computes its share and every worker receives all of them (a collective every worker joins).
    """
    features = {}
    if cut.phase_2_on_cache and (cut.folder / boundary.MANIFEST).exists():
        for name, (pooled, one_hot) in cut.pooled(index, config).items():
            features[name] = (pooled, one_hot.argmax(axis=1))
    for name in SPLITS:
        if name not in features:
            features[name] = predict(clf.features, index.splits[name], config, len(index.classes), cut.share)
    return features


def other_features(clf: Classifier, index: DatasetIndex, config: TrainConfig, share: Share) -> dict[str, np.ndarray]:
    """Pooled features of the "other" photos per side (train/other.py), each worker its share; {} without them."""
    if index.other is None:
        return {}
    return {
        side: predict(clf.features, [Sample(path, 0) for path in paths], config, len(index.classes), share)[0]
        for side, paths in index.other.sides.items()
        if paths
    }


def predict(
    model: keras.Model, samples: list, config: TrainConfig, num_classes: int, share: Share = ALONE
) -> tuple[np.ndarray, np.ndarray]:
    """Outputs and true labels for a list of samples (unreadable files dropped from both).

    In a cluster each worker runs its share and all are gathered: in the list's order when none was dropped.
    """
    mine = share.take(samples)
    probs = [np.empty((0, *model.output.shape[1:]), np.float32)]
    labels = [np.empty((0,), np.int64)]
    if mine:
        ds = image_dataset(
            mine, num_classes, size=config.size, resize=config.resize, batch_size=config.batch_size, one_hot=False
        )
        forward = inference(model)
        for images, targets in ds:
            probs.append(np.asarray(forward(images), dtype=np.float32))
            labels.append(np.asarray(targets, dtype=np.int64))
    strategy = tf.distribute.get_strategy()
    rows, labels = (share.gather(np.concatenate(part), len(samples), strategy) for part in (probs, labels))
    if len(rows) == len(samples):
        rows, labels = share.in_split_order(rows), share.in_split_order(labels)
    return rows, labels


def write_history_csv(path: Path, history: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in history:
        columns += [key for key in row if key not in columns]
    lines = [",".join(columns)] + [",".join(str(row.get(c, "")) for c in columns) for row in history]
    write_atomic(path, "\n".join(lines) + "\n")
