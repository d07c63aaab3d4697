"""`edgetl collect` wired together: the source, the collector, and the page (`--serve`) or one burst."""

from __future__ import annotations

from pathlib import Path

from edgetl.edge.auth import Credentials
from edgetl.edge.capture import Capture, SourceSpec
from edgetl.edge.collect import OTHER_NAME, CollectOptions, Collector, Shot, burst, newest_frames
from edgetl.edge.collect_page import serve_collect
from edgetl.interrupt import StopFlag
from edgetl.layout import other_folder, photos_per_class
from edgetl.text import for_console


def run_collect(data: Path, options: CollectOptions, console, auth: Credentials | None = None) -> int:
    """Collect until the burst is done (headless) or a signal stops the page; returns the exit code."""
    data.mkdir(parents=True, exist_ok=True)
    collector = Collector(data, options)
    capture = Capture(SourceSpec(options.source), realtime=True)  # a file plays like a camera
    stop = StopFlag()
    shots = options.count
    try:
        with stop:
            if options.serve:
                serve_collect(collector, capture, options.serve, stop.event, console, auth)
            else:

                def said(shot: Shot) -> None:
                    what = shot.path.name if shot.path else "skipped: nearly the same as the previous photo"
                    console.print(f"{for_console(shot.shown)}: {what}")

                frames = newest_frames(capture, stop.event)
                shots = burst(collector, frames, options.label, options.count, options.interval, stop.event, said)
    finally:
        capture.close()
    held = ", ".join(f"{for_console(name)} {n}" for name, n in photos_per_class(collector.data).items())
    if other_folder(collector.data).is_dir():
        held += f"; {OTHER_NAME} {sum(1 for p in other_folder(collector.data).iterdir() if p.is_file())}"
    console.print(
        f"{collector.written} photo(s) written, {collector.skipped} near-duplicate(s) skipped; {data} holds: {held}."
    )
    if capture.error:
        console.print(f"[bold red]error:[/] {for_console(capture.error)}")
    if stop.exit_code is not None:
        return stop.exit_code
    if capture.error:
        return 2 if capture.stats.captured == 0 else 1
    if shots < options.count:
        console.print(f"[yellow]warning:[/] the source ended after {shots} of {options.count} shots.")
        return 1
    if options.serve:
        console.print("[yellow]warning:[/] the source ended, so the page closed.")
    return 0
