"""The first GPU's check, in one run: train beans twice with the same seed (defaults: mixed precision and
determinism on, as on a GPU), convert the first run to int8, and print what a person needs to trust the GPU
path: each phase's time, peak GPU memory, test top-1 float and int8, whether the two runs are bit-identical,
and any op TensorFlow says has no deterministic GPU kernel. Exit 0 only when everything held.

    bash benchmarks/gpu_check.sh                       # on a GPU machine: installs, then runs this
    python benchmarks/gpu_check.py --cpu --quick       # the same path, small, on CPU (CI runs it: it cannot rot)

Data and weights: `--data` (default ../shared/datasets/beans) and `--weights` (default: Keras' ImageNet file,
from $KERAS_HOME or ../shared/keras/models when there, else Keras' download).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

QUICK = {"alpha": 0.35, "size": 48, "batch_size": 8, "head_epochs": 1, "finetune_epochs": 1}  # + a small subset
QUICK_PER_CLASS = 6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="Hide every GPU (the CI mode).")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_PER_CLASS} photos per class and split, {QUICK}.")
    parser.add_argument("--data", type=Path, default=None, help="A beans-like dataset (default: ../shared's beans).")
    parser.add_argument("--weights", default=None, help="A no-top MobileNetV2 .h5 (default: imagenet).")
    parser.add_argument("--out", type=Path, default=None, help="Where the two runs go (default: a temporary folder).")
    args = parser.parse_args()
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # before TensorFlow is imported
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from shared_data import SHARED, use_shared_keras_weights

    use_shared_keras_weights()
    data = args.data or SHARED / "datasets" / "beans"
    if not data.is_dir():
        print(f"error: no dataset at {data}: pass --data DIR (e.g. a copy of ../shared/datasets/beans)")
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix="edgetl-gpu-check-"))
    if args.quick:
        data = subset(data, out / "data", QUICK_PER_CLASS)
    return check(data, out, args)


def subset(source: Path, target: Path, per_class: int) -> Path:
    """The first `per_class` photos of each class and split, linked (not copied)."""
    for split in sorted(p for p in source.iterdir() if p.is_dir()):
        for folder in sorted(p for p in split.iterdir() if p.is_dir()):
            (target / split.name / folder.name).mkdir(parents=True, exist_ok=True)
            for image in sorted(folder.iterdir())[:per_class]:
                (target / split.name / folder.name / image.name).symlink_to(image.resolve())
    return target


def check(data: Path, out: Path, args: argparse.Namespace) -> int:
    import numpy as np
    import tensorflow as tf
    from rich.console import Console

    from edgetl.convert.options import ConvertOptions
    from edgetl.convert.run import convert
    from edgetl.rundir import RunInfo, read_json
    from edgetl.train.config import TrainConfig
    from edgetl.train.run import train

    gpus = tf.config.list_physical_devices("GPU")
    print(f"TensorFlow {tf.__version__}; GPUs: {[gpu.name for gpu in gpus] or 'none'}; data {data}")
    if not gpus and not args.cpu:
        print("error: TensorFlow sees no GPU (pass --cpu to run the check on the CPU)")
        return 1
    changes = {**(QUICK if args.quick else {}), **({"weights": args.weights} if args.weights else {})}
    config = TrainConfig(**changes)  # mixed precision (on with a GPU) and determinism: the defaults
    console, runs, problems = Console(quiet=True), [], []
    for number in (1, 2):
        started = time.perf_counter()
        try:
            runs.append(train(data, out / f"run{number}", config, force=True, console=console))
        except Exception as error:  # an op with no deterministic GPU kernel raises here, and names itself
            print(f"run {number} failed: {type(error).__name__}: {str(error).splitlines()[0][:500]}")
            if "determinis" in str(error).lower():
                problems.append("an op has no deterministic GPU kernel (above)")
            return 1
        info = RunInfo.load(runs[-1])
        seconds = ", ".join(f"{phase} {value:.1f} s" for phase, value in info.training.seconds.items())
        print(f"run {number}: {time.perf_counter() - started:.1f} s end to end ({seconds}); "
              f"mixed precision {info.training.mixed_precision}; test top-1 {info.metrics.test_top1:.1%}")  # fmt: skip
        if gpus:
            peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
            print(f"run {number}: peak GPU memory {peak / 2**20:.0f} MiB")
            tf.config.experimental.reset_memory_stats("GPU:0")
    same = identical_weights(runs[0], runs[1], np) and read_json(runs[0] / "metrics.json") == read_json(
        runs[1] / "metrics.json"
    )
    print(f"determinism: {'held (weights and metrics identical)' if same else 'BROKEN: the two runs differ'}")
    if not same:
        problems.append("two runs with the same seed differ")
    started = time.perf_counter()
    options = ConvertOptions(**({"calibration_samples": 12, "repair": False} if args.quick else {}))
    convert(runs[0], options, console=console)
    int8 = read_json(runs[0] / "conversion.json")["models"]["int8"]
    verdict = "PASSED" if int8.get("passed", True) else "FAILED its budget"
    print(f"convert: {time.perf_counter() - started:.1f} s; test top-1 float {int8['float_top1']:.1%}, "
          f"int8 {int8['top1']:.1%} ({int8['images']} images); {verdict}")  # fmt: skip
    print("result: " + ("OK" if not problems else "FAILED: " + "; ".join(problems)))
    return 1 if problems else 0


def identical_weights(first: Path, second: Path, np) -> bool:
    """Whether the two runs' saved models hold exactly the same numbers."""
    import keras

    a, b = (keras.saving.load_model(run / "model.keras", compile=False) for run in (first, second))
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))


if __name__ == "__main__":
    sys.exit(main())
