"""`camera --mqtt`: a real broker (Debian's mosquitto on 127.0.0.1, started and stopped here), Home Assistant
discovery, states, the last will after a SIGKILL, and results that go on while the broker is away."""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from test_edge import write_video

from conftest import Process


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _mosquitto(program: str = "mosquitto") -> str:
    """The path of one of mosquitto's programs; without them the test skips (fails in CI) with the fix."""
    found = [path for path in (shutil.which(program), f"/usr/sbin/{program}", f"/usr/bin/{program}") if path]
    binary = next((path for path in found if os.path.exists(path)), None)
    if binary is None:
        message = f"{program} is not installed (Debian: apt install mosquitto); the MQTT test needs it"
        if os.environ.get("EDGETL_REQUIRE_SHARED"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


class Broker:
    def __init__(self, folder: Path, port: int, extra: str = "allow_anonymous true\n") -> None:
        binary = _mosquitto()
        config = folder / "mosquitto.conf"
        user = getpass.getuser()  # started as root, mosquitto would switch to a user that cannot read tmp_path
        config.write_text(f"listener {port} 127.0.0.1\npersistence false\nuser {user}\n{extra}")
        self.process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            assert time.monotonic() < deadline and self.process.poll() is None, self.process.stderr.read()
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class Listener:
    """Every message on the broker, as (topic, payload, retained), from a paho client of its own."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as paho

        self.messages: list[tuple[str, str, bool]] = []
        self.lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="edgetl-test-listener")
        self.client.on_connect = lambda client, *args: client.subscribe("#")
        self.client.on_message = self._message
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _message(self, client, userdata, message) -> None:
        with self.lock:
            self.messages.append((message.topic, message.payload.decode(), bool(message.retain)))

    def on(self, topic_end: str) -> list[tuple[str, str, bool]]:
        with self.lock:
            return [m for m in self.messages if m[0].endswith(topic_end)]

    def wait(self, condition, what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.messages[-5:]}"
            time.sleep(0.05)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_camera_publishes_discovery_states_and_its_last_will(converted: tuple[Path, dict], tmp_path: Path) -> None:
    port = _free_port()
    broker = Broker(tmp_path, port)
    listener = Listener(port)
    video, results = write_video(tmp_path / "clip.avi", 60), tmp_path / "results.jsonl"
    model = str(converted[0] / "model_int8.tflite")
    camera = Process(
        "camera", model, "--source", str(video), "--loop", "--realtime", "--json", str(results),
        "--mqtt", f"mqtt://127.0.0.1:{port}", "--mqtt-topic", "test/cam", "--mqtt-publish", "every",
    )  # fmt: skip
    try:
        listener.wait(lambda: len(listener.on("test/cam/camera/frame/state")) > 5, "states")
        configs = [m for m in listener.messages if m[0].startswith("homeassistant/")]
        assert {topic.split("/")[1] for topic, _, _ in configs} == {"sensor", "binary_sensor"} and len(configs) == 3
        for topic, payload, _ in configs:
            config = json.loads(payload)
            assert (
                config["state_topic"] == "test/cam/camera/frame/state"
                and config["availability_topic"] == "test/cam/availability"
            )
            assert config["device"]["identifiers"][0].endswith("_camera")  # one device per camera
            assert config["unique_id"].endswith(topic.split("/")[3]) and topic.split("/")[3].startswith("frame_")
        assert listener.on("test/cam/availability")[-1][1] == "online"
        state = json.loads(listener.on("test/cam/camera/frame/state")[-1][1])
        assert {"decision", "labels", "scores", "ood_score", "model", "time", "frame"} <= set(state)
        assert (state["camera"], state["region"]) == ("camera", "frame")
        assert state["model_version"].startswith("run 20")  # the run the model came from, as in the JSON lines
        broker.stop()  # the broker goes away: the camera classifies on
        lines = len(results.read_text().splitlines())
        time.sleep(2)
        assert len(results.read_text().splitlines()) > lines + 10
        seen = len(listener.on("test/cam/camera/frame/state"))
        broker = Broker(tmp_path, port)  # and comes back: publishing resumes
        listener.wait(
            lambda: len(listener.on("test/cam/camera/frame/state")) > seen + 5, "states after the broker's restart", 40
        )
        camera.proc.send_signal(signal.SIGKILL)  # no goodbye: the broker publishes the last will
        listener.wait(lambda: listener.on("test/cam/availability")[-1][1] == "offline", "the last will", 40)
    finally:
        if camera.proc.poll() is None:
            camera.proc.kill()
        camera.finish(timeout=30)
        listener.close()
        broker.stop()


def test_a_bad_broker_url_or_a_password_on_the_command_line_is_one_line(converted: tuple[Path, dict]) -> None:
    from test_edge import edge_cli

    model = str(converted[0] / "model_int8.tflite")
    done = edge_cli("camera", model, "--source", "0", "--mqtt", "http://broker")
    assert done.returncode == 2 and "is not mqtt://host" in done.stderr
    done = edge_cli("camera", model, "--source", "0", "--mqtt", "mqtt://ana:secret@broker")
    assert done.returncode == 2 and "would show in `ps`" in done.stderr
    done = edge_cli("camera", model, "--source", "0", "--mqtt", "mqtt://broker", "--mqtt-publish", "often")
    assert done.returncode == 2 and "not change, every or N/s" in done.stderr


def test_mqtts_with_a_user_whose_password_comes_from_the_environment(
    converted: tuple[Path, dict], tmp_path: Path
) -> None:
    """TLS to a broker whose certificate only the given CA vouches for, and a user the broker checks."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate for the TLS broker")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    passwords = tmp_path / "passwords"
    subprocess.run([_mosquitto("mosquitto_passwd"), "-c", "-b", str(passwords), "ana", "broker pass"], check=True)
    port = _free_port()
    tls = f"cafile {cert}\ncertfile {cert}\nkeyfile {key}\nallow_anonymous false\npassword_file {passwords}\n"
    broker = Broker(tmp_path, port, tls)
    video, model = write_video(tmp_path / "clip.avi", 30), str(converted[0] / "model_int8.tflite")
    args = ["camera", model, "--source", str(video), "--mqtt", f"mqtts://ana@127.0.0.1:{port}", "--mqtt-ca", str(cert)]
    try:
        wrong = Process(*args, "--max-frames", "60", env={"EDGETL_MQTT_PASSWORD": "not it"})
        wrong.finish(timeout=60)
        assert "refused the connection" in wrong.output, wrong.output[-2000:]
        right = Process(*args, "--loop", "--realtime", "--duration", "3", "--mqtt-publish", "every",
                        env={"EDGETL_MQTT_PASSWORD": "broker pass"})  # fmt: skip
        assert right.finish(timeout=60) == 0, right.output[-2000:]
        assert "refused" not in right.output and "went away" not in right.output
        published = int(right.output.split("mqtt")[-1].split("states published")[0].split()[-1])
        assert published > 20, right.output[-1500:]  # over TLS, as ana
    finally:
        broker.stop()


class CountingEvent(threading.Event):
    """An Event that counts its clears: each is one pass of the publisher's sender thread."""

    def __init__(self) -> None:
        super().__init__()
        self.clears = 0

    def clear(self) -> None:
        self.clears += 1
        super().clear()


def test_states_of_a_fast_camera_all_arrive_in_order_handed_over_in_batches(tmp_path: Path) -> None:
    """At a result a millisecond every state arrives, in order, none dropped; the sender thread wakes per batch,
    not per state (per state: 0.94 × the plain camera in one noisy run of benchmarks/integrations.py --each)."""
    from test_result_shape import a_result

    from edgetl.edge.mqtt import MqttOptions, Publisher

    port, count = _free_port(), 400
    broker = Broker(tmp_path, port)
    listener = Listener(port)
    options = MqttOptions(mqtt=f"mqtt://127.0.0.1:{port}", mqtt_topic="fast", mqtt_publish="every")
    publisher = Publisher(options, [("garage", "door", "model.tflite")], log=lambda line: None)
    try:
        waiting_on, publisher._wake = publisher._wake, (wake := CountingEvent())  # noqa: SLF001
        waiting_on.set()  # the sender leaves its wait on the old event and counts on the new one from now on
        listener.wait(lambda: listener.on("fast/availability"), "the publisher's connection")
        template = a_result()
        for frame in range(1, count + 1):
            publisher.on_result(dataclasses.replace(template, frame=frame))
            time.sleep(0.001)
        listener.wait(lambda: len(listener.on("fast/garage/door/state")) == count, f"{count} states")
        frames = [json.loads(payload)["frame"] for _, payload, _ in listener.on("fast/garage/door/state")]
        assert frames == list(range(1, count + 1))
        assert publisher.stats()["published"] == count and publisher.stats()["dropped"] == 0
        assert wake.clears < count / 4, f"the sender woke {wake.clears} times for {count} states"
    finally:
        publisher.close()
        listener.close()
        broker.stop()
