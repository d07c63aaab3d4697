"""What the device says about one frame: the one result type, and the one JSON shape every writer uses.

`Result.as_dict()` is what JSON lines, the MQTT state, a `--keep` sidecar, `/stats` and the model fields of
`collect.jsonl` hold, field for field (README, "One result, one shape"): a writer may add fields, never
rename them. No other module of the device depends on the camera loop to read a result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edgetl.edge.capture import Frame

UNKNOWN = "unknown"  # the scene is none of the classes: the OOD score is over its threshold
UNSURE = "unsure"  # one of the classes, but the top-1 probability is under that class's threshold
SCORE_DIGITS = 5  # decimals of a probability in JSON
OOD_DIGITS = 4  # decimals of an OOD score in JSON


@dataclass(frozen=True)
class ClassScore:
    """One class and its probability."""

    label: str
    score: float


@dataclass(frozen=True)
class Prediction:
    """The top-k classes with their probabilities, and what the device decides from them."""

    top: tuple[ClassScore, ...]
    """The k most probable classes, most probable first: never replaced, whatever the decision."""
    decision: str
    """top[0].label, UNKNOWN or UNSURE."""
    ood_score: float | None = None
    """Higher = less like the training data; None for models without one."""
    under_threshold: bool = False
    """The top-1 probability is under its class's threshold (whether or not "unsure" is the decision)."""
    margin: float = 1.0
    """Top-1 minus top-2 probability: small when the model hesitates between two classes."""

    @property
    def best(self) -> ClassScore:
        return self.top[0]

    @property
    def unknown(self) -> bool:
        return self.decision == UNKNOWN

    def as_dict(self) -> dict:
        """The JSON keeps parallel lists: what a dashboard template indexes (`value_json.scores[0]`)."""
        return {
            "decision": self.decision,
            "labels": [entry.label for entry in self.top],
            "scores": [round(entry.score, SCORE_DIGITS) for entry in self.top],
            "unknown": self.unknown,
            "ood_score": None if self.ood_score is None else round(self.ood_score, OOD_DIGITS),
        }


@dataclass
class Result:
    """One frame's prediction, where it came from and what it cost."""

    frame: int  # 1, 2, 3… in capture order
    time: float  # wall clock (time.time()) when the result came out
    prediction: Prediction
    latency_ms: dict[str, float] = field(default_factory=dict)  # per stage: wait, preprocess, inference, …
    age_ms: float = 0.0  # capture → result
    model: str = ""  # the first 16 hex digits of the model file's SHA-256: which model said this
    model_version: str = ""  # the run it came from (its model card), "" when the card does not say
    camera: str = ""  # which camera of the device (the command line's one: "camera")
    region: str = ""  # which region of that camera (the command line's one: "frame")

    def as_dict(self) -> dict:
        return {
            "time": round(self.time, 3),
            "camera": self.camera,
            "region": self.region,
            "frame": self.frame,
            "model": self.model,
            "model_version": self.model_version,
            **self.prediction.as_dict(),
            "latency_ms": {key: round(value, 2) for key, value in self.latency_ms.items()},
            "age_ms": round(self.age_ms, 2),
        }


class ResultConsumer(Protocol):
    """What a result feeds (the page, MQTT, keeping, telemetry, systemd, the window): one call per result, made
    by the inference loop, so it must not block; and `close` once the run ends."""

    def on_result(self, result: Result, frame: Frame) -> None: ...

    def close(self) -> None: ...
