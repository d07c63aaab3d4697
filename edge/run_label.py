"""`edgetl label` wired together: the photos to label, the dataset, and the page until a signal stops it."""

from __future__ import annotations

from edgetl.edge.auth import Credentials
from edgetl.edge.label import Labeller
from edgetl.edge.label_page import serve_label
from edgetl.interrupt import StopFlag
from edgetl.text import for_console


def run_label(folder, data, address: str, console, auth: Credentials | None = None) -> int:
    """Serve the page until SIGINT or SIGTERM; every filing is already on disk, so stopping loses nothing."""
    labeller = Labeller(folder, data, warn=lambda line: console.print(f"[yellow]warning:[/] {for_console(line)}"))
    server = serve_label(labeller, address, console, auth)
    stop = StopFlag()
    with stop:
        stop.event.wait()
    server.shutdown()
    console.print(f"{len(labeller.items())} photo(s) still waiting in {for_console(str(folder))}.")
    return stop.exit_code or 0
