"""What the integrations cost the camera, and how close the camera loop is to the interpreter's own rate.

    python benchmarks/integrations.py /tmp/dec/beans/seed1/model_int8.tflite [--runs 5] [--frames 1500]

Over an unpaced 640×480 MJPEG video, one interpreter thread (int8 MobileNetV2 @224 for the targets):
1. The interpreter alone: 1 / median invoke on the same frames.
2. `edgetl camera` plain, and with everything this release adds switched on — `--serve` with `/metrics`
   scraped 10 times a second, `--mqtt … --mqtt-publish every` to a local mosquitto (started here when
   installed), `--keep` — in alternating runs. Results/s from the JSON lines' times.
Targets: plain camera ≥ 0.95 × the interpreter alone; with integrations ≥ 0.98 × plain (medians of `--runs`).
`--each` instead runs plain and each integration alone (the order rotating from run to run), to say which costs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from edge_pipeline import CLI, interpreter_only, make_video


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def camera_rate(model: Path, video: Path, frames: int, extra: list[str], scrape: bool, folder: Path) -> float:
    out = folder / "results.jsonl"
    out.unlink(missing_ok=True)
    args = ["camera", str(model), "--source", str(video), "--loop", "--threads", "1", "--json", str(out)]
    process = subprocess.Popen(
        [sys.executable, "-c", CLI, *args, "--max-frames", str(frames), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    stop = threading.Event()
    if scrape:
        url = process.stdout.readline().split("Serving ")[1].split()[0] + "metrics"

        def scraper() -> None:
            while not stop.is_set():
                with contextlib.suppress(OSError):  # the camera ends while a scrape is under way
                    urllib.request.urlopen(url, timeout=5).read()
                time.sleep(0.1)

        threading.Thread(target=scraper, daemon=True).start()
    process.communicate(timeout=600)
    stop.set()
    results = [json.loads(line) for line in out.read_text().splitlines()][100:]  # warm-up discarded
    return (len(results) - 1) / (results[-1]["time"] - results[0]["time"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--roi", help="X,Y,W,H: both runs classify this region only (the integrations with regions on)")
    parser.add_argument("--each", action="store_true", help="Each integration alone against plain, then stop.")
    args = parser.parse_args()
    region = ["--roi", args.roi] if args.roi else []
    folder = Path(tempfile.mkdtemp(prefix="edgetl-integrations-"))
    video = make_video(folder / "fast.avi")
    integrations = {
        "/metrics 10/s": (["--serve", "127.0.0.1:0"], True),
        "--keep": (["--keep", str(folder / "kept")], False),
    }
    mosquitto = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    broker = None
    if mosquitto:
        port = _free_port()
        (folder / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        broker = subprocess.Popen([mosquitto, "-c", str(folder / "mosquitto.conf")], stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        integrations["MQTT every"] = (["--mqtt", f"mqtt://127.0.0.1:{port}", "--mqtt-publish", "every"], False)
    extra = [option for options, _ in integrations.values() for option in options]
    try:
        if args.each:
            each(args, video, region, integrations, folder)
            return
        alone = 1000 / interpreter_only(args.model, video, threads=1)["invoke_ms"]
        plain, loaded = [], []
        for _ in range(args.runs):  # alternating: drifts in the machine's speed hit both alike
            plain.append(camera_rate(args.model, video, args.frames, region, False, folder))
            loaded.append(camera_rate(args.model, video, args.frames, region + extra, True, folder))
    finally:
        if broker:
            broker.terminate()
    print(f"interpreter alone (1 thread): {alone:.1f} inferences/s" + (f"; region {args.roi}" if args.roi else ""))
    print(
        f"camera plain: median {statistics.median(plain):.1f} results/s (runs {', '.join(f'{r:.1f}' for r in plain)}); "
        f"{statistics.median(plain) / alone:.3f}× the interpreter alone (target ≥ 0.95)"
    )
    print(
        f"camera + /metrics 10/s + {'MQTT every + ' if broker else ''}--keep: median {statistics.median(loaded):.1f} "
        f"(runs {', '.join(f'{r:.1f}' for r in loaded)}); "
        f"{statistics.median(loaded) / statistics.median(plain):.3f}× plain (target ≥ 0.98)"
    )


def each(args: argparse.Namespace, video: Path, region: list[str], integrations: dict, folder: Path) -> None:
    """Plain and each integration alone, `--runs` times in an order that rotates (no variant always runs first)."""
    variants = {"plain": ([], False), **integrations}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for run in range(args.runs):
        for name in names[run % len(names) :] + names[: run % len(names)]:
            options, scrape = variants[name]
            rates[name].append(camera_rate(args.model, video, args.frames, region + options, scrape, folder))
    plain = statistics.median(rates["plain"])
    for name, values in rates.items():
        runs = ", ".join(f"{r:.1f}" for r in values)
        median = statistics.median(values)
        print(f"{name}: median {median:.1f} results/s (runs {runs}); {median / plain:.3f}× plain")


if __name__ == "__main__":
    main()
