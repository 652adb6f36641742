"""The engine's pure parts alone: balancers, histograms, timeout queues, backoff, streams."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from faultmesh.model.system import Backoff, LoadBalancer
from faultmesh.simulations.balancers import ConsistentHash, LeastRequest, RoundRobin, make_balancer
from faultmesh.simulations.engine.calls import backoff_delay
from faultmesh.simulations.engine.streams import Streams
from faultmesh.simulations.engine.timeouts import Deadlines
from faultmesh.simulations.observation.metrics import (
    FINE,
    Histogram,
    bucket,
    bucket_value,
    quantiles,
)


@dataclass
class Host:
    name: str
    in_flight: int = 0


HOSTS = [Host(f"svc-{i}") for i in range(5)]


# --- balancers ---------------------------------------------------------------------------------


def test_round_robin_cycles() -> None:
    balancer = RoundRobin()
    assert [balancer.choose(HOSTS, 0).name for _ in range(7)] == [
        "svc-0", "svc-1", "svc-2", "svc-3", "svc-4", "svc-0", "svc-1"]


def test_random_is_uniform_and_reproducible() -> None:
    pick = make_balancer(LoadBalancer("random"), random.Random(1), lambda h: h.in_flight)
    again = make_balancer(LoadBalancer("random"), random.Random(1), lambda h: h.in_flight)
    first = [pick.choose(HOSTS, 0).name for _ in range(5000)]
    assert first == [again.choose(HOSTS, 0).name for _ in range(5000)]
    assert all(abs(n - 1000) < 150 for n in Counter(first).values())


@given(st.lists(st.integers(0, 20), min_size=2, max_size=8), st.integers(0, 2**32))
def test_least_request_never_picks_the_busier_of_its_two_choices(loads: list[int],
                                                                  seed: int) -> None:
    hosts = [Host(f"h{i}", n) for i, n in enumerate(loads)]
    balancer = LeastRequest(random.Random(seed), lambda h: h.in_flight, choices=2)
    chosen = balancer.choose(hosts, 0)
    # P2C: the chosen host is at most as loaded as at least one other host (unless alone).
    assert chosen.in_flight <= max(h.in_flight for h in hosts)
    everything = LeastRequest(random.Random(seed), lambda h: h.in_flight, choices=len(hosts))
    assert everything.choose(hosts, 0).in_flight == min(loads)


def test_least_request_prefers_idle_instances() -> None:
    hosts = [Host("busy", 10), Host("idle", 0), Host("also-busy", 10)]
    balancer = LeastRequest(random.Random(3), lambda h: h.in_flight, choices=2)
    picks = Counter(balancer.choose(hosts, 0).name for _ in range(3000))
    # The idle host wins whenever it is one of the two drawn: 2 of 3 draws.
    assert abs(picks["idle"] / 3000 - 2 / 3) < 0.04


@given(st.integers(0, 2**40))
def test_consistent_hash_moves_only_the_keys_of_a_removed_instance(key: int) -> None:
    balancer = ConsistentHash()
    before = balancer.choose(HOSTS, key)
    assert balancer.choose(HOSTS, key) is before  # stable
    remaining = [h for h in HOSTS if h.name != "svc-2"]
    after = balancer.choose(remaining, key)
    if before.name != "svc-2":
        assert after is before


def test_consistent_hash_spreads_keys() -> None:
    balancer = ConsistentHash()
    counts = Counter(balancer.choose(HOSTS, key).name for key in range(20000))
    assert all(2000 < n < 6500 for n in counts.values()), counts


# --- histograms --------------------------------------------------------------------------------


@settings(max_examples=60)
@given(st.lists(st.floats(1e-7, 1e4, allow_nan=False), min_size=1, max_size=300),
       st.sampled_from([0.5, 0.9, 0.99, 0.999]))
def test_histogram_quantiles_have_bounded_relative_error(values: list[float],
                                                         q: float) -> None:
    histogram = Histogram()
    for v in values:
        histogram.add(v)
    exact = sorted(values)[max(1, math.ceil(q * len(values))) - 1]  # nearest rank
    bound = 2 ** (1 / FINE) - 1  # one bucket's width, relative
    assert abs(histogram.quantile(q) - exact) <= bound * exact
    assert histogram.max == max(values)
    assert histogram.mean == pytest.approx(sum(values) / len(values))


@given(st.floats(1e-9, 1e6, allow_nan=False))
def test_bucket_value_lies_within_its_bucket(value: float) -> None:
    key = bucket(value)
    assert bucket(bucket_value(key)) == key
    assert abs(bucket_value(key) / value - 1) < 2 ** (1 / FINE) - 1


def test_quantiles_of_an_empty_histogram_are_nan() -> None:
    assert all(math.isnan(v) for v in quantiles({}, 0, (0.5, 0.99)))
    assert Histogram().summary()["p99"] is None


# --- timeouts ----------------------------------------------------------------------------------


class Waiter:
    def __init__(self) -> None:
        self.awaiting = 0
        self.expired: list[tuple[float, int]] = []
        self.env: simpy.Environment | None = None

    def expire(self, token: int) -> None:
        assert self.env is not None
        self.awaiting = 0
        self.expired.append((self.env.now, token))


def test_deadlines_fire_exactly_for_those_still_waiting() -> None:
    env = simpy.Environment()
    deadlines = Deadlines(env, 2.0)
    waiters = [Waiter() for _ in range(4)]
    for w in waiters:
        w.env = env

    def start(index: int) -> None:
        waiters[index].awaiting = 1
        deadlines.add(waiters[index], 1)

    for i, at in enumerate([0.0, 0.5, 1.0, 1.5]):
        env.timeout(at).callbacks.append(lambda _e, i=i: start(i))
    env.timeout(1.2).callbacks.append(lambda _e: setattr(waiters[0], "awaiting", 0))  # answered
    env.timeout(2.2).callbacks.append(lambda _e: setattr(waiters[2], "awaiting", 0))
    env.run(until=10)
    assert waiters[0].expired == []
    assert waiters[1].expired == [(2.5, 1)]
    assert waiters[2].expired == []
    assert waiters[3].expired == [(3.5, 1)]
    assert deadlines.armed_for is None and len(deadlines) == 0  # nothing left behind


def test_deadlines_ignore_an_earlier_attempt_of_the_same_waiter() -> None:
    env = simpy.Environment()
    deadlines = Deadlines(env, 1.0)
    waiter = Waiter()
    waiter.env = env
    waiter.awaiting = 1
    deadlines.add(waiter, 1)
    env.timeout(0.5).callbacks.append(lambda _e: (setattr(waiter, "awaiting", 2),
                                                  deadlines.add(waiter, 2)))
    env.run(until=5)
    assert waiter.expired == [(1.5, 2)]


# --- backoff and streams -----------------------------------------------------------------------


def test_backoff_strategies_and_jitter() -> None:
    rng = random.Random(0)
    exponential = Backoff("exponential", base=0.1, cap=0.5, jitter="none")
    assert [backoff_delay(exponential, n, rng) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.4, 0.5]
    constant = Backoff("constant", base=0.1, cap=0.5, jitter="none")
    assert backoff_delay(constant, 5, rng) == 0.1
    assert backoff_delay(Backoff("none", 0.0, 0.0, "none"), 3, rng) == 0.0
    full = [backoff_delay(Backoff("exponential", 0.1, 0.5, "full"), 3, rng) for _ in range(500)]
    assert min(full) >= 0 and max(full) <= 0.4 and abs(sum(full) / 500 - 0.2) < 0.02
    equal = [backoff_delay(Backoff("exponential", 0.1, 0.5, "equal"), 3, rng)
             for _ in range(500)]
    assert min(equal) >= 0.2 and max(equal) <= 0.4


def test_streams_are_independent_and_reproducible() -> None:
    streams = Streams(7)
    assert streams("a").random() == Streams(7)("a").random()
    assert streams("a").random() != streams("b").random()
    assert streams("a").random() != Streams(8)("a").random()
