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


class Telemetry:
    """Counters and histograms of the camera's results, and the page that shows them."""

    def __init__(self, stats: Callable[[], dict], stall_s: float) -> None:
        self.stats, self.stall_s = stats, stall_s  # `stats`: the run's summary (capture, model, keep)
        self.results = 0
        self.decisions: dict[str, int] = {}
        self.stages: dict[str, Histogram] = {}
        self.age = Histogram(AGE_BUCKETS_MS)
        self.last_result = time.monotonic()  # a fresh camera gets `stall_s` to produce its first result

    def record(self, result: Result) -> None:
        self.results += 1
        self.last_result = time.monotonic()
        decision = result.prediction.decision
        kind = decision if decision in ("unknown", "unsure") else "class"
        self.decisions[kind] = self.decisions.get(kind, 0) + 1
        for stage, ms in result.latency_ms.items():
            self.stages.setdefault(stage, Histogram(STAGE_BUCKETS_MS)).observe(ms)
        self.age.observe(result.age_ms)

    def healthy(self) -> tuple[bool, float]:
        """(results still flowing, seconds since the last one)."""
        quiet = time.monotonic() - self.last_result
        return quiet <= self.stall_s, quiet

    def page(self) -> str:
        summary = self.stats()
        lines = [
            "# HELP edgetl_results_total Results the camera loop produced.",
            "# TYPE edgetl_results_total counter",
            f"edgetl_results_total {self.results}",
            "# HELP edgetl_decisions_total Results by decision: a class, unknown or unsure.",
            "# TYPE edgetl_decisions_total counter",
            *(f'edgetl_decisions_total{{decision="{k}"}} {v}' for k, v in sorted(self.decisions.items())),
            "# HELP edgetl_stage_latency_ms Time per result in each stage, milliseconds.",
            "# TYPE edgetl_stage_latency_ms histogram",
        ]
        for stage, histogram in sorted(self.stages.items()):
            lines += histogram.lines("edgetl_stage_latency_ms", f'stage="{stage}",')
        lines += ["# HELP edgetl_frame_age_ms Capture to result, milliseconds.", "# TYPE edgetl_frame_age_ms histogram"]
        lines += self.age.lines("edgetl_frame_age_ms")
        counters = {
            "frames_captured": ("Frames the source delivered.", summary.get("frames_captured", 0)),
            "frames_dropped": ("Frames replaced by a newer one before inference.", summary.get("frames_dropped", 0)),
            "corrupt_frames": ("Frames the source delivered damaged.", summary.get("corrupt_frames", 0)),
            "reconnects": ("Times a dropped stream was reopened.", summary.get("reconnects", 0)),
            "model_updates": (
                "New model files taken while running.",
                summary.get("model_update", {}).get("updates", 0),
            ),
            "kept_frames": ("Frames kept for labelling (--keep).", summary.get("keep", {}).get("kept", 0)),
            "mqtt_published": ("States published to MQTT.", summary.get("mqtt", {}).get("published", 0)),
            "mqtt_dropped": ("States dropped while the broker was away.", summary.get("mqtt", {}).get("dropped", 0)),
        }
        for name, (text, value) in counters.items():
            lines += [f"# HELP edgetl_{name}_total {text}", f"# TYPE edgetl_{name}_total counter"]
            lines.append(f"edgetl_{name}_total {value}")
        model = f'file="{_escape(str(summary.get("model", "")))}",sha256="{summary.get("model_sha256", "")}"'
        model += f',version="{_escape(str(summary.get("model_version", "")))}"'
        lines += ["# HELP edgetl_model_info The model running now.", "# TYPE edgetl_model_info gauge"]
        lines.append(f"edgetl_model_info{{{model}}} 1")
        throttled = pi_throttled()
        if throttled is not None:
            lines += [
                "# HELP edgetl_throttled Raspberry Pi throttling flags (vcgencmd get_throttled; 0 = never throttled).",
                "# TYPE edgetl_throttled gauge",
                f"edgetl_throttled {throttled}",
            ]
        temperature = cpu_temperature()
        if temperature is not None:
            lines += [
                "# HELP edgetl_cpu_temperature_celsius SoC temperature.",
                "# TYPE edgetl_cpu_temperature_celsius gauge",
            ]
            lines.append(f"edgetl_cpu_temperature_celsius {temperature:.1f}")
        return "\n".join(lines) + "\n"


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
