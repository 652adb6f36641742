"""Circuit breakers: the pure state machines a caller consults before each call.

This module holds the two documented kinds of circuit breaker and nothing else: no I/O, no
SimPy, nothing from faultmesh but the policy values of ``model.system`` (the very objects a
loaded spec carries), so the same code is simulated, unit tested and model checked.

* :class:`RateBreakerPolicy` -- rate based, with Resilience4j semantics (COUNT_BASED sliding
  window, ``CircuitBreakerStateMachine`` and ``CircuitBreakerMetrics``).
* :class:`ConsecutiveBreakerPolicy` -- consecutive failures, with pybreaker semantics.

``CircuitBreaker(policy)`` builds the breaker for either policy. The caller asks
``allow(now)`` before a call and, for every call that was allowed, reports its outcome once with
``record(now, ok, duration)``. ``state`` is ``"closed"``, ``"open"`` or ``"half_open"``; every
change of state is appended to ``transitions`` as ``(now, new_state)`` and passed to the optional
``on_transition(now, new_state)`` callback. Times are seconds on the caller's clock.

Semantics common to both kinds, as in both references:

* OPEN rejects calls. Open -> half-open happens lazily, at the first ``allow`` once the open
  period is over; nothing happens while nobody asks. That ``allow`` is itself the first probe.
* An outcome recorded while OPEN is ignored (a call allowed while closed that finished late).
* An outcome recorded while HALF_OPEN is taken as a probe outcome: the breaker cannot tell a
  probe from a late call allowed before it opened. Resilience4j does the same; pybreaker runs
  one call at a time under a lock, so it never meets the case.

Rate kind (Resilience4j, COUNT_BASED):

* CLOSED records outcomes in a sliding window of the last ``window`` calls. Rates are evaluated only
  once ``min(min_calls, window)`` calls are in the ring; the breaker opens when the failure rate
  is ``>= failure_rate`` or, if ``slow_call_duration`` is set, the slow-call rate (calls, ok or
  not, lasting strictly longer than ``slow_call_duration``) is ``>= slow_call_rate``. Rates
  are exact ratios, ``failed / calls >= failure_rate`` in binary64 (Resilience4j compares
  float32 percentages; the two agree except within float32 rounding of a threshold).
* OPEN lasts while ``now <= opened_at + open_for``: the wait is over only strictly after it
  (Resilience4j's ``clock.instant().isAfter(retryAfterWaitDuration)``).
* HALF_OPEN permits ``half_open_calls`` calls in all; further ``allow`` calls return False until
  the state changes (permits are not returned when outcomes arrive). The probe outcomes form a
  window of ``half_open_calls`` calls evaluated, like CLOSED's, once
  ``min(min_calls, half_open_calls)`` outcomes are in: over a threshold -> OPEN for another
  ``open_for``, else CLOSED with a fresh, empty window.

The window is kept run-length encoded (``(outcome, run length)`` oldest first), so a breaker's
memory grows with the number of changes of outcome inside its window, not with the window:
steady traffic (all ok, or failing in bursts) takes a few entries whatever ``window`` is.
Exactness needs the outcome leaving the window at every call, so a window whose calls
alternate still takes one entry per call; the schema's cap on ``window`` bounds that case.

Consecutive kind (pybreaker):

* CLOSED counts consecutive failures; a success resets the count; the failure that brings the
  count to ``consecutive_failures`` opens the breaker.
* OPEN lasts while ``now < opened_at + open_for``: at exactly ``open_for`` the next call is
  allowed (pybreaker rejects only while ``now < opened_at + reset_timeout``).
* HALF_OPEN lets that single trial call through and rejects others until its outcome arrives:
  success closes the breaker (count reset to 0), failure opens it again from ``now``. This is
  pybreaker with its default ``success_threshold=1`` and no excluded exceptions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final, Literal, TypeAlias

from faultmesh.model.system import BreakerPolicy, ConsecutiveBreakerPolicy, RateBreakerPolicy

__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "OPEN",
    "BreakerPolicy",
    "BreakerState",
    "CircuitBreaker",
    "ConsecutiveBreakerPolicy",
    "ConsecutiveCircuitBreaker",
    "RateBreakerPolicy",
    "RateCircuitBreaker",
    "TransitionCallback",
]

BreakerState: TypeAlias = Literal["closed", "open", "half_open"]
CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half_open"

TransitionCallback: TypeAlias = Callable[[float, BreakerState], None]

_INFINITY: Final = float("inf")


class CircuitBreaker:
    """A circuit breaker; ``CircuitBreaker(policy)`` returns the kind the policy names.

    Every call that ``allow`` permitted must be reported exactly once with ``record``.
    """

    __slots__ = ("_open_until", "_state", "on_transition", "policy", "transitions")

    policy: BreakerPolicy
    transitions: list[tuple[float, BreakerState]]
    """Every change of state as ``(time, new state)``, oldest first."""
    on_transition: TransitionCallback | None
    """Called as ``on_transition(time, new state)`` after every change of state."""

    def __new__(
        cls, policy: BreakerPolicy, on_transition: TransitionCallback | None = None
    ) -> CircuitBreaker:
        kind: type[CircuitBreaker] = cls
        if kind is CircuitBreaker:
            if isinstance(policy, RateBreakerPolicy):
                kind = RateCircuitBreaker
            elif isinstance(policy, ConsecutiveBreakerPolicy):
                kind = ConsecutiveCircuitBreaker
            else:
                raise TypeError(f"not a circuit breaker policy: {policy!r}")
        return object.__new__(kind)

    def __init__(
        self, policy: BreakerPolicy, on_transition: TransitionCallback | None = None
    ) -> None:
        self.policy = policy
        self.on_transition = on_transition
        self.transitions = []
        self._state: BreakerState = CLOSED
        self._open_until = _INFINITY

    @property
    def state(self) -> BreakerState:
        """``"closed"``, ``"open"`` or ``"half_open"`` (open stays open until an ``allow``)."""
        return self._state

    def allow(self, now: float) -> bool:
        """Whether a call starting at ``now`` may go ahead (a permit, when half-open)."""
        raise NotImplementedError

    def record(self, now: float, ok: bool, duration: float | None = None) -> None:
        """Report the outcome, at ``now``, of a call ``allow`` permitted; it took ``duration``."""
        raise NotImplementedError

    def _enter(self, now: float, state: BreakerState) -> None:
        self._state = state
        self.transitions.append((now, state))
        if self.on_transition is not None:
            self.on_transition(now, state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.policy!r}, state={self._state!r})"


class RateCircuitBreaker(CircuitBreaker):
    """Failure-rate and slow-call-rate breaker with Resilience4j semantics (see module doc)."""

    __slots__ = (
        "_count",
        "_failed",
        "_failure_rate",
        "_half_open_min",
        "_min_calls",
        "_permits",
        "_runs",
        "_slow",
        "_slow_after",
        "_slow_call_rate",
        "_window",
    )

    policy: RateBreakerPolicy

    def __init__(
        self, policy: RateBreakerPolicy, on_transition: TransitionCallback | None = None
    ) -> None:
        if not isinstance(policy, RateBreakerPolicy):
            raise TypeError(f"not a RateBreakerPolicy: {policy!r}")
        super().__init__(policy, on_transition)
        self._failure_rate = policy.failure_rate
        self._slow_call_rate = policy.slow_call_rate
        slow = policy.slow_call_duration
        self._slow_after = _INFINITY if slow is None else slow
        self._window = policy.window
        self._min_calls = min(policy.min_calls, policy.window)
        self._half_open_min = min(policy.min_calls, policy.half_open_calls)
        # The window's outcomes, oldest first, as runs: ``length << 2 | flags`` with the flags
        # of a call's outcome as bits (failed 1, slow 2). Neighbouring runs differ in flags.
        self._runs: deque[int] = deque()
        self._reset_counts()
        self._permits = 0

    def _reset_counts(self) -> None:
        self._runs.clear()
        self._count = 0
        self._failed = 0
        self._slow = 0

    def allow(self, now: float) -> bool:
        state = self._state
        if state == CLOSED:
            return True
        if state == OPEN:
            if now <= self._open_until:
                return False
            self._reset_counts()
            self._permits = self.policy.half_open_calls
            self._enter(now, HALF_OPEN)
        if self._permits > 0:
            self._permits -= 1
            return True
        return False

    def record(self, now: float, ok: bool, duration: float | None = None) -> None:
        state = self._state
        if state == OPEN:
            return
        flags = 0 if ok else 1
        if duration is not None and duration > self._slow_after:
            flags |= 2
        if state == CLOSED:
            runs = self._runs
            # Append the new outcome to the newest run, or start a run.
            if runs and runs[-1] & 3 == flags:
                runs[-1] += 4
            else:
                runs.append(4 | flags)
            count = self._count
            if count == self._window:
                # Full: the oldest outcome leaves the window.
                oldest = runs[0]
                old = oldest & 3
                if oldest >= 8:
                    runs[0] = oldest - 4
                else:
                    runs.popleft()
                if flags == old:
                    return
                failed = self._failed + (flags & 1) - (old & 1)
                slow = self._slow + (flags >> 1) - (old >> 1)
                self._failed = failed
                self._slow = slow
                if not flags & ~old:
                    # No new failure or slow call: the rates did not rise, and they were
                    # below the thresholds at the last record, or the breaker would be open.
                    return
            else:
                count += 1
                self._count = count
                failed = self._failed + (flags & 1)
                slow = self._slow + (flags >> 1)
                self._failed = failed
                self._slow = slow
                if count < self._min_calls:
                    return
            if failed / count >= self._failure_rate or slow / count >= self._slow_call_rate:
                self._open(now)
            return
        # HALF_OPEN: the window is the probes' own; it cannot overflow before it is evaluated.
        count = self._count + 1
        failed = self._failed + (flags & 1)
        slow = self._slow + (flags >> 1)
        self._count = count
        self._failed = failed
        self._slow = slow
        if count < self._half_open_min:
            return
        if failed / count >= self._failure_rate or slow / count >= self._slow_call_rate:
            self._open(now)
        else:
            self._reset_counts()
            self._enter(now, CLOSED)

    def _open(self, now: float) -> None:
        self._open_until = now + self.policy.open_for
        self._enter(now, OPEN)


class ConsecutiveCircuitBreaker(CircuitBreaker):
    """Consecutive-failures breaker with pybreaker semantics (see module doc)."""

    __slots__ = ("_failures", "_limit")

    policy: ConsecutiveBreakerPolicy

    def __init__(
        self, policy: ConsecutiveBreakerPolicy, on_transition: TransitionCallback | None = None
    ) -> None:
        if not isinstance(policy, ConsecutiveBreakerPolicy):
            raise TypeError(f"not a ConsecutiveBreakerPolicy: {policy!r}")
        super().__init__(policy, on_transition)
        self._limit = policy.consecutive_failures
        self._failures = 0

    @property
    def failures(self) -> int:
        """Consecutive failures counted while closed."""
        return self._failures

    def allow(self, now: float) -> bool:
        state = self._state
        if state == CLOSED:
            return True
        if state == OPEN and now >= self._open_until:
            self._enter(now, HALF_OPEN)
            return True
        # Open and waiting, or half-open with the single trial call already out.
        return False

    def record(self, now: float, ok: bool, duration: float | None = None) -> None:
        state = self._state
        if state == CLOSED:
            if ok:
                self._failures = 0
            else:
                self._failures += 1
                if self._failures >= self._limit:
                    self._open(now)
        elif state == HALF_OPEN:
            if ok:
                self._failures = 0
                self._enter(now, CLOSED)
            else:
                self._open(now)
        # OPEN: a late outcome of a call allowed while closed changes nothing.

    def _open(self, now: float) -> None:
        self._open_until = now + self.policy.open_for
        self._enter(now, OPEN)
