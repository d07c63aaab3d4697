"""What one device runs: cameras, the regions each one classifies, and where results go.

`edgetl camera --config device.toml` reads it from a TOML file (Python's own `tomllib`); the single-camera
command line is the same record with one camera and one whole-frame region (`single_camera`), so both run
through one runtime (edge/runtime.py). Every mistake in the file is one line that names the file, the key and
what was expected, before any camera opens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from edgetl.edge.camera import CameraOptions
from edgetl.edge.keep import KeepOptions
from edgetl.edge.mqtt import MqttOptions
from edgetl.edge.roi import Region
from edgetl.errors import EdgetlError

NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")  # camera and region names: in topics, metric labels and file names
DEFAULT_CAMERA, WHOLE_FRAME = "camera", "frame"  # the names the single-camera command line runs under
MAX_CAMERAS, MAX_REGIONS = 8, 16  # per device, per camera: each camera is a thread, each region an inference
HINT = "See the README, section 'A device file', for every key and an example."


@dataclass(frozen=True)
class RegionSpec:
    """One question asked of one camera: a model, the part of the frame it sees, and how it decides."""

    name: str
    model: Path
    roi: Region | None = None  # None: the whole frame
    smooth: int = CameraOptions.smooth
    top_k: int = CameraOptions.top_k
    threshold: float | None = None
    unsure: bool = False
    ood_threshold: float | None = None
    keep: KeepOptions = field(default_factory=KeepOptions)


@dataclass(frozen=True)
class CameraSpec:
    """One source and the regions classified on each of its frames."""

    name: str
    source: str = CameraOptions.source
    loop: bool = CameraOptions.loop
    realtime: bool = CameraOptions.realtime
    max_reconnects: int | None = CameraOptions.max_reconnects
    regions: tuple[RegionSpec, ...] = ()


@dataclass(frozen=True)
class DeviceSpec:
    """Every camera of the device, and the outputs they share (one page, one broker connection)."""

    cameras: tuple[CameraSpec, ...]
    serve: str | None = None
    stall: float = CameraOptions.stall
    mqtt: MqttOptions = field(default_factory=MqttOptions)
    origin: str = "the command line"  # what errors name: the file, or the command line

    @property
    def regions(self) -> list[tuple[CameraSpec, RegionSpec]]:
        return [(camera, region) for camera in self.cameras for region in camera.regions]

    @property
    def single(self) -> bool:
        """One camera, one region: what the single-camera command line runs."""
        return len(self.regions) == 1


def single_region(model: Path, options: CameraOptions, keep: KeepOptions | None = None, **rule: Any) -> RegionSpec:
    """The command line's one region: the whole frame, or --roi (`rule`: threshold, unsure, ood_threshold)."""
    return RegionSpec(WHOLE_FRAME, model, options.region, options.smooth, options.top_k, keep=keep or KeepOptions(),
                      **rule)  # fmt: skip


def single_camera(model: Path, options: CameraOptions, keep: KeepOptions, mqtt: MqttOptions, rule: dict) -> DeviceSpec:
    """The command line's one camera and one region (`rule`: threshold, unsure, ood_threshold)."""
    region = single_region(model, options, keep, **rule)
    camera = CameraSpec(
        DEFAULT_CAMERA, options.source, options.loop, options.realtime, options.max_reconnects, (region,)
    )
    return DeviceSpec((camera,), options.serve, options.stall, mqtt)


# The keys a file may hold, with the type each must have (bool before int: TOML's true is not a number).
SERVE_KEYS = {"address": str, "stall": float}
MQTT_KEYS = {"url": str, "topic": str, "publish": str, "password_file": str, "ca": str, "discovery": str}
CAMERA_KEYS = {"name": str, "source": str, "loop": bool, "realtime": bool, "max_reconnects": int, "regions": list}
REGION_KEYS = {
    "name": str, "model": str, "roi": list, "smooth": int, "top_k": int, "threshold": float, "unsure": bool,
    "ood_threshold": float, "keep": str, "keep_interval": float, "keep_sample": float, "keep_margin": float,
    "keep_max": int, "min_free": float,
}  # fmt: skip
TOP_KEYS = {"serve": dict, "mqtt": dict, "cameras": list}


class _Reader:
    """Checks one parsed file, naming the file and the key in every error."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str, hint: str = HINT) -> EdgetlError:
        return EdgetlError(f"{self.path}: {key}: {problem}.", hint)

    def table(self, value: Any, key: str, allowed: dict[str, type]) -> dict[str, Any]:
        """A TOML table whose keys are all known and whose values have the expected types."""
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, got {_kind(value)}")
        for name, item in value.items():
            where = f"{key}.{name}" if key else name
            if name not in allowed:
                raise self.fail(where, f"unknown key (expected one of: {', '.join(allowed)})")
            expected = allowed[name]
            ok = isinstance(item, expected) and not (expected in (int, float) and isinstance(item, bool))
            if expected is float and isinstance(item, int) and not isinstance(item, bool):
                ok = True  # 10 where 10.0 is meant
            if not ok:
                raise self.fail(where, f"expected {expected.__name__}, got {_kind(item)}")
        return value

    def name(self, value: Any, key: str, taken: set[str]) -> str:
        if not isinstance(value, str) or not NAME.fullmatch(value):
            raise self.fail(key, f"{value!r} is not a name (1–32 letters, digits, _ and -)")
        if value in taken:
            raise self.fail(key, f"the name {value!r} is used twice", "Give each camera, and each region of a camera, "
                            "its own name: it is their MQTT topic, metric label and JSON key.")  # fmt: skip
        taken.add(value)
        return value

    def region(self, value: Any, key: str, taken: set[str]) -> RegionSpec:
        region = self.table(value, key, REGION_KEYS)
        if "model" not in region:
            raise self.fail(f"{key}.model", "missing (every region names its .tflite model)")
        model = self.path.parent / region["model"]  # relative to the file, as a unit file's paths would be
        if not model.is_file():
            raise self.fail(f"{key}.model", f"{model} does not exist", "Give the path of a .tflite file.")
        roi = None
        if "roi" in region:
            values = region["roi"]
            if len(values) != 4 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                raise self.fail(f"{key}.roi", f"expected four numbers [x, y, w, h], got {values!r}")
            roi = Region.parse(",".join(str(v) for v in values), option=f"{self.path}: {key}.roi")
        keep_values = {k: region[k] for k in ("keep_interval", "keep_sample", "keep_margin", "keep_max", "min_free")
                       if k in region}  # fmt: skip
        keep_folder = self.path.parent / region["keep"] if "keep" in region else None
        try:
            keep = KeepOptions(keep=keep_folder, **keep_values)
            spec = RegionSpec(
                self.name(region.get("name"), f"{key}.name", taken),
                model,
                roi,
                **{k: region[k] for k in ("smooth", "top_k", "threshold", "unsure", "ood_threshold") if k in region},
                keep=keep,
            )
        except EdgetlError as error:
            raise self.fail(key, error.message.rstrip("."), error.hint or HINT) from None
        if spec.smooth < 1 or spec.top_k < 1:
            raise self.fail(key, "smooth and top_k must be at least 1")
        return spec

    def camera(self, value: Any, key: str, taken: set[str]) -> CameraSpec:
        camera = self.table(value, key, CAMERA_KEYS)
        name = self.name(camera.get("name"), f"{key}.name", taken)
        if "regions" not in camera:
            raise self.fail(f"{key}.regions", "missing: give each camera its [[cameras.regions]], a model each")
        regions = camera["regions"]
        if not regions or len(regions) > MAX_REGIONS:
            raise self.fail(f"{key}.regions", f"expected 1 to {MAX_REGIONS} regions, got {len(regions)}")
        names: set[str] = set()
        specs = tuple(self.region(region, f"{key}.regions[{i}]", names) for i, region in enumerate(regions))
        options = {k: camera[k] for k in ("source", "loop", "realtime", "max_reconnects") if k in camera}
        if options.get("max_reconnects", 0) < 0:
            raise self.fail(f"{key}.max_reconnects", "expected 0 or more")
        return CameraSpec(name, **options, regions=specs)


def read_device_file(path: Path) -> DeviceSpec:
    """The device file, checked whole: cameras, regions, models, keep folders, page and broker."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise EdgetlError(
            f"Cannot read the device file {path}: {error.strerror}.", "Check the --config path."
        ) from None
    except UnicodeDecodeError:
        raise EdgetlError(f"{path} is not UTF-8 text.", "Save the device file as UTF-8 TOML.") from None
    except tomllib.TOMLDecodeError as error:  # its message names the line and column
        raise EdgetlError(f"{path} is not valid TOML: {error}.", HINT) from None
    reader = _Reader(path)
    reader.table(document, "", TOP_KEYS)
    cameras = document.get("cameras", [])
    if not cameras or len(cameras) > MAX_CAMERAS:
        raise reader.fail("cameras", f"expected 1 to {MAX_CAMERAS} [[cameras]] tables, got {len(cameras)}")
    taken: set[str] = set()
    specs = tuple(reader.camera(camera, f"cameras[{i}]", taken) for i, camera in enumerate(cameras))
    _check_keep_folders(reader, specs)
    serve = reader.table(document.get("serve", {}), "serve", SERVE_KEYS)
    if "serve" in document and "address" not in serve:
        raise reader.fail("serve.address", 'missing (HOST:PORT, e.g. "127.0.0.1:8080")')
    return DeviceSpec(
        specs, serve.get("address"), float(serve.get("stall", CameraOptions.stall)), _mqtt(reader, document), str(path)
    )


def _mqtt(reader: _Reader, document: dict) -> MqttOptions:
    if "mqtt" not in document:
        return MqttOptions()
    mqtt = reader.table(document["mqtt"], "mqtt", MQTT_KEYS)
    if "url" not in mqtt:
        raise reader.fail("mqtt.url", 'missing (e.g. "mqtt://127.0.0.1:1883")')
    base = reader.path.parent
    values = {
        "mqtt": mqtt["url"],
        "mqtt_topic": mqtt.get("topic"),
        "mqtt_publish": mqtt.get("publish", MqttOptions.mqtt_publish),
        "mqtt_password_file": base / mqtt["password_file"] if "password_file" in mqtt else None,
        "mqtt_ca": base / mqtt["ca"] if "ca" in mqtt else None,
        "mqtt_discovery": mqtt.get("discovery", MqttOptions.mqtt_discovery),
    }
    try:
        return MqttOptions(**values)
    except EdgetlError as error:
        raise reader.fail("mqtt", error.message.rstrip("."), error.hint or HINT) from None


def _check_keep_folders(reader: _Reader, cameras: tuple[CameraSpec, ...]) -> None:
    """Two regions keeping into one folder would mix their frames (and their sidecars' region)."""
    seen: dict[Path, str] = {}
    for camera in cameras:
        for region in camera.regions:
            if region.keep.keep is None:
                continue
            folder, key = region.keep.keep.resolve(), f"{camera.name}/{region.name}"
            if folder in seen:
                raise reader.fail(
                    f"{key}.keep",
                    f"{folder} is also where {seen[folder]} keeps frames",
                    "Give each region its own folder.",
                )
            seen[folder] = key


def file_overrides(values: dict[str, Any]) -> list[str]:
    """The command-line options a device file sets (per camera or region), given anyway: each is taken from one
    place, so these are refused rather than silently overriding one another."""
    defaults = {f.name: f.default for f in fields(CameraOptions)} | {f.name: f.default for f in fields(KeepOptions)}
    defaults |= {f.name: f.default for f in fields(MqttOptions)}
    defaults |= {"threshold": None, "unsure": False, "ood_threshold": None}
    per_file = [*CAMERA_KEYS, *REGION_KEYS, "serve", "stall", "keep", *(f.name for f in fields(MqttOptions))]
    return [f"--{name.replace('_', '-')}" for name in per_file if name in values and values[name] != defaults.get(name)]


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "text", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)  # fmt: skip
