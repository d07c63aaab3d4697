"""Does storing the activation cache in float16 change a result? Test top-1, float32 cache against float16.

    python benchmarks/cache_precision.py                    # beans and flowers, seeds 1 2 3, 0.35 @ 160
    python benchmarks/cache_precision.py --alpha 1.0 --size 224 --datasets beans

Each (dataset, seed) is trained twice, alike but for `train.boundary.CACHE_DTYPE`, in this process, with the
ImageNet backbone from ../shared loaded by path. Then the float16 run of seed 1 is trained again to show the
run still repeats exactly (same seed, same model). Prints one table: test top-1 per run, the difference per
seed and its median and range, the cache's size on disk, and the repeat check.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from shared_data import SHARED


def weights_file(alpha: float) -> Path:
    return SHARED / "keras" / "models" / f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha:g}_224_no_top.h5"


def one_run(data: Path, out: Path, config, dtype) -> dict:
    """Train once with the cache stored as `dtype`; its test top-1, cache bytes and model digest."""
    from rich.console import Console

    from edgetl.rundir import RunInfo
    from edgetl.train import boundary
    from edgetl.train.run import train

    boundary.CACHE_DTYPE = dtype
    sizes = []
    fill = boundary._fill  # noqa: SLF001 - the benchmark notes each cache file's size as it is written

    def noted(bottom, datasets, path, rows, tick):
        labels = fill(bottom, datasets, path, rows, tick)
        sizes.append(path.stat().st_size)
        return labels

    boundary._fill = noted  # noqa: SLF001
    started = time.perf_counter()
    try:
        run = train(data, out, config, console=Console(quiet=True))
    finally:
        boundary._fill = fill  # noqa: SLF001
    import keras

    weights = keras.saving.load_model(run / "model.keras").get_weights()  # the file's zip also holds a date
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes() for w in weights)).hexdigest()[:12]
    top1 = RunInfo.load(run).metrics.test_top1
    return {"top1": top1, "cache_mb": sum(sizes) / 1e6, "seconds": time.perf_counter() - started, "model": digest}


def cast_ms(elements: int = 600_000, repeats: int = 100) -> dict[str, float]:
    """Milliseconds to turn one batch of float16 activations into float32 (MobileNetV2 1.0 @224's boundary,
    14×14×96, 32 images: 600,000 values): NumPy's conversion against TensorFlow's cast, which training uses."""
    import tensorflow as tf

    half = np.random.default_rng(0).random(elements).astype(np.float16)
    cast = tf.function(lambda x: tf.cast(x, tf.float32))
    tensor = tf.constant(half)
    cast(tensor)
    timings = {}
    for name, convert in (("numpy", lambda: half.astype(np.float32)), ("tensorflow", lambda: cast(tensor))):
        started = time.perf_counter()
        for _ in range(repeats):
            convert()
        timings[name] = 1000 * (time.perf_counter() - started) / repeats
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["beans", "flowers"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--alpha", type=float, default=0.35)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--cast-only", action="store_true", help="Only time the float16 → float32 conversion.")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from rich.console import Console
    from rich.table import Table

    from edgetl.train.config import TrainConfig

    console = Console()
    cast = cast_ms()
    console.print(
        f"float16 → float32, 600,000 values: NumPy {cast['numpy']:.2f} ms, TensorFlow {cast['tensorflow']:.2f} ms"
    )
    if args.cast_only:
        return
    work, console = Path(tempfile.mkdtemp(prefix="edgetl-cache-precision-")), Console()
    table = Table(title=f"MobileNetV2 {args.alpha:g} @ {args.size}, defaults otherwise: test top-1 by cache type")
    for column in ("dataset", "seed", "float32 cache", "float16 cache", "float16 − float32", "cache MB 32 → 16"):
        table.add_column(column)
    for name in args.datasets:
        differences = []
        for seed in args.seeds:
            config = TrainConfig(alpha=args.alpha, size=args.size, seed=seed, weights=str(weights_file(args.alpha)))
            runs = {dtype.__name__: one_run(SHARED / "datasets" / name, work / f"{name}-{seed}-{dtype.__name__}",
                                            config, dtype) for dtype in (np.float32, np.float16)}  # fmt: skip
            difference = runs["float16"]["top1"] - runs["float32"]["top1"]
            differences.append(difference)
            console.print(f"{name} seed {seed}: {runs}")
            sizes = f"{runs['float32']['cache_mb']:.0f} → {runs['float16']['cache_mb']:.0f}"
            table.add_row(name, str(seed), f"{runs['float32']['top1']:.2%}", f"{runs['float16']['top1']:.2%}",
                          f"{100 * difference:+.2f} pt", sizes)  # fmt: skip
            if seed == args.seeds[0]:
                again = one_run(SHARED / "datasets" / name, work / f"{name}-{seed}-again", config, np.float16)
                same = again["model"] == runs["float16"]["model"]
                console.print(f"{name} seed {seed}, float16 again: {'the same model' if same else 'A DIFFERENT MODEL'}")
        median = statistics.median(differences)
        table.add_row(name, "median", "", "", f"{100 * median:+.2f} pt ({100 * min(differences):+.2f} to "
                      f"{100 * max(differences):+.2f})", "")  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
