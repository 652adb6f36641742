"""How a request ends: the four outcomes and the causes that explain them.

Every request that enters the system ends exactly once, as ``ok``, ``error``, ``timeout`` or
``rejected``; every one that does not end ``ok`` carries a cause. A failed call also carries a
root cause, the first thing that went wrong below it (``dependency failed`` at the entry,
``instance down`` at the bottom).
"""

from __future__ import annotations

from typing import Final

OK: Final = 0
ERROR: Final = 1
TIMEOUT: Final = 2
REJECTED: Final = 3
OUTCOMES: Final = ("ok", "error", "timeout", "rejected")

# Causes, with the outcome each one means for the request it ends.
NO_INSTANCE: Final = "no instance"  # nothing to route to (discovery view empty)
INSTANCE_DOWN: Final = "instance down"  # routed to an instance that is not running (stale view)
INSTANCE_DIED: Final = "instance died"  # the instance crashed while handling the request
CIRCUIT_OPEN: Final = "circuit open"
QUEUE_FULL: Final = "queue full"
CONCURRENCY_LIMIT: Final = "concurrency limit"
TIMED_OUT: Final = "timeout"
RETRIES_EXHAUSTED: Final = "retries exhausted"
DEPENDENCY_FAILED: Final = "dependency failed"
INJECTED_ERROR: Final = "injected error"
PARTITION: Final = "partition"  # a message dropped by a network partition (-> timeout)
MESSAGE_LOST: Final = "message lost"  # a message dropped by network loss (-> timeout)
# A call's overall deadline passed, or a propagating service dropped work whose deadline had.
DEADLINE_EXCEEDED: Final = "deadline exceeded"
RATE_LIMITED: Final = "rate limited"  # no token in the instance's (or endpoint's) bucket
SHED: Final = "shed"  # dropped from the queue: waited past the queue timeout or CoDel target

CAUSE_OUTCOME: Final[dict[str, int]] = {
    NO_INSTANCE: REJECTED,
    INSTANCE_DOWN: REJECTED,
    QUEUE_FULL: REJECTED,
    CONCURRENCY_LIMIT: REJECTED,
    CIRCUIT_OPEN: REJECTED,
    RATE_LIMITED: REJECTED,
    SHED: REJECTED,
    DEADLINE_EXCEEDED: TIMEOUT,
    TIMED_OUT: TIMEOUT,
    INSTANCE_DIED: ERROR,
    RETRIES_EXHAUSTED: ERROR,
    DEPENDENCY_FAILED: ERROR,
    INJECTED_ERROR: ERROR,
}


def outcome_of(cause: str) -> int:
    """The outcome a request ends with when it fails for ``cause``."""
    return CAUSE_OUTCOME.get(cause, ERROR)
