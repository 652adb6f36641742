"""Retries and replicas against their closed forms, with confidence intervals."""

from __future__ import annotations

import math

import pytest
from simhelp import assert_within, replicate, spec

from faultmesh.model.faults import Crash, ErrorFault, Scenario, parse_target

RETRIES = """
system: retries
defaults:
  call: {timeout: 10s, retries: %(retries)d, backoff: none}
services:
  front:
    workers: 64
    endpoints:
      get: {service_time: 1ms, calls: [back.get]}
  back:
    workers: 64
    endpoints:
      get: {service_time: 1ms}
workload:
  - {entry: front.get, rate: 200/s}
"""


@pytest.mark.parametrize(("p", "attempts"), [(0.3, 3), (0.5, 2), (0.6, 4)])
def test_retries_success_and_attempts(p: float, attempts: int) -> None:
    # Each attempt fails independently with probability p (an errors fault at rate p): a call
    # with k attempts succeeds with probability 1 - p^k and makes (1 - p^k)/(1 - p) attempts
    # on average.
    system = spec(RETRIES % {"retries": attempts - 1})
    faults = Scenario("flaky", (ErrorFault(target=parse_target("back.get"), rate=p),))

    def measure(run):  # type: ignore[no-untyped-def]
        edge = run.summary["calls"]["front->back"]
        return run.entry()["availability"], edge["attempts"] / edge["calls"]

    results = replicate(system, range(12), measure, duration=40, scenario=faults)
    success = 1 - p**attempts
    assert_within([a for a, _ in results], success, "success ratio")
    assert_within([n for _, n in results], success / (1 - p), "mean attempts")


def test_retries_exhausted_is_the_cause() -> None:
    system = spec(RETRIES % {"retries": 2})
    faults = Scenario("broken", (ErrorFault(target=parse_target("back.get"), rate=1.0),))
    run = replicate(system, [1], lambda run: run, duration=5, scenario=faults)[0]
    entry = run.entry()
    assert entry["ok"] == 0
    assert entry["causes"] == {"dependency failed": entry["requests"]}
    assert entry["root_causes"] == {"injected error": entry["requests"]}
    assert run.summary["calls"]["front->back"]["causes"] == {
        "retries exhausted": run.summary["calls"]["front->back"]["calls"]}


REPLICAS = """
system: replicas
orchestration:
  readiness: {period: 1ms}
services:
  front:
    endpoints:
      get: {service_time: 0, calls: [back.get]}
  back:
    replicas: %(replicas)d
    endpoints:
      get: {service_time: 0}
workload:
  - {entry: front.get, rate: 5/s}
"""


@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_replicas_availability_with_exponential_up_and_down_times(replicas: int) -> None:
    # Each replica alternates exponential up-times (mean mttf) and repair times (mean mttr):
    # it is up a fraction mttf/(mttf + mttr) of the time, independently of the others, and the
    # service is available while at least one replica is: 1 - (mttr/(mttf + mttr))^n.
    mttf, mttr = 20.0, 10.0
    system = spec(REPLICAS % {"replicas": replicas})
    flapping = Scenario("flapping", (Crash(target=parse_target("service:back"), mttf=mttf,
                                           mttr=mttr),))
    duration = 3000.0
    runs = replicate(system, range(12), lambda run: run, duration=duration, warmup=100,
                     scenario=flapping)
    down = mttr / (mttf + mttr)
    assert_within([r.entry()["availability"] for r in runs], 1 - down**replicas,
                  "service availability")
    measured = duration - 100
    up = [i["up_s"] / measured for r in runs
          for i in r.summary["services"]["back"]["instances"].values()]
    assert_within(up, 1 - down, "instance up fraction")
    # Requests fail only for lack of an instance (none is killed mid-request: no service time),
    # or, for the readiness probes' 3 ms detection delay, on one the registry still lists.
    for run in runs:
        assert set(run.entry()["root_causes"]) <= {"no instance", "instance down"}


def test_up_fraction_formula_holds_for_a_single_long_run() -> None:
    system = spec(REPLICAS % {"replicas": 1})
    flapping = Scenario("flapping", (Crash(target=parse_target("instance:back-0"), mttf=3.0,
                                           mttr=1.0),))
    run = replicate(system, [7], lambda run: run, duration=20000, scenario=flapping)[0]
    up = run.summary["services"]["back"]["instances"]["back-0"]["up_s"] / 20000
    # About 5000 cycles: the fraction is within a few percent of 3/4.
    assert math.isclose(up, 0.75, rel_tol=0.03)
