"""`edgetl classify MODEL PATH...`: images, folders (recursively) or glob patterns → top-k labels."""

from __future__ import annotations

import csv
import glob
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

from edgetl.edge.classifier import Classifier
from edgetl.images import list_images, load_rgb


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
        try:
            rgb = load_rgb(path)
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
    writer.writerow(["path", *columns, "unknown", "ood_score", "error"])
    for result in results:
        pairs = [value for pair in zip(result.get("labels", []), result.get("scores", [])) for value in pair]
        pairs += [""] * (2 * top_k - len(pairs))
        ood = result.get("ood_score")
        flags = [result.get("unknown", ""), "" if ood is None else ood]
        writer.writerow([result["path"], *pairs, *flags, result.get("error", "")])
    return out.getvalue()
