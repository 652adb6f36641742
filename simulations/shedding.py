"""Server-side load shedding as pure rules: the token bucket and the queue's mode and wait bound.

No SimPy and no I/O: the instance (``simulations.engine.instances``) asks these at the moments
it decides, so they can be tested against hand computations alone.

* ``TokenBucket`` -- Envoy's local rate limit (``token_bucket``: ``max_tokens``, one token per
  ``fill_interval``): ``burst`` tokens to start with and at most, one more every ``1 / rate``
  seconds counted from time 0; a request takes one token or is refused.
* ``serves_newest`` and ``wait_limit`` -- which end of the queue a free worker takes and how
  long a request may have waited: FIFO, LIFO, or Facebook's adaptive LIFO with CoDel (Maurer,
  "Fail at Scale", ACM Queue 2015; CoDel, RFC 8289): while the queue has emptied within the
  last ``interval`` it is served FIFO under the queue timeout alone; once it has stood for
  ``interval`` the newest request goes first and a request that waited more than ``target`` is
  shed.
"""

from __future__ import annotations

import math

from faultmesh.model.policies import QueueDiscipline, RateLimit

# A fill boundary computed as ``now * rate`` may land a hair below the integer it means
# (0.29 * 100 = 28.999999999999996): this much is forgiven.
_EPSILON = 1e-9


class TokenBucket:
    """A token bucket that starts full; ``take(now)`` consumes a token if there is one."""

    __slots__ = ("burst", "fills", "rate", "tokens")

    def __init__(self, policy: RateLimit) -> None:
        self.rate = policy.rate
        self.burst = policy.burst
        self.tokens = policy.burst
        self.fills = 0  # fill instants (k / rate) passed so far

    def refill(self, now: float) -> int:
        """Add the tokens of the fill instants up to ``now``; the tokens available after."""
        fills = math.floor(now * self.rate + _EPSILON)
        if fills > self.fills:
            self.tokens = min(self.burst, self.tokens + (fills - self.fills))
            self.fills = fills
        return self.tokens

    def take(self, now: float) -> bool:
        """One request at ``now``: True if it got a token (and took it)."""
        if self.refill(now) > 0:
            self.tokens -= 1
            return True
        return False


def standing(discipline: QueueDiscipline, now: float, last_empty: float, waiting: int) -> bool:
    """Is the queue standing (adaptive LIFO): not empty at any moment of the last ``interval``?

    ``last_empty`` is the last time the queue was empty; ``waiting`` its length now.
    """
    return waiting > 0 and now - last_empty >= discipline.interval


def serves_newest(discipline: QueueDiscipline, is_standing: bool) -> bool:
    """Does a free worker take the newest request (LIFO) rather than the oldest?"""
    kind = discipline.kind
    return kind == "lifo" or (kind == "adaptive_lifo" and is_standing)


def wait_limit(discipline: QueueDiscipline, is_standing: bool) -> float | None:
    """The longest a request may have waited and still be served (None: no bound)."""
    limit = discipline.timeout
    if discipline.kind == "adaptive_lifo" and is_standing:
        return discipline.target if limit is None else min(limit, discipline.target)
    return limit
