"""Keras 3 `fit()` under MultiWorkerMirroredStrategy, made to work.

Keras 3.x fails there before the first step (keras-team/keras#20585, tensorflow#72388, open):
1. `_maybe_symbolic_build` averages the first *distributed* batch to learn shapes, which
   MultiWorkerMirroredStrategy cannot reduce ("unsupported type PerReplica").
2. `reduce_per_replica` averages scalar metrics with `axis=0`, which a scalar does not have.
The fixes are narrow: build from one local batch (shapes only), and average the metrics across
workers with `axis=None`. Every worker then logs the same loss and accuracy, so early stopping
stops them all at the same epoch. Used only when the strategy is multi-worker.

3. Not a failure but a stall: at the end of `fit()` a worker drops its training iterator, and TensorFlow
   2.21's destructor waits for tf.data's autotuning thread to wake from its sleep, which doubles up to
   60 s: up to a minute lost per `fit()` (benchmarks/scale_out.py: "phase 2 outside epochs"). Under
   this strategy the input passes through a MultiDeviceIterator, whose per-device pipeline (a generator
   reading the worker's own pipeline, then a prefetch) has nothing to tune, so autotuning is switched
   off there as in the worker's own pipeline (`untuned`, applied by `train/shares.distribute`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import keras
import tensorflow as tf
from keras.src.backend.tensorflow import trainer as keras_trainer
from tensorflow.python.data.ops import multi_device_iterator_ops

from edgetl.errors import EdgetlError
from edgetl.train.pipeline import untuned


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


_keras_reduce_per_replica = keras_trainer.reduce_per_replica


def _reduce_per_replica(values, strategy, reduction):
    if reduction in ("auto", "mean") and keras_trainer._collective_all_reduce_multi_worker(strategy):
        # One collective for every metric of the step: each one is a round trip to every worker.
        flat = tf.nest.flatten(values)
        stacked = strategy.run(lambda *scalars: tf.stack([tf.cast(s, tf.float32) for s in scalars]), args=flat)
        return tf.nest.pack_sequence_as(values, tf.unstack(strategy.reduce("MEAN", stacked, axis=None), len(flat)))
    return _keras_reduce_per_replica(values, strategy, reduction)


_tf_device_dataset = multi_device_iterator_ops._create_device_dataset


def _untuned_device_dataset(*args, **kwargs) -> tf.data.Dataset:
    return _tf_device_dataset(*args, **kwargs).with_options(untuned())


def prepare_fit(model: keras.Model, dataset: tf.data.Dataset, strategy: tf.distribute.Strategy) -> None:
    """Call before `model.fit(dataset)` under a multi-worker strategy (a no-op otherwise)."""
    if not is_multi_worker(strategy):
        return
    keras_trainer.reduce_per_replica = _reduce_per_replica
    multi_device_iterator_ops._create_device_dataset = _untuned_device_dataset
    first = next(iter(dataset))  # one local batch: its shapes are all the symbolic build needs

    def symbolic_build(iterator=None, data_batch=None) -> None:
        with strategy.scope():
            model._symbolic_build(data_batch=first)

    model._maybe_symbolic_build = symbolic_build


@contextmanager
def lost_peer_is_an_error(strategy: tf.distribute.Strategy, work: Path) -> Iterator[None]:
    """A worker that died or stalls ends the others with one clear line instead of a traceback.

    TensorFlow's health check pings every peer (every 30 s, 10 s to answer) and aborts the collectives when
    one is dead or stopped; a closed connection fails them at once. The last checkpoint in `work` is whole.
    """
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError) as error:
        if not is_multi_worker(strategy):
            raise
        first = str(error).strip().splitlines()[0][:160]
        raise EdgetlError(
            f"Another worker of the cluster stopped answering ({type(error).__name__}: {first}).",
            f"The last completed epoch is checkpointed in {work}: start every worker again with --resume.",
        ) from None
