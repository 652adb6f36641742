"""Disagreements about the load that really arrives, and about hosts callers eject: one small
spec per class the differential test (tests/agreement.py) found, each failing before its fix.

* capacity judged a service by its nominal load while calls on the way to it failed often
  (a timeout within the callee's healthy worst case), thinning that load below the target;
* capacity named a downstream service when its entry service's own limits refuse much of
  the load first (the downstream overload cannot show);
* a saturated service whose callers eject it (outlier detection counts timeouts as gateway
  errors) or whose limits refuse more than allowed did not replay as overloaded;
* survives said ``holds`` while callers' outlier detection ejected every live host;
* a staleness violation was tested against the tail tolerance meant for a ``holds``.
"""

from __future__ import annotations

import textwrap

import agreement as A

from faultmesh import model
from faultmesh.model import properties as P
from faultmesh.model.system import System
from faultmesh.model.verify import verify
from faultmesh.model.verify.verdict import Verdict
from faultmesh.simulations.replay import ServiceReplay, replay

FAST = A.Settings(measure=15.0)


def _system(text: str) -> System:
    return model.loads(textwrap.dedent(text))


def _verdict(system: System, prop: P.Property) -> Verdict:
    return verify(system, [prop]).verdicts[0]


THINNED = """
system: thinned
services:
  front:
    replicas: 2
    workers: 8
    endpoints:
      home:
        service_time: 1ms
        calls:
          - {call: flaky.get, timeout: 35ms, retries: 1}
          - {call: back.get, timeout: 1s, repeat: 3}
  flaky:
    workers: 4
    endpoints:
      get: {service_time: {exponential: 32ms}}
  back:
    replicas: 2
    workers: 1
    endpoints:
      get: {service_time: {exponential: 42ms}}
workload:
  - {entry: front.home, rate: 15/s}
"""


def test_calls_that_can_fail_on_the_way_make_a_nominal_overload_unknown() -> None:
    # back: 15/s x 3 x 42 ms over 2 workers = 94.5 % nominal; but a 35 ms timeout on a 32 ms
    # mean exponential callee fails about a fifth of the requests before they call back.
    system = _system(THINNED)
    prop = P.Capacity(failures=0, utilization=0.9)
    verdict = _verdict(system, prop)
    assert verdict.status == "unknown", verdict.explanation
    assert "sure to arrive" in verdict.explanation
    measured = A.run(system, (), 10.0, 40.0, 1)["services"]["back"]["utilization"]
    assert measured < 0.9
    # With a timeout that covers flaky, the whole load arrives and the verdict is violated.
    covered = _system(THINNED.replace("timeout: 35ms", "timeout: 1s"))
    assert _verdict(covered, prop).status == "violated"


ENTRY_LIMITED = """
system: entry_limited
services:
  front:
    workers: 1
    concurrency: 2
    endpoints:
      home:
        service_time: {exponential: 10ms}
        calls: [{call: back.get, timeout: 1s}]
  back:
    workers: 1
    endpoints:
      get: {service_time: {exponential: 30ms}}
workload:
  - {entry: front.home, rate: 60/s}
"""


def test_an_entry_that_refuses_first_is_the_counterexample() -> None:
    # back is at 180 % nominally, but front holds a concurrency slot per request for the
    # whole call: it refuses much of the load before back sees it.
    system = _system(ENTRY_LIMITED)
    prop = P.Capacity(failures=0, utilization=0.8)
    verdict = _verdict(system, prop)
    assert verdict.status == "violated"
    assert verdict.counterexample.down == ("front",), verdict.explanation
    findings = A.check_capacity(system, prop, verdict, FAST)
    assert findings and all(f.agrees for f in findings), findings


EJECTED = """
system: ejected
services:
  front:
    workers: 16
    endpoints:
      home:
        service_time: 1ms
        calls: [{call: back.get, timeout: 300ms, retries: 2}]
  back:
    workers: 1
    outlier_detection: {consecutive_gateway_errors: 5, always_eject_one_host: true}
    endpoints:
      get: {service_time: {exponential: 40ms}}
workload:
  - {entry: front.home, rate: 30/s}
"""


def test_a_saturated_service_its_callers_eject_replays_as_overloaded() -> None:
    # back at 120 %: the 300 ms timeout covers its healthy worst case (p99.9 of 40 ms mean:
    # 276 ms), so its whole load is sure to arrive; but its queue grows, calls time out,
    # front ejects its only host and sheds the load before it arrives (utilization far
    # below the prediction). With a 100 ms timeout the verdict is unknown: the ejection may
    # come without any overload, and nothing is sure to arrive.
    system = _system(EJECTED)
    prop = P.Capacity(failures=0, utilization=1.0)
    verdict = _verdict(system, prop)
    assert verdict.status == "violated" and verdict.counterexample.down == ("back",)
    thin = _system(EJECTED.replace("timeout: 300ms", "timeout: 100ms"))
    assert _verdict(thin, prop).status == "unknown"
    result = replay(system, verdict, at=5.0, duration=25.0, settle=5.0, seed=1)
    (service,) = result.services
    assert service.shed > 0 and result.agrees, result.to_json()
    findings = A.check_capacity(system, prop, verdict, FAST)
    assert findings and all(f.agrees for f in findings), findings


def test_replay_tolerance_follows_the_work_that_arrived() -> None:
    # An M/M/1 predicted at 89.6 % measured at 99 % over 20 s: within 3 standard errors of
    # the arrived work (about 16 points), not within the fixed 5.
    near = dict(service="s", predicted=0.896, limit=0.8, surviving=1, utilization=0.99,
                requests=660, rejected=0)
    assert not ServiceReplay(**near).agrees  # type: ignore[arg-type]
    assert ServiceReplay(**near, noise=0.157).agrees  # type: ignore[arg-type]
    # Limits refusing more than allowed confirm a utilization claim past the target.
    limited = dict(near, utilization=0.45, requests=571, rejected=164, rejected_bound=0.001)
    assert ServiceReplay(**limited).agrees  # type: ignore[arg-type]
    assert not ServiceReplay(**dict(limited, rejected=0)).agrees  # type: ignore[arg-type]


EJECTS_LIVE = """
system: ejects_live
services:
  front:
    workers: 8
    endpoints:
      home:
        service_time: 1ms
        calls: [{call: back.get, timeout: 20ms}]
  back:
    replicas: 2
    workers: 4
    outlier_detection: {consecutive_gateway_errors: 1, max_ejection_percent: 100,
                        base_ejection_time: 1s}
    endpoints:
      get: {service_time: {exponential: 10ms}}
workload:
  - {entry: front.home, rate: 50/s}
"""


def test_outlier_detection_that_may_eject_every_live_host_is_not_survivable() -> None:
    # Class (c): a 20 ms timeout on a 10 ms mean exponential fires (a gateway error), one
    # ejects a host, both may go, and with no panic threshold front's calls find no instance.
    system = _system(EJECTS_LIVE)
    verdict = _verdict(system, P.Survives(failures=0))
    assert verdict.status == "unknown", verdict.explanation
    assert "eject every live host of it" in verdict.explanation
    roots = A.run(system, (), 10.0, 40.0, 1)["entries"]["front.home"]["root_causes"]
    assert roots.get("no instance", 0) > 0
    # Half the hosts at most: one always stays, and survives holds again.
    kept = _system(EJECTS_LIVE.replace("max_ejection_percent: 100", "max_ejection_percent: 50"))
    assert _verdict(kept, P.Survives(failures=0)).status == "holds"
    # A timeout above back's healthy worst case cannot fire: nothing ejects a live host.
    slow = _system(EJECTS_LIVE.replace("timeout: 20ms", "timeout: 200ms"))
    assert _verdict(slow, P.Survives(failures=0)).status == "holds"


STALE = """
system: stale
zones: [a, b]
discovery: {mode: server}
services:
  front:
    replicas: 3
    placement: {a: 2, b: 1}
    workers: 3
    endpoints:
      home:
        service_time: {exponential: 40ms}
        calls: [{call: mid.get, timeout: 1s}]
  mid:
    replicas: 6
    placement: {a: 3, b: 3}
    load_balancer: random
    endpoints:
      get:
        service_time: {exponential: 35ms}
        calls: [{call: back.get, timeout: 150ms, retries: 3, optional: true}]
  back:
    workers: 1
    endpoints:
      get: {service_time: {exponential: 2ms}}
workload:
  - {entry: front.home, rate: 3/s}
"""


def test_a_staleness_violation_is_shown_by_any_failure_for_the_dead_instance() -> None:
    # About a sixth of the calls in the stale window fail "instance down": fewer than the
    # p99.9 tail tolerance a holds is granted, but a violated claims exactly such failures.
    system = _system(STALE)
    verdict = _verdict(system, P.Staleness())
    assert verdict.status == "violated"
    findings = A.check_staleness(system, verdict, A.FAST)
    assert findings and all(f.agrees for f in findings), findings


BURSTS = """
system: bursts
services:
  front:
    workers: 16
    endpoints:
      home:
        service_time: 1ms
        calls:
          - parallel: [{call: back.get, timeout: 1s}, {call: back.get, timeout: 1s}]
  back:
    workers: 2
    queue: 0
    endpoints:
      get: {service_time: {exponential: 5ms}}
workload:
  - {entry: front.home, rate: 20/s}
"""


def test_calls_in_flight_together_arrive_in_bursts_and_bound_no_loss() -> None:
    # 40 calls/s x 5 ms on 2 servers: Erlang B says 1.6 % for Poisson arrivals, but the two
    # calls of a request arrive together, and back loses about 8 %.
    system = _system(BURSTS)
    prop = P.Capacity(failures=0, rejected=0.05)
    verdict = _verdict(system, prop)
    assert verdict.status == "unknown", verdict.explanation
    assert "several calls to it in flight at once" in verdict.explanation
    stats = A.run(system, (), 5.0, 65.0, 1)["services"]["back"]
    assert stats["rejected"] > 0.05 * stats["requests"]
    # One after the other, they are spaced by the first one's answer: the figure bounds it.
    sequential = _system(BURSTS.replace(
        "- parallel: [{call: back.get, timeout: 1s}, {call: back.get, timeout: 1s}]",
        "- {call: back.get, timeout: 1s, repeat: 2}"))
    assert _verdict(sequential, prop).status == "holds"


def test_a_violation_beside_a_service_callers_may_eject_replays() -> None:
    # survives is violated by solo's single replica; back's live hosts may all be ejected, so
    # requests fail "no instance" with no fault too: the harness allows the fault-free rate.
    system = _system(EJECTS_LIVE.replace(
        "calls: [{call: back.get, timeout: 20ms}]",
        "calls: [{call: back.get, timeout: 20ms}, {call: solo.get, timeout: 1s}]").replace(
        "workload:", "  solo:\n    endpoints:\n      get: {service_time: 1ms}\nworkload:"))
    prop = P.Survives(failures=1)
    verdict = _verdict(system, prop)
    assert verdict.status == "violated"
    findings = A.check_survives(system, prop, verdict, FAST)
    assert findings and all(f.agrees for f in findings), findings


HASHED = """
system: hashed
services:
  front:
    replicas: 3
    workers: 4
    queue: 0
    load_balancer: consistent_hash
    endpoints:
      home: {service_time: {exponential: 37ms}}
workload:
  - {entry: front.home, rate: 85/s}
"""


def test_a_hashed_services_rejections_are_its_busiest_instances() -> None:
    # The counterexample's loss is the busiest ring owner's (over a third of the keys); the run
    # counts the whole service, whose other instances lose less: at least that share of it.
    system = _system(HASHED)
    prop = P.Capacity(failures=0, utilization=1.0)
    verdict = _verdict(system, prop)
    assert verdict.status == "violated" and verdict.counterexample.numbers["share"] > 1 / 3
    findings = A.check_capacity(system, prop, verdict, A.Settings(measure=60.0))
    assert findings and all(f.agrees for f in findings), findings
