"""Training's calibration and rejection rule, typed: written by `edgetl train` (train/open_world.py) into
edgetl.json, refitted per file by `edgetl convert`, packed into every `.tflite`'s model card and read on the
device. No TensorFlow here. On disk it is the JSON object models converted by edgetl 0.2.0 carry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from edgetl.metrics import retention_threshold


@dataclass(frozen=True)
class OODRule:
    """A frame whose out-of-distribution score is above `threshold` is "unknown" (none of the classes)."""

    threshold: float
    method: str = "nearest-prototype"
    retention: float | None = None
    """Share of in-class validation images the threshold keeps (training fits it so)."""
    prototypes: int | None = None
    """Prototypes the score compares with (k-means centres of the training features)."""
    float_threshold: float | None = None
    """In a converted file: the float model's threshold, before it was refitted to this file's scores."""
    headroom: float | None = None
    """The threshold is this many times the score `retention` of validation stays under (None: 1, as in 0.2)."""
    other_photos: int | None = None
    """Photos of none of the classes the threshold was placed with (None: fitted on the classes alone)."""

    @classmethod
    def fit(cls, validation: np.ndarray, retention: float, headroom: float, **fields: Any) -> OODRule:
        """The rule whose threshold keeps `retention` of these in-class scores, times `headroom`."""
        threshold = headroom * retention_threshold(validation, retention)
        return cls(threshold, retention=retention, headroom=headroom, **fields)

    @classmethod
    def placed(cls, threshold: float, validation: np.ndarray, **fields: Any) -> OODRule:
        """A threshold chosen with other photos, stated as the retention and headroom that give it on these
        in-class scores, so that `refit` moves it with a converted file's scores as it moves a fitted one."""
        retention = float(np.mean(validation <= threshold))
        headroom = max(1.0, threshold / max(retention_threshold(validation, retention), 1e-12))
        return cls(threshold, retention=retention, headroom=min(round(headroom, 6), 100.0), **fields)

    def refit(self, validation: np.ndarray) -> float:
        """This rule's threshold for another model's scores of the same images (a converted file's)."""
        return (self.headroom or 1.0) * retention_threshold(validation, self.retention)

    def to_json(self) -> dict[str, Any]:
        fields = {"method": self.method, "threshold": self.threshold, "retention": self.retention}
        fields |= {"prototypes": self.prototypes, "float_threshold": self.float_threshold, "headroom": self.headroom}
        fields |= {"other_photos": self.other_photos}
        return {key: value for key, value in fields.items() if value is not None}


@dataclass(frozen=True)
class UnknownMeasured:
    """Both sides of "unknown" on held-out photos, as the program that wrote the card measured them: training on
    the float model, `edgetl convert` on the file itself."""

    in_class_decided: float
    """Share of held-out in-class test photos decided as a class (not "unknown")."""
    in_class_photos: int
    other_unknown: float | None = None
    """Share of held-out "other" photos (none of the classes) called "unknown"; None: none were given."""
    other_photos: int = 0

    @classmethod
    def of(cls, inside: np.ndarray, other: np.ndarray | None, threshold: float) -> UnknownMeasured:
        """Both shares from OOD scores: in-class photos at or under `threshold`, other photos over it."""
        if other is None or not len(other):
            return cls(float(np.mean(inside <= threshold)), len(inside))
        return cls(float(np.mean(inside <= threshold)), len(inside), float(np.mean(other > threshold)), len(other))

    def to_json(self) -> dict[str, Any]:
        fields = {"in_class_decided": self.in_class_decided, "in_class_photos": self.in_class_photos}
        return fields | (
            {"other_unknown": self.other_unknown, "other_photos": self.other_photos} if self.other_photos else {}
        )

    @classmethod
    def from_json(cls, value: object) -> UnknownMeasured | None:
        if value is None:
            return None
        shares = ("in_class_decided", "other_unknown")
        counts = ("in_class_photos", "other_photos")
        if (
            not isinstance(value, dict)
            or not all(value.get(key) is None or _is_number(value[key], 0.0, 1.0) for key in shares)
            or not all(isinstance(value.get(key, 0), int) and value.get(key, 0) >= 0 for key in counts)
            or value.get("in_class_decided") is None
        ):
            raise ValueError("the measured 'unknown' shares are not shares and photo counts")
        return cls(value["in_class_decided"], value.get("in_class_photos", 0), value.get("other_unknown"),
                   value.get("other_photos", 0))  # fmt: skip


@dataclass(frozen=True)
class OpenWorldCard:
    """Temperature for calibrated probabilities, the OOD rule, and per-class probability thresholds."""

    temperature: float | None = None
    ood: OODRule | None = None
    class_thresholds: list[float | None] | None = None
    """Per class: top-1 probability below it → not sure enough of that class (None: no threshold)."""
    target_precision: float | None = None
    """The precision the class thresholds were fitted for, on validation."""
    measured: UnknownMeasured | None = None
    """What the rule does on held-out photos of the classes and of none of them."""

    def refitted(self, threshold: float) -> OpenWorldCard:
        """The same card with the OOD threshold refitted to one file's scores; the float one kept beside it."""
        ood = self.ood or OODRule(threshold)
        return replace(self, ood=replace(ood, threshold=threshold, float_threshold=ood.threshold))

    def to_json(self) -> dict[str, Any]:
        fields = {
            "temperature": self.temperature,
            "ood": self.ood.to_json() if self.ood else None,
            "class_thresholds": self.class_thresholds,
            "target_precision": self.target_precision,
            "measured": self.measured.to_json() if self.measured else None,
        }
        return {key: value for key, value in fields.items() if value is not None}

    @classmethod
    def from_json(cls, value: object, classes: int | None = None) -> OpenWorldCard:
        """The card, checked field by field (it comes from a file): ValueError says which field is wrong."""
        if not isinstance(value, dict):
            raise ValueError("the open_world entry is not a JSON object")
        temperature = value.get("temperature")
        if temperature is not None and not _is_number(temperature, 1e-6):
            raise ValueError(f"the temperature {temperature!r} is not a positive number")
        thresholds = value.get("class_thresholds")
        if thresholds is not None and (
            not isinstance(thresholds, list)
            or (classes is not None and len(thresholds) != classes)
            or not all(t is None or _is_number(t, 0.0, 1.0) for t in thresholds)
        ):
            raise ValueError(f"the class thresholds are not {classes or 'the'} probabilities, one per label")
        precision = value.get("target_precision")
        if precision is not None and not _is_number(precision, 0.0, 1.0):
            raise ValueError(f"the target precision {precision!r} is not a probability")
        measured = UnknownMeasured.from_json(value.get("measured"))
        return cls(temperature, _ood_rule(value.get("ood")), thresholds, precision, measured)


def _ood_rule(value: object) -> OODRule | None:
    if value is None or value == {}:
        return None
    if not isinstance(value, dict) or not _is_number(value.get("threshold")):
        raise ValueError("the OOD threshold is not a number")
    optional = {"retention": (0.0, 1.0), "prototypes": (0, math.inf), "float_threshold": (-math.inf, math.inf)}
    optional["headroom"] = (1.0, 100.0)
    optional["other_photos"] = (0, math.inf)
    for key, (low, high) in optional.items():
        if value.get(key) is not None and not _is_number(value[key], low, high):
            raise ValueError(f"the OOD rule's {key} {value[key]!r} is not a number in range")
    method = value.get("method", "nearest-prototype")
    if not isinstance(method, str):
        raise ValueError(f"the OOD method {method!r} is not a name")
    fields = {key: value.get(key) for key in optional}
    return OODRule(value["threshold"], method, **fields)


def _is_number(value: object, low: float = -math.inf, high: float = math.inf) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high
