"""One result, one shape: a camera JSON line, the MQTT state, a keep sidecar, /stats and collect.jsonl's
model fields name every field of a result the same way (edge/result.py; the README's table)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from edgetl.edge.camera import ResultLines
from edgetl.edge.capture import Frame
from edgetl.edge.keep import Keeper, KeepOptions
from edgetl.edge.label import Labeller
from edgetl.edge.mqtt import state
from edgetl.edge.result import ClassScore, Prediction, Result

README = Path(__file__).resolve().parents[1] / "README.md"


def a_result() -> Result:
    top = (ClassScore("healthy", 0.512345678), ClassScore("bean_rust", 0.4))
    prediction = Prediction(top, "unknown", ood_score=1.23456789, under_threshold=True, margin=0.11)
    latency = {"capture_wait": 1.234, "preprocess": 0.5, "inference": 2.0, "postprocess": 0.1}
    return Result(
        7, time.time(), prediction, latency, 12.3456, "0123456789abcdef", "v2 now", camera="garage", region="door"
    )


def test_every_writer_uses_the_result_shape(tmp_path: Path) -> None:
    result = a_result()
    shape = result.as_dict()
    assert set(shape) == {"time", "camera", "region", "frame", "model", "model_version", "decision", "labels",
                          "scores", "unknown", "ood_score", "latency_ms", "age_ms"}  # fmt: skip

    lines = ResultLines(str(tmp_path / "results.jsonl"))
    assert lines.write(shape)
    lines.close()
    json_line = json.loads((tmp_path / "results.jsonl").read_text())
    mqtt_state = json.loads(json.dumps(state(result)))

    kept = tmp_path / "kept"
    keeper = Keeper(KeepOptions(keep=kept, keep_interval=0, min_free=0), "test", lambda line: None)
    keeper.on_result(result, Frame(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8), 7, 0.0))
    keeper.close()
    [sidecar_file] = kept.glob("*.json")
    sidecar = json.loads(sidecar_file.read_text())

    for record in (json_line, mqtt_state, sidecar):
        assert {key: record[key] for key in shape} == json.loads(json.dumps(shape))  # the same names and values

    data = tmp_path / "data"
    Labeller(kept, data).label([sidecar_file.with_suffix(".jpg").name], "healthy")
    logged = json.loads((data / "collect.jsonl").read_text())
    assert all(logged["result"][key] == sidecar[key] for key in logged["result"]) and "decision" in logged["result"]


def test_the_readme_documents_every_field() -> None:
    text = README.read_text()
    table = text[text.index("### One result, one shape") :]
    for key in a_result().as_dict():
        assert f"| `{key}` |" in table, key
