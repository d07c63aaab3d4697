"""The representative dataset: real images, stratified across classes, fed as the model sees them.

Calibration sets each int8 tensor's range from what flows through the float model, so it must
see raw 0–255 pixels through exactly the resize the device uses (`edgetl.images`).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.images import load_for_model
from edgetl.progress import progress_bar
from edgetl.rundir import Sample

if TYPE_CHECKING:
    from rich.console import Console

    from edgetl.convert.source import Source

SMALL_CALIBRATION = 100  # below this the ranges of rare activations are often missed


def stratified_sample(samples: list[Sample], count: int, seed: int) -> list[Sample]:
    """Up to `count` samples, the same share from every class (round-robin over shuffled classes)."""
    by_class: dict[int, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_class[sample.label].append(sample)
    rng = random.Random(seed)
    for group in by_class.values():
        rng.shuffle(group)
    picked: list[Sample] = []
    queues = [by_class[label] for label in sorted(by_class)]
    while len(picked) < count and any(queues):
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.pop())
    return picked


def load_images(
    samples: list[Sample], size: int, resize: str, advance: Callable[[], None] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode and resize `samples` in threads → (uint8 N×size×size×3, labels, unreadable paths)."""

    def load(sample: Sample) -> np.ndarray | None:
        try:
            return load_for_model(sample.path, size, resize)  # type: ignore[arg-type]
        except Exception:
            return None
        finally:
            if advance:
                advance()

    with ThreadPoolExecutor(max_workers=8) as pool:
        images = list(pool.map(load, samples))
    kept = [i for i, image in enumerate(images) if image is not None]
    bad = [str(samples[i].path) for i, image in enumerate(images) if image is None]
    pixels = np.stack([images[i] for i in kept]) if kept else np.zeros((0, size, size, 3), np.uint8)
    return pixels, np.array([samples[i].label for i in kept], dtype=np.int64), bad


def check_calibration(images: np.ndarray, warn: Callable[[str], None]) -> None:
    if len(images) == 0:
        raise EdgetlError(
            "The calibration set is empty: no readable images.", "Point --calibration at a folder of real photos."
        )
    if len(images) < SMALL_CALIBRATION:
        warn(
            f"Only {len(images)} calibration images: int8 ranges may miss rare activations. "
            f"A few hundred is typical (--calibration-samples)."
        )


def representative_dataset(images: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The converter's callback: one float32 batch of raw pixels at a time."""

    def generate() -> Iterator[list[np.ndarray]]:
        for image in images:
            yield [image[None].astype(np.float32)]

    return generate


def load_with_progress(
    samples: list[Sample], source: Source, label: str, console: Console
) -> tuple[np.ndarray, np.ndarray]:
    """`load_images` at the source's input size, with a progress bar and one warning for unreadable files."""
    with progress_bar(console) as progress:
        task = progress.add_task(label, total=len(samples))
        images, labels, bad = load_images(samples, source.size, source.resize, lambda: progress.advance(task))
    if bad:
        console.print(f"[yellow]warning:[/] skipped {len(bad)} unreadable image(s), e.g. {bad[0]}")
    return images, labels
