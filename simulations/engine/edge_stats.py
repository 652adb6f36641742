"""What the calls along one (caller service, callee service) edge did, counted while a run
goes: the call summary's numbers per edge (``observation.summary.CallSummary``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from faultmesh.simulations.observation.summary import CallSummary


class EdgeStats:
    """Counters of the calls made along one (caller service, callee service) edge.

    ``attempts`` splits into ``first_attempts``, ``retries`` and ``hedges``: what share of the
    callee's load the caller's retries and hedges make.
    """

    __slots__ = ("attempts", "calls", "causes", "degraded", "failed", "first_attempts",
                 "hedges", "retries", "retry_overflow", "throttled")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls = 0
        self.attempts = 0
        self.failed = 0
        self.degraded = 0
        # Retries not made: max_retries or the retry budget was reached (Envoy's overflow).
        self.retry_overflow = 0
        self.throttled = 0  # retries and hedges not made: gRPC retry throttling
        self.first_attempts = 0
        self.retries = 0
        self.hedges = 0
        self.causes: dict[str, int] = {}

    def summary(self, orphaned: int = 0) -> CallSummary:
        """The edge's summary; ``orphaned``: jobs its callee started after their deadline."""
        return {"calls": self.calls, "attempts": self.attempts, "failed": self.failed,
                "degraded": self.degraded, "retry_overflow": self.retry_overflow,
                "throttled": self.throttled, "first_attempts": self.first_attempts,
                "retries": self.retries, "hedges": self.hedges, "orphaned": orphaned,
                "causes": dict(sorted(self.causes.items()))}


__all__ = ["EdgeStats"]
