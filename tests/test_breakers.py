"""Tests of the circuit breaker state machines in ``simulations.breakers``.

Unit tests pin each documented rule; property tests compare the consecutive kind with the real
pybreaker library on a shared fake clock, and the rate kind with a deliberately naive
reimplementation of Resilience4j's rules; invariants are checked on random concurrent use.
"""

# mypy narrows ``breaker.state`` at each assert and keeps it across calls that change it.
# mypy: disable-error-code="comparison-overlap"

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from typing import Any
from unittest import mock

import pybreaker
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from faultmesh.simulations.breakers import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerPolicy,
    BreakerState,
    CircuitBreaker,
    ConsecutiveBreakerPolicy,
    ConsecutiveCircuitBreaker,
    RateBreakerPolicy,
    RateCircuitBreaker,
)

PROPERTY = settings(max_examples=300, deadline=None)

LEGAL_NEXT: dict[BreakerState, set[BreakerState]] = {
    CLOSED: {OPEN},
    OPEN: {HALF_OPEN},
    HALF_OPEN: {OPEN, CLOSED},
}


def rate_policy(
    failure_rate: float = 0.5,
    window: int = 4,
    min_calls: int = 4,
    open_for: float = 10.0,
    half_open_calls: int = 2,
    slow_call_duration: float | None = None,
    slow_call_rate: float = 1.0,
) -> RateBreakerPolicy:
    return RateBreakerPolicy(
        failure_rate=failure_rate,
        window=window,
        min_calls=min_calls,
        open_for=open_for,
        half_open_calls=half_open_calls,
        slow_call_duration=slow_call_duration,
        slow_call_rate=slow_call_rate,
    )


def call(breaker: CircuitBreaker, now: float, ok: bool, duration: float | None = None) -> bool:
    """One call that completes at once: ask, and record the outcome if allowed."""
    allowed = breaker.allow(now)
    if allowed:
        breaker.record(now, ok, duration)
    return allowed


def open_rate_breaker(policy: RateBreakerPolicy, now: float = 0.0) -> CircuitBreaker:
    breaker = CircuitBreaker(policy)
    for _ in range(policy.window):
        call(breaker, now, ok=False)
    assert breaker.state == OPEN
    return breaker


# --- construction and policies -------------------------------------------------------------


def test_circuit_breaker_builds_the_kind_its_policy_names() -> None:
    rate = CircuitBreaker(rate_policy())
    consecutive = CircuitBreaker(ConsecutiveBreakerPolicy(consecutive_failures=3, open_for=5.0))
    assert isinstance(rate, RateCircuitBreaker)
    assert isinstance(consecutive, ConsecutiveCircuitBreaker)
    for breaker in (rate, consecutive):
        assert isinstance(breaker, CircuitBreaker)
        assert breaker.state == CLOSED
        assert breaker.transitions == []
        assert "closed" in repr(breaker)


def test_unknown_policy_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not a circuit breaker policy"):
        CircuitBreaker({"failure_rate": 0.5})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RateCircuitBreaker(ConsecutiveBreakerPolicy(3, 1.0))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ConsecutiveCircuitBreaker(rate_policy())  # type: ignore[arg-type]


def test_policies_are_frozen_and_hashable() -> None:
    policy = rate_policy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.window = 3  # type: ignore[misc]
    assert hash(policy) == hash(rate_policy())
    assert {ConsecutiveBreakerPolicy(2, 1.0), ConsecutiveBreakerPolicy(2, 1.0)} == {
        ConsecutiveBreakerPolicy(consecutive_failures=2, open_for=1.0)
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"failure_rate": 0.0}, "failure_rate"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"window": 0}, "window"),
        ({"min_calls": 0}, "min_calls"),
        ({"open_for": -1.0}, "open_for"),
        ({"half_open_calls": 0}, "half_open_calls"),
        ({"slow_call_duration": -0.1}, "slow_call_duration"),
        ({"slow_call_rate": 0.0}, "slow_call_rate"),
        ({"slow_call_rate": 2.0}, "slow_call_rate"),
    ],
)
def test_rate_policy_rejects_bad_values(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(rate_policy(), **changes)


def test_consecutive_policy_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="consecutive_failures"):
        ConsecutiveBreakerPolicy(consecutive_failures=0, open_for=1.0)
    with pytest.raises(ValueError, match="open_for"):
        ConsecutiveBreakerPolicy(consecutive_failures=1, open_for=-1.0)


def test_on_transition_is_called_for_every_change() -> None:
    seen: list[tuple[float, str]] = []
    breaker = CircuitBreaker(
        ConsecutiveBreakerPolicy(consecutive_failures=1, open_for=2.0),
        on_transition=lambda now, state: seen.append((now, state)),
    )
    call(breaker, 1.0, ok=False)
    call(breaker, 3.0, ok=True)
    assert seen == [(1.0, OPEN), (3.0, HALF_OPEN), (3.0, CLOSED)]
    assert breaker.transitions == seen


# --- rate kind (Resilience4j) --------------------------------------------------------------


def test_rate_opens_when_failure_rate_reaches_threshold() -> None:
    breaker = CircuitBreaker(rate_policy(failure_rate=0.5, window=4, min_calls=4))
    for ok in (True, False, True):
        assert call(breaker, 0.0, ok)
    assert breaker.state == CLOSED
    assert call(breaker, 1.0, ok=False)  # 2 of 4 failed: 50% >= 50%
    assert breaker.state == OPEN
    assert breaker.transitions == [(1.0, OPEN)]


def test_rate_stays_closed_below_threshold() -> None:
    breaker = CircuitBreaker(rate_policy(failure_rate=0.5, window=4, min_calls=4))
    for ok in (True, False, True, True, True, True, False, True):
        assert call(breaker, 0.0, ok)
    assert breaker.state == CLOSED


def test_rate_does_not_evaluate_before_min_calls() -> None:
    breaker = CircuitBreaker(rate_policy(failure_rate=0.5, window=10, min_calls=5))
    for _ in range(4):
        assert call(breaker, 0.0, ok=False)  # 100% failed, but only 4 calls
    assert breaker.state == CLOSED
    assert call(breaker, 0.0, ok=False)
    assert breaker.state == OPEN


def test_rate_min_calls_is_capped_at_window() -> None:
    # Resilience4j: minimumNumberOfCalls = min(minimumNumberOfCalls, slidingWindowSize).
    breaker = CircuitBreaker(rate_policy(failure_rate=1.0, window=3, min_calls=100))
    for _ in range(3):
        call(breaker, 0.0, ok=False)
    assert breaker.state == OPEN


def test_rate_window_slides_over_the_last_calls() -> None:
    breaker = CircuitBreaker(rate_policy(failure_rate=0.75, window=4, min_calls=4))
    for ok in (False, False, True, True):  # 50%
        call(breaker, 0.0, ok)
    call(breaker, 0.0, ok=False)  # evicts a failure: F T T F, 50%
    call(breaker, 0.0, ok=False)  # T T F F, 50%
    assert breaker.state == CLOSED
    call(breaker, 0.0, ok=False)  # T F F F, 75%
    assert breaker.state == OPEN


def test_rate_old_failures_slide_out() -> None:
    breaker = CircuitBreaker(rate_policy(failure_rate=0.5, window=4, min_calls=2))
    call(breaker, 0.0, ok=True)
    call(breaker, 0.0, ok=True)
    call(breaker, 0.0, ok=True)
    call(breaker, 0.0, ok=False)  # T T T F, 25%
    for _ in range(4):
        call(breaker, 0.0, ok=True)  # the failure slides out
    call(breaker, 0.0, ok=False)  # T T T F again, not 2 of 4
    assert breaker.state == CLOSED


def test_rate_open_rejects_until_strictly_after_open_for() -> None:
    breaker = open_rate_breaker(rate_policy(open_for=10.0), now=5.0)
    assert not breaker.allow(5.0)
    assert not breaker.allow(14.999)
    # Resilience4j: clock.instant().isAfter(retryAfterWaitDuration), strictly after.
    assert not breaker.allow(15.0)
    assert breaker.state == OPEN
    assert breaker.allow(15.001)
    assert breaker.state == HALF_OPEN


def test_rate_open_to_half_open_is_lazy() -> None:
    breaker = open_rate_breaker(rate_policy(open_for=10.0), now=0.0)
    breaker.record(100.0, ok=True)  # a late outcome; no allow yet
    assert breaker.state == OPEN
    assert breaker.allow(250.0)
    assert breaker.state == HALF_OPEN
    assert breaker.transitions == [(0.0, OPEN), (250.0, HALF_OPEN)]


def test_rate_half_open_permits_exactly_half_open_calls() -> None:
    breaker = open_rate_breaker(rate_policy(open_for=1.0, half_open_calls=3, min_calls=3))
    assert [breaker.allow(2.0) for _ in range(5)] == [True, True, True, False, False]
    breaker.record(2.1, ok=True)
    breaker.record(2.2, ok=True)
    assert breaker.state == HALF_OPEN
    assert not breaker.allow(2.3)  # permits are not returned by outcomes
    breaker.record(2.4, ok=True)
    assert breaker.state == CLOSED
    assert breaker.allow(2.5)


def test_rate_half_open_closes_below_threshold() -> None:
    breaker = open_rate_breaker(rate_policy(failure_rate=0.5, open_for=1.0, half_open_calls=3))
    for _ in range(3):
        assert breaker.allow(2.0)
    breaker.record(2.0, ok=True)
    breaker.record(2.0, ok=False)
    breaker.record(3.0, ok=True)  # 1 of 3 failed: 33% < 50%
    assert breaker.state == CLOSED
    assert breaker.transitions[-2:] == [(2.0, HALF_OPEN), (3.0, CLOSED)]


def test_rate_half_open_reopens_at_threshold_for_a_new_open_for() -> None:
    breaker = open_rate_breaker(rate_policy(failure_rate=0.5, open_for=10.0, half_open_calls=2))
    assert breaker.allow(11.0)
    assert breaker.allow(11.0)
    breaker.record(12.0, ok=True)
    breaker.record(13.0, ok=False)  # 1 of 2: 50% >= 50%
    assert breaker.state == OPEN
    assert not breaker.allow(23.0)  # open_for counts from the reopening, at 13
    assert breaker.allow(23.5)
    assert breaker.transitions == [(0.0, OPEN), (11.0, HALF_OPEN), (13.0, OPEN), (23.5, HALF_OPEN)]


def test_rate_half_open_decides_after_min_of_min_calls_and_half_open_calls() -> None:
    # Resilience4j's half-open metrics are a COUNT_BASED window of half_open_calls calls, so
    # its minimum is min(minimumNumberOfCalls, permittedNumberOfCallsInHalfOpenState).
    breaker = open_rate_breaker(rate_policy(window=2, min_calls=2, half_open_calls=5))
    for _ in range(5):
        assert breaker.allow(20.0)
    breaker.record(20.0, ok=True)
    assert breaker.state == HALF_OPEN
    breaker.record(20.0, ok=True)
    assert breaker.state == CLOSED


def test_rate_closes_with_a_fresh_window() -> None:
    breaker = open_rate_breaker(rate_policy(failure_rate=0.5, window=4, min_calls=4))
    breaker.allow(20.0)
    breaker.allow(20.0)
    breaker.record(20.0, ok=True)
    breaker.record(20.0, ok=True)
    assert breaker.state == CLOSED
    for _ in range(3):
        call(breaker, 21.0, ok=False)  # would be 100% of a stale full window
    assert breaker.state == CLOSED
    call(breaker, 21.0, ok=True)  # 3 of 4 now
    assert breaker.state == OPEN


def test_rate_outcomes_recorded_while_open_are_ignored() -> None:
    breaker = CircuitBreaker(rate_policy(failure_rate=0.5, window=2, min_calls=2,
                                         half_open_calls=2))
    assert breaker.allow(0.0)
    assert breaker.allow(0.0)
    assert breaker.allow(0.0)
    breaker.record(0.0, ok=False)
    breaker.record(0.0, ok=False)
    assert breaker.state == OPEN
    breaker.record(1.0, ok=False)  # the third call finishes late
    assert breaker.state == OPEN
    assert breaker.allow(20.0)
    assert breaker.allow(20.0)
    breaker.record(20.0, ok=True)
    breaker.record(20.0, ok=True)
    assert breaker.state == CLOSED


def test_rate_slow_calls_open_the_breaker() -> None:
    policy = rate_policy(failure_rate=1.0, window=4, min_calls=4, slow_call_duration=1.0,
                         slow_call_rate=0.5)
    breaker = CircuitBreaker(policy)
    call(breaker, 0.0, ok=True, duration=0.5)
    call(breaker, 0.0, ok=True, duration=1.0)  # not slow: slow means strictly longer
    call(breaker, 0.0, ok=True, duration=None)  # unknown duration: not slow
    call(breaker, 0.0, ok=True, duration=2.0)  # 1 of 4 slow
    assert breaker.state == CLOSED
    call(breaker, 0.0, ok=True, duration=3.0)  # 2 of 4 slow: 50% >= 50%
    assert breaker.state == OPEN


def test_rate_slow_failures_count_as_failed_and_slow() -> None:
    policy = rate_policy(failure_rate=1.0, window=2, min_calls=2, slow_call_duration=1.0,
                         slow_call_rate=1.0)
    breaker = CircuitBreaker(policy)
    call(breaker, 0.0, ok=False, duration=5.0)
    call(breaker, 0.0, ok=True, duration=5.0)  # 50% failed, 100% slow
    assert breaker.state == OPEN


def test_rate_slow_calls_slide_out_of_the_window() -> None:
    policy = rate_policy(failure_rate=1.0, window=2, min_calls=2, slow_call_duration=1.0,
                         slow_call_rate=1.0)
    breaker = CircuitBreaker(policy)
    call(breaker, 0.0, ok=True, duration=2.0)
    call(breaker, 0.0, ok=True, duration=0.1)  # slow, fast: 50% slow
    call(breaker, 0.0, ok=True, duration=0.1)  # the slow call slides out
    call(breaker, 0.0, ok=False, duration=0.1)
    call(breaker, 0.0, ok=True, duration=2.0)  # fast failure, slow success: 50% each
    assert breaker.state == CLOSED
    call(breaker, 0.0, ok=True, duration=2.0)  # 100% slow
    assert breaker.state == OPEN


def test_rate_slow_calls_are_ignored_without_slow_call_duration() -> None:
    breaker = CircuitBreaker(rate_policy(failure_rate=1.0, window=2, min_calls=2))
    for _ in range(10):
        call(breaker, 0.0, ok=True, duration=1e9)
    assert breaker.state == CLOSED


def test_rate_slow_probes_reopen_from_half_open() -> None:
    policy = rate_policy(failure_rate=1.0, window=2, min_calls=2, half_open_calls=2,
                         slow_call_duration=1.0, slow_call_rate=0.5)
    breaker = open_rate_breaker(policy)
    assert breaker.allow(11.0)
    assert breaker.allow(11.0)
    breaker.record(11.0, ok=True, duration=0.1)
    breaker.record(12.0, ok=True, duration=1.5)
    assert breaker.state == OPEN
    assert breaker.transitions[-1] == (12.0, OPEN)


def test_rate_zero_open_for_still_waits_for_a_later_instant() -> None:
    breaker = open_rate_breaker(rate_policy(open_for=0.0), now=3.0)
    assert not breaker.allow(3.0)
    assert breaker.allow(3.0000001)


# --- consecutive kind (pybreaker) ----------------------------------------------------------


def test_consecutive_opens_on_the_failure_that_reaches_the_limit() -> None:
    breaker = CircuitBreaker(ConsecutiveBreakerPolicy(consecutive_failures=3, open_for=5.0))
    assert call(breaker, 0.0, ok=False)
    assert call(breaker, 0.0, ok=False)
    assert breaker.state == CLOSED
    assert call(breaker, 1.0, ok=False)
    assert breaker.state == OPEN
    assert breaker.transitions == [(1.0, OPEN)]


def test_consecutive_success_resets_the_count() -> None:
    breaker = ConsecutiveCircuitBreaker(ConsecutiveBreakerPolicy(3, 5.0))
    for ok in (False, False, True, False, False, True, False):
        call(breaker, 0.0, ok)
    assert breaker.state == CLOSED
    assert breaker.failures == 1


def test_consecutive_open_rejects_until_open_for_elapsed() -> None:
    breaker = CircuitBreaker(ConsecutiveBreakerPolicy(1, 5.0))
    call(breaker, 10.0, ok=False)
    assert not breaker.allow(10.0)
    assert not breaker.allow(14.999)
    assert breaker.state == OPEN
    # pybreaker rejects only while now < opened_at + reset_timeout.
    assert breaker.allow(15.0)
    assert breaker.state == HALF_OPEN


def test_consecutive_open_to_half_open_is_lazy() -> None:
    breaker = CircuitBreaker(ConsecutiveBreakerPolicy(1, 5.0))
    call(breaker, 0.0, ok=False)
    assert breaker.state == OPEN
    assert breaker.allow(100.0)
    assert breaker.transitions == [(0.0, OPEN), (100.0, HALF_OPEN)]


def test_consecutive_half_open_lets_a_single_trial_through() -> None:
    breaker = CircuitBreaker(ConsecutiveBreakerPolicy(1, 5.0))
    call(breaker, 0.0, ok=False)
    assert breaker.allow(5.0)
    assert not breaker.allow(5.0)
    assert not breaker.allow(6.0)
    assert breaker.state == HALF_OPEN


def test_consecutive_trial_success_closes_and_resets_the_count() -> None:
    breaker = ConsecutiveCircuitBreaker(ConsecutiveBreakerPolicy(2, 5.0))
    call(breaker, 0.0, ok=False)
    call(breaker, 0.0, ok=False)
    assert breaker.allow(6.0)
    breaker.record(7.0, ok=True)
    assert breaker.state == CLOSED
    assert breaker.failures == 0
    call(breaker, 8.0, ok=False)
    assert breaker.state == CLOSED  # one failure of two needed
    assert breaker.transitions == [(0.0, OPEN), (6.0, HALF_OPEN), (7.0, CLOSED)]


def test_consecutive_trial_failure_reopens_with_a_new_timer() -> None:
    breaker = CircuitBreaker(ConsecutiveBreakerPolicy(2, 5.0))
    call(breaker, 0.0, ok=False)
    call(breaker, 0.0, ok=False)
    assert breaker.allow(6.0)
    breaker.record(8.0, ok=False)
    assert breaker.state == OPEN
    assert not breaker.allow(12.0)  # 5 s from the trial's failure at 8, not from 6
    assert breaker.allow(13.0)
    assert breaker.transitions == [(0.0, OPEN), (6.0, HALF_OPEN), (8.0, OPEN), (13.0, HALF_OPEN)]


def test_consecutive_outcomes_recorded_while_open_are_ignored() -> None:
    breaker = CircuitBreaker(ConsecutiveBreakerPolicy(1, 5.0))
    assert breaker.allow(0.0)
    assert breaker.allow(0.0)
    breaker.record(0.0, ok=False)
    breaker.record(1.0, ok=True)  # the second call finishes late
    assert breaker.state == OPEN
    assert not breaker.allow(4.0)


# --- the consecutive kind against pybreaker ------------------------------------------------

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


class _Clock:
    """The one clock both breakers read, in seconds since ``_EPOCH``."""

    now: float = 0.0


class _FakeDatetime(datetime):
    """Stands in for ``datetime`` inside pybreaker, so its ``now()`` reads ``_Clock``."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _FakeDatetime:
        moment = _EPOCH + timedelta(seconds=_Clock.now)
        return cls.fromtimestamp(moment.timestamp(), tz or UTC)


@contextmanager
def _pybreaker_clock() -> Iterator[None]:
    _Clock.now = 0.0
    with mock.patch.object(pybreaker, "datetime", _FakeDatetime):
        yield


class _Failure(Exception):
    pass


class _TransitionRecorder(pybreaker.CircuitBreakerListener):
    def __init__(self) -> None:
        self.transitions: list[tuple[float, str]] = []

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self.transitions.append((_Clock.now, _from_pybreaker(new_state.name)))


def _from_pybreaker(state: str) -> str:
    return state.replace("-", "_")


def _pybreaker_call(cb: pybreaker.CircuitBreaker, ok: bool) -> bool:
    """Call through pybreaker; return whether the guarded function ran."""
    ran = False

    def guarded() -> None:
        nonlocal ran
        ran = True
        if not ok:
            raise _Failure

    with suppress(_Failure, pybreaker.CircuitBreakerError):
        cb.call(guarded)
    return ran


def test_fake_clock_drives_pybreaker() -> None:
    with _pybreaker_clock():
        cb = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=2)
        _pybreaker_call(cb, ok=False)
        assert cb.current_state == pybreaker.STATE_OPEN
        _Clock.now = 1.75
        assert not _pybreaker_call(cb, ok=True)
        _Clock.now = 2.0
        assert _pybreaker_call(cb, ok=True)
        assert cb.current_state == pybreaker.STATE_CLOSED


# Times are multiples of 1/4 s, exact both as floats and as timedeltas, so the boundary
# ``now == opened_at + open_for`` is hit exactly and often.
quarters = st.integers(min_value=0, max_value=12).map(lambda k: k / 4)


@PROPERTY
@given(
    fail_max=st.integers(min_value=1, max_value=5),
    open_for=st.integers(min_value=0, max_value=16).map(lambda k: k / 4),
    steps=st.lists(st.tuples(quarters, st.booleans()), min_size=5, max_size=120),
)
def test_consecutive_kind_matches_pybreaker(
    fail_max: int, open_for: float, steps: list[tuple[float, bool]]
) -> None:
    ours = CircuitBreaker(ConsecutiveBreakerPolicy(consecutive_failures=fail_max,
                                                   open_for=open_for))
    recorder = _TransitionRecorder()
    with _pybreaker_clock():
        theirs = pybreaker.CircuitBreaker(
            fail_max=fail_max, reset_timeout=open_for, listeners=[recorder]
        )
        now = 0.0
        for advance, ok in steps:
            now += advance
            _Clock.now = now
            assert call(ours, now, ok) == _pybreaker_call(theirs, ok)
            assert ours.state == _from_pybreaker(theirs.current_state)
    assert ours.transitions == recorder.transitions
    _note_coverage(ours.transitions)


# --- the rate kind against a naive Resilience4j model --------------------------------------


@dataclasses.dataclass
class NaiveRateBreaker:
    """Resilience4j's COUNT_BASED rules, recomputed from whole lists at every step."""

    policy: RateBreakerPolicy
    state: str = CLOSED
    closed_outcomes: list[tuple[bool, bool]] = dataclasses.field(default_factory=list)
    probe_outcomes: list[tuple[bool, bool]] = dataclasses.field(default_factory=list)
    probes_permitted: int = 0
    opened_at: float = 0.0
    transitions: list[tuple[float, str]] = dataclasses.field(default_factory=list)

    def _go(self, now: float, state: str) -> None:
        self.state = state
        self.transitions.append((now, state))

    def _exceeded(self, outcomes: list[tuple[bool, bool]], minimum: int) -> bool | None:
        """None below the minimum, else whether a rate reached its threshold."""
        if len(outcomes) < minimum:
            return None
        failure_rate = sum(1 for failed, _ in outcomes if failed) / len(outcomes)
        slow_rate = sum(1 for _, slow in outcomes if slow) / len(outcomes)
        return (failure_rate >= self.policy.failure_rate
                or slow_rate >= self.policy.slow_call_rate)

    def allow(self, now: float) -> bool:
        if self.state == OPEN:
            if not now > self.opened_at + self.policy.open_for:
                return False
            self._go(now, HALF_OPEN)
            self.probe_outcomes = []
            self.probes_permitted = 0
        if self.state == HALF_OPEN:
            if self.probes_permitted == self.policy.half_open_calls:
                return False
            self.probes_permitted += 1
        return True

    def record(self, now: float, ok: bool, duration: float | None) -> None:
        limit = self.policy.slow_call_duration
        slow = limit is not None and duration is not None and duration > limit
        if self.state == CLOSED:
            self.closed_outcomes.append((not ok, slow))
            window = self.closed_outcomes[-self.policy.window:]
            minimum = min(self.policy.min_calls, self.policy.window)
            if self._exceeded(window, minimum):
                self.opened_at = now
                self._go(now, OPEN)
        elif self.state == HALF_OPEN:
            self.probe_outcomes.append((not ok, slow))
            minimum = min(self.policy.min_calls, self.policy.half_open_calls)
            verdict = self._exceeded(self.probe_outcomes, minimum)
            if verdict is True:
                self.opened_at = now
                self._go(now, OPEN)
            elif verdict is False:
                self.closed_outcomes = []
                self._go(now, CLOSED)


@dataclasses.dataclass(frozen=True)
class Advance:
    seconds: float


@dataclasses.dataclass(frozen=True)
class Start:
    """A call asks the breaker; if allowed it is in flight until a ``Finish``."""


@dataclasses.dataclass(frozen=True)
class Finish:
    """The in-flight call at index ``pick`` (modulo their number) reports its outcome."""

    pick: int
    ok: bool
    duration: float | None


@dataclasses.dataclass(frozen=True)
class Call:
    """A call that asks the breaker and, if allowed, finishes at once."""

    ok: bool
    duration: float | None


Op = Advance | Start | Finish | Call

durations = st.sampled_from([None, 0.25, 1.0, 1.5, 4.0])


@st.composite
def op_lists(draw: st.DrawFn) -> list[Op]:
    """Operations in phases, each with its own share of failures (outage, recovery, ...)."""
    ops: list[Op] = []
    for failures_in_ten in draw(st.lists(st.integers(min_value=0, max_value=10), min_size=1,
                                         max_size=4)):
        # A call is ok when a digit 0-9 is at least the phase's failures in ten.
        oks = st.integers(min_value=0, max_value=9).map(partial(operator.le, failures_in_ten))
        ops += draw(st.lists(
            st.one_of(
                st.builds(Advance, quarters),
                st.just(Start()),
                st.builds(Finish, st.integers(min_value=0, max_value=1000), oks, durations),
                st.builds(Call, oks, durations),
            ),
            min_size=5,
            max_size=60,
        ))
    return ops


ops = op_lists()

rate_policies = st.builds(
    RateBreakerPolicy,
    failure_rate=st.one_of(
        st.sampled_from([0.25, 1 / 3, 0.5, 0.6, 2 / 3, 0.75, 1.0]),
        st.floats(min_value=0.01, max_value=1.0),
    ),
    window=st.integers(min_value=1, max_value=8),
    min_calls=st.integers(min_value=1, max_value=10),
    open_for=st.integers(min_value=0, max_value=12).map(lambda k: k / 4),
    half_open_calls=st.integers(min_value=1, max_value=4),
    slow_call_duration=st.sampled_from([None, 1.0]),
    slow_call_rate=st.sampled_from([0.5, 0.75, 1.0]),
)

# Slow calls decide these: failures alone open them only when every call in the window failed.
slow_rate_policies = st.builds(
    RateBreakerPolicy,
    failure_rate=st.just(1.0),
    window=st.integers(min_value=1, max_value=8),
    min_calls=st.integers(min_value=1, max_value=10),
    open_for=st.integers(min_value=0, max_value=12).map(lambda k: k / 4),
    half_open_calls=st.integers(min_value=1, max_value=4),
    slow_call_duration=st.just(1.0),
    slow_call_rate=st.sampled_from([0.25, 0.5, 0.6, 0.75, 1.0]),
)
any_rate_policies = st.one_of(rate_policies, slow_rate_policies)

consecutive_policies = st.builds(
    ConsecutiveBreakerPolicy,
    consecutive_failures=st.integers(min_value=1, max_value=5),
    open_for=st.integers(min_value=0, max_value=12).map(lambda k: k / 4),
)


def _finish(in_flight: list[int], pick: int) -> bool:
    """Take one in-flight call (chosen by ``pick``) out of ``in_flight``; False if none."""
    if not in_flight:
        return False
    in_flight.pop(pick % len(in_flight))
    return True


def _note_coverage(transitions: Sequence[tuple[float, str]]) -> None:
    """Tell hypothesis's statistics which transitions a run reached."""
    previous = CLOSED
    for _, state in transitions:
        event(f"{previous} -> {state}")
        previous = state


@PROPERTY
@given(policy=any_rate_policies, steps=ops)
def test_rate_kind_matches_naive_resilience4j_model(
    policy: RateBreakerPolicy, steps: Sequence[Op]
) -> None:
    ours = CircuitBreaker(policy)
    naive = NaiveRateBreaker(policy)
    in_flight: list[int] = []
    now = 0.0
    for step in steps:
        if isinstance(step, Advance):
            now += step.seconds
        elif isinstance(step, Start):
            allowed = ours.allow(now)
            assert allowed == naive.allow(now)
            if allowed:
                in_flight.append(0)
        elif isinstance(step, Call):
            allowed = ours.allow(now)
            assert allowed == naive.allow(now)
            if allowed:
                ours.record(now, step.ok, step.duration)
                naive.record(now, step.ok, step.duration)
        elif _finish(in_flight, step.pick):
            ours.record(now, step.ok, step.duration)
            naive.record(now, step.ok, step.duration)
        assert ours.state == naive.state
    assert ours.transitions == naive.transitions
    _note_coverage(ours.transitions)


@PROPERTY
@given(
    policy=any_rate_policies,
    outcomes=st.lists(st.tuples(quarters, st.booleans(), durations), min_size=5, max_size=120),
)
def test_rate_kind_matches_naive_model_on_sequential_calls(
    policy: RateBreakerPolicy, outcomes: list[tuple[float, bool, float | None]]
) -> None:
    ours = CircuitBreaker(policy)
    naive = NaiveRateBreaker(policy)
    now = 0.0
    for advance, ok, duration in outcomes:
        now += advance
        allowed = ours.allow(now)
        assert allowed == naive.allow(now)
        if allowed:
            ours.record(now, ok, duration)
            naive.record(now, ok, duration)
        assert ours.state == naive.state
    assert ours.transitions == naive.transitions
    _note_coverage(ours.transitions)


# --- invariants under random concurrent use ------------------------------------------------


class _CheckedBreaker:
    """Wraps a breaker and checks, at every call, the rules that must always hold."""

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self.seen: list[tuple[float, str]] = []
        self.breaker = CircuitBreaker(policy, on_transition=lambda t, s: self.seen.append((t, s)))
        self.probe_limit = policy.half_open_calls if isinstance(policy, RateBreakerPolicy) else 1
        self.probes = 0
        self.opened_at = 0.0

    def wait_over(self, now: float) -> bool:
        deadline = self.opened_at + self.policy.open_for
        if isinstance(self.policy, RateBreakerPolicy):
            return now > deadline
        return now >= deadline

    def allow(self, now: float) -> bool:
        before = self.breaker.state
        allowed = self.breaker.allow(now)
        after = self.breaker.state
        if before == CLOSED:
            assert allowed and after == CLOSED
        if before == OPEN:
            # No call while open and the wait is not over; after it, the first is let in.
            assert allowed == self.wait_over(now)
            assert after == (HALF_OPEN if allowed else OPEN)
            self.probes = 0
        if after == HALF_OPEN:
            self.probes += allowed
            assert self.probes <= self.probe_limit
        return allowed

    def record(self, now: float, ok: bool, duration: float | None) -> None:
        before = self.breaker.state
        changes = len(self.breaker.transitions)
        self.breaker.record(now, ok, duration)
        if before == OPEN:
            assert self.breaker.state == OPEN  # late outcomes change nothing
        if len(self.breaker.transitions) > changes and self.breaker.state == OPEN:
            self.opened_at = now


@PROPERTY
@given(policy=st.one_of(any_rate_policies, consecutive_policies), steps=ops)
def test_invariants_hold_under_concurrent_calls(policy: BreakerPolicy, steps: Sequence[Op]) -> None:
    checked = _CheckedBreaker(policy)
    in_flight: list[int] = []
    now = 0.0
    for step in steps:
        if isinstance(step, Advance):
            now += step.seconds
        elif isinstance(step, Start):
            if checked.allow(now):
                in_flight.append(0)
        elif isinstance(step, Call):
            if checked.allow(now):
                checked.record(now, step.ok, step.duration)
        elif _finish(in_flight, step.pick):
            checked.record(now, step.ok, step.duration)
    transitions = checked.breaker.transitions
    previous: BreakerState = CLOSED
    last_time = 0.0
    for time, state in transitions:
        assert state in LEGAL_NEXT[previous]
        assert time >= last_time
        previous, last_time = state, time
    assert checked.breaker.state == previous
    assert checked.seen == transitions
    _note_coverage(transitions)
