"""edgetl bench's single-inference median against LiteRT's own benchmark tool, same models and threads.

    python benchmarks/litert_crosscheck.py runs/flowers/model_int8.tflite runs/flowers/model_float32.tflite \\
        --threads 1,2 --runs 200

Both run in this one invocation, alternating, so machine noise hits both alike; printed: each
median and the ratio edgetl / LiteRT (target: within 10 %).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from edgetl.bench_record import LatencyStats
from edgetl.edge.classifier import Classifier, ClassifierOptions
from edgetl.edge.timing import time_single_inferences


def litert_tool(model: Path, threads: int, runs: int, warmup: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        command = [
            sys.executable,
            "-m",
            "ai_edge_litert.tools.benchmark_litert_model",
            f"--model={model}",
            f"--num_runs={runs}",
            f"--warmup_runs={warmup}",
            f"--num_threads={threads}",
            f"--result_json={out}",
        ]
        subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
        return json.loads(out.read_text())["latency"]


def edgetl_median(model: Path, threads: int, runs: int, warmup: int) -> float:
    classifier = Classifier(model, ClassifierOptions(threads=threads))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, classifier.size, classifier.size, 3), dtype=np.uint8)
    _, times = time_single_inferences(classifier.scores, images, runs, warmup)
    return LatencyStats.of(times).median_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    table = Table(title="single-inference median: edgetl bench vs LiteRT benchmark_litert_model")
    for column in ("model", "threads", "edgetl ms", "LiteRT ms", "edgetl / LiteRT"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for model in args.models:
        for threads in (int(t) for t in args.threads.split(",")):
            ours = edgetl_median(model, threads, args.runs, args.warmup)
            theirs = litert_tool(model, threads, args.runs, args.warmup)["median_ms"]
            table.add_row(model.name, str(threads), f"{ours:.3f}", f"{theirs:.3f}", f"{ours / theirs:.2f}")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
