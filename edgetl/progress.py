"""The one progress bar every long step shows (Rich): what, how far, how long, how long to go."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from edgetl import interrupt


class _StoppableProgress(Progress):
    """Each step shown is also a point where Ctrl-C ends the work (see `interrupt.check`)."""

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        interrupt.check()
        super().advance(task_id, advance)


def progress_bar(console: Console) -> Progress:
    return _StoppableProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
