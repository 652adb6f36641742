"""Timeouts of one length, sharing a single pending timer.

Every attempt of a call, and every workload request with a timeout, starts a timeout; nearly all
of them are cancelled by a response. Scheduling one SimPy event per attempt would fill the event
queue with timers that fire for nothing. Timeouts of the same length expire in the order they
were started, so ``Deadlines`` keeps them in a FIFO and arms one timer, for the oldest one still
waiting. Waiters that got their response are dropped lazily, when they reach the front.

A waiter is any object with an ``awaiting`` attribute, the token of the attempt it is waiting
for (0: none), and ``expire(token)`` (that attempt timed out). Tokens are positive integers
that tell the attempts of one waiter apart.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import simpy
from simpy.events import Timeout


class Waiter(Protocol):
    awaiting: int

    def expire(self, token: int) -> None: ...


class Deadlines:
    """All timeouts of length ``length`` seconds, in start order, behind one SimPy timer."""

    __slots__ = ("armed_for", "env", "length", "queue")

    def __init__(self, env: simpy.Environment, length: float) -> None:
        self.env = env
        self.length = length
        self.queue: deque[tuple[float, Waiter, int]] = deque()
        self.armed_for: float | None = None

    def add(self, waiter: Waiter, token: int, now: float | None = None) -> None:
        """Start a timeout for ``waiter``'s attempt ``token``; ``now``: the simulated time,
        passed by callers that have it at hand (the engine's, once per attempt)."""
        queue = self.queue
        # Responses mostly come back in order: forget the ones already answered.
        while queue and queue[0][1].awaiting != queue[0][2]:
            queue.popleft()
        deadline = (self.env.now if now is None else now) + self.length
        queue.append((deadline, waiter, token))
        if self.armed_for is None:
            self._arm(deadline)

    def _arm(self, deadline: float) -> None:
        self.armed_for = deadline
        Timeout(self.env, deadline - self.env.now).callbacks.append(self._fire)

    def _fire(self, _event: object) -> None:
        due = self.armed_for
        assert due is not None
        queue = self.queue
        while queue and queue[0][0] <= due:
            _, waiter, token = queue.popleft()
            if waiter.awaiting == token:
                waiter.expire(token)
        while queue and queue[0][1].awaiting != queue[0][2]:
            queue.popleft()
        if queue:
            self._arm(queue[0][0])
        else:
            self.armed_for = None

    def __len__(self) -> int:
        return len(self.queue)
