"""One model's row of `bench.json`, typed: written by `edgetl bench` (edge/bench.py) on the device, read by its
reports (edge/bench_report.py) and by the latency search of `edgetl train --device-profile` (edgetl/latency.py).
No TensorFlow here. On disk it is the JSON object edgetl 0.2.0 wrote: a field not measured is absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from edgetl.metrics import AccuracyRecord


@dataclass(frozen=True)
class LatencyStats:
    """Single-inference times at one thread count, in milliseconds (warm-up runs excluded)."""

    median_ms: float
    min_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    std_ms: float | None = None
    fps: float | None = None
    samples_ms: list[float] = field(default_factory=list)
    """Every timed run, for the latency plot."""
    load_ms: float | None = None
    """Loading the model (interpreter creation and tensor allocation)."""
    first_ms: float | None = None
    """The first inference, which pays one-time work the others do not."""

    @classmethod
    def of(cls, seconds: list[float], load_s: float | None = None, first_s: float | None = None) -> LatencyStats:
        """Percentiles of per-inference times given in seconds."""
        ms = np.asarray(seconds) * 1000
        median = float(np.median(ms))
        return cls(
            median_ms=round(median, 3),
            min_ms=round(float(ms.min()), 3),
            p90_ms=round(float(np.percentile(ms, 90)), 3),
            p99_ms=round(float(np.percentile(ms, 99)), 3),
            mean_ms=round(float(ms.mean()), 3),
            std_ms=round(float(ms.std()), 3),
            fps=round(1000 / median, 2),
            samples_ms=[round(float(v), 3) for v in ms],
            load_ms=None if load_s is None else round(1000 * load_s, 2),
            first_ms=None if first_s is None else round(1000 * first_s, 2),
        )

    def to_json(self) -> dict[str, Any]:
        return _present({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> LatencyStats:
        return cls(**{f.name: value[f.name] for f in fields(cls) if f.name in value})


@dataclass
class BenchRow:
    """What `edgetl bench` measured for one model file; `error` set (and little else) when it failed."""

    name: str
    """"keras", the format ("int8", "float32", …) in a run, the file's stem otherwise."""
    kind: str
    """"tflite" or "keras"."""
    file: str
    bytes: int | None = None
    candidate: dict[str, Any] | None = None
    """A device-profile model: the configuration it stands for (edgetl.latency.Candidate's fields)."""
    runtime: str | None = None
    ops: dict[str, int] | None = None
    delegated: bool | None = None
    fallback_ops: dict[str, int] | None = None
    """Ops that run outside the accelerated (XNNPACK) delegate."""
    batch_latency: dict[str, Any] | None = None
    latency: dict[str, LatencyStats] = field(default_factory=dict)
    """By thread count ("1", "2", …; "tf" for the Keras row)."""
    peak_rss_mb: float | None = None
    peak_rss_error: str | None = None
    accuracy: AccuracyRecord | None = None
    ece: float | None = None
    ece_floor: dict[str, float] | None = None
    """ECE a perfectly calibrated model would measure on these images (median, p90)."""
    reliability: list[dict[str, float]] | None = None
    ood: dict[str, Any] | None = None
    """With --ood: AUROC and the shares of out-of-class and in-class images rejected."""
    error: str | None = None

    def best_latency(self) -> tuple[str, LatencyStats] | None:
        """(thread count, stats) with the lowest median, or None when nothing was timed."""
        if not self.latency:
            return None
        return min(self.latency.items(), key=lambda item: item[1].median_ms)

    def median_ms(self, threads: int) -> float | None:
        stats = self.latency.get(str(threads))
        return stats.median_ms if stats else None

    def to_json(self) -> dict[str, Any]:
        value = {f.name: getattr(self, f.name) for f in fields(self)}
        value["latency"] = {threads: stats.to_json() for threads, stats in self.latency.items()} or None
        value["accuracy"] = self.accuracy.to_json() if self.accuracy else None
        return _present(value)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> BenchRow:
        """A row from a bench.json; KeyError or TypeError when it is not one (the reader says which file)."""
        known = {f.name: value[f.name] for f in fields(cls) if f.name in value}
        known["latency"] = {str(t): LatencyStats.from_json(s) for t, s in (value.get("latency") or {}).items()}
        known["accuracy"] = AccuracyRecord.from_json(value["accuracy"]) if value.get("accuracy") else None
        return cls(**known)


def _present(value: dict[str, Any]) -> dict[str, Any]:
    return {key: item for key, item in value.items() if item is not None}
