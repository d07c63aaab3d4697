"""`edgetl classify MODEL PATH...`: images, folders (recursively) or glob patterns → top-k labels."""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgetl.edge.classifier import Classifier
from edgetl.errors import EdgetlError
from edgetl.images import list_images, load_rgb
from edgetl.rundir import check_results_file, refuse_existing, write_atomic
from edgetl.text import for_console


def expand(patterns: list[str]) -> tuple[list[Path], list[str]]:
    """(image files, patterns that matched nothing), in the order given, without duplicates."""
    found: dict[Path, None] = {}
    missing = []
    for pattern in patterns:
        matches = (
            [Path(p) for p in sorted(glob.glob(pattern, recursive=True))]
            if glob.has_magic(pattern)
            else [Path(pattern)]
        )
        matches = [m for m in matches if m.exists()]
        if not matches:
            missing.append(pattern)
        for match in matches:
            if match.is_dir():
                for path in list_images(match):
                    found.setdefault(path)
            else:
                found.setdefault(match)
    return list(found), missing


def classify_files(classifier: Classifier, paths: list[Path], top_k: int) -> Iterator[dict]:
    """One result per file: {"path", "labels", "scores", "ms"} or {"path", "error"} for unreadable ones."""
    for path in paths:
        if not path.is_file():  # a FIFO would block the read until something writes to it
            yield {"path": str(path), "error": "not a regular file (a FIFO, device or socket)"}
            continue
        try:
            rgb = load_rgb(path, min_side=classifier.size)
        except Exception as error:  # Pillow raises many types for broken files
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            yield {"path": str(path), "error": "not an image" if "cannot identify" in reason else reason}
            continue
        started = time.perf_counter()
        prediction = classifier.decide(*classifier.scores(classifier.prepare_rgb(rgb)), top_k)
        yield {"path": str(path), **prediction.as_dict(), "ms": round(1000 * (time.perf_counter() - started), 2)}


def as_json_lines(results: list[dict]) -> str:
    return "".join(json.dumps(result) + "\n" for result in results)


def as_csv(results: list[dict], top_k: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    columns = [f"{kind}{i + 1}" for i in range(top_k) for kind in ("label", "score")]
    writer.writerow(["path", "decision", *columns, "unknown", "ood_score", "error"])
    for result in results:
        pairs = [value for pair in zip(result.get("labels", []), result.get("scores", [])) for value in pair]
        pairs += [""] * (2 * top_k - len(pairs))
        ood = result.get("ood_score")
        flags = [result.get("unknown", ""), "" if ood is None else ood]
        writer.writerow([result["path"], result.get("decision", ""), *pairs, *flags, result.get("error", "")])
    return out.getvalue()


def check_target(json_out: str | None, csv_out: str | None) -> str | None:
    """The file (or "-") results go to; refuses two formats at once and overwriting a file."""
    if json_out and csv_out:
        raise EdgetlError("--json and --csv cannot be combined.", "Pick one output format.")
    target = json_out or csv_out
    if target not in (None, "-"):
        refuse_existing(Path(target), "choose another file")
        check_results_file(Path(target), "--json" if json_out else "--csv")
    return target


def write_results(results: list[dict], target: str, as_json: bool, top_k: int, err: Console) -> None:
    text = as_json_lines(results) if as_json else as_csv(results, top_k)
    if target == "-":
        print(text, end="")
    else:
        try:
            write_atomic(Path(target), text)
        except OSError as error:  # a full disk: write_atomic leaves no part of the file behind
            raise EdgetlError(
                f"Writing the results to {target} failed ({error.strerror or error}); nothing was written there.",
                "Free some space (or choose another file) and run again.",
            ) from None
        err.print(f"Written: {for_console(target)} ({len(results)} results)")


def print_table(results: list[dict], classifier: Classifier, top_k: int, console: Console) -> None:
    """One row per image, paths shown from their common folder; the decision ("unknown", "unsure" in yellow), the
    top-k classes and the OOD score when there."""
    shown = [r["path"] for r in results if "error" not in r]
    base = os.path.commonpath([os.path.dirname(p) for p in shown]) if len(shown) > 1 else ""
    title = (
        f"{classifier.path.name}: {len(results)} image(s){f' in {base}' if base else ''}, {classifier.model.backend}"
    )
    table = Table(title=for_console(title))
    table.add_column("image", overflow="fold")  # the distinguishing end of a path is never cut off
    table.add_column("decision", overflow="fold")  # labels are shown whole, however long
    for rank in range(top_k):
        table.add_column(f"#{rank + 1}", overflow="fold")
    with_ood = classifier.model.has_ood_score
    if with_ood:
        table.add_column("OOD", justify="right")  # higher = less like the training data
    table.add_column("ms", justify="right")
    for result in results:
        if "error" not in result:
            cells = [for_console(f"{label} {score:.2f}") for label, score in zip(result["labels"], result["scores"])]
            decision = for_console(result["decision"])
            if result["decision"] != result["labels"][0]:
                decision = f"[yellow]{decision}[/]"
            name = os.path.relpath(result["path"], base) if base else result["path"]
            ood = [f"{result['ood_score']:.2f}"] if with_ood else []
            table.add_row(for_console(name), decision, *cells, *ood, f"{result['ms']:.1f}")
    console.print(table)
