"""Where a fine-tuning step's time goes, and what the cheap speed-ups buy on this CPU (issue 11, part 3).

    python benchmarks/finetune_step.py [--size 224]

MobileNetV2 1.0 with ImageNet weights, blocks from block_12 up trainable (edgetl's default), BatchNorm
frozen, one batch of 32 random images: seconds per training step (median of 6 after 2 warm-up steps) for
- fp32: what `edgetl train` runs today;
- bf16: Keras' mixed_bfloat16 policy (oneDNN on a CPU with AVX512-BF16);
- xla: `jit_compile=True`;
- top: the trainable top alone, on activations cached at block_12's input (what caching the frozen part's
  output would leave per step); and the frozen bottom's forward pass alone (what filling that cache costs),
  as a compiled graph and called eagerly.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from shared_data import SHARED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    weights = SHARED / "keras" / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    size = args.size
    images = np.random.default_rng(0).uniform(0, 255, (32, size, size, 3)).astype("float32")
    labels = keras.utils.to_categorical(np.arange(32) % 3, 3)

    def build() -> tuple[keras.Model, keras.Model]:
        base = keras.applications.MobileNetV2(
            input_shape=(size, size, 3), include_top=False, weights=str(weights), pooling="avg"
        )
        trainable = False
        for layer in base.layers:
            trainable = trainable or layer.name.startswith("block_12")
            layer.trainable = trainable and not isinstance(layer, keras.layers.BatchNormalization)
        inputs = keras.Input((size, size, 3))
        scaled = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
        outputs = keras.layers.Dense(3, activation="softmax", dtype="float32")(base(scaled, training=False))
        return keras.Model(inputs, outputs), base

    def seconds(step) -> float:
        step(), step()
        times = []
        for _ in range(6):
            started = time.perf_counter()
            step()
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    results = {}
    for mode in ("fp32", "bf16", "xla", "top"):
        keras.backend.clear_session()
        keras.mixed_precision.set_global_policy("mixed_bfloat16" if mode == "bf16" else "float32")
        model, base = build()
        if mode == "top":
            boundary = base.get_layer("block_12_expand").input
            bottom = keras.Model(base.input, boundary)
            cached = bottom.predict_on_batch(images / 127.5 - 1)
            results["frozen bottom, forward only (fills the cache)"] = seconds(
                lambda bottom=bottom: bottom.predict_on_batch(images / 127.5 - 1)
            )
            results["the same, called eagerly (op by op)"] = seconds(
                lambda bottom=bottom: bottom(images / 127.5 - 1, training=False)
            )
            inputs = keras.Input(boundary.shape[1:])
            top = keras.Model(boundary, base.output)
            head = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(top(inputs, training=False)))
            head.compile(keras.optimizers.Adam(1e-4), "categorical_crossentropy")
            results["top only, on cached block_12 inputs"] = seconds(
                lambda head=head, cached=cached: head.train_on_batch(cached, labels)
            )
            continue
        model.compile(keras.optimizers.Adam(1e-4), "categorical_crossentropy", jit_compile=mode == "xla")
        results[{"fp32": "fp32 (today)", "bf16": "mixed_bfloat16", "xla": "XLA (jit_compile)"}[mode]] = seconds(
            lambda model=model: model.train_on_batch(images, labels)
        )
    keras.mixed_precision.set_global_policy("float32")
    today = results["fp32 (today)"]
    print(f"MobileNetV2 1.0 @ {size}, batch 32, trainable from block_12; ms per step (ratio to today):")
    for name, value in results.items():
        print(f"  {name:48s} {1000 * value:7.0f} ms  ({value / today:.2f}×)")


if __name__ == "__main__":
    main()
