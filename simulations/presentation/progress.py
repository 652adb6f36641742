"""A progress bar for long batches of runs (a sweep), drawn with rich on stderr.

The sweep machinery reports progress through a plain callback, ``(done, total, record)``;
``ProgressBar`` is such a callback that draws a bar with the elapsed time and an ETA. It is a
context manager: the bar appears at the first report (a sweep makes one before its first run
finishes, with ``record`` None, once its workers are up) and is stopped on leaving, whatever
happened. The command line uses it, and so does ``faultmesh.sweep(..., progress=True)``.
"""

from __future__ import annotations

from typing import Any

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


class ProgressBar:
    """``(done, total, record)`` -> a rich bar titled ``title`` on ``console`` (stderr)."""

    def __init__(self, title: str, *, unit: str = "runs", console: Console | None = None):
        self.title, self.unit = title, unit
        self.console = console if console is not None else Console(stderr=True)
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def __call__(self, done: int, total: int, record: dict[str, Any] | None) -> None:
        if self.bar is None:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TextColumn(self.unit), TimeElapsedColumn(),
                                TextColumn("eta"), TimeRemainingColumn(),
                                console=self.console, transient=False)
            self.task = self.bar.add_task(self.title, total=total, completed=done)
            self.bar.start()
        assert self.task is not None
        self.bar.update(self.task, completed=done, total=total)


__all__ = ["ProgressBar"]
