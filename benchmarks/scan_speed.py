"""The data check's cost (issue 33 §2): the first scan of a dataset (every photo read, hashed and decoded) with
one worker, with threads only, and as `edgetl train` does it (a process pool of one per core), then a second
scan that the scan cache answers. Prints seconds and photos per second for each, on ../shared's flowers by
default.

    python benchmarks/scan_speed.py [--data DIR] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared_data import SHARED  # noqa: E402


def cold_cache() -> None:
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="edgetl-scan-bench-")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "flowers")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from edgetl.train import data as data_module
    from edgetl.train.data import scan

    default_pool_from = data_module.PROCESS_POOL_FROM

    files = [p for p in args.data.rglob("*") if p.is_file()]
    print(f"{args.data}: {len(files)} files; {os.cpu_count()} cores; {args.rounds} rounds, medians (range)")
    timings: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, workers, pool_from in (
            ("1 worker", 1, None),
            ("8 threads", 8, len(files) + 1),
            (f"default: process pool of {os.cpu_count()}", 8, None),
        ):
            cold_cache()
            if pool_from is not None:
                data_module.PROCESS_POOL_FROM = pool_from
            started = time.perf_counter()
            scan(args.data, workers=workers)
            timings.setdefault(f"first scan, {name}", []).append(time.perf_counter() - started)
            data_module.PROCESS_POOL_FROM = default_pool_from
        started = time.perf_counter()
        scan(args.data)  # the cache the default run just wrote
        timings.setdefault("second scan (scan cache)", []).append(time.perf_counter() - started)
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"{name:40s} {median:7.2f} s ({min(values):.2f}–{max(values):.2f}); {len(files) / median:8.0f} photos/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
