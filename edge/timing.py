"""The one timing loop: conversion checks and `edgetl bench` time inferences the same way.

As LiteRT's `benchmark_model`: the first call (load-time work) apart, warm-up runs discarded,
then one `perf_counter` span per single inference, summarised as percentiles.
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


def latency_stats(seconds: list[float]) -> dict:
    """Percentiles in milliseconds, and every sample (bench.json keeps them for plots)."""
    ms = np.asarray(seconds) * 1000
    return {
        "min_ms": round(float(ms.min()), 3),
        "median_ms": round(float(np.median(ms)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "std_ms": round(float(ms.std()), 3),
        "fps": round(1000 / float(np.median(ms)), 2),
        "samples_ms": [round(float(v), 3) for v in ms],
    }
