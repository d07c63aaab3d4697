"""Training on one worker against two (issue 33 §4, scale-out): end-to-end wall time, where it goes, test top-1.

    python benchmarks/scale_out.py [--data DIR] [--seeds 1 2 3] [--set alpha=0.35 --set size=160]

One worker pinned to one core (`taskset -c 0`) against two workers pinned to one core each (`-c 0` and
`-c 1`, TF_CONFIG over 127.0.0.1, MultiWorkerMirroredStrategy), same data and options (all of ../shared's
flowers, MobileNetV2 0.35 @ 160 px, defaults otherwise), alternating, one pair per seed. The scan cache is
warmed first, so neither pays the first data check. Wall time runs from starting the processes until the
last one exits; the phases come from when the chief printed its lines (its stdout, unbuffered):
start-up (imports, data check, cluster, model) until "Phase 1"; the activation pass with phase 1 until
"Phase 2"; phase 2 until "Evaluating"; evaluation (features, calibration, reports, writing) until exit.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from shared_data import SHARED, settings, use_shared_keras_weights

MARKS = {"Phase 1": "phase_1", "Phase 2": "phase_2", "Evaluating": "evaluation"}
STAGES = ("start-up", "cache + phase 1", "phase 2", "evaluation")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@dataclass
class Worker:
    """One pinned `edgetl train` and what it printed, read as it prints."""

    proc: subprocess.Popen
    lines: list[str]
    reader: threading.Thread


def launch(command: list[str], core: int, env: dict, marks: dict, started: float) -> Worker:
    """One pinned `edgetl train`; the time of each marked line goes into `marks` as it is printed."""
    proc = subprocess.Popen(
        ["taskset", "-c", str(core), *command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            for text, name in MARKS.items():
                if line.startswith(text) and name not in marks:
                    marks[name] = time.perf_counter() - started

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return Worker(proc, lines, reader)


def run(data: Path, out: Path, workers: int, changes: dict) -> dict:
    options = [f"--{key.replace('_', '-')}={value}" for key, value in changes.items()]
    edgetl = str(Path(sys.executable).parent / "edgetl")  # the console script beside this Python
    command = [edgetl, "train", str(data), "--out", str(out), *options]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    hosts = [f"127.0.0.1:{port}" for port in free_ports(workers)]
    marks: dict[str, float] = {}
    started = time.perf_counter()
    launched = []
    for index in range(workers):
        cluster = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        worker_env = env | ({"TF_CONFIG": json.dumps(cluster)} if workers > 1 else {})
        launched.append(launch(command, index, worker_env, marks if index == 0 else {}, started))
    codes = [worker.proc.wait() for worker in launched]
    wall = time.perf_counter() - started
    for worker in launched:
        worker.reader.join()
    for worker, code in zip(launched, codes, strict=True):
        if code:
            raise SystemExit("".join(worker.lines[-40:]))
    meta = json.loads((out / "edgetl.json").read_text())
    bounds = [0.0, marks["phase_1"], marks["phase_2"], marks["evaluation"], wall]
    stages = {name: bounds[i + 1] - bounds[i] for i, name in enumerate(STAGES)}
    history = read_history(out)
    head_epochs = [row["seconds"] for row in history if row["phase"] == "head"]
    return {
        "wall": wall,
        "stages": stages,
        "first_head_epoch": head_epochs[0] if head_epochs else 0.0,
        "later_head_epochs": sum(head_epochs[1:]),
        "finetune_epochs": [row["seconds"] for row in history if row["phase"] == "finetune"],
        "top1": meta["metrics"]["test_top1"],
    }


def read_history(out: Path) -> list[dict]:
    with open(out / "history.csv") as file:
        return [{"phase": row["phase"], "seconds": float(row["seconds"])} for row in csv.DictReader(file)]


def warm_scan(data: Path) -> None:
    """The data check once, so that its cache ($XDG_CACHE_HOME/edgetl/scan) is warm for every timed run."""
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"from pathlib import Path; from edgetl.train.data import scan; scan(Path({str(data)!r}))",
        ],
        check=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "flowers")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="A train option.")
    parser.add_argument("--work", type=Path, default=None, help="Where the runs go (default: a temp dir).")
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data} is missing: this benchmark reads ../shared (or $EDGETL_SHARED).")
    use_shared_keras_weights()
    work = args.work or Path(tempfile.mkdtemp(prefix="edgetl-scale-out-"))
    changes = {"alpha": 0.35, "size": 160} | settings(args.set)
    warm_scan(args.data)
    found: dict[int, list[dict]] = {1: [], 2: []}
    for seed in args.seeds:
        for workers in (1, 2):
            result = run(args.data, work / f"seed{seed}-{workers}w", workers, changes | {"seed": seed})
            found[workers].append(result)
            print(f"seed {seed}, {workers} worker(s): {json.dumps(result)}", flush=True)
    report(found, changes, args.data)


def report(found: dict[int, list[dict]], changes: dict, data: Path) -> None:
    def median(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"

    print(f"\n{data.name}, {changes}, defaults otherwise; median (range) over {len(found[1])} seed(s), seconds")
    print(f"{'':>22} {'1 worker':>18} {'2 workers':>18}")
    print(f"{'wall':>22} {median([r['wall'] for r in found[1]]):>18} {median([r['wall'] for r in found[2]]):>18}")
    for stage in STAGES:
        one, two = ([r["stages"][stage] for r in found[n]] for n in (1, 2))
        print(f"{stage:>22} {median(one):>18} {median(two):>18}")
    for key, name in (("first_head_epoch", "head epoch 1 (cache)"), ("later_head_epochs", "head epochs 2+")):
        print(f"{name:>22} {median([r[key] for r in found[1]]):>18} {median([r[key] for r in found[2]]):>18}")
    one, two = ([sum(r["finetune_epochs"]) for r in found[n]] for n in (1, 2))
    print(f"{'fine-tuning epochs':>22} {median(one):>18} {median(two):>18}")
    # The rest of phase 2: compiling and the first iterator before epoch 1, the end of fit() (train/multi_worker.py).
    one, two = ([r["stages"]["phase 2"] - sum(r["finetune_epochs"]) for r in found[n]] for n in (1, 2))
    print(f"{'phase 2 outside epochs':>22} {median(one):>18} {median(two):>18}")
    ratios = [two["wall"] / one["wall"] for one, two in zip(found[1], found[2], strict=True)]
    print(f"two workers / one (wall, per seed): {', '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.2f} (target ≤ 0.65)")  # fmt: skip
    tops = {n: [r["top1"] for r in found[n]] for n in (1, 2)}
    print(f"test top-1: one worker {', '.join(f'{t:.1%}' for t in tops[1])}; "
          f"two workers {', '.join(f'{t:.1%}' for t in tops[2])}")  # fmt: skip


if __name__ == "__main__":
    main()
