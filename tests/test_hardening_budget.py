"""`verify --timeout` bounds the whole of verify (issue 15): one budget for every property.

Before, each property got a fresh ``Deadline(timeout)`` and the combinatorial loops (failure
enumeration in capacity, cones and repairs in survives) never looked at it, so
``--failures 1000`` on a large system ran for minutes past ``--timeout``. Every test here
asserts verdicts and the deadline's state, never wall-clock times.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from simhelp import Countdown

from faultmesh.cli import main
from faultmesh.model import properties as P
from faultmesh.model.distributions import Constant
from faultmesh.model.system import (
    Call,
    Endpoint,
    FrozenMap,
    LoadBalancer,
    Service,
    System,
    Workload,
)
from faultmesh.model.verify import Deadline, OutOfTime, verify
from faultmesh.model.verify.capacity import check as check_capacity
from faultmesh.model.verify.cones import RequiredGraph, availability
from faultmesh.model.verify.deadline import out_of_time
from faultmesh.model.verify.failures import FailureKinds
from faultmesh.model.verify.load import offered_load
from faultmesh.model.verify.pressure import CallTimes, ServiceModel
from faultmesh.model.verify.repairs import PlacementChange, as_repair

ZONES = ("a", "b", "c")
BOTH = ("instance", "zone")


def chain_system(n: int, *, replicas: int = 3, balancer: str = "round_robin") -> System:
    """s0 -> s1 -> ... -> s{n-1}, each spread over zones a, b, c, one workload entry."""
    services = {}
    for i in range(n):
        steps = (Call(f"s{i + 1}", "handle", timeout=1.0),) if i + 1 < n else ()
        endpoint = Endpoint("handle", Constant(0.001), steps=steps)
        zones = tuple(ZONES[r % len(ZONES)] for r in range(replicas))
        services[f"s{i}"] = Service(f"s{i}", FrozenMap({"handle": endpoint}), zones=zones,
                                    load_balancer=LoadBalancer(balancer))  # type: ignore[arg-type]
    return System(FrozenMap(services), name=f"chain-{n}", zones=ZONES,
                  workload=(Workload("s0", "handle", 10.0),))


def spent(kind: str, budget: str) -> str:
    return f"{kind}: ran out of time (budget {budget}) before deciding; raise --timeout"


def test_a_thousand_failures_on_2000_services_stay_within_one_budget() -> None:
    system = chain_system(2000)
    deadline = Deadline(0.5)
    report = verify(system, [P.Capacity(failures=1000, of=BOTH),
                             P.Survives(failures=1000, of=BOTH),
                             P.StartupOrder()], deadline=deadline)
    assert deadline.expired()
    capacity, survives, startup = report.verdicts
    assert (capacity.status, capacity.explanation) == ("unknown", spent("capacity", "500ms"))
    # Started after the shared budget was spent: unknown at once, even the cheap check.
    assert (survives.status, survives.explanation) == ("unknown", spent("survives", "500ms"))
    assert (startup.status, startup.explanation) == ("unknown",
                                                     spent("startup_order", "500ms"))


def test_the_timeout_is_one_budget_not_one_per_property() -> None:
    system = chain_system(3)
    props = [P.Survives(failures=1, of=BOTH), P.Survives(failures=1, of=BOTH)]
    # Time enough for the first property's start, none left for the second one.
    first = Countdown()
    verify(system, props[:1], deadline=first)
    report = verify(system, props, deadline=Countdown(first.read))
    assert [v.status for v in report.verdicts] == ["holds", "unknown"]
    assert report.verdicts[1].explanation == spent("survives", "1h")
    assert verify(system, props, timeout=60).verdicts[1].status == "holds"


def test_capacity_failure_enumeration_checks_the_deadline() -> None:
    # Consistent hashing over 8 replicas: every failure set of up to 4 units is tried.
    system = chain_system(1, replicas=8, balancer="consistent_hash")
    prop = P.Capacity(failures=4, of=("instance",), utilization=0.99)
    assert check_capacity(system, prop, Deadline(60)).status == "holds"
    # Its two between-step checks pass; the first check inside the loops stops it.
    verdict = check_capacity(system, prop, Countdown(2))
    assert verdict == out_of_time(prop, Deadline(3600.0))


@pytest.mark.parametrize("balancer", ["round_robin", "consistent_hash"])
def test_a_service_profile_stops_when_the_deadline_is_spent(balancer: str) -> None:
    system = chain_system(1, replicas=6, balancer=balancer)
    load = offered_load(system)
    kinds = FailureKinds.of(BOTH)
    model = ServiceModel(system, "s0", load, CallTimes(system, load, kinds, 3))
    assert len(model.profile(kinds, 3, Deadline(60))) == 4
    with pytest.raises(OutOfTime):
        model.profile(kinds, 3, Deadline(0))


def test_cone_walks_stop_when_the_deadline_is_spent() -> None:
    system = chain_system(50)
    graph = RequiredGraph(system, certain=True)
    start = graph.index["s0.handle"]
    for walk in (lambda d: graph.min_cone_cost({"s0": 1}, d),
                 lambda d: graph.unavailable({"s49"}, d),
                 lambda d: graph.chain(start, lambda v: False, d),
                 lambda d: graph.cone([start], d),
                 lambda d: availability(system, {"s49"}, d)):
        walk(Deadline(60))  # time enough: it finishes
        with pytest.raises(OutOfTime):
            walk(Deadline(0))


def test_a_long_repair_plan_stops_when_the_deadline_is_spent() -> None:
    zones = tuple(f"z{i}" for i in range(20))
    plan = [PlacementChange(f"s{i}", {"z0": 1}, dict.fromkeys(zones, 1), 1, 1)
            for i in range(100)]
    assert as_repair(plan, ("z0",), zones, Deadline(60)).changes
    with pytest.raises(OutOfTime):
        as_repair(plan, ("z0",), zones, Deadline(0))


def test_survives_repair_cut_short_keeps_the_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    system = chain_system(200, replicas=1)
    prop = P.Survives(failures=1, of=("instance",))
    from faultmesh.model.verify import survives

    # Enough clock readings to decide, and not enough for the repair's per-service loop.
    decided = survives.check(system, prop, Deadline(60))
    assert decided.status == "violated" and decided.repair is not None
    reads = 0
    for reads in range(1, 200):
        verdict = survives.check(system, prop, Countdown(reads))
        if verdict.status == "violated":
            break
    assert verdict.status == "violated" and verdict.repair is None
    assert verdict.explanation.endswith("the repair search ran out of time")


def test_verify_cli_timeout_bounds_every_property(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # Capacity alone takes tens of seconds here; a one-second budget leaves survives (which
    # alone decides quickly) no time at all.
    lines = ["system: big", "zones: [a, b, c]", "services:"]
    for i in range(1000):
        call = f", calls: [s{i + 1}.handle]" if i + 1 < 1000 else ""
        lines.append(f"  s{i}: {{replicas: 3, endpoints: {{handle: {{service_time: 1ms{call}}}}}}}")
    lines += ["workload:", "  - {entry: s0.handle, rate: 10/s}",
              "properties:", "  - capacity: {failures: 1000}"]
    spec = tmp_path / "big.yaml"
    spec.write_text("\n".join(lines) + "\n")
    code = main(["verify", str(spec), "--failures", "1000", "--timeout", "1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 3
    verdicts = {v["kind"]: v for v in out["properties"]}
    for kind in ("capacity", "survives"):
        assert verdicts[kind]["status"] == "unknown"
        assert verdicts[kind]["explanation"] == spent(kind, "1s")


# A generated system on which the limit-aware capacity repair searched for minutes without
# reading its deadline (the loss formulas inside the survivors' search): found by
# tests/test_agreement.py's harness.
SLOW_CAPACITY_REPAIR = """
system: generated
zones:
- a
network:
  latency:
    same_zone: 0s
    cross_zone: 0s
  loss: 0.0
discovery:
  mode: server
  heartbeat: 1s
  ttl: 3s
  refresh: 4s
  zone_detection: 2s
orchestration:
  restart:
    delay: 5s
  readiness:
    period: 1s
    failures: 1
    initial_delay: 0s
services:
  s0:
    replicas: 2
    placement:
      a: 2
    workers: 2
    concurrency: 1
    depends_on: []
    load_balancer: round_robin
    restart:
      delay: 5s
    readiness:
      period: 1s
      failures: 1
      initial_delay: 0s
    endpoints:
      e0:
        signature:
          input: Req
          output: Resp
          errors:
          - Unavailable
          - NotFound
        service_time:
          exponential: 40ms
        calls:
        - parallel:
          - call: s1.e0
            timeout: 128ms
            retries: 0
            backoff:
              strategy: exponential
              base: 25ms
              cap: 250ms
              jitter: full
            optional: true
            async: false
            probability: 1.0
            repeat: 1
            circuit_breaker: none
            retry_other_instance: true
          - call: s1.e1
            timeout: 372ms
            retries: 2
            backoff:
              strategy: exponential
              base: 25ms
              cap: 250ms
              jitter: full
            optional: false
            async: false
            probability: 1.0
            repeat: 1
            circuit_breaker: none
            retry_other_instance: false
  s1:
    replicas: 2
    placement:
      a: 2
    workers: 1
    depends_on: []
    load_balancer: round_robin
    restart:
      delay: 5s
    readiness:
      period: 1s
      failures: 1
      initial_delay: 0s
    endpoints:
      e0:
        signature:
          input: Req
          output: Resp
          errors:
          - InvalidArgument
          - Unavailable
          - DeadlineExceeded
        service_time:
          exponential: 48ms
        calls: []
      e1:
        signature:
          input: Req
          output: Resp
          errors:
          - NotFound
          - Unavailable
          - DeadlineExceeded
        service_time:
          exponential: 40ms
        calls: []
workload:
- entry: s0.e0
  rate: 28.0
  arrivals: poisson
  source: client
  timeout: 4.636s
properties:
- survives:
    name: survives
    failures: 1
    of:
    - instance
    - zone
- capacity:
    name: capacity
    failures: 1
    of:
    - instance
    - zone
    utilization: 0.8
    rejected: 0.001
- timeouts_nest:
    name: timeouts_nest
- staleness:
    name: staleness
scenarios: {}

"""


def test_capacity_repair_search_reads_the_deadline(tmp_path: Path) -> None:
    spec = tmp_path / "slow.yaml"
    spec.write_text(SLOW_CAPACITY_REPAIR)
    done = subprocess.run([sys.executable, "-m", "faultmesh", "verify", str(spec),
                           "--property", "capacity", "--timeout", "2", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode in (1, 3), done.stderr
    verdict = json.loads(done.stdout)["properties"][0]
    assert verdict["kind"] == "capacity" and verdict["status"] in ("violated", "unknown")


def test_a_repair_over_hundreds_of_new_zones_stays_one_short_line() -> None:
    """A chain that must survive 1,000 failures gets 998 new zones and 998 replicas per
    service: the sentence groups zones and services (every zone is still in the changes)."""
    old_zones = ("a", "b", "c")
    zones = (*old_zones, *(f"zone-{i}" for i in range(2, 1000)))
    plan = [PlacementChange(f"s{k}", {"a": 1, "b": 1, "c": 1},
                            {"a": 1, "b": 1, "c": 1, **{z: 1 for z in zones[3:]}}, 1, 1)
            for k in range(1000)]
    repair = as_repair(plan, old_zones, zones)
    assert len(repair.description) < 400, repair.description
    assert "998 zones" in repair.description and "1000 services" in repair.description
    assert repair.changes["zones"] == list(zones)
    uneven = PlacementChange("s", {"a": 1}, {"a": 1, **{f"z{i}": 1 + i % 2 for i in range(40)}},
                             1, 1).describe(False)
    assert "1 in each of 20 zones" in uneven and "2 in each of 20 zones" in uneven, uneven
