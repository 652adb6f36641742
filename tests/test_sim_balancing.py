"""Where balancing and breaking state lives: in the caller's instance.

Least-request balancing follows Envoy: each caller (a proxy) draws ``choices`` instances at
random and sends to the one with the fewest of *its own* active requests, ties broken at
random. Circuit breakers follow Resilience4j: a breaker lives in the client process, one per
call-site policy, so caller replicas do not share breaker state and two policies on one edge
are two breakers. Each test states the expectation it checks and why.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from simhelp import spec

from faultmesh.model.faults import Crash, ErrorFault, Partition, Scenario, parse_target
from faultmesh.simulations import simulate
from faultmesh.simulations.balancers import LeastRequest

# 4.4 standard errors: a fair coin fails the check with probability about 1e-5.
Z = 4.4


def fair(successes: int, trials: int, p: float = 0.5) -> bool:
    """Whether ``successes`` of ``trials`` is consistent with a Binomial(trials, p)."""
    return abs(successes / trials - p) <= Z * math.sqrt(p * (1 - p) / trials)


@dataclass
class Host:
    name: str
    active: int = 0


# --- the pure balancer -----------------------------------------------------------------------


def test_least_request_breaks_ties_at_random_among_all_candidates() -> None:
    # choices >= candidates: every host is compared; equal counts must not favour the first.
    hosts = [Host("a"), Host("b")]
    balancer = LeastRequest(random.Random(7), lambda h: h.active, choices=2)
    picks = Counter(balancer.choose(hosts, 0).name for _ in range(4000))
    assert fair(picks["a"], 4000), picks


def test_least_request_full_scan_ties_are_uniform_over_the_least_loaded() -> None:
    hosts = [Host("busy", 3), Host("x", 1), Host("y", 1), Host("z", 1)]
    balancer = LeastRequest(random.Random(11), lambda h: h.active, choices=4)
    picks = Counter(balancer.choose(hosts, 0).name for _ in range(6000))
    assert picks["busy"] == 0
    assert all(fair(picks[name], 6000, 1 / 3) for name in "xyz"), picks


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=2, max_size=6), st.integers(1, 6),
       st.integers(0, 2**32))
def test_least_request_picks_a_least_loaded_of_its_draws(loads: list[int], choices: int,
                                                         seed: int) -> None:
    hosts = [Host(f"h{i}", n) for i, n in enumerate(loads)]
    rng = random.Random(seed)
    chosen = LeastRequest(rng, lambda h: h.active, choices=choices).choose(hosts, 0)
    # The pick is the least loaded of `choices` distinct draws: at least choices - 1 other
    # hosts are as loaded as it; with every host drawn, it is a least loaded one.
    if choices >= len(hosts):
        assert chosen.active == min(loads)
    else:
        assert sorted(loads).index(chosen.active) <= len(hosts) - choices


# --- least request in the engine -------------------------------------------------------------

LEAST = """
system: least
discovery: {mode: server}
defaults:
  call: {timeout: 1s, retries: 0, backoff: none}
  load_balancer: %(lb)s
services:
  front:
    replicas: %(front)d
    workers: 100
    endpoints:
      get:
        service_time: 0
        calls: [back.get]
  back:
    replicas: 2
    workers: 100
    endpoints:
      get: {service_time: 1ms}
workload:
  - {entry: front.get, rate: 20/s, arrivals: poisson}
"""


def least(lb: str = "{least_request: {choices: 2}}", front: int = 1):  # type: ignore[no-untyped-def]
    return spec(LEAST % {"lb": lb, "front": front})


def _requests(run, service: str) -> list[int]:  # type: ignore[no-untyped-def]
    instances = run.summary["services"][service]["instances"]
    return [instances[f"{service}-{i}"]["requests"] for i in range(len(instances))]


def test_least_request_splits_evenly_between_two_idle_replicas() -> None:
    # At 20/s with 1 ms of work, a caller almost never has a request out: both replicas
    # tie at 0 nearly every time, and ties go either way with probability 1/2 (the old
    # min() over the global in-flight count sent ~85 % to the first).
    run = simulate(least(front=2), duration=100, seed=3)
    for service in ("back", "front"):  # a call between services, and the ingress
        first, second = _requests(run, service)
        assert fair(first, first + second), (service, first, second)


def test_least_request_does_not_send_everything_to_a_failing_replica() -> None:
    # back-0 fails every request at once, so no caller ever has a request out to it. At low
    # load the healthy replica is also idle nearly always: the two tie, half the calls reach
    # back-1, as with round robin. (At high load least request does prefer the fast failure,
    # in Envoy as here; the old code sent *every* call there, availability 0.)
    scenario = Scenario("errors", (ErrorFault(target=parse_target("instance:back-0"),
                                              rate=1.0),))
    lr = simulate(least(), scenario, duration=100, seed=5).entry()
    rr = simulate(least("round_robin"), scenario, duration=100, seed=5).entry()
    assert abs(rr["availability"] - 0.5) < 0.01  # round robin alternates exactly
    # Nearly idle: the healthy replica is busy (1 ms) about 2 % of the time, when it loses.
    assert fair(lr["ok"], lr["requests"], 0.49), lr["availability"]


# --- circuit breakers: one per caller instance and call-site policy ---------------------------

BREAK = """
system: dead
discovery: {mode: client, heartbeat: 1s, ttl: 3s, refresh: 2s}
orchestration: {restart: never, readiness: {period: 1s}}
defaults:
  call: {timeout: 100ms, retries: 1, backoff: none}
services:
  front:
    replicas: 2
    workers: 100
    endpoints:
      peek:
        service_time: 0
        calls: [{call: back.get, circuit_breaker: %(strict)s}]
      get:
        service_time: 0
        calls: [{call: back.get, circuit_breaker: %(lenient)s}]
  back:
    replicas: 2
    workers: 100
    endpoints:
      get: {service_time: 1ms}
workload:
  - {entry: front.get, rate: 40/s, arrivals: poisson}
  - {entry: front.peek, rate: 10/s, arrivals: poisson}
properties:
  - survives: {failures: 1, of: [instance]}
"""
STRICT = "{consecutive_failures: 1, open_for: 5s}"
LENIENT = "{failure_rate: 75%, window: 20, min_calls: 10, open_for: 30s, half_open_calls: 3}"
R4J = "{failure_rate: 50%, window: 20, min_calls: 10, open_for: 30s, half_open_calls: 3}"
DEAD = Scenario("dead replica", (Crash(target=parse_target("instance:back-0"), at=10.0),))


def breaking(strict: str = STRICT, lenient: str = LENIENT):  # type: ignore[no-untyped-def]
    return spec(BREAK % {"strict": strict, "lenient": lenient})


def test_a_dead_replica_trips_only_the_policies_it_should() -> None:
    # back-0 dies at 10 s and never returns; client caches route to it for up to
    # heartbeat + ttl + refresh = 6 s. Every call has one retry and round robin puts the
    # retry on the next instance, so a call either succeeds at once or fails once then
    # succeeds: `survives` holds and requests should succeed.
    # What each breaker sees is its caller instance's own attempts: at most every other one
    # fails (at most 6 of any 11), below the lenient policy's 75 %, so no lenient breaker
    # opens and front.get keeps the surviving replica's availability. The strict policy
    # (open after 1 failure) of front.peek is another breaker: it trips in the caller
    # instances that meet the dead replica, and must not block front.get. The old shared
    # edge breaker took the first call site's policy (peek's) for both, so front.get failed
    # with "circuit open" for seconds after each failure.
    run = simulate(breaking(), DEAD, duration=40, seed=2)
    get = run.entry("front.get")
    assert get["availability"] > 0.999, get["causes"]
    assert "circuit open" not in get["causes"]
    edge = run.summary["breakers"]["front->back"]
    # Two policies on one edge, one breaker each per caller instance.
    assert sorted(edge["instances"]) == ["front-0/1", "front-0/2", "front-1/1", "front-1/2"]
    sites = {label: b["sites"] for label, b in edge["instances"].items()}
    assert sites["front-0/1"] == ["front.peek/0"] and sites["front-1/2"] == ["front.get/0"]
    opened = [(t, label) for t, state, label in edge["transitions"] if state == "open"]
    assert opened, "the strict policy trips on the dead replica"
    assert {label for _, label in opened} <= {"front-0/1", "front-1/1"}  # never the lenient
    assert [t for t, _ in opened] == sorted(t for t, _ in opened)
    assert all(10.0 <= t <= 16.0 for t, _ in opened)  # only while the dead one is routed to


def test_a_dead_replica_opens_a_50_percent_breaker_once_per_caller_instance() -> None:
    # The same, with one Resilience4j-like policy (50 %) on both call sites, so they share
    # one breaker per caller instance. Half of a caller instance's attempts fail while the
    # dead replica is in its view, which is the threshold: each caller instance's breaker
    # opens (a breaker per instance still sees the dead replica; outlier ejection, not the
    # breaker's scope, avoids that). Each opens at most once, because 30 s later, when it
    # probes, every view has dropped back-0: the probes succeed and it closes for good.
    run = simulate(breaking(R4J, R4J), DEAD, duration=60, seed=2)
    edge = run.summary["breakers"]["front->back"]
    assert sorted(edge["instances"]) == ["front-0", "front-1"]
    assert edge["instances"]["front-0"]["sites"] == ["front.peek/0", "front.get/0"]
    opens = Counter(label for _, state, label in edge["transitions"] if state == "open")
    assert set(opens) <= {"front-0", "front-1"} and all(n == 1 for n in opens.values())
    assert edge["state"] == "closed"
    late = run.timeline[run.timeline["time_s"] >= 50]  # after open_for, views long fixed
    assert late["errors"].sum() == 0 and late["requests"].sum() > 0
    frame = run.breakers
    assert list(frame.columns) == ["time_s", "edge", "state", "instance"]
    assert set(frame["instance"]) == set(opens)


def test_each_caller_replica_has_its_own_breaker_state() -> None:
    # A partition cuts front-0 (only) off from back: front-0's calls time out and its
    # breaker opens; front-1 reaches back as before, so its breaker must stay closed and
    # every request the ingress gives to front-1 must succeed. With one breaker per edge,
    # front-0's timeouts opened it for front-1 as well.
    partition = Partition(between=(parse_target("instance:front-0"), parse_target("back")),
                          at=5.0, duration=20.0)
    run = simulate(breaking(R4J, R4J), Scenario("cut", (partition,)), duration=30, seed=4,
                   trace=True)
    moves = run.summary["breakers"]["front->back"]["transitions"]
    assert any(state == "open" and label == "front-0" for _, state, label in moves)
    assert not any(label == "front-1" for _, _, label in moves)
    requests = run.requests
    front1 = requests[requests["instance"] == "front-1"]
    assert len(front1) > 500 and (front1["outcome"] == "ok").all()
