"""Top-1 agreement of a converted model with its float Keras model, on all images and on those the float model
is sure of, by how sure: why `edgetl convert` judges agreement on the images it gives ≥ 50 %.

    python benchmarks/agreement.py mnv2_imagenet.keras out/model_int8.tflite \\
        "../shared/datasets/imagenet-samples/images/*.jpg" --preprocessing tf

`--preprocessing tf` for a bare Keras model that expects [-1, 1] (an edgetl run's model takes raw pixels).
Labels are not needed: agreement compares the two models' answers. Prints one table.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

SURE_LEVELS = (0.3, 0.5, 0.7, 0.9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("keras_model", type=Path)
    parser.add_argument("tflite_model", type=Path)
    parser.add_argument("images", help="a glob pattern, quoted")
    parser.add_argument("--preprocessing", choices=("none", "tf"), default="none")
    args = parser.parse_args()

    import keras

    from edgetl.edge.interpreter import ImageClassifierModel
    from edgetl.images import load_for_model

    converted = ImageClassifierModel(args.tflite_model.read_bytes(), threads=2)
    files = sorted(glob.glob(args.images, recursive=True))
    images = np.stack([load_for_model(path, converted.height) for path in files])
    model = keras.models.load_model(args.keras_model, compile=False)
    inputs = images.astype(np.float32) / 127.5 - 1 if args.preprocessing == "tf" else images.astype(np.float32)
    output = model.predict(inputs, batch_size=32, verbose=0)
    reference = np.asarray(output[0] if isinstance(output, list) else output)  # an edgetl model: + the OOD score
    scores = converted.scores_batch(images)
    same = reference.argmax(1) == scores.argmax(1)
    in_top5 = np.mean([scores[i].argmax() in np.argsort(reference[i])[-5:] for i in range(len(scores))])

    table = Table(title=f"{args.tflite_model.name} vs {args.keras_model.name}: {len(files)} images")
    for column in ("images counted", "share", "top-1 agreement"):
        table.add_column(column, justify="right")
    table.add_row("all", "100 %", f"{same.mean():.1%}")
    for level in SURE_LEVELS:
        sure = reference.max(1) >= level
        table.add_row(f"float top-1 ≥ {level:.0%}", f"{sure.mean():.0%}", f"{same[sure].mean():.1%}")
    Console().print(table)
    print(f"converted top-1 within the float top-5: {in_top5:.1%}")


if __name__ == "__main__":
    main()
