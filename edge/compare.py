"""`edgetl compare A B`: is model B better than model A, on the same photos, beyond chance?

A and B are runs (their int8 file, else their float32 one) or `.tflite` files; only the `[edge]` install is
needed. Both classify the same images: by default the union of both runs' test splits, or `--data DIR`; of
those, only photos that neither run trained or validated on count, each once, known by content (a copy of the
data or another layout of it fools no path), and the report says how many were left out and why.
Accuracy is compared on the images whose class both models know, paired: McNemar's exact test on the images
one gets right and the other wrong says whether the difference could be chance (on 128 images one image is
0.8 points). For classes only B knows, it counts how often A said "unknown", as it should.

"Unknown" is judged on both sides, so that "better" can never mean "rejects less": the share of those in-class
photos each model decides as a class, and the share of held-out "other" photos (none of the classes: the runs'
held-out side of split/other.txt, or `--other DIR`) each calls "unknown", again paired and tested. B is better
only when it is more accurate beyond chance and neither share is worse beyond chance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgetl.digests import content_digest, run_other_photos, run_photos
from edgetl.edge.classifier import Classifier, ClassifierOptions
from edgetl.edge.timing import time_single_inferences
from edgetl.errors import EdgetlError
from edgetl.images import labelled_samples, list_images, load_for_model, load_rgb
from edgetl.metrics import DROP_SIGNIFICANCE, drop_p_value
from edgetl.rundir import METADATA_FILE, RunInfo, check_results_file, json_text, refuse_existing, write_atomic

MIN_PHOTOS = 6  # below this even a clean sweep (p = 2 · 0.5^n) cannot reach p < 0.05: no verdict possible
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
    decided: float | None = None  # in-class photos decided as a class (not "unknown")
    other_unknown: float | None = None  # held-out "other" photos called "unknown" (None: none to judge on)


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
    other_photos: int = 0  # held-out photos of none of the classes, judged for "unknown"
    unknown_verdict: str = ""  # what the two sides of "unknown" say, when they change the verdict or cannot
    excluded: dict[str, int] = field(default_factory=dict)  # photos left out of the verdict: why → how many
    missing: int = 0  # test photos the runs list that no longer exist
    notes: list[str] = field(default_factory=list)  # what the verdict cannot vouch for

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


@dataclass
class HeldOut:
    """The photos a verdict may use: neither model trained or validated on them, each counted once."""

    photos: list[Photo]
    excluded: dict[str, int]  # why → how many photos were left out
    missing: list[str]  # test photos the runs list that no longer exist
    notes: list[str]  # what the verdict cannot vouch for


def held_out(sources: list[Path], data: Path | None, labels: list[str]) -> HeldOut:
    """--data DIR (class folders named like either model's labels), else the union of the runs' test splits;
    then, by content (edgetl/digests.py), every photo either run trained or validated on is left out, and
    each photo counts once however many copies or paths it has."""
    runs = {name: RunInfo.load(source) for name, source in zip("AB", sources) if source.is_dir()}
    notes = [
        f"{name} is a .tflite file: the photos it trained on are unknown and cannot be left out (pass its run)."
        for name, source in zip("AB", sources)
        if not source.is_dir()
    ]
    if data is not None:
        candidates = [Photo(s.path, labels[s.label]) for s in labelled_samples(data, labels, "--data")]
        missing: list[str] = []
    elif runs:
        listed = {s.path: run.labels[s.label] for run in runs.values() for s in run.samples("test")}
        candidates = [Photo(path, label) for path, label in listed.items() if path.is_file()]
        missing = sorted(str(path) for path in listed if not path.is_file())
    else:
        raise EdgetlError("No images to compare on.", "Pass --data DIR (one sub-folder per class).")
    trained = {name: {p.digest for p in run_photos(run) if p.split != "test"} for name, run in runs.items()}
    excluded: dict[str, int] = {}
    kept: dict[str, Photo] = {}
    labels_of: dict[str, set[str]] = {}
    for photo in candidates:
        if not readable(photo.path):
            excluded["not readable images"] = excluded.get("not readable images", 0) + 1
            continue
        digest = content_digest(photo.path)
        why = next((f"trained or validated on by {name}" for name in trained if digest in trained[name]), None)
        if why is None:
            labels_of.setdefault(digest, set()).add(photo.label)
            why = "copies of a photo already counted" if digest in kept else None
        if why:
            excluded[why] = excluded.get(why, 0) + 1
            continue
        kept[digest] = photo
    for digest, names in labels_of.items():  # one photo under two classes: no truth to judge it by
        if len(names) > 1 and kept.pop(digest, None):
            excluded["one photo under two classes"] = excluded.get("one photo under two classes", 0) + 1
    return HeldOut(list(kept.values()), excluded, missing, notes)


def held_out_other(sources: list[Path], other: Path | None) -> tuple[list[Path], dict[str, int]]:
    """Photos of none of the classes to judge "unknown" on: `--other DIR`, else the union of the runs' held-out
    other photos; by content, every photo either run fitted "unknown" on or had as a class photo is left out,
    and each counts once. Returns (photos, why → how many were left out)."""
    runs = [RunInfo.load(source) for source in sources if source.is_dir()]
    if other is not None:
        if not other.is_dir():
            raise EdgetlError(
                f"--other folder {other} does not exist.", "Pass a folder of photos of none of the classes."
            )
        candidates = list_images(other)
    else:
        candidates = [
            run.data.other_root / photo.path
            for run in runs
            if run.data.other_root
            for photo in run_other_photos(run)
            if photo.split == "test"
        ]
    used = {photo.digest for run in runs for photo in run_photos(run)}
    used |= {photo.digest for run in runs for photo in run_other_photos(run) if photo.split != "test"}
    kept: dict[str, Path] = {}
    excluded: dict[str, int] = {}
    for path in candidates:
        if not path.is_file():
            why = "other photos missing"
        elif not readable(path):
            why = "other photos that are not readable images"
        else:
            digest = content_digest(path)
            why = "other photos fitted on, or class photos, of A or B" if digest in used else None
            why = why or ("copies of an other photo already counted" if digest in kept else None)
            if why is None:
                kept[digest] = path
        if why:
            excluded[why] = excluded.get(why, 0) + 1
    return list(kept.values()), excluded


def readable(path: Path) -> bool:
    """Whether the file decodes as an image: a broken one is left out and counted, never a traceback."""
    try:
        load_rgb(path)
    except Exception:  # Pillow raises many types for broken files
        return False
    return True


def unknown_verdict(
    decided: tuple[np.ndarray, np.ndarray], rejected: tuple[np.ndarray, np.ndarray] | None
) -> tuple[str, bool]:
    """(a line, whether B is worse beyond chance) on the two sides of "unknown": in-class photos decided as a
    class, other photos called unknown, each paired (McNemar) as accuracy is."""
    worse = []
    for what, pair in (("decides as a class", decided), ("calls unknown", rejected)):
        if pair is None:
            continue
        a, b = pair
        lost, gained = int(np.sum(a & ~b)), int(np.sum(b & ~a))
        p_value = min(1.0, 2 * drop_p_value(max(gained, lost), min(gained, lost)))
        if lost > gained and p_value < DROP_SIGNIFICANCE:
            share = "in-class" if what.startswith("decides") else "other"
            worse.append(f"B {what} {100 * (lost - gained) / len(a):.1f} pt fewer {share} photos (p = {p_value:.3g})")
    text = "; ".join(worse) + "." if worse else ""
    if rejected is None:
        text += " No other photos held out from both: 'unknown' was judged on in-class photos only."
    return text.strip(), bool(worse)


def answers(classifier: Classifier, items: list[Photo]) -> tuple[list[str], list[bool]]:
    """(top-1 class, decided "unknown") per photo."""
    top, unknown = [], []
    for item in items:
        prediction = classifier.decide(
            *classifier.scores(load_for_model(item.path, classifier.size, classifier.resize)), 1
        )
        top.append(prediction.best.label)
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


def compare(
    a: Path,
    b: Path,
    data: Path | None = None,
    timing: bool = True,
    json_out: str | None = None,
    other: Path | None = None,
) -> Comparison:
    """Both models on the same held-out photos. `json_out` (a file that must not exist yet) is checked first."""
    if json_out not in (None, "-"):
        refuse_existing(Path(json_out), "choose another --json file")
        check_results_file(Path(json_out), "--json")
    models = [Classifier(model_file(source), ClassifierOptions(threads=1)) for source in (a, b)]
    known = [set(model.labels) for model in models]
    if not known[0] & known[1]:
        raise EdgetlError("The two models share no class to compare on.", "Check their labels.")
    chosen = held_out([a, b], data, sorted(known[0] | known[1]))
    items = chosen.photos
    shared = [item for item in items if item.label in known[0] & known[1]]
    if len(shared) < MIN_PHOTOS:
        raise EdgetlError(
            f"Only {len(shared)} photo(s) of the classes both models know are held out from both "
            f"({_summary(chosen)}); no difference on fewer than {MIN_PHOTOS} can be significant.",
            "Pass --data DIR with photos neither run trained or validated on.",
        )
    (top_a, unknown_a), (top_b, unknown_b) = answers(models[0], shared), answers(models[1], shared)
    right_a = np.array([t == item.label for t, item in zip(top_a, shared)])
    right_b = np.array([t == item.label for t, item in zip(top_b, shared)])
    gained, lost = int(np.sum(right_b & ~right_a)), int(np.sum(right_a & ~right_b))
    line, p_value, better = verdict(gained, lost, len(shared))
    decided = (~np.array(unknown_a), ~np.array(unknown_b))
    others, other_excluded = held_out_other([a, b], other)
    rejected = (
        tuple(np.array(answers(model, [Photo(p, "") for p in others])[1]) for model in models) if others else None
    )
    unknown_line, worse = unknown_verdict(decided, rejected)
    if better and worse:
        line, better = f"{line.removesuffix(': deploy B.')} on the classes, but {unknown_line} Keep A.", False
    results = [
        ModelResult(
            str(model.path),
            float(np.mean(right)),
            _per_class(shared, right),
            decided=float(np.mean(sure)),
            other_unknown=float(np.mean(unknown)) if rejected is not None else None,
        )
        for model, right, sure, unknown in zip(models, (right_a, right_b), decided, rejected or (None, None))
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
    held = {"excluded": chosen.excluded | other_excluded, "missing": len(chosen.missing), "notes": chosen.notes}
    unknown = {"other_photos": len(others), "unknown_verdict": unknown_line}
    return Comparison(
        results[0],
        results[1],
        len(shared),
        agreement,
        gained,
        lost,
        p_value,
        line,
        better,
        new_classes,
        **unknown,
        **held,
    )


def _summary(chosen: HeldOut) -> str:
    """What was left out and why, in a few words."""
    parts = [f"{count} {why}" for why, count in chosen.excluded.items()]
    if chosen.missing:
        parts.append(f"{len(chosen.missing)} missing, e.g. {chosen.missing[0]}")
    return "left out: " + "; ".join(parts) if parts else "none left out"


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

    title = f"edgetl compare · {result.images} held-out images of the classes both know"
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for name, model in (("A", result.a), ("B", result.b)):
        table.add_column(for_console(f"{name}: {Path(model.file).name}"), justify="right")
    table.add_row("top-1", f"{100 * result.a.top1:.1f}%", f"{100 * result.b.top1:.1f}%")
    for name in result.a.per_class:
        table.add_row(
            for_console(f"  {name}"), f"{100 * result.a.per_class[name]:.1f}%", f"{100 * result.b.per_class[name]:.1f}%"
        )
    table.add_row("in-class decided as a class", f"{100 * result.a.decided:.1f}%", f"{100 * result.b.decided:.1f}%")
    if result.a.other_unknown is not None:
        table.add_row(
            f"other photos called unknown ({result.other_photos})",
            f"{100 * result.a.other_unknown:.1f}%",
            f"{100 * result.b.other_unknown:.1f}%",
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
    left_out = "; ".join(f"{count} {why}" for why, count in result.excluded.items())
    console.print(f"Judged only on photos neither model trained or validated on; left out: {left_out or 'none'}.")
    if result.missing:
        console.print(
            f"[yellow]warning:[/] {result.missing} test photo(s) the runs list are missing; compared on the rest."
        )
    if result.unknown_verdict:
        console.print(f"'Unknown': {result.unknown_verdict}")
    for note in result.notes:
        console.print(f"[yellow]warning:[/] {note}")
    console.print(f"[bold]{result.verdict}[/]")
