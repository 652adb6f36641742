"""Span recording for traced runs, with no cost to untraced ones.

``trace_spans(env, instances)`` gives each instance of the run a subclass of ``Instance``
whose ``accept``, ``finish`` and ``kill`` also open and close spans in a ``SpanLog``; the
class is swapped on the traced run's instances only, so an untraced run executes exactly
the code it did before.
"""

from __future__ import annotations

from typing import Any

import simpy

from faultmesh.simulations.engine.instances import Instance
from faultmesh.simulations.observation.spans import SpanLog


def trace_spans(env: simpy.Environment, instances: list[Instance]) -> SpanLog:
    """Record a span per job on ``instances`` from now on; returns the log they fill."""
    log = SpanLog()

    class TracedInstance(Instance):
        __slots__ = ()

        def accept(self, endpoint: Any, waiter: Any, token: int, key: int,
                   caller: Instance | None, deadline: float | None = None,
                   attempt: int = 0) -> None:
            before = self.accepted
            super().accept(endpoint, waiter, token, key, caller, deadline, attempt)
            if self.accepted != before:  # a job was made: the newest one in ``active``
                job = next(reversed(self.active))
                log.start(job, getattr(waiter, "parent", None), key, env.now)

        def finish(self, job: Any, ok: bool, cause: str | None, root: str | None) -> None:
            log.end(job, self.service, self.name, job.endpoint.name, env.now, ok)
            super().finish(job, ok, cause, root)

        def kill(self) -> None:
            if self.up:
                for job in self.active:
                    log.end(job, self.service, self.name, job.endpoint.name, env.now, False)
            super().kill()

    for instance in instances:
        instance.__class__ = TracedInstance
    return log
