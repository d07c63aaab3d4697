"""Each worker of a cluster works on its own share of the photos: the activation pass is split, not repeated.

Under MultiWorkerMirroredStrategy worker `w` of `N` owns every N-th photo of a split from the w-th on. It
caches the activations of its share only (storage need not be shared), each cached epoch feeds it only
the rows it owns (a step's global batch is every worker's local batch together, `batch_size / N` each),
and after training the pooled features of all shares are gathered by a collective, so every worker holds
them in the split's order as one worker would. Alone (one worker), a share is everything: nothing changes.

Every worker runs the same number of steps, or the collectives would wait forever: an epoch is
`ceil(largest share / local batch)` steps, and a worker whose share is one photo short repeats one of
its own photos in its last batch. Validation steps are the smallest share's, in batches a photo apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import tensorflow as tf

from edgetl.errors import EdgetlError
from edgetl.train.multi_worker import is_multi_worker
from edgetl.train.pipeline import untuned

T = TypeVar("T")
GATHER_ROWS = 4096  # rows a worker sends per all-gather: a bounded message, whatever the photo count


@dataclass(frozen=True)
class Share:
    """Which photos of each split this worker owns: the `worker`-th of every `workers`."""

    worker: int = 0
    workers: int = 1

    @classmethod
    def of(cls, strategy: tf.distribute.Strategy, batch_size: int) -> Share:
        """This worker's share under `strategy`; one clear error when the batch does not split evenly."""
        if not is_multi_worker(strategy):
            return cls()
        # The numbers distribute_datasets_from_function hands to each worker's input pipeline.
        context = strategy.extended._make_input_context()
        if context.num_replicas_in_sync != context.num_input_pipelines:
            raise EdgetlError(
                f"Each worker of this cluster has {context.num_replicas_in_sync // context.num_input_pipelines} "
                "devices; the activation cache is split per worker, for one device each.",
                "Give each worker one device (CUDA_VISIBLE_DEVICES), or pass --finetune-views 0 --no-feature-cache.",
            )
        if batch_size % context.num_input_pipelines:
            raise EdgetlError(
                f"--batch-size {batch_size} does not split evenly across {context.num_input_pipelines} workers.",
                f"Pass a multiple of {context.num_input_pipelines}.",
            )
        return cls(context.input_pipeline_id, context.num_input_pipelines)

    @property
    def alone(self) -> bool:
        return self.workers == 1

    def take(self, items: Sequence[T]) -> list[T]:
        """This worker's items of a split, in the split's order."""
        return list(items[self.worker :: self.workers])

    def largest(self, total: int) -> int:
        """The size of the largest share of `total` items (worker 0's)."""
        return -(-total // self.workers)

    def local_batch(self, batch_size: int) -> int:
        return batch_size // self.workers

    def train_steps(self, total: int, batch_size: int) -> int:
        """Steps per epoch, the same on every worker: the largest share in local batches."""
        self.check(total, "training")
        return -(-self.largest(total) // self.local_batch(batch_size))

    def validation_bounds(self, own: int, total: int, batch_size: int) -> np.ndarray:
        """Row bounds of this worker's validation batches: as many on every worker, none empty."""
        self.check(total, "validation")
        steps = -(-(total // self.workers) // self.local_batch(batch_size))
        return np.linspace(0, own, steps + 1).round().astype(np.int64)

    def check(self, total: int, split: str) -> None:
        """A split smaller than the cluster would leave a worker without photos: one clear error."""
        if total < self.workers:
            raise EdgetlError(
                f"The {split} split has {total} photo(s), fewer than the cluster's {self.workers} workers.",
                "Add photos, or train on fewer workers.",
            )

    def in_split_order(self, rows: np.ndarray) -> np.ndarray:
        """Gathered rows (worker 0's share, then worker 1's, …) back in the split's order."""
        if self.alone:
            return rows
        total = len(rows)
        order = np.concatenate([np.arange(w, total, self.workers) for w in range(self.workers)])
        out = np.empty_like(rows)
        out[order] = rows
        return out

    def gather(self, rows: np.ndarray, total: int, strategy: tf.distribute.Strategy) -> np.ndarray:
        """Every worker's `rows` (worker 0's first), from shares of a split of `total` items: a collective.

        Every worker calls it with its own rows (as many as its share, or fewer: unreadable photos are
        dropped); the messages are at most GATHER_ROWS rows each, as many on every worker.
        """
        if self.alone:
            return rows
        counts = _all_gather(strategy, np.array([len(rows)], np.int64)).tolist()
        parts: list[list[np.ndarray]] = [[] for _ in range(self.workers)]
        for start in range(0, max(1, self.largest(total)), GATHER_ROWS):
            gathered = _all_gather(strategy, np.ascontiguousarray(rows[start : start + GATHER_ROWS]))
            sizes = [min(GATHER_ROWS, max(0, count - start)) for count in counts]
            for worker, piece in enumerate(np.split(gathered, np.cumsum(sizes)[:-1])):
                parts[worker].append(piece)
        return np.concatenate([piece for pieces in parts for piece in pieces])

    def from_chief(self, arrays: list[np.ndarray], strategy: tf.distribute.Strategy) -> list[np.ndarray]:
        """The chief's (worker 0's) `arrays`, on every worker: one collective for all of them."""
        if self.alone:
            return arrays
        flat = np.concatenate([np.ravel(a).astype(np.float32) for a in arrays])
        chiefs = _all_gather(strategy, flat[None])[0]
        ends = np.cumsum([a.size for a in arrays])
        return [
            part.reshape(a.shape).astype(a.dtype) for part, a in zip(np.split(chiefs, ends[:-1]), arrays, strict=True)
        ]


ALONE = Share()  # one worker: its share is everything


def _all_gather(strategy: tf.distribute.Strategy, array: np.ndarray) -> np.ndarray:
    """Each worker's `array` concatenated along the first axis (lengths may differ, even be 0), on every worker."""
    mine = strategy.experimental_distribute_values_from_function(lambda _: tf.constant(array))
    return np.asarray(strategy.gather(mine, axis=0))


def distribute(strategy: tf.distribute.Strategy, dataset: tf.data.Dataset) -> tf.distribute.DistributedDataset:
    """A worker's own batches given to the strategy as they are: no re-batching, no sharding, no autotuning
    (its thread stalls the end of `fit()`: train/multi_worker.py)."""
    own = dataset.with_options(untuned())
    return strategy.distribute_datasets_from_function(lambda _: own)
