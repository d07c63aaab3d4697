"""`edgetl compare A B`: is model B better than model A, on the same photos, beyond chance?

A and B are runs (their int8 file, else their float32 one) or `.tflite` files; only the `[edge]` install is
needed. Both classify the same images: by default the union of both runs' test splits, or `--data DIR`.
Accuracy is compared on the images whose class both models know, paired: McNemar's exact test on the images
one gets right and the other wrong says whether the difference could be chance (on 128 images one image is
0.8 points). For classes only B knows, it counts how often A said "unknown", as it should.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgetl.edge.classifier import Classifier
from edgetl.edge.timing import time_single_inferences
from edgetl.errors import EdgetlError
from edgetl.images import labelled_samples, load_for_model
from edgetl.metrics import DROP_SIGNIFICANCE, drop_p_value
from edgetl.rundir import METADATA_FILE, RunInfo, check_results_file, json_text, write_atomic

MAX_TIMED_IMAGES = 50  # latency: single inferences over this many images, one thread, after a warm-up


@dataclass(frozen=True)
class Photo:
    path: Path
    label: str  # the true class, by name (the two models may order or name their outputs differently)


@dataclass
class ModelResult:
    file: str
    top1: float  # on the images whose class both models know
    per_class: dict[str, float]
    median_ms: float | None = None


@dataclass
class Comparison:
    a: ModelResult
    b: ModelResult
    images: int  # paired: classes both know
    agreement: float
    gained: int  # images B gets right and A wrong
    lost: int  # images A gets right and B wrong
    p_value: float  # two-sided exact McNemar
    verdict: str
    better: bool  # B is better beyond chance: deploy it
    new_classes: dict[str, float] = field(default_factory=dict)  # per class only B knows: share A called unknown

    def to_json(self) -> dict:
        return asdict(self)


def model_file(source: Path) -> Path:
    """A .tflite as given, or a run's int8 file (else its float32 one)."""
    if source.is_file() and source.suffix == ".tflite":
        return source
    if source.is_dir() and (source / METADATA_FILE).exists():
        for name in ("model_int8.tflite", "model_float32.tflite"):
            if (source / name).is_file():
                return source / name
        raise EdgetlError(f"{source} has no .tflite model.", f"Run `edgetl convert {source}` first.")
    raise EdgetlError(f"{source} is neither a .tflite file nor an edgetl run.", "Pass two runs or two .tflite files.")


def photos(sources: list[Path], data: Path | None, labels: list[str]) -> list[Photo]:
    """--data DIR (class folders named like either model's labels), else the union of the runs' test splits."""
    if data is not None:
        return [Photo(s.path, labels[s.label]) for s in labelled_samples(data, labels, "--data")]
    runs = [RunInfo.load(s) for s in sources if s.is_dir()]
    if not runs:
        raise EdgetlError("No images to compare on.", "Pass --data DIR (one sub-folder per class).")
    union: dict[Path, str] = {}
    for run in runs:
        for sample in run.samples("test"):
            union.setdefault(sample.path, run.labels[sample.label])
    missing = [str(p) for p in list(union)[:20] if not p.exists()]
    if missing:
        raise EdgetlError(f"Test images are missing, e.g. {missing[0]}.", "Pass --data DIR with the images.")
    return [Photo(path, label) for path, label in union.items()]


def answers(classifier: Classifier, items: list[Photo]) -> tuple[list[str], list[bool]]:
    """(top-1 class, decided "unknown") per photo."""
    top, unknown = [], []
    for item in items:
        prediction = classifier.decide(
            *classifier.scores(load_for_model(item.path, classifier.size, classifier.resize)), 1
        )
        top.append(prediction.labels[0])
        unknown.append(prediction.unknown)
    return top, unknown


def median_ms(classifier: Classifier, items: list[Photo]) -> float:
    images = np.stack([load_for_model(p.path, classifier.size, classifier.resize) for p in items[:MAX_TIMED_IMAGES]])
    _, times = time_single_inferences(classifier.scores, images, runs=len(images) * 2, warmup=5)
    return round(1000 * float(np.median(times)), 3)


def verdict(gained: int, lost: int, images: int) -> tuple[str, float, bool]:
    """(the verdict line, the two-sided McNemar p-value, whether B is better beyond chance)."""
    points = 100 * (gained - lost) / max(images, 1)
    p_value = min(1.0, 2 * drop_p_value(max(gained, lost), min(gained, lost)))
    if p_value < DROP_SIGNIFICANCE and gained > lost:
        return f"B is better by {points:.1f} pt (p = {p_value:.3g}): deploy B.", p_value, True
    if p_value < DROP_SIGNIFICANCE:
        return f"B is worse by {-points:.1f} pt (p = {p_value:.3g}): keep A.", p_value, False
    return (
        f"No significant difference: B {points:+.1f} pt (p = {p_value:.3g}; {gained} images gained, {lost} lost).",
        p_value,
        False,
    )


def compare(a: Path, b: Path, data: Path | None = None, timing: bool = True, json_out: str | None = None) -> Comparison:
    """Both models on the same photos. `json_out` (a file that must not exist yet) is checked before the work."""
    if json_out not in (None, "-"):
        if Path(json_out).exists():
            raise EdgetlError(f"{json_out} already exists.", "Choose another --json file, or remove it first.")
        check_results_file(Path(json_out), "--json")
    models = [Classifier(model_file(source), threads=1) for source in (a, b)]
    known = [set(model.labels) for model in models]
    items = photos([a, b], data, sorted(known[0] | known[1]))
    shared = [item for item in items if item.label in known[0] & known[1]]
    if not shared:
        raise EdgetlError("The two models share no class with images to compare on.", "Check their labels.")
    (top_a, _), (top_b, _) = answers(models[0], shared), answers(models[1], shared)
    right_a = np.array([t == item.label for t, item in zip(top_a, shared)])
    right_b = np.array([t == item.label for t, item in zip(top_b, shared)])
    gained, lost = int(np.sum(right_b & ~right_a)), int(np.sum(right_a & ~right_b))
    line, p_value, better = verdict(gained, lost, len(shared))
    results = [
        ModelResult(str(model.path), float(np.mean(right)), _per_class(shared, right))
        for model, right in zip(models, (right_a, right_b))
    ]
    only_b = [item for item in items if item.label in known[1] - known[0]]
    new_classes = {}
    if only_b:
        _, unknown = answers(models[0], only_b)
        for name in sorted({item.label for item in only_b}):
            marks = [u for u, item in zip(unknown, only_b) if item.label == name]
            new_classes[name] = float(np.mean(marks))
    if timing:
        for result, model in zip(results, models):
            result.median_ms = median_ms(model, shared)
    agreement = float(np.mean([x == y for x, y in zip(top_a, top_b)]))
    return Comparison(results[0], results[1], len(shared), agreement, gained, lost, p_value, line, better, new_classes)


def _per_class(items: list[Photo], right: np.ndarray) -> dict[str, float]:
    names = sorted({item.label for item in items})
    return {name: float(np.mean([r for r, item in zip(right, items) if item.label == name])) for name in names}


def report(result: Comparison, json_out: str | None, console) -> None:
    """The table and verdict on screen, or the JSON record on stdout (`-`); the record to a file too."""
    if json_out == "-":
        print(json_text(result.to_json()), end="")
        return
    print_comparison(result, console)
    if json_out:
        write_atomic(Path(json_out), json_text(result.to_json()))


def print_comparison(result: Comparison, console) -> None:
    from rich.table import Table

    from edgetl.text import for_console

    table = Table(title=f"edgetl compare · {result.images} images of the classes both know", title_justify="left")
    table.add_column("")
    for name, model in (("A", result.a), ("B", result.b)):
        table.add_column(for_console(f"{name}: {Path(model.file).name}"), justify="right")
    table.add_row("top-1", f"{100 * result.a.top1:.1f}%", f"{100 * result.b.top1:.1f}%")
    for name in result.a.per_class:
        table.add_row(
            for_console(f"  {name}"), f"{100 * result.a.per_class[name]:.1f}%", f"{100 * result.b.per_class[name]:.1f}%"
        )
    if result.a.median_ms is not None:
        table.add_row("median ms (1 thread)", f"{result.a.median_ms:.2f}", f"{result.b.median_ms:.2f}")
    console.print(table)
    console.print(
        f"Agreement {100 * result.agreement:.1f}%; B right where A was wrong: {result.gained}, "
        f"the reverse: {result.lost}."
    )
    for name, share in result.new_classes.items():
        console.print(f"Class only B knows, {for_console(name)}: A said unknown for {share:.0%} of its images.")
    console.print(f"[bold]{result.verdict}[/]")
