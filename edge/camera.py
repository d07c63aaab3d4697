"""`edgetl camera`: its options, its JSON lines and its summary; the loop itself is edge/runtime.py."""

from __future__ import annotations

import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from edgetl.edge.classifier import TOP_K
from edgetl.edge.roi import Region
from edgetl.errors import EdgetlError
from edgetl.options import setting


@dataclass
class CameraOptions:
    """What `edgetl camera` can be told, each default stated once (the CLI shows them)."""

    source: str = setting("0", "Camera index, video file, rtsp:// or http:// URL, GStreamer pipeline, picamera2.")
    top_k: int = setting(TOP_K, "Labels per result.")
    smooth: int = setting(1, "Average scores (and OOD scores) over this many recent frames before deciding.")
    json: str | None = setting(None, "Write one JSON line per result to FILE, or - for stdout.")
    serve: str | None = setting(None, "Serve a live web page on HOST:PORT (e.g. 127.0.0.1:8080).")
    window: bool | None = setting(None, "On-screen window (default: when a display is there).")
    max_frames: int | None = setting(None, "Stop after this many results.")
    duration: float | None = setting(None, "Stop after this many seconds.")
    loop: bool = setting(False, "Restart a video file at its end.")
    realtime: bool = setting(False, "Play a video file at its own frame rate, like a camera.")
    max_reconnects: int | None = setting(None, "Give up on a dropped stream after N tries (default: never).")
    force: bool = setting(False, "Replace an existing --json file.")
    stall: float = setting(10.0, "With --serve: /healthz answers 503 when no result came for this many seconds.")
    roi: str | None = setting(None, "Classify only this region: X,Y,W,H as fractions of the frame (0–1).")
    config: Path | None = setting(None, "Run every camera and region this device file lists (README: 'A device file').")

    def __post_init__(self) -> None:
        if self.smooth < 1 or self.top_k < 1:
            raise EdgetlError("--smooth and --top-k must be at least 1.")
        if self.roi is not None:
            Region.parse(self.roi)

    @property
    def region(self) -> Region | None:
        """The region of interest, None for the whole frame."""
        return Region.parse(self.roi) if self.roi is not None else None


class ResultLines:
    """Where --json results go: one whole JSON line per result, to a file or to stdout ("-").

    A write that fails (a full disk, a reader that closed the pipe) ends the run with one line in
    `error`, and a file is cut back to its last complete line: whoever parses it never meets half a line.
    """

    def __init__(self, target: str) -> None:
        self.name = "stdout" if target == "-" else target
        self.fd = (
            sys.stdout.fileno() if target == "-" else os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        )
        self.complete = 0  # bytes of whole lines written
        self.error: str | None = None

    def write(self, record: dict) -> bool:
        """Write one line; False (and `error` set) when it could not be written whole."""
        line = memoryview((json.dumps(record) + "\n").encode())
        try:
            while line:
                line = line[os.write(self.fd, line) :]
        except OSError as error:
            self.error = f"writing the results to {self.name} failed ({error.strerror or error}); they end there."
            if stat.S_ISREG(os.fstat(self.fd).st_mode):
                os.ftruncate(self.fd, self.complete)  # shrinking a file needs no free space
            return False
        self.complete += len(line.obj)
        return True

    def close(self) -> None:
        if self.fd != sys.stdout.fileno():
            os.close(self.fd)


def print_summary(summary: dict, console, *, stopped_by: str | None = None, error: str | None = None) -> None:
    """The final stats: one small Rich table per camera, a row or two per region, then what the device shares."""
    from rich.table import Table

    from edgetl.text import for_console

    for camera in summary["cameras"]:
        title = f"{camera['name']} · {for_console(camera['source'])} · {summary['threads']} threads"
        if stopped_by:
            title += f" · stopped by {stopped_by}"
        table = Table(title=title, show_header=False, title_justify="left")
        dropped = f"{camera['frames_dropped']} dropped (newer frame taken)"
        table.add_row("frames", f"{camera['frames_captured']} captured, {dropped}")
        faults = f"{camera['corrupt_frames']} corrupt, {camera['reconnects']} reconnects, {camera['loops']} loops"
        table.add_row("faults", faults + (f"; ended: {for_console(camera['error'])}" if camera["error"] else ""))
        for region in camera["regions"]:
            for key, value in _region_rows(region):
                table.add_row(f"{region['name']}: {key}", value)
        console.print(table)
    rows = []
    if summary.get("backlogged"):
        rows.append(("results backlog", f"inference waited {summary['backlogged']} times for the results thread"))
    if "mqtt" in summary:
        mqtt = summary["mqtt"]
        rows.append(("mqtt", f"{mqtt['published']} states published, {mqtt['dropped']} dropped (the broker away)"))
    for model, update in summary.get("model_update", {}).items():
        refused = f"; last refused: {for_console(update['refused'])}" if update["refused"] else ""
        rows.append((f"model updates: {for_console(model)}", f"{update['updates']} taken{refused}"))
    if rows:
        table = Table(show_header=False)
        for key, value in rows:
            table.add_row(key, value)
        console.print(table)
    if error:
        console.print(f"[bold red]error:[/] {error}")


def _region_rows(region: dict) -> list[tuple[str, str]]:
    latency = ", ".join(f"{k} {v}" for k, v in region["median_latency_ms"].items()) or "–"
    rows = [
        ("model", f"{region['model']} · {region['backend']}"),
        ("results", f"{region['results']} in {region['seconds']} s ({region['results_per_second']}/s)"),
        ("median latency ms", latency),
        ("median frame age ms", str(region["median_age_ms"])),
    ]
    if "keep" in region:
        keep = region["keep"]
        kept = f"{keep['kept']} ({', '.join(f'{k} {v}' for k, v in keep['reasons'].items()) or 'none'}); "
        passed = f"{keep['similar']} near-duplicates and {keep['busy']} while writing passed over"
        rows.append(("kept frames", kept + passed + (f"; stopped: {keep['stopped']}" if keep["stopped"] else "")))
    return rows
