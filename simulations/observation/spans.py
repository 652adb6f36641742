"""Opt-in spans: one record per job (one request served by one instance), for trace export.

Kept only with ``simulate(..., trace=True)``. A span starts when an instance accepts a request
(queueing included) and ends when the job finishes or its instance dies; its parent is the
job whose call it serves, and its trace is the workload request it belongs to. Calls fired
asynchronously keep no link to the job that fired them, so their spans have no parent.
"""

from __future__ import annotations

import itertools
from typing import Any

SpanRow = tuple[int, int, int | None, str, str, str, float, float, bool]
"""(trace, span, parent span or None, service, instance, endpoint, start, end, ok)."""


class SpanLog:
    """Spans as they open and close; ``rows`` holds the finished ones in finishing order."""

    def __init__(self) -> None:
        self.rows: list[SpanRow] = []
        self.open: dict[Any, tuple[int, int, int | None, float]] = {}
        self._ids = itertools.count(1)

    def start(self, job: Any, parent: Any, trace: int, now: float) -> None:
        above = self.open.get(parent) if parent is not None else None
        self.open[job] = (trace, next(self._ids), above[1] if above else None, now)

    def end(self, job: Any, service: str, instance: str, endpoint: str, now: float,
            ok: bool) -> None:
        opened = self.open.pop(job, None)
        if opened is not None:
            trace, span, parent, start = opened
            self.rows.append((trace, span, parent, service, instance, endpoint, start, now, ok))

    def __len__(self) -> int:
        return len(self.rows)
