"""The pure retry limits against their references: gRPC retry throttling (gRFC A6) by hand
computation and exact arithmetic, Envoy's retry budget (``budget_percent``,
``min_retry_concurrency``) and ``max_retries`` by their rules."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultmesh.model.policies import RetryBudget, RetryThrottling
from faultmesh.simulations.retry_limits import (
    OutstandingRetries,
    RetryBudgetState,
    RetryThrottle,
)

# --- gRPC retry throttling ------------------------------------------------------------------


def test_token_bucket_by_hand() -> None:
    """max_tokens 10, token_ratio 0.1: the A6 example, step by step."""
    throttle = RetryThrottle(RetryThrottling(max_tokens=10, token_ratio=0.1), callers=1)
    assert throttle.count(0) == 10.0 and throttle.allows(0)
    # Four failures: 6 tokens, still above the threshold of 5.
    for expected in (9.0, 8.0, 7.0, 6.0):
        throttle.record(0, False)
        assert throttle.count(0) == expected
        assert throttle.allows(0)
    # The fifth: 5 tokens, not above 5: retries and hedges stop.
    throttle.record(0, False)
    assert throttle.count(0) == 5.0
    assert not throttle.allows(0)
    # One success: 5.1 > 5, allowed again.
    throttle.record(0, True)
    assert throttle.count(0) == 5.1
    assert throttle.allows(0)
    # Nine more successes give back exactly 0.9 more: 6.0, not 5.999999999.
    for _ in range(9):
        throttle.record(0, True)
    assert throttle.count(0) == 6.0
    # Never above max_tokens ...
    for _ in range(100):
        throttle.record(0, True)
    assert throttle.count(0) == 10.0
    # ... never below 0.
    for _ in range(30):
        throttle.record(0, False)
    assert throttle.count(0) == 0.0
    assert not throttle.allows(0)


def test_each_caller_instance_has_its_own_tokens() -> None:
    throttle = RetryThrottle(RetryThrottling(max_tokens=2, token_ratio=0.5), callers=2)
    throttle.record(0, False)
    assert throttle.count(0) == 1.0 and not throttle.allows(0)
    assert throttle.count(1) == 2.0 and throttle.allows(1)


@settings(max_examples=60, deadline=None)
@given(max_tokens=st.integers(1, 1000), ratio_milli=st.integers(1, 5000),
       outcomes=st.lists(st.booleans(), max_size=200))
def test_token_bucket_matches_exact_arithmetic(max_tokens: int, ratio_milli: int,
                                               outcomes: list[bool]) -> None:
    """Any sequence of outcomes against A6's rule in exact rational arithmetic."""
    ratio = Fraction(ratio_milli, 1000)
    throttle = RetryThrottle(RetryThrottling(max_tokens=max_tokens,
                                             token_ratio=float(ratio)), callers=1)
    tokens = Fraction(max_tokens)
    for ok in outcomes:
        tokens = min(Fraction(max_tokens), tokens + ratio) if ok else max(Fraction(0), tokens - 1)
        throttle.record(0, ok)
        assert Fraction(throttle.tokens[0], 1000) == tokens
        assert throttle.allows(0) == (tokens > Fraction(max_tokens, 2))


# --- Envoy's retry budget ---------------------------------------------------------------------


def test_budget_floor_is_min_concurrency() -> None:
    budget = RetryBudgetState(RetryBudget(percent=20, min_concurrency=3), callers=1)
    assert budget.bound(0) == 3.0
    assert [budget.reserve(0) for _ in range(4)] == [True, True, True, False]
    assert budget.peak[0] == 3


def test_budget_grows_with_active_requests() -> None:
    """20 % of 100 active requests: 20 retries at once (Envoy's documented example, at 25 %:
    25 of 100)."""
    budget = RetryBudgetState(RetryBudget(percent=20, min_concurrency=3), callers=2)
    budget.active[0] = 100
    assert budget.bound(0) == 20.0
    granted = sum(budget.reserve(0) for _ in range(30))
    assert granted == 20
    # The other caller instance has its own budget: nothing active, the floor of 3.
    assert sum(budget.reserve(1) for _ in range(10)) == 3
    # A retry settles (the engine gives its place back): one more may go.
    budget.outstanding[0] -= 1
    assert budget.reserve(0) and not budget.reserve(0)


def test_budget_of_zero_percent_and_no_floor_allows_no_retry() -> None:
    budget = RetryBudgetState(RetryBudget(percent=0, min_concurrency=0), callers=1)
    budget.active[0] = 1000
    assert not budget.reserve(0)


@settings(max_examples=60, deadline=None)
@given(percent=st.floats(0, 100), floor=st.integers(0, 20), active=st.integers(0, 500),
       asks=st.integers(0, 200))
def test_budget_grants_exactly_up_to_its_bound(percent: float, floor: int, active: int,
                                                asks: int) -> None:
    """Retries may start while outstanding < max(min_concurrency, percent % of active)."""
    budget = RetryBudgetState(RetryBudget(percent=percent, min_concurrency=floor), callers=1)
    budget.active[0] = active
    bound = max(floor, percent / 100 * active)
    granted = sum(budget.reserve(0) for _ in range(asks))
    expected = min(asks, sum(1 for n in range(asks) if n < bound))
    assert granted == expected


def test_max_retries_is_a_fixed_limit() -> None:
    limit = OutstandingRetries(2, callers=1)
    assert [limit.reserve(0) for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize("percent", [-1.0, 100.5])
def test_budget_policy_refuses_a_percent_out_of_range(percent: float) -> None:
    with pytest.raises(ValueError, match="percent"):
        RetryBudget(percent=percent)
