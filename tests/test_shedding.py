"""Server-side load shedding and load triggers: the pure rules against hand computations, and
the engine against queueing theory.

* the token bucket (Envoy's local rate limit) step by step;
* the queue's mode rule (FIFO, LIFO, adaptive LIFO with CoDel) and wait bounds;
* M/M/1 with a queue timeout against the M/M/1+D abandonment probability (Barrer, 1957);
* FIFO and LIFO: the same mean wait (work conserving), LIFO's lower median and longer tail;
* adaptive LIFO under overload keeps the served requests fast, plain FIFO does not;
* a propagated deadline drops queued work, without it the work is served orphaned;
* the rate limit's accepted rate against min(lambda, rate);
* rate profiles (steps, ramps) and surges: arrivals per window against the integral.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import replace

import pytest
import simpy
from simhelp import assert_within, replicate, spec

from faultmesh.model.faults import Scenario, Surge
from faultmesh.model.policies import QueueDiscipline, RateLimit
from faultmesh.model.system import Communication, FrozenMap, RatePoint, System
from faultmesh.simulations import simulate
from faultmesh.simulations.engine.instances import Instance
from faultmesh.simulations.engine.jobs import EndpointRuntime
from faultmesh.simulations.engine.network import Network
from faultmesh.simulations.engine.workload import crossing, integrated, segments
from faultmesh.simulations.outcomes import DEADLINE_EXCEEDED, SHED
from faultmesh.simulations.shedding import TokenBucket, serves_newest, standing, wait_limit

# --- the token bucket ---------------------------------------------------------------------------


def test_token_bucket_against_a_hand_computation() -> None:
    # 10 tokens/s (one at every 0.1 s from 0), at most 2, starting full.
    bucket = TokenBucket(RateLimit(rate=10.0, burst=2))
    steps = [  # (time, granted?) worked out by hand
        (0.0, True), (0.0, True), (0.0, False),      # the burst, then empty
        (0.05, False),                                # no fill instant yet
        (0.1, True), (0.15, False),                   # one fill at 0.1
        (0.35, True), (0.35, True), (0.35, False),    # fills at 0.2, 0.3: two (the cap)
        (1.0, True), (1.0, True), (1.0, False),       # seven fills, capped at 2
    ]
    assert [bucket.take(t) for t, _ in steps] == [granted for _, granted in steps]


def test_token_bucket_fill_instants_are_exact_despite_float_rounding() -> None:
    bucket = TokenBucket(RateLimit(rate=100.0, burst=1))
    assert bucket.take(0.0)
    # 0.29 * 100 is 28.999999999999996 in floating point: the 29th fill has still happened.
    assert bucket.take(0.29)
    assert not bucket.take(0.295)


# --- the queue's mode rule ----------------------------------------------------------------------


def test_adaptive_lifo_mode_rule() -> None:
    adaptive = QueueDiscipline("adaptive_lifo", timeout=1.0, interval=0.1, target=0.005)
    # Empty 50 ms ago: not standing, FIFO under the queue timeout.
    assert not standing(adaptive, 1.0, 0.95, 3)
    assert not serves_newest(adaptive, False)
    assert wait_limit(adaptive, False) == 1.0
    # Not empty for 100 ms: standing, LIFO, and CoDel's target bounds the wait.
    assert standing(adaptive, 1.0, 0.85, 3)
    assert serves_newest(adaptive, True)
    assert wait_limit(adaptive, True) == 0.005
    # An empty queue never stands.
    assert not standing(adaptive, 5.0, 0.0, 0)
    assert serves_newest(QueueDiscipline("lifo"), False)
    assert wait_limit(QueueDiscipline("fifo"), True) is None
    assert wait_limit(QueueDiscipline("adaptive_lifo", interval=0.1, target=0.02), True) == 0.02


# --- the engine against queueing theory -----------------------------------------------------------

MM1 = """
system: mm1
services:
  server:
    workers: 1
    endpoints:
      serve: {service_time: {exponential: 100ms}}
workload:
  - {entry: server.serve, rate: 8/s}
"""


def _server(system: System, **changes: object) -> System:
    service = replace(system.services["server"], **changes)
    return replace(system, services=FrozenMap({"server": service}))


def mm1_abandonment(lam: float, mu: float, tau: float) -> float:
    """P(shed) in M/M/1 whose requests leave unserved past a wait of ``tau`` (M/M/1+D).

    Virtual waiting time V: density lam*P0*exp(-(mu-lam)v) up to tau, then
    lam*P0*exp(-(mu-lam)tau)*exp(-mu(v-tau)); a request is shed when V > tau.
    """
    decay = math.exp(-(mu - lam) * tau)
    p0 = 1.0 / (1.0 + lam * (1.0 - decay) / (mu - lam) + lam / mu * decay)
    return lam / mu * p0 * decay


def test_queue_timeout_sheds_as_mm1_with_deterministic_patience() -> None:
    tau = 0.2
    system = _server(spec(MM1), queue_discipline=QueueDiscipline(timeout=tau))

    def shed_share(run: object) -> float:
        server = run.summary["services"]["server"]  # type: ignore[attr-defined]
        return server["shed"] / server["requests"]

    samples = replicate(system, range(6), shed_share, duration=1500.0, warmup=50.0)
    assert_within(samples, mm1_abandonment(8.0, 10.0, tau), "shed probability")


def test_lifo_keeps_the_mean_wait_and_moves_it_to_the_tail() -> None:
    base = spec(MM1)
    runs = {kind: [simulate(_server(base, queue_discipline=QueueDiscipline(kind)),
                            Scenario("q", warmup=50.0), duration=1500.0, seed=seed)
                   for seed in range(4)]
            for kind in ("fifo", "lifo")}
    theory = 0.8 / (10.0 - 8.0)  # Wq = rho / (mu - lambda), either order
    for kind, kind_runs in runs.items():
        assert_within([r.summary["services"]["server"]["wait_s"] for r in kind_runs], theory,
                      f"{kind} mean wait", slack=0.05)

    def latency(kind: str, key: str) -> float:
        return sum(r.summary["entries"]["server.serve"]["latency_s"][key]
                   for r in runs[kind]) / len(runs[kind])

    assert latency("lifo", "p50") < 0.75 * latency("fifo", "p50")
    assert latency("lifo", "p99") > 1.5 * latency("fifo", "p99")


def test_adaptive_lifo_keeps_served_requests_fast_under_overload() -> None:
    overload = replace(spec(MM1), workload=(replace(spec(MM1).workload[0], rate=15.0),))
    scenario = Scenario("overload", warmup=0.0)
    fifo = simulate(overload, scenario, duration=300.0, seed=1)
    # CoDel's target scaled to this server's 100 ms service time (Facebook's 5 ms / 100 ms
    # suit services of a millisecond or less): a target below the gap between arrivals would
    # shed nearly everything and leave the server idle.
    adaptive = simulate(_server(overload, queue_discipline=QueueDiscipline(
        "adaptive_lifo", interval=1.0, target=0.5)), scenario, duration=300.0, seed=1)
    served = adaptive.summary["entries"]["server.serve"]
    # Served requests waited at most the target, and mostly far less (the newest goes first).
    assert served["latency_s"]["p50"] < 0.3
    assert served["latency_s"]["max"] < 0.5 + 2.0
    assert fifo.summary["entries"]["server.serve"]["latency_s"]["p50"] > 10.0
    # The server stays busy and sheds the excess (about a third of the requests).
    assert served["ok"] / 300.0 > 0.85 * 10.0
    assert served["causes"].get(SHED, 0) > 0.2 * served["requests"]


class _Waiter:
    def __init__(self) -> None:
        self.answers: list[tuple[bool, str | None]] = []

    def respond(self, token: int, ok: bool, cause: str | None, root: str | None) -> None:
        self.answers.append((ok, cause))

    def lose(self, token: int, cause: str) -> None:  # pragma: no cover - no network here
        raise AssertionError(cause)


@pytest.mark.parametrize("propagate", [True, False])
def test_queued_work_past_its_deadline_is_dropped_only_when_deadlines_propagate(
        propagate: bool) -> None:
    env = simpy.Environment()
    network = Network(Communication(), random.Random(0))
    instance = Instance(env, network, "s", 0, "z", 0, workers=1, concurrency=None, queue=None,
                        fault_rng=random.Random(0), propagate_deadline=propagate)
    endpoint = EndpointRuntime("s", "e", lambda: 1.0)
    first, late, timely = _Waiter(), _Waiter(), _Waiter()
    instance.accept(endpoint, first, 1, 0, None)  # takes the worker until t = 1
    instance.accept(endpoint, late, 1, 1, None, 0.5)  # its caller gives up at t = 0.5
    instance.accept(endpoint, timely, 1, 2, None, 5.0)
    env.run(until=10)
    assert first.answers == [(True, None)]
    assert timely.answers == [(True, None)]
    if propagate:
        assert late.answers == [(False, DEADLINE_EXCEEDED)]
        assert (instance.expired, instance.orphaned) == (1, 0)
    else:  # served for nobody: orphaned work
        assert late.answers == [(True, None)]
        assert (instance.expired, instance.orphaned) == (0, 1)
    assert instance.accepted == instance.finished


@pytest.mark.parametrize(("lam", "rate"), [(300.0, 100.0), (50.0, 100.0)])
def test_rate_limit_accepts_min_of_arrivals_and_rate(lam: float, rate: float) -> None:
    base = spec(MM1)
    system = replace(_server(base, workers=1000, rate_limit=RateLimit(rate=rate, burst=20)),
                     workload=(replace(base.workload[0], rate=lam),))
    duration = 200.0

    def accepted_rate(run: object) -> float:
        entry = run.summary["entries"]["server.serve"]  # type: ignore[attr-defined]
        return (entry["requests"] - entry["causes"].get("rate limited", 0)) / duration

    samples = replicate(system, range(5), accepted_rate, duration=duration)
    # Poisson bursts can find the bucket empty even below the rate, and a full bucket wastes
    # fills above it: allow 2 % around min(lambda, rate).
    assert_within(samples, min(lam, rate), "accepted rate", slack=0.02)


# --- rate profiles and surges -------------------------------------------------------------------


def test_profile_integral_and_crossing_by_hand() -> None:
    profile = (RatePoint(10.0, 30.0, ramp=True), RatePoint(20.0, 0.0))
    pieces = list(segments(profile, 10.0, 0.0))
    assert pieces == [(0.0, 10.0, 10.0, 30.0), (10.0, 20.0, 30.0, 30.0),
                      (20.0, math.inf, 0.0, 0.0)]
    # Ramp 10 -> 30 over 10 s: 200 arrivals expected; then 30/s for 10 s: 300 more.
    assert integrated(pieces, 10.0) == pytest.approx(200.0)
    assert integrated(pieces, 15.0) == pytest.approx(350.0)
    assert integrated(pieces, 100.0) == pytest.approx(500.0)
    # 10 t + t^2 = 24 at t = 2 (the ramp's rate is 10 + 2t).
    assert crossing(pieces, 24.0) == pytest.approx(2.0)
    assert crossing(pieces, 230.0) == pytest.approx(11.0)
    assert crossing(pieces, 500.5) == math.inf  # the rate is 0 from 20 s on


PROFILED = """
system: profiled
services:
  s:
    workers: 1000
    endpoints:
      e: {{service_time: 0}}
workload:
  - entry: s.e
    arrivals: {arrivals}
    rate: [{{at: 0s, rate: 50/s}}, {{at: 20s, rate: 150/s, ramp: true}}, {{at: 40s, rate: 20/s}}]
scenarios:
  spike:
    warmup: 0s
    faults:
      - {{at: 45s, for: 10s, surge: {{entry: s.e, factor: 3}}}}
"""


def _arrivals_per_window(system: System, scenario: str | None, seed: int,
                         edges: list[float]) -> list[int]:
    run = simulate(system, scenario, duration=edges[-1], seed=seed, trace=True)
    arrived = run.requests["arrived_s"]
    return [int(((arrived >= a) & (arrived < b)).sum()) for a, b in itertools.pairwise(edges)]


def test_poisson_arrivals_follow_a_profile_with_a_surge() -> None:
    system = spec(PROFILED.format(arrivals="poisson"))
    edges = [0.0, 20.0, 40.0, 45.0, 55.0, 60.0]
    # A ramp 50 -> 150 reaching 150/s at 20 s (mean 100/s); 150/s; 20/s; tripled to 60/s by
    # the surge; 20/s again.
    expected = [2000.0, 3000.0, 100.0, 600.0, 100.0]
    totals = [0] * len(expected)
    seeds = range(5)
    for seed in seeds:
        for k, n in enumerate(_arrivals_per_window(system, "spike", seed, edges)):
            totals[k] += n
    for k, mean in enumerate(expected):
        count = mean * len(seeds)
        # Poisson counts: within 4 standard deviations of the integral of the rate.
        assert abs(totals[k] - count) <= 4 * math.sqrt(count), (k, totals[k], count)


def test_constant_arrivals_follow_a_profile_with_a_surge() -> None:
    system = spec(PROFILED.format(arrivals="constant"))
    edges = [0.0, 20.0, 40.0, 45.0, 55.0, 60.0]
    counts = _arrivals_per_window(system, "spike", 0, edges)
    for got, want in zip(counts, [2000, 3000, 100, 600, 100], strict=True):
        assert abs(got - want) <= 1


def test_a_rate_surge_sets_the_rate_for_its_window() -> None:
    system = spec(MM1)
    surge = Scenario("s", (Surge(entry="server.serve", rate=2.0, at=100.0, duration=200.0),),
                     warmup=0.0)
    run = simulate(replace(_server(system, workers=100)), surge, duration=400.0, seed=3,
                   trace=True)
    arrived = run.requests["arrived_s"]
    during = int(((arrived >= 100.0) & (arrived < 300.0)).sum())
    outside = int(((arrived < 100.0) | (arrived >= 300.0)).sum())
    assert abs(during - 400) <= 4 * math.sqrt(400)
    assert abs(outside - 1600) <= 4 * math.sqrt(1600)
