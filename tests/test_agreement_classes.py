"""One small spec per class of disagreement the differential test (tests/agreement.py) found,
each failing before its fix: the verifier, the replay or the harness's own measure was wrong.
"""

from __future__ import annotations

import textwrap

import agreement as A

from faultmesh import model
from faultmesh.model import properties as P
from faultmesh.model.system import System
from faultmesh.model.verify import verify

TWO = """
system: classes
discovery: {mode: client, heartbeat: 1s, ttl: 2s, refresh: 2s}
services:
  front:
    workers: 8
    endpoints:
      home: {service_time: 1ms, calls: [CALL]}
  back:
    replicas: 2
    workers: 4
    load_balancer: random
    endpoints:
      get: {service_time: {exponential: 5ms}}
workload:
  - {entry: front.home, rate: 50/s}
"""


def _system(text: str, call: str = "") -> System:
    return model.loads(textwrap.dedent(text.replace("CALL", call)))


def _staleness(system: System) -> object:
    return verify(system, [P.Staleness()]).verdicts[0]


COVERED = "{call: back.get, timeout: 200ms, retries: 1, retry_other_instance: true"


def test_a_breaker_on_a_covered_call_may_open_during_the_stale_window() -> None:
    # Class (b): the breaker records the attempt the dead instance refuses; several in a row
    # (or a failure rate over its window) open it, and then it refuses every call.
    assert _staleness(_system(TWO, COVERED + "}")).status == "holds"
    verdict = _staleness(_system(TWO, COVERED + ", circuit_breaker: {consecutive_failures: 1,"
                                 " open_for: 5s}}"))
    assert verdict.status == "violated"
    assert "circuit breaker" in verdict.explanation
    assert verdict.counterexample.numbers["failure_probability_exact"] == 0.0
    assert any(k.endswith("circuit_breaker") for k in verdict.repair.changes)
    findings = A.check_staleness(_system(TWO, COVERED + ", circuit_breaker: "
                                         "{consecutive_failures: 1, open_for: 5s}}"),
                                 verdict, A.FAST)
    assert findings and all(f.agrees for f in findings), findings


def test_a_retry_that_can_time_out_on_the_live_instance_is_not_cover() -> None:
    # A 20 ms timeout under an exponential 5 ms service time (p99.9 about 35 ms): the retry
    # on the live instance can time out, and the attempt after it goes back to the dead one.
    call = "{call: back.get, timeout: 20ms, retries: 3, retry_other_instance: true}"
    verdict = _staleness(_system(TWO, call))
    assert verdict.status == "violated" and "timeout" in verdict.explanation
    assert any(k.endswith("timeout") for k in verdict.repair.changes)


def test_a_call_below_an_optional_call_shows_its_violation_on_its_own_edge() -> None:
    # The entry swallows mid's failure (optional), so the entry never fails; mid -> back does.
    system = model.loads(textwrap.dedent("""
        system: optional
        discovery: {mode: client, heartbeat: 1s, ttl: 2s, refresh: 2s}
        services:
          front:
            workers: 8
            endpoints:
              home: {service_time: 1ms, calls: [{call: mid.get, timeout: 1s, optional: true}]}
          mid:
            workers: 8
            endpoints:
              get: {service_time: 1ms, calls: [{call: back.get, timeout: 200ms}]}
          back:
            replicas: 2
            workers: 4
            load_balancer: random
            endpoints:
              get: {service_time: {exponential: 5ms}}
        workload:
          - {entry: front.home, rate: 50/s}
        """))
    verdict = _staleness(system)
    assert verdict.status == "violated"
    findings = A.check_staleness(system, verdict, A.FAST)
    assert findings and all(f.agrees for f in findings), findings


ROUND_ROBIN_LOSS = """
system: loss
services:
  s0:
    replicas: 4
    workers: 1
    concurrency: 1
    load_balancer: BALANCER
    endpoints:
      e0: {service_time: {exponential: 8ms}}
workload:
  - {entry: s0.e0, rate: 23/s}
"""


def test_round_robin_loses_less_than_a_poisson_split() -> None:
    # Class (a): each instance sees every 4th request (Erlang-4 gaps): about 0.06 % lost,
    # where a Poisson split (random) loses Erlang B(1, 0.046) = 4.4 %. The Poisson figure is
    # only the high bound for round robin; the low one is the pooled B(4, 0.184).
    prop = P.Capacity(failures=0, utilization=0.8)
    rr = model.loads(textwrap.dedent(ROUND_ROBIN_LOSS.replace("BALANCER", "round_robin")))
    random = model.loads(textwrap.dedent(ROUND_ROBIN_LOSS.replace("BALANCER", "random")))
    assert verify(random, [prop]).verdicts[0].status == "violated"
    verdict = verify(rr, [prop]).verdicts[0]
    assert verdict.status == "unknown", verdict.explanation
    measured = A.run(rr, (), 5.0, 65.0, 1)["services"]["s0"]
    assert A.wilson(measured["rejected"], measured["requests"])[1] < 0.044


def test_a_loss_system_past_saturation_replays_by_its_rejections() -> None:
    # One worker, no queue, 31/s x 46 ms = 1.43 offered: it carries about 59 % and rejects
    # the rest; the violation (utilisation 143 % >= 95 %) replays by those rejections.
    system = model.loads(textwrap.dedent("""
        system: saturated
        services:
          s0:
            workers: 1
            concurrency: 1
            queue: 0
            endpoints:
              e0: {service_time: {exponential: 46ms}}
        workload:
          - {entry: s0.e0, rate: 31/s}
        """))
    prop = P.Capacity(failures=0, utilization=0.95)
    verdict = verify(system, [prop]).verdicts[0]
    assert verdict.status == "violated"
    findings = A.check_capacity(system, prop, verdict, A.FAST)
    assert findings and all(f.agrees for f in findings), findings


def test_survives_ignores_requests_the_client_gave_up_on() -> None:
    # A 50 ms client timeout ends most requests before their 50 % call to the dead service:
    # the degraded share is measured on requests that can show it (no workload timeouts).
    system = model.loads(textwrap.dedent("""
        system: degraded
        services:
          front:
            workers: 4
            endpoints:
              home:
                service_time: {exponential: 34ms}
                calls: [{call: back.get, timeout: 1s, probability: 0.5}]
          back:
            replicas: 2
            endpoints:
              get: {service_time: 5ms}
        workload:
          - {entry: front.home, rate: 20/s, timeout: 50ms}
        """))
    assert all(w.timeout is None for w in A.light(system, entry_timeouts=False).workload)
    prop = P.Survives(failures=2, of=("instance",))
    verdict = verify(system, [prop]).verdicts[0]
    findings = A.check_survives(system, prop, verdict, A.FAST)
    assert findings and all(f.agrees for f in findings), findings
