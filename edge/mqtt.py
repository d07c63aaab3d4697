"""`edgetl camera … --mqtt URL`: results to an MQTT broker, and Home Assistant finds the camera by itself.

Topics under `--mqtt-topic` (default `edgetl/<host name>`): `…/<camera>/<region>/state` per region (the one
result shape, edge/result.py) and one `…/availability` (`online`; `offline` as the last will, so a killed
device shows offline as soon as the broker notices). Home Assistant MQTT discovery: retained configs under
`homeassistant/`, one device per camera, and per region a "decision" and a "confidence" sensor and an
"unknown" binary sensor.

Publishing never blocks inference: the loop hands states to a bounded queue (the oldest dropped and counted
when the broker is away); a sender thread hands them to paho-mqtt in batches (GATHER_S), and paho-mqtt's own
thread sends them and reconnects with backoff. paho-mqtt is the optional extra `edgetl[mqtt]`.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import edgetl
from edgetl.edge.auth import read_secret
from edgetl.edge.capture import Frame
from edgetl.edge.result import Result
from edgetl.errors import EdgetlError
from edgetl.options import setting

PASSWORD_VARIABLE = "EDGETL_MQTT_PASSWORD"
QUEUE = 100  # states waiting while the broker is away; older ones are dropped
HEARTBEAT_S = 60.0  # --mqtt-publish change: a state at least this often, so a quiet scene still shows alive
KEEPALIVE_S = 30
GATHER_S = 0.02  # the sender wakes at most this often: a state is this much later, and at hundreds of results
# a second two threads (this one and paho's) wake per batch, not per state (per state: 0.94 × the plain camera's
# rate in one noisy run of benchmarks/integrations.py --each; in batches 1.00 ×)
MAX_TOPIC_BYTES = 1024  # far below MQTT's 65,535; with room for the discovery suffixes


@dataclass
class MqttOptions:
    """Where and how `camera` publishes, each default stated once (the CLI shows them)."""

    mqtt: str | None = setting(None, "Publish results to this broker: mqtt://[user@]host[:port] or mqtts://….")
    mqtt_topic: str | None = setting(None, "Topic prefix (default: edgetl/<host name>).")
    mqtt_publish: str = setting("change", "change (a new decision, and a heartbeat each minute), every, or N/s.")
    mqtt_password_file: Path | None = setting(None, f"The broker password from this file (else ${PASSWORD_VARIABLE}).")
    mqtt_ca: Path | None = setting(None, "mqtts: the CA certificate file (default: the system's).")
    mqtt_discovery: str = setting("homeassistant", "Home Assistant discovery prefix; empty turns discovery off.")

    def __post_init__(self) -> None:
        """Checked before the camera opens: a mistake here is one line, not a failure minutes later."""
        if self.mqtt is None:
            return
        url = urlsplit(self.mqtt)
        if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
            raise EdgetlError(f"--mqtt {self.mqtt} is not mqtt://host[:port].", "Example: --mqtt mqtt://192.168.1.5")
        if url.password:
            raise EdgetlError("A password in --mqtt would show in `ps`.", f"Use ${PASSWORD_VARIABLE} or a file.")
        try:
            url.port  # noqa: B018 - urlsplit checks the port only when asked
        except ValueError:
            raise EdgetlError(
                f"--mqtt {self.mqtt}: the port is not a number from 1 to 65535.", "Example: :1883"
            ) from None
        if self.mqtt_topic is not None:
            check_topic(self.mqtt_topic.rstrip("/"), "--mqtt-topic")
            if not self.mqtt_topic.strip("/"):
                raise EdgetlError("--mqtt-topic is empty.", "Example: --mqtt-topic edgetl/garage")
        check_topic(self.mqtt_discovery.strip("/"), "--mqtt-discovery")
        _rate(self.mqtt_publish)


def _device_id() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "camera"


def _rate(policy: str) -> float | None:
    """States per second for "N/s", None for "change" and "every"; EdgetlError for anything else."""
    if policy in ("change", "every"):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)/s", policy)
    if not match or float(match.group(1)) <= 0:
        raise EdgetlError(f"--mqtt-publish {policy} is not change, every or N/s.", "Example: --mqtt-publish 2/s")
    return float(match.group(1))


class Publisher:
    """One broker connection for the device: availability, discovery, and each region's states the policy lets
    through (the policy applies per region: one region's changes never hold back another's)."""

    def __init__(self, options: MqttOptions, regions: list[tuple[str, str, str]], log) -> None:
        """`regions`: (camera, region, model file name) of each region the device runs."""
        try:
            import paho.mqtt.client as paho
        except ImportError:
            raise EdgetlError("--mqtt needs paho-mqtt.", 'Install it: pip install "edgetl[mqtt]"') from None
        url = urlsplit(options.mqtt or "")
        self.rate, self.log, self.regions = _rate(options.mqtt_publish), log, regions
        self.every = options.mqtt_publish == "every"
        self.device = _device_id()
        self.topic = (options.mqtt_topic or f"edgetl/{self.device}").rstrip("/")
        self.discovery = options.mqtt_discovery.strip("/")
        self.queue: deque[tuple[str, bytes]] = deque(maxlen=QUEUE)
        self.dropped = self.published = 0
        self.last: dict[tuple[str, str], tuple[str | None, float]] = {}  # per region: (decision, when) last sent
        self._wake, self._stop = threading.Event(), threading.Event()  # before any callback can run
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"edgetl-{self.device}")
        if url.username:
            password = _password(options.mqtt_password_file)
            self.client.username_pw_set(url.username, password)
        if url.scheme == "mqtts":
            self.client.tls_set(ca_certs=str(options.mqtt_ca) if options.mqtt_ca else None)
        self.client.will_set(f"{self.topic}/availability", "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._connected
        self.client.on_disconnect = self._disconnected
        self.client.on_connect_fail = self._unreachable
        port = url.port or (8883 if url.scheme == "mqtts" else 1883)
        self.broker, self.reachable = f"{url.hostname}:{port}", None  # None: not tried yet
        self.client.connect_async(url.hostname, port, keepalive=KEEPALIVE_S)
        self.client.loop_start()
        threading.Thread(target=self._send, name="edgetl-mqtt", daemon=True).start()

    def _unreachable(self, *args) -> None:
        """paho could not connect (no such host, nothing listening, no route): said once, then on each change."""
        if self.reachable is not False:
            self.log(f"MQTT: cannot reach the broker at {self.broker}; states are dropped until it answers")
        self.reachable = False

    def _connected(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.log(f"MQTT: the broker refused the connection ({reason_code})")
            self.reachable = False
            return
        if self.reachable is False:
            self.log(f"MQTT: connected to {self.broker}")
        self.reachable = True
        client.publish(f"{self.topic}/availability", "online", qos=1, retain=True)
        for topic, config in discovery_configs(self.discovery, self.topic, self.device, self.regions):
            client.publish(topic, json.dumps(config), qos=1, retain=True)
        self._wake.set()

    def _disconnected(self, *args) -> None:
        if not self._stop.is_set() and self.reachable:  # not the goodbye of close(), nor a failed connect
            self.log("MQTT: the broker went away; reconnecting")
            self.reachable = False

    def on_result(self, result: Result, frame: Frame | None = None) -> None:
        """Called by the inference loop for every result: a decision of the policy and an append, nothing more."""
        now, decision, key = time.monotonic(), result.prediction.decision, (result.camera, result.region)
        last_decision, last_sent = self.last.get(key, (None, -float("inf")))
        if self.rate is not None:
            due = now - last_sent >= 1 / self.rate
        else:
            due = self.every or decision != last_decision or now - last_sent >= HEARTBEAT_S
        if not due:
            return
        self.last[key] = (decision, now)
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1  # the deque drops the oldest
        self.queue.append((state_topic(self.topic, *key), json.dumps(state(result)).encode()))
        self._wake.set()

    def _send(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._stop.wait(GATHER_S)  # the states of the next few results join this batch
            self._wake.clear()
            while self.queue and self.client.is_connected():
                self.client.publish(*self.queue.popleft(), qos=0)
                self.published += 1

    def stats(self) -> dict:
        return {"published": self.published, "dropped": self.dropped, "connected": self.client.is_connected()}

    def close(self) -> None:
        """`offline` on purpose (the last will covers a crash), then disconnect."""
        self._stop.set()
        self._wake.set()
        self.dropped += len(self.queue)  # never sent: the broker was away or never reached
        self.queue.clear()
        if self.client.is_connected():
            self.client.publish(f"{self.topic}/availability", "offline", qos=1, retain=True).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()


def _password(path: Path | None) -> str:
    if path is not None:
        return read_secret(path, "--mqtt-password-file")
    password = os.environ.get(PASSWORD_VARIABLE, "")
    if not password:
        raise EdgetlError("The broker user needs a password.", f"Set ${PASSWORD_VARIABLE} or --mqtt-password-file.")
    return password


def check_topic(topic: str, option: str) -> None:
    """A topic (prefix) MQTT lets a client publish to: text of at most MAX_TOPIC_BYTES UTF-8 bytes, without
    the wildcards # and +, NUL or control characters, not a `$` topic (the broker's own, e.g. $SYS)."""
    problem = None
    if "#" in topic or "+" in topic:
        problem = "holds a wildcard (# or +), which no one can publish to"
    elif any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in topic):
        problem = "holds a control character"
    elif topic.startswith("$"):
        problem = "starts with $, which brokers keep for themselves"
    elif len(topic.encode()) > MAX_TOPIC_BYTES:
        problem = f"is longer than {MAX_TOPIC_BYTES} bytes"
    if problem:
        raise EdgetlError(f"{option} {topic!r} {problem}.", "Use letters, digits, _ - and / (e.g. edgetl/garage).")


def state(result: Result) -> dict:
    """The MQTT state: the one result shape (edge/result.py), as JSON lines carry it."""
    return result.as_dict()


def state_topic(prefix: str, camera: str, region: str) -> str:
    return f"{prefix}/{camera}/{region}/state"


def discovery_configs(
    prefix: str, topic: str, device_id: str, regions: list[tuple[str, str, str]]
) -> list[tuple[str, dict]]:
    """Home Assistant's retained discovery messages: one device per camera; per region two sensors and a binary
    sensor, named after the region."""
    if not prefix:
        return []
    configs = []
    for camera, region, model_name in regions:
        device = {
            "identifiers": [f"edgetl_{device_id}_{camera}"],
            "name": f"edgetl {device_id} {camera}",
            "model": model_name,
            "manufacturer": "edgetl",
            "sw_version": edgetl.__version__,
        }
        state_at = state_topic(topic, camera, region)
        common = {
            "state_topic": state_at,
            "availability_topic": f"{topic}/availability",
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
        }
        entities = {
            ("sensor", "decision"): {"name": f"{region} decision", "value_template": "{{ value_json.decision }}",
                                     "json_attributes_topic": state_at, "icon": "mdi:eye"},
            ("sensor", "confidence"): {"name": f"{region} confidence", "unit_of_measurement": "%",
                                       "state_class": "measurement",
                                       "value_template": "{{ (value_json.scores[0] * 100) | round(1) }}"},
            ("binary_sensor", "unknown"): {"name": f"{region} unknown scene", "payload_on": "ON", "payload_off": "OFF",
                                           "value_template":
                                               "{{ 'ON' if value_json.decision == 'unknown' else 'OFF' }}"},
        }  # fmt: skip
        node = f"edgetl_{device_id}_{camera}"
        configs += [
            (f"{prefix}/{component}/{node}/{region}_{name}/config",
             {**common, **entity, "unique_id": f"{node}_{region}_{name}"})
            for (component, name), entity in entities.items()
        ]  # fmt: skip
    return configs
