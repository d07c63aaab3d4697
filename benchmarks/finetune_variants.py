"""Phase-2 variants on one boundary cache: which fine-tuning recipe gives the best test top-1?

One seed's split, one cache of MobileNetV2 1.0 @ 224 activations (train: plain + 1 augmented copy,
validation, and test), then for each named variant: the head on pooled features (20 epochs), then the
top of the backbone on the cached activations, as `edgetl train` does (cosine-decayed Adam, label
smoothing, class weights, activation shift, early stopping on validation loss with the best weights
kept). A variant's cost is its epochs only, so many recipes can be compared on the same cache.
An ad hoc comparison, not edgetl's pipeline: confirm a winner with seed_sweep.py --set ...

    python benchmarks/finetune_variants.py --data ../shared/datasets/flowers base ft16_lr3e-4 mixup
    python benchmarks/finetune_variants.py --data ../shared/datasets/flowers --from block_6 base

Prints one JSON line per variant: test top-1 after phase 1 (head_test) and after phase 2 (test),
validation top-1 at the kept epoch, epochs run, seconds.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from shared_data import SHARED, use_shared_keras_weights

VARIANTS = {
    "base": {},  # edgetl's defaults: 8 epochs at 1e-4
    "ft16": {"ft_epochs": 16},
    "lr3e-4": {"ft_lr": 3e-4},
    "ft16_lr3e-4": {"ft_epochs": 16, "ft_lr": 3e-4},
    "ft24_lr3e-4_p8": {"ft_epochs": 24, "ft_lr": 3e-4, "patience": 8},
    "ls0": {"label_smoothing": 0.0},
    "mixup": {"mixup": True, "ft_epochs": 16, "ft_lr": 3e-4, "patience": 8},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", choices=sorted(VARIANTS))
    parser.add_argument("--data", type=Path, default=SHARED / "datasets" / "flowers")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--from", dest="start", default="block_12", help="First fine-tuned block.")
    parser.add_argument("--cache", type=Path, help="Keep the cache here (reused by a later call).")
    args = parser.parse_args()
    use_shared_keras_weights()

    import keras
    import tensorflow as tf

    from edgetl.train import boundary
    from edgetl.train.config import TrainConfig
    from edgetl.train.data import scan
    from edgetl.train.models import build_classifier, inference, resolve_weights, unfreeze_start, unfreeze_top
    from edgetl.train.pipeline import image_dataset

    config = TrainConfig(seed=args.seed)
    index = scan(args.data, seed=args.seed)
    k = len(index.classes)
    clf = build_classifier("mobilenet_v2", k, weights=resolve_weights("mobilenet_v2", "imagenet", 1.0, 224))
    split = boundary.split_at(clf, unfreeze_start(clf.backbone, from_layer=args.start), args.seed)
    folder = args.cache or Path(tempfile.mkdtemp(prefix="edgetl-variants-"))
    started = time.perf_counter()
    cache = boundary.cached(split, index, config, folder)
    if not (folder / "test.npy").exists():
        test_ds = image_dataset(index.splits["test"], k, size=config.size)
        np.save(
            folder / "test_labels.npy",
            boundary._fill(split.bottom, [test_ds], folder / "test.npy", len(index.splits["test"]), None),
        )
    test = np.load(folder / "test.npy", mmap_mode="r"), np.load(folder / "test_labels.npy").argmax(axis=1)
    print(f"cache: {time.perf_counter() - started:.0f} s in {folder}", flush=True)
    initial, class_weight = clf.model.get_weights(), index.class_weights()

    def top1(model: keras.Model, rows: np.ndarray, labels: np.ndarray) -> float:
        forward = inference(model)
        probs = np.concatenate([np.asarray(forward(np.asarray(rows[i : i + 64]))) for i in range(0, len(rows), 64)])
        return float((probs.argmax(axis=1) == labels).mean())

    def mix(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Mixup on activations: each row blended with a shuffled partner, weight ≥ 0.5 on its own."""
        partner = tf.random.shuffle(tf.range(tf.shape(x)[0]))
        lam = tf.random.uniform([tf.shape(x)[0], 1], 0.0, 1.0)
        lam = tf.maximum(lam, 1.0 - lam)
        return x * lam[:, :, None, None] + tf.gather(x, partner) * (1 - lam[:, :, None, None]), y * lam + tf.gather(
            y, partner
        ) * (1 - lam)

    def run(name: str, ft_epochs=8, ft_lr=1e-4, patience=4, label_smoothing=0.1, mixup=False) -> dict:
        keras.utils.set_random_seed(args.seed)
        clf.model.set_weights(initial)
        clf.backbone.trainable = False
        started = time.perf_counter()
        features = boundary.pooled(split, cache, 32)
        steps = -(-len(features["train"][1]) // 32)

        def fit(model, data, validation, lr, epochs, weights):
            schedule = keras.optimizers.schedules.CosineDecay(lr, max(1, epochs * steps), alpha=0.05)
            loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
            model.compile(keras.optimizers.Adam(schedule), loss, metrics=["accuracy"])
            stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
            return model.fit(
                data, validation_data=validation, epochs=epochs, class_weight=weights, verbose=0, callbacks=[stop]
            )

        fit(clf.head, *boundary.feature_batches(features, 32, args.seed), 1e-3, 20, class_weight)
        head_test = top1(split.top, *test)
        unfreeze_top(clf.backbone, from_layer=args.start)
        train, validation = boundary.training_batches(cache, 32, args.seed)
        if mixup:
            train = train.map(mix)
        history = fit(split.top, train, validation, ft_lr, ft_epochs, None if mixup else class_weight).history
        best = int(np.argmin(history["val_loss"]))
        return {
            "variant": name,
            "seed": args.seed,
            "from": args.start,
            "head_test": round(head_test, 4),
            "test": round(top1(split.top, *test), 4),
            "validation": round(top1(split.top, cache.validation, cache.validation_labels.argmax(axis=1)), 4),
            "epochs_run": len(history["loss"]),
            "best_epoch": best + 1,
            "seconds": round(time.perf_counter() - started),
        }

    for name in args.variants:
        print(json.dumps(run(name, **VARIANTS[name])), flush=True)


if __name__ == "__main__":
    main()
