"""``breaker``: the Z3 model's claims checked on the real state machine.

For every policy, ``simulations.breakers.CircuitBreaker`` itself is explored exhaustively:
breadth-first over every sequence of events (a call asking ``allow`` at the moment the open
period ends, just after it or without time passing; an outcome recorded as success/failure,
fast/slow; the callee recovering), with states merged when the breaker's internals, the time
relative to the end of the open period and the monitors agree. On every reachable state we
check the claims the verifier proved -- (a) no call allowed while open and waiting, (b) at most
``half_open_calls`` probes (one for the consecutive kind) per half-open period, (c) after
recovery at most ``B`` progress events while not closed -- and that ``B`` is attained, so the
abstraction is exact rather than merely safe. A deliberately broken breaker shows the
exploration has teeth.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import faultmesh.simulations.breakers as sim
from faultmesh.model import properties as P
from faultmesh.model.spec import from_document, load
from faultmesh.model.strategies import systems
from faultmesh.model.system import (
    BreakerPolicy,
    ConsecutiveBreakerPolicy,
    RateBreakerPolicy,
    System,
)
from faultmesh.model.verify import Deadline, verify
from faultmesh.model.verify.breaker import RateMachine, check_breaker, prove

SPECS = Path(__file__).resolve().parent.parent / "specs"
COUNT_CAP = 64  # far above any bound the policies below have; beyond it (c) has failed
MANY = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def concrete(policy: BreakerPolicy) -> sim.BreakerPolicy:
    if isinstance(policy, RateBreakerPolicy):
        return sim.RateBreakerPolicy(
            failure_rate=policy.failure_rate, window=policy.window, min_calls=policy.min_calls,
            open_for=policy.open_for, half_open_calls=policy.half_open_calls,
            slow_call_duration=policy.slow_call_duration, slow_call_rate=policy.slow_call_rate)
    return sim.ConsecutiveBreakerPolicy(policy.consecutive_failures, policy.open_for)


# ---------------------------------------------------------------------------------------------
# Exhaustive exploration of the real breaker
# ---------------------------------------------------------------------------------------------


def _slots(kind: type) -> list[str]:
    return [s for c in kind.__mro__ for s in getattr(c, "__slots__", ())]


def clone(breaker: sim.CircuitBreaker, factory: Any) -> sim.CircuitBreaker:
    copy = factory(breaker.policy)
    for name in _slots(type(breaker)):
        value = getattr(breaker, name)
        setattr(copy, name, value.copy() if isinstance(value, list | bytearray | deque)
                else value)
    return copy


@dataclass
class Node:
    breaker: sim.CircuitBreaker
    now: float
    recovered: bool
    count: int  # progress events after recovery while not closed
    probes: int  # calls permitted in the current half-open period


@dataclass(frozen=True)
class Exploration:
    states: int
    max_count: int
    violations: tuple[str, ...]


def open_until(breaker: sim.CircuitBreaker, open_for: float) -> float | None:
    opened = [t for t, state in breaker.transitions if state == "open"]
    return opened[-1] + open_for if opened else None


def key(node: Node, open_for: float) -> tuple[Any, ...]:
    """What the future of a node depends on; nodes with equal keys are merged.

    The breaker's internals, except: the ring of a rate breaker is read oldest-first and only
    its live entries (stale slots are never read before being overwritten); times only matter
    relative to the end of the open period, and only while open; the probe monitor only
    while half-open. (Were the internals renamed, the generic fallback would still be exact,
    just merge less.)
    """
    b = node.breaker
    fields = {name: getattr(b, name) for name in _slots(type(b))
              if name not in ("transitions", "on_transition", "policy", "_open_until")}
    ring, pos, count = fields.get("_ring"), fields.get("_pos"), fields.get("_count")
    if isinstance(ring, bytearray) and isinstance(pos, int) and isinstance(count, int):
        size = len(ring)
        start = (pos - count) % size if count else 0
        fields["_ring"] = bytes(ring[(start + i) % size] for i in range(count))
        fields["_pos"] = None
    inside = tuple(bytes(v) if isinstance(v, bytearray) else tuple(v) if isinstance(v, deque)
                   else v for v in fields.values())
    until = open_until(b, open_for)
    where = None
    if b.state == "open" and until is not None:
        where = (node.now > until) - (node.now < until)
    probes = node.probes if b.state == "half_open" else 0
    return inside, where, node.recovered, node.count, probes


def explore(policy: BreakerPolicy, factory: Any = sim.CircuitBreaker,
            limit: int = 200_000) -> Exploration:
    """Every reachable state of the real breaker under every event sequence."""
    rate = isinstance(policy, RateBreakerPolicy)
    probe_limit = policy.half_open_calls if rate else 1
    slow_after = policy.slow_call_duration if rate else None
    open_for = policy.open_for
    start = Node(factory(concrete(policy)), 0.0, False, 0, 0)
    seen = {key(start, open_for)}
    queue = deque([start])
    worst = 0
    violations: list[str] = []
    outcomes = [(ok, slow) for ok in (True, False)
                for slow in ((False, True) if slow_after is not None else (False,))]
    while queue:
        node = queue.popleft()
        worst = max(worst, node.count)
        if node.count > COUNT_CAP:
            violations.append(f"(c) more than {COUNT_CAP} progress events after recovery")
            continue
        until = open_until(node.breaker, open_for)
        times = {node.now}
        if until is not None:  # the end of the open period, just after it, and inside it
            times |= {t for t in (until, until + 1.0, (node.now + until) / 2) if t >= node.now}
        successors: list[Node] = []
        if not node.recovered:
            successors.append(Node(clone(node.breaker, factory), node.now, True, 0, node.probes))
        for now in sorted(times):
            b = clone(node.breaker, factory)
            before = b.state
            allowed = b.allow(now)
            probes = node.probes
            if allowed and before == "open":
                probes = 1
            elif allowed and before == "half_open":
                probes += 1
            if allowed and before != "closed" and until is not None:
                elapsed = now > until if rate else now >= until
                if not elapsed:
                    violations.append(f"(a) allowed at {now} while open until {until}")
            if b.state == "half_open" and probes > probe_limit:
                violations.append(f"(b) {probes} probes permitted (limit {probe_limit})")
            counted = node.recovered and allowed and (before != "closed" or b.state != "closed")
            successors.append(Node(b, now, node.recovered, node.count + counted, probes))
        for ok, slow in outcomes:
            if node.recovered and (not ok or slow):
                continue
            b = clone(node.breaker, factory)
            before = b.state
            duration = (slow_after + 1.0) if slow and slow_after is not None else 0.0
            b.record(node.now, ok, duration)
            counted = node.recovered and before != "open" and \
                (before != "closed" or b.state != "closed")
            successors.append(Node(b, node.now, node.recovered, node.count + counted,
                                   node.probes))
        for nxt in successors:
            k = key(nxt, open_for)
            if k not in seen:
                seen.add(k)
                queue.append(nxt)
        if len(seen) > limit:
            raise AssertionError(f"state space of {policy} larger than {limit}")
    return Exploration(len(seen), worst, tuple(dict.fromkeys(violations)))


@cache
def explored(policy: BreakerPolicy) -> Exploration:
    return explore(policy)


def assert_claims_hold_concretely(policy: BreakerPolicy) -> None:
    result = prove(policy, Deadline(60))
    assert result.status == "holds", result
    facts = explored(policy)
    assert facts.violations == (), facts.violations
    assert facts.max_count == result.bound, (policy, facts, result)


# ---------------------------------------------------------------------------------------------
# Policies and systems
# ---------------------------------------------------------------------------------------------

rate_policies = st.builds(
    RateBreakerPolicy,
    failure_rate=st.sampled_from([0.2, 0.25, 1 / 3, 0.5, 0.6, 1.0]),
    window=st.integers(1, 4), min_calls=st.integers(1, 5),
    open_for=st.sampled_from([0.0, 5.0, 30.0]), half_open_calls=st.integers(1, 3),
    slow_call_duration=st.sampled_from([None, None, 0.5]),
    slow_call_rate=st.sampled_from([0.5, 1.0]))
consecutive_policies = st.builds(ConsecutiveBreakerPolicy, consecutive_failures=st.integers(1, 6),
                                 open_for=st.sampled_from([0.0, 5.0, 60.0]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(rate_policies, consecutive_policies))
def test_proved_claims_hold_on_the_real_breaker(policy: BreakerPolicy) -> None:
    assert_claims_hold_concretely(policy)


@MANY
@given(systems(max_services=5, breakers=True, scenarios=False))
def test_generated_systems_breakers(system: System) -> None:
    verdict = check_breaker(system, P.BreakerSafety(), Deadline(60))
    policies = {c.circuit_breaker for s in system.services.values()
                for e in s.endpoints.values() for c in e.calls() if c.circuit_breaker}
    assert verdict.status == "holds"
    if not policies:
        assert verdict.explanation == "no circuit breaker is configured"
        return
    for policy in policies:
        assert_claims_hold_concretely(policy)
        assert f"B={prove(policy, Deadline(60)).bound}" in verdict.explanation


def test_bounds_of_known_policies() -> None:
    # Consecutive: open -> one trial call -> its success closes: 2 events.
    assert prove(ConsecutiveBreakerPolicy(5, 30.0), Deadline(60)).bound == 2
    # Rate 50%/10, min 5, 2 half-open: a half-open period with a failure before the recovery
    # re-opens (1/2 >= 50%) after 1 more probe and its outcome, then 1 + 1 probes and 2 outcomes.
    assert prove(RateBreakerPolicy(0.5, 10, 5, 10.0, 2), Deadline(60)).bound == 6


# ---------------------------------------------------------------------------------------------
# The checks have teeth
# ---------------------------------------------------------------------------------------------


class LeakyRateBreaker(sim.RateCircuitBreaker):
    """A broken breaker that grants one probe too many when it goes half-open."""

    __slots__ = ()

    def allow(self, now: float) -> bool:
        was_open = self._state == "open"
        allowed = super().allow(now)
        if was_open and self._state == "half_open":
            self._permits += 1
        return allowed


class EagerConsecutiveBreaker(sim.ConsecutiveCircuitBreaker):
    """A broken breaker that lets a call through on the way to open_for."""

    __slots__ = ()

    def allow(self, now: float) -> bool:
        if self._state == "open" and now > self._open_until - self.policy.open_for:
            return True
        return super().allow(now)


def test_exploration_catches_broken_breakers() -> None:
    leaky = explore(RateBreakerPolicy(0.5, 2, 2, 10.0, 2), LeakyRateBreaker)
    assert any(v.startswith("(b)") for v in leaky.violations)
    eager = explore(ConsecutiveBreakerPolicy(2, 10.0), EagerConsecutiveBreaker)
    assert any(v.startswith("(a)") for v in eager.violations)


def test_model_checker_catches_a_broken_model() -> None:
    from faultmesh.model.verify import breaker

    class Leaky(RateMachine):
        def __init__(self, policy: RateBreakerPolicy) -> None:
            super().__init__(policy)
            self.half_open += 1  # one permit too many

    original = breaker.machine
    breaker.machine = lambda policy: Leaky(policy)  # type: ignore[assignment,arg-type]
    try:
        result = breaker.prove(RateBreakerPolicy(0.5, 4, 2, 10.0, 2), Deadline(60))
    finally:
        breaker.machine = original
    assert result.status == "violated"
    assert result.failed == "b"
    assert result.trace and "half_open" in result.trace[-1]


# ---------------------------------------------------------------------------------------------
# Shipped specs, deadlines
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_specs(path: Path) -> None:
    system = load(path)
    verdict = verify(system, [P.BreakerSafety()]).verdicts[0]
    assert verdict.status == "holds"


def test_zone_outage_shop_breakers_are_proved_with_their_bounds() -> None:
    verdict = verify(load(SPECS / "zone_outage_shop.yaml"), [P.BreakerSafety()]).verdicts[0]
    assert "2 breaker policies proved" in verdict.explanation
    assert "5 consecutive failures: B=2" in verdict.explanation


def test_deadline_zero_is_unknown() -> None:
    doc: dict[str, Any] = {"system": "t", "services": {
        "a": {"endpoints": {"x": {"calls": [{"call": "b.y", "circuit_breaker": {
            "consecutive_failures": 7, "open_for": "3s"}}]}}},
        "b": {"endpoints": {"y": {}}}}}
    verdict = check_breaker(from_document(doc), P.BreakerSafety(), Deadline(0))
    assert verdict.status == "unknown"
