"""The one timing loop: conversion checks and `edgetl bench` time inferences the same way.

As LiteRT's `benchmark_model`: the first call (load-time work) apart, warm-up runs discarded,
then one `perf_counter` span per single inference (`edgetl.bench_record.LatencyStats` summarises them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def timed_calls(run_one: Callable[[np.ndarray], T], inputs: Iterable[np.ndarray]) -> tuple[list[T], list[float]]:
    """Call `run_one` on each input: (its results, seconds per call)."""
    results, seconds = [], []
    for item in inputs:
        started = time.perf_counter()
        results.append(run_one(item))
        seconds.append(time.perf_counter() - started)
    return results, seconds


def time_single_inferences(
    run_one: Callable[[np.ndarray], object], images: np.ndarray, runs: int, warmup: int
) -> tuple[float, list[float]]:
    """(first inference s, per-inference s of `runs` after `warmup` untimed), cycling through real images."""
    first = timed_calls(run_one, images[:1])[1][0]
    for i in range(warmup):
        run_one(images[i % len(images)])
    return first, timed_calls(run_one, (images[i % len(images)] for i in range(runs)))[1]
