"""Each worker's share of the photos (train/shares.py): the shares cover a split once, every worker runs the same
number of steps on its own rows only, and gathered rows come back in the split's order. The cluster itself
(two real workers) is tests/test_multi_worker.py."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgetl.errors import EdgetlError
from edgetl.train import boundary
from edgetl.train.shares import ALONE, Share


@pytest.mark.parametrize("total", [7, 8, 40, 41])
@pytest.mark.parametrize("workers", [2, 3])
def test_shares_cover_a_split_once_and_gathered_rows_return_to_its_order(total: int, workers: int) -> None:
    items = list(range(total))
    shares = [Share(w, workers) for w in range(workers)]
    taken = [share.take(items) for share in shares]
    assert sorted(sum(taken, [])) == items and max(map(len, taken)) == shares[0].largest(total)
    gathered = np.array(sum(taken, []))  # what gather returns: worker 0's rows, then worker 1's, …
    np.testing.assert_array_equal(shares[0].in_split_order(gathered), items)
    assert ALONE.take(items) == items and ALONE.in_split_order(gathered) is gathered


def test_every_worker_runs_as_many_steps_on_its_own_rows_only() -> None:
    n_train, n_val, batch, views = 41, 11, 8, 2
    steps, counts = set(), set()
    trained, validated = [], []
    for worker in range(2):
        share = Share(worker, 2)
        own = np.array(share.take(range(n_train)))
        rows = np.concatenate([own + 1000 * view for view in range(views)]).astype(np.float32).reshape(-1, 1, 1, 1)
        labels = np.eye(2, dtype=np.float32)[own % 2]
        val_own = np.array(share.take(range(n_val)))
        val_rows = val_own.astype(np.float32).reshape(-1, 1, 1, 1)
        cache = boundary.Cache(rows, labels, val_rows, np.eye(2, dtype=np.float32)[val_own % 2], views, "cut")
        cache.share, cache.totals = share, (n_train, n_val)
        train, validation = boundary.training_batches(cache, batch, seed=1, class_weight=np.array([1.0, 3.0]))
        epoch = share.train_steps(n_train, batch)  # endless: fit() takes this many batches an epoch
        steps.add(epoch)
        batches = list(train.take(epoch))
        assert {len(x) for x, _, _ in batches} == {batch // 2}  # the local batch, the last one full too
        for x, y, weight in batches:  # labels and class weights travel with their rows
            np.testing.assert_array_equal(y.numpy().argmax(1), x.numpy().ravel().astype(int) % 1000 % 2)
            np.testing.assert_array_equal(weight.numpy(), np.where(y.numpy().argmax(1) == 1, 3.0, 1.0))
        seen = np.concatenate([x.numpy().ravel() for x, _, _ in batches]).astype(int) % 1000
        assert set(seen) == set(own)  # all of its share in an epoch, nothing else
        trained.append(seen)
        val_batches = [x.numpy().ravel().astype(int) for x, _ in validation]
        counts.add(len(val_batches))
        assert all(len(b) for b in val_batches)
        validated.append(np.concatenate(val_batches))
    assert steps == {6} and len(counts) == 1  # as many on every worker: the largest share, 21, in batches of 4
    assert sorted(np.concatenate(validated)) == list(range(n_val))  # validation: each photo exactly once


def test_a_split_smaller_than_the_cluster_is_one_clear_error() -> None:
    with pytest.raises(EdgetlError, match="validation split has 2 photo.*3 workers"):
        Share(0, 3).check(2, "validation")
    Share(0, 3).check(3, "validation")


def test_a_workers_pipelines_are_not_autotuned_so_fit_ends_without_a_wait() -> None:
    """tf.data's autotuning thread sleeps up to 60 s and an iterator's destructor waits it out: at the end of
    each fit() in a cluster, up to a minute (train/multi_worker.py). Both pipelines a worker's input passes through,
    its own and the per-device one the strategy builds on it, must have it off, and still give every batch.
    The attributes read are TensorFlow's internals: if they move, this test says so. (A subprocess: a
    multi-worker strategy and prepare_fit's patches stay out of this one.)"""
    script = textwrap.dedent(
        """
        import keras, tensorflow as tf
        from edgetl.train.multi_worker import prepare_fit
        from edgetl.train.shares import distribute
        strategy = tf.distribute.MultiWorkerMirroredStrategy()  # no TF_CONFIG: a cluster of one, same input path
        dataset = tf.data.Dataset.range(8).batch(2).prefetch(tf.data.AUTOTUNE)
        assert dataset.options().autotune.enabled is not False  # tf.data's default: tuned
        prepare_fit(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]), dataset, strategy)
        iterator = iter(distribute(strategy, dataset))
        worker = iterator._iterators[0]
        pipelines = [worker._dataset, *(device._dataset for device in worker._iterator._device_iterators)]
        print([pipeline.options().autotune.enabled for pipeline in pipelines])
        print([int(x) for _ in range(4) for x in strategy.experimental_local_results(next(iterator))[0]])
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-2:] == ["[False, False]", str(list(range(8)))]
