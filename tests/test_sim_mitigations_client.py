"""Client-side overload mitigations in the engine, against their reference semantics.

* Envoy's retry budget: watched from outside (requests arriving at the callee's instances,
  and the call sites' ``settle``), no retry is ever sent while the caller's retries on the
  wire are at ``max(min_retry_concurrency, budget_percent of its requests on the wire)``, and
  in a storm the retries' share of the attempts settles at the budget's percent.
* gRPC retry throttling (gRFC A6): the retries made against an always-failing callee, by hand.
* The overall deadline of a call (Envoy's route timeout, a gRPC deadline): the attempts it
  allows and when the call ends, exactly.
* Deadline propagation: no call of a propagating service is waited for past its job's deadline
  and no callee's job carries a later deadline than its caller's job.
* gRPC hedging: p99 of a heavy-tailed callee falls to the p99 of ``min(X1, delay + X2)``,
  computed from the same distribution.
"""

from __future__ import annotations

import json
import random
import textwrap
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from faultmesh import model
from faultmesh.model.distributions import parse_distribution
from faultmesh.model.faults import ErrorFault, Scenario, Target
from faultmesh.model.system import System
from faultmesh.simulations.engine import calls, instances, jobs
from faultmesh.simulations.engine.simulation import Simulation, simulate


def load(text: str) -> System:
    return model.loads(textwrap.dedent(text))


def run(system: System, scenario: Scenario | None = None, *, duration: float,
        seed: int = 1, trace: bool = False) -> Any:
    """A run with no warm-up cut (the counts below are of every request)."""
    if scenario is None:
        scenario = Scenario(name="none", faults=(), warmup=0.0)
    return Simulation(system, scenario, duration=duration, seed=seed, trace=trace,
                      cold_start=False).run()


# --- retry budget -----------------------------------------------------------------------------

STORM = """
system: storm
defaults: {{call: {{timeout: 50ms, retries: 3, backoff: none}}}}
services:
  front:
    workers: 1000
    endpoints:
      serve: {{calls: [back.get]}}
  back:
    workers: 1000
{budget}    endpoints:
      get: {{service_time: 200ms}}
workload:
  - {{entry: front.serve, rate: 1000/s, arrivals: constant}}
"""


class Wire:
    """Attempts and retries on the wire per (callee, caller instance), seen from outside."""

    def __init__(self, share: float, floor: int) -> None:
        self.share = share
        self.floor = floor
        self.out: dict[tuple[str, str], dict[int, bool]] = defaultdict(dict)  # run -> retry?
        self.checked = 0
        self.over: list[tuple[int, int]] = []  # (retries, attempts) before a retry past bound

    def arrive(self, callee: str, waiter: Any, kind: int) -> None:
        key = (callee, waiter.caller.name)
        out = self.out[key]
        if kind == jobs.RETRY:
            retries = sum(out.values())
            self.checked += 1
            if not retries < max(self.floor, self.share * len(out)):
                self.over.append((retries, len(out)))
        out[id(waiter)] = kind == jobs.RETRY

    def settle(self, site: calls.CallSite, run: calls.CallRun) -> None:
        self.out[(site.callee, run.caller.name)].pop(id(run), None)


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Iterator[Wire]:
    watch = Wire(share=0.2, floor=0)
    receive, settle = instances.Instance.receive, calls.CallSite.settle

    def watched_receive(instance: instances.Instance, endpoint: Any, waiter: Any, token: int,
                        key: int, caller: Any, deadline: Any = None,
                        attempt: int = jobs.FIRST) -> None:
        if caller is not None:  # the network has no delay here: arriving is sending
            watch.arrive(instance.service, waiter, attempt)
        receive(instance, endpoint, waiter, token, key, caller, deadline, attempt)

    def watched_settle(site: calls.CallSite, run: calls.CallRun, *args: Any) -> None:
        watch.settle(site, run)
        settle(site, run, *args)

    monkeypatch.setattr(instances.Instance, "receive", watched_receive)
    monkeypatch.setattr(calls.CallSite, "settle", watched_settle)
    yield watch


def test_retry_budget_caps_the_retries_on_the_wire(wire: Wire) -> None:
    budget = "    retry_budget: {percent: 20%, min_concurrency: 0}\n"
    summary = run(load(STORM.format(budget=budget)), duration=4.0).summary
    edge = summary["calls"]["front->back"]
    assert wire.checked > 100  # many retries were sent ...
    assert wire.over == []  # ... none past the budget
    # Every attempt times out after the same 50 ms, so the retries' share of the attempts is
    # their share of the requests on the wire: the budget's 20 % (Envoy checks before the
    # retry joins the wire, so one retry more than 20 % of ~60 attempts can be out).
    share = edge["retries"] / edge["attempts"]
    assert share == pytest.approx(0.2, abs=0.02), share
    assert edge["retry_overflow"] > 0
    assert edge["first_attempts"] + edge["retries"] + edge["hedges"] == edge["attempts"]


def test_without_a_budget_the_same_storm_breaks_that_bound(wire: Wire) -> None:
    summary = run(load(STORM.format(budget="")), duration=4.0).summary
    edge = summary["calls"]["front->back"]
    assert wire.over  # the monitor above can fail
    assert edge["retries"] / edge["attempts"] > 0.7  # three retries per call: 3/4


def test_a_budget_replaces_max_retries() -> None:
    """Envoy: 'if this field is set, the retry budget will override any configured retry
    circuit breaker'."""
    both = "    max_retries: 0\n    retry_budget: {percent: 100%, min_concurrency: 3}\n"
    edge = run(load(STORM.format(budget=both)), duration=1.0).summary["calls"]["front->back"]
    assert edge["retries"] > 0


# --- retry throttling -------------------------------------------------------------------------

THROTTLED = """
system: throttled
services:
  front:
    endpoints:
      serve: {calls: [{call: back.get, timeout: 1s, retries: 2, backoff: none}]}
  back:
    retry_throttling: {max_tokens: 10, token_ratio: 0.1}
    endpoints:
      get: {service_time: 1ms}
workload:
  - {entry: front.serve, rate: 10/s, arrivals: constant}
"""

BROKEN = Scenario(name="broken", faults=(ErrorFault(target=Target("service", "back"),
                                                    rate=1.0),), warmup=0.0)


def test_throttling_against_a_hand_computation() -> None:
    """Every attempt fails. Tokens 10 -> call 1: fail (9), retry, fail (8), retry, fail (7):
    retries exhausted. Call 2: fail (6), retry (6 > 5), fail (5): 5 is not above 5, throttled.
    Every later call: one failed attempt (tokens fall to 0 and stay), no retry."""
    summary = run(load(THROTTLED), BROKEN, duration=10.0).summary
    edge = summary["calls"]["front->back"]
    calls_made = edge["calls"]
    assert calls_made > 50
    assert edge["retries"] == 3
    assert edge["attempts"] == calls_made + 3
    assert edge["throttled"] == calls_made - 1
    assert edge["causes"] == {"retries exhausted": 1, "injected error": calls_made - 1}


def test_throttling_lets_retries_through_while_calls_mostly_succeed() -> None:
    flaky = Scenario(name="flaky", faults=(ErrorFault(target=Target("service", "back"),
                                                      rate=0.05),), warmup=0.0)
    edge = run(load(THROTTLED), flaky, duration=20.0).summary["calls"]["front->back"]
    assert edge["throttled"] == 0
    assert edge["retries"] > 0
    assert edge["failed"] == 0  # a 5 % failure never survives two retries here


# --- overall deadline -------------------------------------------------------------------------

DEADLINE = """
system: deadline
services:
  front:
    workers: 100
    endpoints:
      serve: {{calls: [{{call: back.get, timeout: 50ms, retries: 5, {backoff}, deadline: 120ms}}]}}
  back:
    workers: 100
    endpoints:
      get: {{service_time: 1s}}
workload:
  - {{entry: front.serve, rate: 2/s, arrivals: constant}}
"""


def test_the_deadline_bounds_attempts_and_ends_the_call_on_time() -> None:
    """Tries at 0, 50 and 100 ms, the third cut to 20 ms: three attempts, over at 120 ms."""
    result = run(load(DEADLINE.format(backoff="backoff: none")), duration=10.0, trace=True)
    edge = result.summary["calls"]["front->back"]
    assert edge["attempts"] == 3 * edge["calls"]
    assert edge["causes"] == {"deadline exceeded": edge["calls"]}
    rows = result.requests
    assert len(rows) > 10
    assert set(rows["cause"]) == {"dependency failed"}
    assert set(rows["root_cause"]) == {"deadline exceeded"}
    ended = rows["ended_s"] - rows["arrived_s"]
    assert ended.min() == pytest.approx(0.12) and ended.max() == pytest.approx(0.12)


def test_no_retry_starts_that_cannot_begin_before_the_deadline() -> None:
    """A constant 60 ms backoff: tries at 0 and 110 ms; the next could only start at 220 ms,
    past the 120 ms deadline, so the call waits the deadline out without it."""
    backoff = "backoff: {strategy: constant, base: 60ms, cap: 60ms, jitter: none}"
    result = run(load(DEADLINE.format(backoff=backoff)), duration=10.0, trace=True)
    edge = result.summary["calls"]["front->back"]
    assert edge["attempts"] == 2 * edge["calls"]
    ended = result.requests["ended_s"] - result.requests["arrived_s"]
    assert ended.max() == pytest.approx(0.12)


# --- deadline propagation ---------------------------------------------------------------------

CHAIN = """
system: chain
services:
  a:
    workers: 1000
{a}    endpoints:
      serve: {{calls: [{{call: b.work, timeout: 1s}}]}}
  b:
    workers: 1000
{b}    endpoints:
      work: {{calls: [{{call: c.work, timeout: 1s}}]}}
  c:
    workers: 1
{c}    endpoints:
      work: {{service_time: {{exponential: 30ms}}}}
workload:
  - {{entry: a.serve, rate: 45/s, timeout: 100ms}}
"""


class Deadlines:
    """Calls of a propagating service watched from outside: late answers, later deadlines."""

    def __init__(self) -> None:
        self.answers = 0
        self.late: list[float] = []  # how long after its job's deadline a call came back
        self.attempts = 0
        self.wider: list[float] = []  # callee deadline minus caller job's deadline, if > 0


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Deadlines]:
    seen = Deadlines()
    receive, call_done = instances.Instance.receive, jobs.Job.call_done

    def watched_receive(instance: instances.Instance, endpoint: Any, waiter: Any, token: int,
                        key: int, caller: Any, deadline: Any = None,
                        attempt: int = jobs.FIRST) -> None:
        parent = getattr(waiter, "parent", None)  # None: a request from outside
        if parent is not None and parent.deadline is not None:
            seen.attempts += 1
            if deadline > parent.deadline + 1e-9:
                seen.wider.append(deadline - parent.deadline)
        receive(instance, endpoint, waiter, token, key, caller, deadline, attempt)

    def watched_call_done(job: jobs.Job, ok: bool, root: str | None) -> None:
        if job.alive and job.deadline is not None and job.instance.service in ("a", "b"):
            seen.answers += 1
            late = job.instance.env.now - job.deadline
            if late > 1e-9:
                seen.late.append(late)
        call_done(job, ok, root)

    monkeypatch.setattr(instances.Instance, "receive", watched_receive)
    monkeypatch.setattr(jobs.Job, "call_done", watched_call_done)
    yield seen


def chain(propagate: bool) -> System:
    key = "    propagate_deadline: true\n" if propagate else ""
    return load(CHAIN.format(a=key, b=key, c=key))


def test_a_propagated_deadline_is_never_exceeded_downstream(watch: Deadlines) -> None:
    summary = run(chain(True), duration=30.0).summary
    assert watch.attempts > 1000 and watch.answers > 1000
    assert watch.wider == []  # no callee job outlives its caller's job
    assert watch.late == []  # no call is waited for past its job's deadline
    # c is overloaded (45/s against 33/s): it drops what nobody waits for any more, and so
    # starts no work for a caller that gave up.
    assert summary["services"]["c"]["deadline_exceeded"] > 0
    assert summary["calls"]["b->c"]["orphaned"] == 0


def test_without_propagation_calls_outlive_their_callers(watch: Deadlines) -> None:
    summary = run(chain(False), duration=30.0).summary
    assert watch.wider  # the 1 s call timeouts reach past the entry's 100 ms
    assert watch.late
    assert summary["calls"]["b->c"]["orphaned"] > 0  # c serves callers that gave up


def test_the_features_off_change_nothing() -> None:
    """Propagation with no deadline anywhere, and a deadline no call reaches, run exactly as
    the plain spec does."""
    plain = load(STORM.format(budget=""))
    text = STORM.format(budget="    propagate_deadline: true\n")
    far = text.replace("backoff: none}", "backoff: none, deadline: 1h}")
    base = json.dumps(simulate(plain, duration=2.0, seed=4).summary, sort_keys=True)
    for variant in (text, far):
        assert json.dumps(simulate(load(variant), duration=2.0, seed=4).summary,
                          sort_keys=True) == base


# --- hedging ----------------------------------------------------------------------------------

HEDGED = """
system: hedging
services:
  front:
    workers: 1000
    endpoints:
      serve: {{calls: [{{call: back.get, timeout: 5s{hedge}}}]}}
  back:
    workers: 1000
    endpoints:
      get: {{service_time: {{lognormal: {{mean: 10ms, p99: 100ms}}}}}}
workload:
  - {{entry: front.serve, rate: 500/s}}
"""
DELAY = 0.03


def p99(values: list[float]) -> float:
    values = sorted(values)
    return values[int(0.99 * len(values))]


def test_hedging_cuts_p99_to_the_min_of_two_draws() -> None:
    """With ample capacity, a call hedged once after ``d`` takes ``min(X1, d + X2)``."""
    draw = parse_distribution({"lognormal": {"mean": 0.01, "p99": 0.1}}).sampler(
        random.Random(7))
    n = 200_000
    single = p99([draw() for _ in range(n)])
    hedged = p99([min(draw(), DELAY + draw()) for _ in range(n)])
    plain = run(load(HEDGED.format(hedge="")), duration=40.0, seed=2).summary
    with_hedge = run(load(HEDGED.format(hedge=f", hedge: {{delay: {DELAY}s, max_attempts: 2}}")),
                     duration=40.0, seed=2).summary
    measured = with_hedge["entries"]["front.serve"]["latency_s"]["p99"]
    assert plain["entries"]["front.serve"]["latency_s"]["p99"] == pytest.approx(single, rel=0.1)
    assert measured == pytest.approx(hedged, rel=0.1)
    assert measured < 0.6 * single
    edge = with_hedge["calls"]["front->back"]
    # The first success wins: one call per request, and a hedge exactly for the calls whose
    # first attempt took longer than the delay (P(X > 30 ms) for this lognormal).
    requests = with_hedge["entries"]["front.serve"]["requests"]
    assert edge["calls"] == requests and edge["failed"] == 0
    slow = sum(draw() > DELAY for _ in range(n)) / n
    assert edge["hedges"] / edge["first_attempts"] == pytest.approx(slow, rel=0.15)


def test_a_failed_attempt_does_not_stop_the_hedges() -> None:
    """Half the attempts fail at once: the next hedge goes at once, and a call fails only
    when all three of its attempts did (1/8 of calls)."""
    flaky = Scenario(name="flaky", faults=(ErrorFault(target=Target("service", "back"),
                                                      rate=0.5),), warmup=0.0)
    spec = HEDGED.format(hedge=", hedge: {delay: 1s, max_attempts: 3}")
    edge = run(load(spec), flaky, duration=20.0, seed=3).summary["calls"]["front->back"]
    assert edge["failed"] / edge["calls"] == pytest.approx(1 / 8, abs=0.02)
    assert set(edge["causes"]) == {"retries exhausted"}
    # 1 + 1/2 + 1/4 attempts per call on average.
    assert edge["attempts"] / edge["calls"] == pytest.approx(1.75, abs=0.05)


def test_throttling_holds_hedges_back_as_it_does_retries() -> None:
    """gRFC A6: hedges are throttled too. Every attempt fails, so each failure sends the next
    hedge at once: the same count by hand as for retries, 3 hedges in all."""
    spec = THROTTLED.replace("retries: 2, backoff: none", "hedge: {delay: 500ms, max_attempts: 3}")
    edge = run(load(spec), BROKEN, duration=10.0).summary["calls"]["front->back"]
    calls_made = edge["calls"]
    assert edge["hedges"] == 3 and edge["retries"] == 0
    assert edge["throttled"] == calls_made - 1
    assert edge["causes"] == {"retries exhausted": 2, "injected error": calls_made - 2}
