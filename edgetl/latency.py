"""Device latency profiles: which model configurations were timed on a device, and how fast they ran there.

A profile folder holds candidate int8 `.tflite` models (random weights: latency does not depend on them)
and `profile.json`, naming each file's configuration. `edgetl profile` writes it on the training machine;
`edgetl bench DIR` times it on the device like any model, and the `bench.json` it writes is the device
profile `edgetl train --max-latency MS --device-profile bench.json` reads. No TensorFlow here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from edgetl.backbones import BACKBONES, backbone_spec
from edgetl.bench_record import BenchRow
from edgetl.errors import EdgetlError

PROFILE_FILE = "profile.json"
PROFILE_CLASSES = 5  # classes of the profiled models' head: its share of the latency is negligible


@dataclass(frozen=True)
class Candidate:
    """One configuration edgetl can train: what the search varies."""

    backbone: str
    alpha: float
    size: int

    @property
    def name(self) -> str:
        return backbone_spec(self.backbone).file_stem(self.alpha, self.size)

    def describe(self) -> str:
        return backbone_spec(self.backbone).describe(self.alpha, self.size)


def default_candidates() -> list[Candidate]:
    """Every backbone at each of its widths and profile sizes (MobileNetV2: 6 × 5, EfficientNetB0: 1)."""
    return [
        Candidate(spec.name, alpha, size)
        for spec in BACKBONES.values()
        for alpha in spec.widths
        for size in spec.profile_sizes
    ]


def manifest(candidates: list[Candidate]) -> dict:
    """What `profile.json` holds."""
    return {"profile_version": 1, "models": {f"{c.name}.tflite": asdict(c) for c in candidates}}


def read_manifest(folder: Path) -> dict[str, Candidate]:
    """{file name: configuration} of a profile folder."""
    try:
        models = json.loads((folder / PROFILE_FILE).read_text())["models"]
        return {name: Candidate(**config) for name, config in models.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise EdgetlError(
            f"{folder / PROFILE_FILE} is not a profile manifest ({type(error).__name__}).",
            "Write the profile again with `edgetl profile --out DIR --force`.",
        ) from None


def is_profile(folder: Path) -> bool:
    return folder.is_dir() and (folder / PROFILE_FILE).is_file()


@dataclass(frozen=True)
class Profiled:
    candidate: Candidate
    median_ms: float
    threads: int


def camera_threads(cores: int) -> int:
    """The thread count `edgetl camera` gives the interpreter by default: one core stays for capture."""
    return max(cores - 1, 1)


def profiled_latencies(bench_json: Path) -> tuple[list[Profiled], dict]:
    """(candidates and their median int8 latency at the camera's thread count, the device's environment)."""
    try:
        report = json.loads(Path(bench_json).read_text())
        rows = [row for row in map(BenchRow.from_json, report["models"]) if row.candidate and row.latency]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise EdgetlError(
            f"{bench_json} is not a device profile ({type(error).__name__}).",
            "Pass the bench.json that `edgetl bench PROFILE_DIR` wrote (PROFILE_DIR from `edgetl profile`).",
        ) from None
    if not rows:
        raise EdgetlError(
            f"{bench_json} times no profile candidates.", "Run `edgetl bench PROFILE_DIR` on the device first."
        )
    environment = report.get("environment", {})
    wanted = camera_threads(int(environment.get("cores") or 1))
    profiled = []
    for row in rows:
        measured = {int(t): stats.median_ms for t, stats in row.latency.items()}
        threads = wanted if wanted in measured else min(measured, key=lambda t: abs(t - wanted))
        profiled.append(Profiled(Candidate(**row.candidate), measured[threads], threads))
    return profiled, environment
