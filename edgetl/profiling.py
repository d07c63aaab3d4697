"""Device latency profiles, wired: `edgetl profile` writes one, and `--max-latency` without a profile makes
this machine's once (convert/profile.py converts, edge/bench.py times, train/search.py reads)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from rich.console import Console

from edgetl.latency import PROFILE_CLASSES, PROFILE_FILE, Candidate, default_candidates
from edgetl.outputs import OutputSet
from edgetl.progress import progress_bar


def make_profile(
    out: Path, console: Console, *, force: bool = False, candidates: list[Candidate] | None = None
) -> Path:
    """Candidate int8 models (random weights) and their manifest in `out`."""
    from edgetl.convert.profile import write_profile
    from edgetl.train.models import build_classifier

    candidates = candidates or default_candidates()

    def build(candidate: Candidate):
        return build_classifier(
            candidate.backbone, PROFILE_CLASSES, size=candidate.size, alpha=candidate.alpha, weights=None
        ).model

    with progress_bar(console) as progress:
        task = progress.add_task("Converting candidate models", total=len(candidates))
        write_profile(
            out,
            candidates,
            build,
            force=force,
            progress=lambda candidate: progress.update(task, completed=candidates.index(candidate)),
        )
        progress.update(task, completed=len(candidates))
    return out


def local_profile_dir() -> Path:
    """Where this machine's own profile is kept: one per architecture and core count."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "edgetl" / f"profile-{platform.machine()}-{os.cpu_count()}cores"


def local_profile(console: Console, candidates: list[Candidate] | None = None) -> Path:
    """This machine's device profile (bench.json), made once and then reused."""
    from edgetl.edge.bench import BenchOptions, run_bench
    from edgetl.edge.bench_report import write_reports

    folder = local_profile_dir()
    bench_json = folder / "bench" / "bench.json"
    if bench_json.is_file():
        return bench_json
    console.print(f"No device profile given: timing the candidates on this machine once ({folder}).")
    if not (folder / PROFILE_FILE).is_file():
        make_profile(folder, console, force=True, candidates=candidates)
    report = run_bench([folder], BenchOptions(), progress=lambda text: None)
    with OutputSet(folder / "bench", "bench") as outputs:
        write_reports(report, outputs)
        outputs.commit()
    return bench_json
