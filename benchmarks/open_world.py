"""Which out-of-distribution score to ship, measured: max-softmax, energy, Mahalanobis and nearest prototype.

    python benchmarks/open_world.py runs/beans --ood ../shared/datasets/flowers \\
        --ood ../shared/datasets/imagenet-samples/images

Every score comes from the run's float Keras model (pooled features and logits); thresholds are
fitted on the run's validation split only (the shipped rule: HEADROOM × the score RETENTION of in-class
validation images stay under), then
applied to the test split and to each OOD folder. Prints one table and writes open_world.json in
the run's bench/ folder. The deployed models are measured by `edgetl bench RUN --ood DIR`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from edgetl.images import list_images, load_for_model
from edgetl.metrics import auroc, ece, retention_threshold
from edgetl.rundir import RunInfo, write_json
from edgetl.train.open_world import (
    HEADROOM,
    PROTOTYPES_PER_CLASS,
    RETENTION,
    Prototypes,
    fit_temperature,
    pooled_features,
    raw_logits,
    softmax,
    unit_rows,
)

MAX_OOD_IMAGES = 1000  # per folder, a seeded sample: enough for AUROC to two decimals


def mahalanobis(train: np.ndarray, labels: np.ndarray, classes: int, components: int):
    """The score shipped before nearest-prototype: squared Mahalanobis distance to the nearest class mean, with a
    shared within-class covariance as probabilistic PCA (top `components` directions, the rest one variance)."""
    train = np.asarray(train, np.float64)
    means = np.stack([train[labels == c].mean(0) for c in range(classes)])
    scatter = train - means[labels]
    variances, directions = np.linalg.eigh(scatter.T @ scatter / len(scatter))
    variances, directions = np.maximum(variances[::-1], 0), directions[:, ::-1]
    k = int(min(components, len(variances) - 1))
    residual = max(float(variances[k:].mean()), 1e-12)
    shrink = directions[:, :k] * np.sqrt(np.clip(1 / residual - 1 / np.maximum(variances[:k], residual), 0, None))

    def score(features: np.ndarray) -> np.ndarray:
        gaps = np.asarray(features, np.float64)[:, None, :] - means[None]  # (N, C, D)
        squared = (gaps**2).sum(2) / residual - ((gaps @ shrink) ** 2).sum(2)
        return squared.min(1) / train.shape[1]

    return score


def prototypes(train: np.ndarray, labels: np.ndarray, classes: int, per_class: int | None) -> Prototypes:
    """The shipped score with `per_class` k-means centres per class (None: every training image a prototype)."""
    return Prototypes(unit_rows(train)) if per_class is None else Prototypes.fit(train, labels, classes, per_class)


def _features(model, paths: list[Path], size: int, resize: str) -> np.ndarray:
    pooled = pooled_features(model)
    out = []
    for start in range(0, len(paths), 64):
        batch = np.stack([load_for_model(p, size, resize) for p in paths[start : start + 64]]).astype(np.float32)
        out.append(np.asarray(pooled.predict(batch, verbose=0)))
    return np.concatenate(out)


def head_latency(model, calibration: np.ndarray, images: np.ndarray, rounds: int = 5, runs: int = 100) -> dict:
    """Median int8 invoke time (1 thread) with and without the OOD head, same weights and calibration,
    timed in alternating rounds so machine noise hits both alike."""
    import keras

    from edgetl.convert.calibration import representative_dataset
    from edgetl.convert.tflite import calibrate, quantize, saved_model, widen_ood_range
    from edgetl.edge.interpreter import ImageClassifierModel

    variants = {"probabilities only": keras.Model(model.inputs, model.outputs[0]), "with OOD score": model}
    runners = {}
    for name, variant in variants.items():
        with saved_model(variant) as saved:
            calibrated = calibrate(saved, representative_dataset(calibration))
        content = quantize(widen_ood_range(calibrated, 1.0), "uint8")
        runners[name] = (ImageClassifierModel(content, threads=1), len(content))
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, (runner, _) in runners.items():
            for i in range(runs):
                started = time.perf_counter()
                runner.scores(images[i % len(images)])
                times[name].append(time.perf_counter() - started)
    return {
        name: {"median_ms": 1000 * float(np.median(times[name])), "bytes": size} for name, (_, size) in runners.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--ood", type=Path, action="append", required=True, help="a folder of out-of-class photos")
    parser.add_argument("--latency", action="store_true", help="also time int8 with and without the OOD head")
    args = parser.parse_args()

    import keras

    run = RunInfo.load(args.run)
    size, resize = run.size, run.resize
    model = keras.models.load_model(run.model_path, compile=False)
    started = time.perf_counter()
    feats, targets = {}, {}
    for split in ("train", "validation", "test"):
        samples = run.samples(split)
        feats[split] = _features(model, [s.path for s in samples], size, resize)
        targets[split] = np.array([s.label for s in samples])
    rng = np.random.default_rng(0)
    for folder in args.ood:
        paths = list_images(folder)
        paths = [paths[i] for i in sorted(rng.choice(len(paths), min(len(paths), MAX_OOD_IMAGES), replace=False))]
        feats[str(folder)] = _features(model, paths, size, resize)
    print(f"features of {sum(len(f) for f in feats.values())} images in {time.perf_counter() - started:.0f} s")

    shipped = run.open_world.temperature if run.open_world else None
    logits = {name: raw_logits(model, f, shipped) for name, f in feats.items()}
    temperature = fit_temperature(logits["validation"], targets["validation"])
    scores = {
        "max-softmax": {n: 1 - softmax(v / temperature).max(1) for n, v in logits.items()},
        "energy": {n: -temperature * np.log(np.exp(v / temperature).sum(1)) for n, v in logits.items()},
    }
    classes = len(run.labels)
    for k in (64, 256):
        score = mahalanobis(feats["train"], targets["train"], classes, k)
        scores[f"mahalanobis-{k}"] = {n: score(f) for n, f in feats.items()}
    for per_class in (16, PROTOTYPES_PER_CLASS, None):  # the shipped score has PROTOTYPES_PER_CLASS
        fitted = prototypes(feats["train"], targets["train"], classes, per_class)
        scores[f"prototypes-{per_class or 'all'}"] = {n: fitted.score(f) for n, f in feats.items()}
    result: dict = {
        "run": str(args.run),
        "temperature": temperature,
        "ece_test": {
            "before": ece(softmax(logits["test"]), targets["test"]),
            "after": ece(softmax(logits["test"] / temperature), targets["test"]),
        },
        "retention": RETENTION,
        "headroom": HEADROOM,
        "methods": {},
    }
    print(f"T = {temperature:.3f}; test ECE {result['ece_test']['before']:.2%} → {result['ece_test']['after']:.2%}")
    print(f"{'score':<16} {'OOD set':<45} {'AUROC':>6} {'OOD rejected':>13} {'test rejected':>14}")
    for method, values in scores.items():
        threshold = HEADROOM * retention_threshold(values["validation"], RETENTION)  # the shipped rule
        rows = {}
        for folder in map(str, args.ood):
            rows[folder] = {
                "auroc": auroc(values["test"], values[folder]),
                "rejected_ood": float(np.mean(values[folder] > threshold)),
                "rejected_in": float(np.mean(values["test"] > threshold)),
            }
            row = rows[folder]
            print(
                f"{method:<16} {folder[-45:]:<45} {row['auroc']:>6.3f} {row['rejected_ood']:>13.1%} "
                f"{row['rejected_in']:>14.1%}"
            )
        result["methods"][method] = {"threshold": threshold, "ood": rows}
    if args.latency:
        test = run.samples("test")[:50]
        train = run.samples("train")[::10]
        result["latency"] = head_latency(
            model,
            np.stack([load_for_model(s.path, size, resize) for s in train]),  # type: ignore[arg-type]
            np.stack([load_for_model(s.path, size, resize) for s in test]),  # type: ignore[arg-type]
        )
        for name, row in result["latency"].items():
            print(f"int8 {name}: median {row['median_ms']:.3f} ms (1 thread), {row['bytes'] / 1e6:.2f} MB")
    out = args.run / "bench" / "open_world.json"
    out.parent.mkdir(exist_ok=True)
    write_json(out, result)
    print(f"Written: {out}")


if __name__ == "__main__":
    main()
