"""What `edgetl camera --serve` tells Prometheus (/metrics) and probes (/healthz), and systemd (sd_notify).

/metrics is the Prometheus text format, written here rather than through prometheus-client: the camera needs
counters and fixed-bucket histograms updated from one thread, which is a few lines, and the `[edge]` install
stays free of a dependency (the tests parse the page with prometheus-client's own parser). Recording a result
is a few additions; the page is rendered only when scraped, in the server's thread.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from edgetl.edge.capture import Frame
from edgetl.edge.result import Result

STAGE_BUCKETS_MS = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
AGE_BUCKETS_MS = (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets, self.counts, self.sum, self.count = buckets, [0] * len(buckets), 0.0, 0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        cumulative, out = 0, []
        for bound, count in zip(self.buckets, self.counts):
            cumulative += count
            out.append(f'{name}_bucket{{{labels}le="{bound}"}} {cumulative}')
        out.append(f'{name}_bucket{{{labels}le="+Inf"}} {self.count}')
        plain = f"{{{labels.rstrip(',')}}}" if labels else ""
        return [*out, f"{name}_sum{plain} {self.sum:.6g}", f"{name}_count{plain} {self.count}"]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class RegionCounters:
    """One region's results: counted by decision, timed by stage."""

    def __init__(self) -> None:
        self.results = 0
        self.decisions: dict[str, int] = {}
        self.stages: dict[str, Histogram] = {}
        self.age = Histogram(AGE_BUCKETS_MS)

    def record(self, result: Result) -> None:
        self.results += 1
        decision = result.prediction.decision
        kind = decision if decision in ("unknown", "unsure") else "class"
        self.decisions[kind] = self.decisions.get(kind, 0) + 1
        for stage, ms in result.latency_ms.items():
            self.stages.setdefault(stage, Histogram(STAGE_BUCKETS_MS)).observe(ms)
        self.age.observe(result.age_ms)


CAMERA_COUNTERS = {  # per camera, from the run's summary: name → (help, key)
    "frames_captured": ("Frames the source delivered.", "frames_captured"),
    "frames_dropped": ("Frames replaced by a newer one before inference.", "frames_dropped"),
    "corrupt_frames": ("Frames the source delivered damaged.", "corrupt_frames"),
    "reconnects": ("Times a dropped stream was reopened.", "reconnects"),
}


class Telemetry:
    """Counters and histograms of every region's results (labels `camera` and `region`), and the page."""

    def __init__(self, stats: Callable[[], dict], stall_s: float) -> None:
        self.stats, self.stall_s = stats, stall_s  # `stats`: the run's summary (cameras, regions, keep, mqtt)
        self.regions: dict[tuple[str, str], RegionCounters] = {}
        self.last_result: dict[str, float] = {}  # by camera
        self.started = time.monotonic()  # a fresh camera gets `stall_s` to produce its first result

    def record(self, result: Result) -> None:
        self.last_result[result.camera] = time.monotonic()
        key = (result.camera, result.region)
        if key not in self.regions:
            self.regions[key] = RegionCounters()
        self.regions[key].record(result)

    def health(self) -> dict:
        """Per camera: "ok" while results flow, "stalled" when none came for `stall_s`, "ended" for a file that
        played to its end or a source that failed for good. Overall "ok" while every camera not ended is."""
        now, cameras = time.monotonic(), {}
        for camera in self.stats()["cameras"]:
            quiet = now - self.last_result.get(camera["name"], self.started)
            state = "ended" if camera["ended"] else ("ok" if quiet <= self.stall_s else "stalled")
            cameras[camera["name"]] = {"status": state, "seconds_since_result": round(quiet, 2)}
            if camera["error"]:
                cameras[camera["name"]]["error"] = camera["error"]
        running = [c for c in cameras.values() if c["status"] != "ended"]
        overall = "ok" if running and all(c["status"] == "ok" for c in running) else "stalled"
        return {"status": overall, "cameras": cameras}

    def page(self) -> str:
        summary = self.stats()
        lines = _help("results_total", "Results per region.", "counter")
        for (camera, region), counters in sorted(self.regions.items()):
            lines.append(f"edgetl_results_total{{{_labels(camera, region)}}} {counters.results}")
        lines += _help("decisions_total", "Results by decision: a class, unknown or unsure.", "counter")
        for (camera, region), counters in sorted(self.regions.items()):
            for kind, count in sorted(counters.decisions.items()):
                lines.append(f'edgetl_decisions_total{{{_labels(camera, region)},decision="{kind}"}} {count}')
        lines += _help("stage_latency_ms", "Time per result in each stage, milliseconds.", "histogram")
        for (camera, region), counters in sorted(self.regions.items()):
            for stage, histogram in sorted(counters.stages.items()):
                lines += histogram.lines("edgetl_stage_latency_ms", f'{_labels(camera, region)},stage="{stage}",')
        lines += _help("frame_age_ms", "Capture to result, milliseconds.", "histogram")
        for (camera, region), counters in sorted(self.regions.items()):
            lines += counters.age.lines("edgetl_frame_age_ms", f"{_labels(camera, region)},")
        for name, (text, key) in CAMERA_COUNTERS.items():
            lines += _help(f"{name}_total", text, "counter")
            lines += [f'edgetl_{name}_total{{camera="{_escape(c["name"])}"}} {c[key]}' for c in summary["cameras"]]
        lines += _help("model_info", "The model each region runs now.", "gauge")
        for camera in summary["cameras"]:
            for region in camera["regions"]:
                model = f'file="{_escape(region["model"])}",sha256="{region["model_sha256"]}"'
                model += f',version="{_escape(region["model_version"])}"'
                lines.append(f"edgetl_model_info{{{_labels(camera['name'], region['name'])},{model}}} 1")
        kept = sum(r.get("keep", {}).get("kept", 0) for c in summary["cameras"] for r in c["regions"])
        counters = {
            "model_updates": ("New model files taken while running.",
                              sum(u["updates"] for u in summary.get("model_update", {}).values())),
            "kept_frames": ("Frames kept for labelling (--keep).", kept),
            "mqtt_published": ("States published to MQTT.", summary.get("mqtt", {}).get("published", 0)),
            "mqtt_dropped": ("States dropped while the broker was away.", summary.get("mqtt", {}).get("dropped", 0)),
        }  # fmt: skip
        for name, (text, value) in counters.items():
            lines += [*_help(f"{name}_total", text, "counter"), f"edgetl_{name}_total {value}"]
        throttled = pi_throttled()
        if throttled is not None:
            text = "Raspberry Pi throttling flags (vcgencmd get_throttled; 0 = never throttled)."
            lines += [*_help("throttled", text, "gauge"), f"edgetl_throttled {throttled}"]
        temperature = cpu_temperature()
        if temperature is not None:
            lines += [*_help("cpu_temperature_celsius", "SoC temperature.", "gauge")]
            lines.append(f"edgetl_cpu_temperature_celsius {temperature:.1f}")
        return "\n".join(lines) + "\n"


def _help(name: str, text: str, kind: str) -> list[str]:
    return [f"# HELP edgetl_{name} {text}", f"# TYPE edgetl_{name} {kind}"]


def _labels(camera: str, region: str) -> str:
    return f'camera="{_escape(camera)}",region="{_escape(region)}"'


def cpu_temperature(zone: Path = Path("/sys/class/thermal/thermal_zone0/temp")) -> float | None:
    """The SoC temperature where Linux exposes it (every Raspberry Pi), else None."""
    try:
        return int(zone.read_text().strip()) / 1000
    except (OSError, ValueError):
        return None


_THROTTLED: list = [0.0, None]  # (when read, value): vcgencmd is a process start, so at most every 10 s


def pi_throttled() -> int | None:
    """The Pi firmware's throttling bit mask (under-voltage, frequency capped, throttled, soft temperature
    limit; now and since boot), where `vcgencmd` exists; None elsewhere."""
    if time.monotonic() - _THROTTLED[0] < 10:
        return _THROTTLED[1]
    _THROTTLED[0] = time.monotonic()
    if shutil.which("vcgencmd") is None:
        return None
    try:
        text = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=2).stdout
        _THROTTLED[1] = int(text.strip().split("=")[1], 16)
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        _THROTTLED[1] = None
    return _THROTTLED[1]


class SystemdNotifier:
    """`Type=notify` services: READY=1 with the first result, then WATCHDOG=1 at half the unit's WatchdogSec,
    from the result loop, so systemd restarts a camera whose loop hangs. Nothing when not run by systemd."""

    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address  # "@": the abstract namespace
        watchdog_usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        self.every_s = watchdog_usec / 2e6 if watchdog_usec > 0 else None
        self.ready, self.last_ping = False, 0.0

    def send(self, message: str) -> None:
        if not self.address:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
            sock.sendto(message.encode(), self.address)  # OSError: systemd is gone (shutting down)

    def result(self) -> None:
        """Called once per result; sends at most what systemd asked for."""
        if not self.address:
            return
        if not self.ready:
            self.ready = True
            self.send("READY=1\nSTATUS=classifying")
        if self.every_s is not None and time.monotonic() - self.last_ping >= self.every_s:
            self.last_ping = time.monotonic()
            self.send("WATCHDOG=1")

    def on_result(self, result: Result, frame: Frame | None = None) -> None:
        self.result()

    def close(self) -> None:
        """STOPPING=1: systemd knows the camera is ending on purpose."""
        self.send("STOPPING=1")
