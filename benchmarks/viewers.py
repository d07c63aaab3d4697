"""Web viewers must not slow inference: results per second of `edgetl camera --serve` with 0 and with N
viewers of the MJPEG stream, in one run (this machine is noisy: the two runs alternate, `--rounds` times).

    python benchmarks/viewers.py runs/flowers/model_int8.tflite [--viewers 20] [--seconds 10] [--rounds 2]

The video is unpaced (decoded as fast as it goes), so inference is the bottleneck, as on a busy Pi. Each
viewer reads the stream as fast as it can; the last viewer beyond the server's cap is refused (503).
Viewers are other machines on a real network: with `--pin` (the default where there are 2+ cores) the
camera runs on core 0 (one inference thread) and the readers on core 1, so what is measured is the
server's own cost, not the readers'. Target: results/s with viewers ≥ 0.9 × without.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

from edge_pipeline import CLI, make_video
from rich.console import Console
from rich.table import Table


def _viewer(url: str, stop: threading.Event, counts: list[int], index: int) -> None:
    try:
        with urllib.request.urlopen(url + "stream.mjpg", timeout=10) as stream:
            while not stop.is_set():
                counts[index] += stream.read(65536).count(b"--frame")
    except urllib.error.HTTPError as error:
        counts[index] = -error.code  # refused: the server's viewer cap
    except OSError:
        pass


def results_per_second(model: Path, video: Path, viewers: int, seconds: float, pin: bool) -> tuple[float, list[int]]:
    """(results/s from the camera's own summary, frames each viewer received; negative: HTTP status refused)."""
    args = ["camera", str(model), "--source", str(video), "--loop", "--serve", "127.0.0.1:0", "--no-window"]
    args += ["--duration", str(seconds), "--json", "-", *(["--threads", "1"] if pin else [])]
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, {0})) if pin else None,
    )
    line = proc.stderr.readline()  # with --json -, status lines go to stderr
    url = line.split("Serving ")[1].strip()
    stop, counts = threading.Event(), [0] * viewers
    threads = [threading.Thread(target=_viewer, args=(url, stop, counts, i), daemon=True) for i in range(viewers)]
    for thread in threads:
        thread.start()
    results = sum(1 for _ in proc.stdout)  # one JSON line per result, until --duration ends the run
    stop.set()
    proc.wait(timeout=30)
    for thread in threads:
        thread.join(timeout=5)
    return results / seconds, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=len(os.sched_getaffinity(0)) >= 2)
    args = parser.parse_args()
    if args.pin:
        os.sched_setaffinity(0, {1})  # the readers (this process's threads); the camera gets core 0
    video = make_video(Path(tempfile.mkdtemp()) / "unpaced.avi")
    rates: dict[int, list[float]] = {0: [], args.viewers: []}
    received: list[int] = []
    for _ in range(args.rounds):
        for viewers in rates:
            rate, counts = results_per_second(args.model, video, viewers, args.seconds, args.pin)
            rates[viewers].append(rate)
            received = counts or received
    where = "camera on core 0, readers on core 1" if args.pin else "camera and readers share every core"
    table = Table(
        title=f"{args.model.name}: results/s of `edgetl camera` (unpaced video), {args.seconds:g} s runs, {where}"
    )
    for column in ("viewers", "results/s (median)", "runs"):
        table.add_column(column, justify="right")
    for viewers, values in rates.items():
        table.add_row(str(viewers), f"{statistics.median(values):.1f}", ", ".join(f"{v:.1f}" for v in values))
    console = Console()
    console.print(table)
    ratio = statistics.median(rates[args.viewers]) / statistics.median(rates[0])
    served = [c for c in received if c >= 0]
    console.print(
        f"ratio {ratio:.2f} (target ≥ 0.9); last round: {len(served)} viewers served "
        f"(frames each: median {statistics.median(served) if served else 0:.0f}), "
        f"{sum(c < 0 for c in received)} refused ({sorted({-c for c in received if c < 0})})"
    )
    print(json.dumps({"rates": rates, "ratio": round(ratio, 3), "received": received}))


if __name__ == "__main__":
    main()
