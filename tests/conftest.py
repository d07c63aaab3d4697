"""Shared fixtures. Real data comes from ../shared (or $EDGETL_SHARED), never from the network."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="edgetl-test-cache-")  # the scan cache: not the user's

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGETL_SHARED", REPO.parent / "shared")).resolve()


def shared_path(*parts: str) -> Path:
    """A path inside ../shared; fails (in CI) or skips (elsewhere) with a clear reason when missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        message = f"real data missing: {path} (set EDGETL_SHARED to the folder that holds datasets/ and keras/)"
        if os.environ.get("EDGETL_REQUIRE_SHARED"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def keras_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary KERAS_HOME whose models/ holds the ImageNet MobileNetV2 weights from ../shared."""
    source = shared_path("keras", "models")
    home = tmp_path_factory.mktemp("keras_home")
    shutil.copytree(source, home / "models")
    return home


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in generated dataset, small: 4 classes × 24 images."""
    from edgetl.train.sample import make_sample_dataset

    return make_sample_dataset(tmp_path_factory.mktemp("sample"), per_class=24, size=96)


TINY = {"alpha": 0.35, "size": 64, "batch_size": 16, "head_epochs": 2, "finetune_epochs": 2}  # + weights


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A no-top MobileNetV2 0.35 weights file with random values, for TINY's `weights`.

    It takes the path every user takes (a pretrained, frozen backbone: phase 2 on the boundary cache) without
    a download or ../shared, and trains in a third of the time of `--weights none`, whose whole backbone trains.
    """
    import keras

    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2_0.35_no_top.weights.h5"
    backbone = keras.applications.MobileNetV2(input_shape=(64, 64, 3), alpha=0.35, include_top=False, weights=None)
    backbone.save_weights(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_run(sample_data: Path, tiny_weights: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run directory: MobileNetV2 0.35 at 64 px, random weights, trained a little on sample_data.

    Read-only for tests: copy it (`copy_run`) before writing into it."""
    from rich.console import Console

    from edgetl.train.config import TrainConfig
    from edgetl.train.run import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    return train(sample_data, out, TrainConfig(**TINY, weights=tiny_weights), console=Console(quiet=True))


@pytest.fixture(scope="session")
def efficientnet_run(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """EfficientNetB0 (swish, squeeze-and-excite) at 32 px, random weights: phase 1 end to end through augmented
    images (no feature cache), no fine-tuning. Shared by the training and the conversion test."""
    from rich.console import Console

    from edgetl.train.config import TrainConfig
    from edgetl.train.run import train

    changes = {"backbone": "efficientnet_b0", "weights": "none", "size": 32, "feature_cache": False}
    config = TrainConfig(**{**TINY, **changes, "head_epochs": 1, "finetune_epochs": 0})
    return train(sample_data, tmp_path_factory.mktemp("runs") / "eff", config, console=Console(quiet=True))


def copy_run(run: Path, destination: Path) -> Path:
    shutil.copytree(run, destination)
    return destination


LOOSE = {"max_drop": 100.0, "calibration_samples": 40}  # tiny random-init models: test the mechanics


@pytest.fixture(scope="session")
def converted(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A copy of `tiny_run` converted to every format: (run directory, conversion report)."""
    from rich.console import Console

    from edgetl.convert.options import ConvertOptions
    from edgetl.convert.run import convert

    run = copy_run(tiny_run, tmp_path_factory.mktemp("convert") / "run")
    options = ConvertOptions(formats=("int8", "float32", "fp16", "dynamic"), **LOOSE)
    return run, convert(run, options, console=Console(quiet=True))


@pytest.fixture(scope="session")
def beans_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real dataset: 12 beans photos per class and split from ../shared, linked, not copied."""
    source = shared_path("datasets", "beans")
    root = tmp_path_factory.mktemp("beans_subset")
    for split in ("train", "validation", "test"):
        for folder in sorted((source / split).iterdir()):
            (root / split / folder.name).mkdir(parents=True)
            for image in sorted(folder.iterdir())[:12]:
                (root / split / folder.name / image.name).symlink_to(image)
    return root


# MobileNetV2 0.35 from the ImageNet weights in ../shared at 96 px: 20 cached head epochs (sub-second each;
# with 8 the model sat near chance on 36 test images), one fine-tuning epoch on the boundary cache.
PRETRAINED = {"alpha": 0.35, "size": 96, "batch_size": 16, "head_epochs": 20, "finetune_epochs": 1}


@pytest.fixture(scope="session")
def imagenet_weights(keras_home: Path) -> str:
    return str(keras_home / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5")


@pytest.fixture(scope="session")
def beans_run(beans_subset: Path, imagenet_weights: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real transfer-learning run (PRETRAINED, float32) on `beans_subset`. Read-only: `copy_run` it first."""
    from rich.console import Console

    from edgetl.train.config import TrainConfig
    from edgetl.train.run import train

    config = TrainConfig(**PRETRAINED, weights=imagenet_weights, mixed_precision=False)
    return train(beans_subset, tmp_path_factory.mktemp("runs") / "beans", config, console=Console(quiet=True))


@pytest.fixture(scope="session")
def beans_int8(beans_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of `beans_run` converted to int8: a real model that knows three classes and rejects others."""
    from rich.console import Console

    from edgetl.convert.options import ConvertOptions
    from edgetl.convert.run import convert

    run = copy_run(beans_run, tmp_path_factory.mktemp("open_world") / "beans")
    options = ConvertOptions(formats=("int8",), calibration_samples=36, repair=False)  # rejection is tested, not repair
    convert(run, options, console=Console(quiet=True))
    return run


class Process:
    """`edgetl ARGS` in a fresh process, its output read line by line as it comes (for signal tests)."""

    def __init__(self, *args: str, env: dict | None = None, cwd: Path | None = None) -> None:
        import subprocess
        import sys
        import threading
        import time

        self.lines: list[str] = []
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from edgetl.cli import run; import sys; sys.argv[0] = 'edgetl'; run()", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **(env or {})},
        )
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 180) -> None:
        import time

        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"never printed {text!r}:\n{self.output[-3000:]}")
            time.sleep(0.05)

    def finish(self, timeout: float = 300) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code
