"""Transfer learning really transfers: real ImageNet weights beat random initialisation on real photos.

Uses ../shared/keras/models (MobileNetV2 0.35 ImageNet weights) and ../shared/datasets/beans, through
symlinks to a small, fixed subset so that it runs in about a minute on two cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from conftest import shared_path
from edgetl.rundir import RunInfo
from edgetl.train.config import TrainConfig
from edgetl.train.run import train

PER_SPLIT = {"train": 30, "validation": 15, "test": 30}


def _beans_subset(target: Path) -> Path:
    beans = shared_path("datasets", "beans")
    for split, count in PER_SPLIT.items():
        for class_dir in sorted((beans / split).iterdir()):
            if not class_dir.is_dir():
                continue
            (target / split / class_dir.name).mkdir(parents=True)
            for image in sorted(class_dir.glob("*.jpg"))[:count]:
                (target / split / class_dir.name / image.name).symlink_to(image)
    return target


def test_imagenet_weights_beat_random_initialisation(keras_home: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    data = _beans_subset(tmp_path / "beans")
    budget = {"alpha": 0.35, "size": 96, "batch_size": 16, "head_epochs": 12, "finetune_epochs": 0, "patience": 12}
    accuracy = {}
    for weights in ("imagenet", "none"):
        out = train(data, tmp_path / weights, TrainConfig(weights=weights, **budget), console=Console(quiet=True))
        run = RunInfo.load(out)
        assert run.data.counts == {"train": 90, "validation": 45, "test": 90}
        accuracy[weights] = run.metrics.test_top1
    assert RunInfo.load(tmp_path / "imagenet").model.weights_file.endswith("0.35_224_no_top.h5")
    assert accuracy["imagenet"] >= 0.5, accuracy  # chance is 0.33
    assert accuracy["imagenet"] >= accuracy["none"] + 0.15, accuracy


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
