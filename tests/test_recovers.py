"""The ``recovers`` property: a retry storm that outlives its trigger is caught and explained;
its repair, and a system without retries, recover after the same trigger."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from faultmesh import model
from faultmesh.model.faults import Crash, Scenario, parse_target
from faultmesh.model.spec import schema
from faultmesh.model.system import FrozenMap, System
from faultmesh.simulations import simulate

SPECS = Path(__file__).resolve().parent.parent / "specs"
DURATION = 150.0  # the trigger ends at 70 s: 80 s left to judge a 30 s recovery


def load(name: str) -> System:
    text = (SPECS / name).read_text()
    # The static overload_recovery property is decided by `verify`; a loader that does not know
    # it yet must not keep these simulation tests from running.
    if "overload_recovery" not in schema.PROPERTY_MODELS:
        text = text.replace("  - overload_recovery: {}\n", "")
    return model.loads(text, name)


def recovers(system: System, scenario: str | Scenario = "trigger") -> dict:
    run = simulate(system, scenario, duration=DURATION, seed=0)
    return next(p for p in run.summary["properties"] if p["kind"] == "recovers")


def test_the_retry_storm_never_recovers_and_retries_sustain_it() -> None:
    verdict = recovers(load("retry_storm.yaml"))
    assert verdict["status"] == "violated"
    assert verdict["trigger_end_s"] == 70.0
    assert verdict["recovered_s"] is None
    (violation,) = verdict["violations"]
    assert "never recovered in the remaining" in violation["detail"]
    (edge,) = verdict["sustained_by"]
    assert edge["edge"] == "front->back"
    assert edge["utilization"] > 0.95
    # Up to 4 attempts per request: most of back's load is retries, much of it orphaned.
    assert edge["retries"] > 0.5
    assert edge["orphaned"] > 0.2
    assert "front->back: retries" in violation["detail"]


def test_the_hardened_twin_recovers_from_the_same_trigger() -> None:
    verdict = recovers(load("retry_storm_hardened.yaml"))
    assert verdict["status"] == "holds", verdict["violations"]
    assert verdict["recovered_s"] is not None and verdict["recovered_s"] <= 30.0


def test_a_system_without_retries_recovers_from_the_same_trigger() -> None:
    storm = load("retry_storm.yaml")
    front = storm.services["front"]
    endpoint = front.endpoints["get"]
    # No retries, and a timeout its steady state meets (at 50 ms, 1-2 % of single attempts
    # time out even without a trigger: the retries of the storm are what hid that).
    call = replace(endpoint.steps[0], retries=0, timeout=0.2)
    plain = replace(storm, services=FrozenMap({
        **storm.services,
        "front": replace(front, endpoints=FrozenMap({"get": replace(endpoint, steps=(call,))})),
    }))
    verdict = recovers(plain)
    assert verdict["status"] == "holds", verdict["violations"]


def test_a_fault_without_an_end_leaves_nothing_to_recover_from() -> None:
    crash = Scenario("forever", (Crash(target=parse_target("service:back"), at=60.0),),
                     warmup=30.0)
    verdict = recovers(load("retry_storm.yaml"), crash)
    assert verdict["applicable"] is False
    assert verdict["status"] == "holds"
    assert "no end" in verdict["note"]
