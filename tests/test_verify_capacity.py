"""`capacity`: the checker against a brute-force oracle, offered-load arithmetic, the shipped
specs, repairs (work and are minimal) and deadlines.

The oracle shares no code with the verifier: offered load by enumerating every call path from
each entry (exact fractions), then every failure set of at most K units, surviving instances
counted directly, utilization compared exactly.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from failure_units import oracle_units
from faultmesh.model.properties import Capacity
from faultmesh.model.spec import from_document, load, to_document
from faultmesh.model.strategies import spec_documents
from faultmesh.model.system import Call, ParallelCalls, System
from faultmesh.model.verify import Deadline, verify
from faultmesh.model.verify.capacity import check
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SPECS = Path(__file__).resolve().parent.parent / "specs"
OFS = [("instance", "zone"), ("instance",), ("zone",)]
LIMITS = [0.25, 0.5, 0.8, 1.0]
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.data_too_large])


# ---------------------------------------------------------------------------------------------
# The oracle (independent of model.verify)
# ---------------------------------------------------------------------------------------------


def dec(x: float) -> Fraction:
    """Spec numbers as the decimals they were written as."""
    return Fraction(str(x))


def oracle_calls(system: System, target: str) -> list[Call]:
    service, _, endpoint = target.partition(".")
    calls: list[Call] = []
    for step in system.services[service].endpoints[endpoint].steps:
        calls.extend(step.calls if isinstance(step, ParallelCalls) else [step])
    return calls


def oracle_demand(system: System) -> tuple[dict[str, Fraction], dict[str, Fraction]]:
    """(requests/s, busy workers) per service, by walking every call path (acyclic only)."""
    per_endpoint: dict[str, Fraction] = {}

    def walk(target: str, rate: Fraction, depth: int) -> None:
        assert depth < 50, "call cycle: the path oracle needs an acyclic system"
        per_endpoint[target] = per_endpoint.get(target, Fraction(0)) + rate
        for call in oracle_calls(system, target):
            walk(f"{call.service}.{call.endpoint}",
                 rate * dec(call.probability) * call.repeat * (call.retries + 1), depth + 1)

    for w in system.workload:
        walk(f"{w.service}.{w.endpoint}", dec(w.rate), 0)
    load: dict[str, Fraction] = {}
    demand: dict[str, Fraction] = {}
    for target, rate in per_endpoint.items():
        service, _, endpoint = target.partition(".")
        mean = dec(system.services[service].endpoints[endpoint].service_time.mean)
        load[service] = load.get(service, Fraction(0)) + rate
        demand[service] = demand.get(service, Fraction(0)) + rate * mean
    return load, demand


def oracle_overloaded(system: System, failed: set[str], limit: float,
                      load: dict[str, Fraction], demand: dict[str, Fraction]) -> set[str]:
    out = set()
    for name, service in system.services.items():
        if load.get(name, 0) <= 0:
            continue
        surviving = sum(1 for i, z in enumerate(service.zones)
                        if f"instance:{name}-{i}" not in failed and f"zone:{z}" not in failed)
        capacity = surviving * service.workers
        if capacity == 0 or demand[name] / capacity >= dec(limit):
            out.add(name)
    return out


def oracle_minimum(system: System, of: tuple[str, ...], budget: int,
                   limit: float) -> int | None:
    load, demand = oracle_demand(system)
    units = oracle_units(system, of)
    for size in range(budget + 1):
        for combo in itertools.combinations(units, size):
            if oracle_overloaded(system, set(combo), limit, load, demand):
                return size
    return None


def capacity(system: System, budget: int, of: tuple[str, ...], limit: float = 1.0):
    prop = Capacity(failures=budget, of=of, utilization=limit)
    return verify(system, [prop], timeout=60).verdicts[0]


def documents(max_services: int = 4) -> st.SearchStrategy[dict[str, Any]]:
    return spec_documents(max_services=max_services, max_replicas=2, max_zones=3,
                          max_endpoints=2, max_calls=3, breakers=False, properties=False,
                          scenarios=False)


# ---------------------------------------------------------------------------------------------
# Soundness against the oracle
# ---------------------------------------------------------------------------------------------


@settings(FAST, max_examples=500)
@given(doc=documents(), budget=st.integers(0, 3), of=st.sampled_from(OFS),
       limit=st.sampled_from(LIMITS))
def test_capacity_agrees_with_brute_force(doc: dict[str, Any], budget: int,
                                          of: tuple[str, ...], limit: float) -> None:
    system = from_document(doc)
    verdict = capacity(system, budget, of, limit)
    expected = oracle_minimum(system, of, budget, limit)
    if expected is None:
        assert verdict.status == "holds", verdict.explanation
        return
    assert verdict.status == "violated", verdict.explanation
    cx = verdict.counterexample
    assert len(cx.failures) == expected
    assert all(unit.split(":")[0] in of for unit in cx.failures)
    load, demand = oracle_demand(system)
    (service,) = cx.down
    assert service in oracle_overloaded(system, set(cx.failures), limit, load, demand)
    assert cx.numbers["load"] == pytest.approx(float(load[service]))
    assert cx.numbers["demand"] == pytest.approx(float(demand[service]))
    surviving = cx.numbers["surviving"]
    assert cx.numbers["capacity"] == surviving * system.services[service].workers
    if surviving:
        assert cx.numbers["utilization"] == pytest.approx(float(demand[service])
                                                          / cx.numbers["capacity"])


# ---------------------------------------------------------------------------------------------
# Offered load on hand-written systems
# ---------------------------------------------------------------------------------------------


def one_call_system(call: dict[str, Any], *, workers: int = 1, replicas: int = 1,
                    service_time: str = "10ms") -> System:
    return from_document({
        "system": "t",
        "services": {
            "front": {"replicas": 2, "endpoints": {"home": {"calls": [call]}}},
            "db": {"replicas": replicas, "workers": workers,
                   "endpoints": {"q": {"service_time": service_time}}},
        },
        "workload": [{"entry": "front.home", "rate": "100/s"}],
    })


def test_load_multiplies_probability_repeat_and_attempts() -> None:
    system = one_call_system({"call": "db.q", "probability": 0.5, "repeat": 2, "retries": 2},
                             workers=4)
    # 100/s x 0.5 x 2 x 3 attempts = 300/s, x 10 ms = 3 busy workers of 4.
    verdict = capacity(system, 0, ("instance",))
    assert verdict.status == "holds" and "75%" in verdict.explanation
    assert capacity(system, 0, ("instance",), 0.75).status == "violated"


def test_async_and_optional_calls_still_load_their_target() -> None:
    for call in ({"call": "db.q", "async": True}, {"call": "db.q", "optional": True}):
        verdict = capacity(one_call_system(call, service_time="20ms"), 0, ("instance",))
        assert verdict.status == "violated"  # 100/s x 20 ms = 2 busy workers on 1
        assert verdict.counterexample.numbers["demand"] == pytest.approx(2.0)


def test_boundary_is_exact_utilization_equal_to_the_limit_is_violated() -> None:
    verdict = capacity(one_call_system("db.q", service_time="10ms"), 0, ("instance",))
    assert verdict.status == "violated"  # 100/s x 10 ms = exactly 1 worker: not below 100%
    assert verdict.counterexample.numbers["utilization"] == 1.0
    # 100/s x 0.5 x 16 ms = 0.8 workers, exactly the 80% limit (as binary floats it is not).
    system = one_call_system({"call": "db.q", "probability": 0.5}, service_time="16ms")
    assert capacity(system, 0, ("instance",), 0.8).status == "violated"
    assert capacity(system, 0, ("instance",), 0.81).status == "holds"


def cycle_system(probability: float) -> System:
    return from_document({
        "system": "t",
        "services": {"a": {"replicas": 2, "workers": 8, "endpoints": {"x": {
            "service_time": "10ms",
            "calls": [{"call": "a.x", "probability": probability, "async": True}]}}}},
        "workload": [{"entry": "a.x", "rate": "100/s"}],
    })


def test_call_cycles_are_geometric_or_unbounded() -> None:
    # p = 0.5: 100 (1 + 0.5 + 0.25 + ...) = 200/s, 2 busy workers.
    finite = capacity(cycle_system(0.5), 1, ("instance",))
    assert finite.status == "holds" and "25%" in finite.explanation
    endless = capacity(cycle_system(1.0), 0, ("instance",))
    assert endless.status == "violated" and "unbounded" in endless.explanation
    assert endless.counterexample.failures == () and endless.repair is None


def test_worst_failures_are_the_most_populated_zones() -> None:
    system = from_document({
        "system": "t", "zones": ["a", "b", "c"],
        "services": {"db": {"placement": {"a": 3, "b": 1, "c": 1},
                            "endpoints": {"q": {"service_time": "10ms"}}}},
        "workload": [{"entry": "db.q", "rate": "250/s"}],
    })
    # 2.5 busy workers: 50% on 5 replicas, 125% on the 2 left without zone a, 62.5% on 4.
    verdict = capacity(system, 1, ("instance", "zone"))
    assert verdict.counterexample.failures == ("zone:a",)
    assert verdict.counterexample.numbers["capacity"] == 2
    assert capacity(system, 1, ("instance",)).status == "holds"


# ---------------------------------------------------------------------------------------------
# Shipped specs
# ---------------------------------------------------------------------------------------------

SHIPPED = sorted(SPECS.glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_spec_is_decided_like_the_oracle(path: Path) -> None:
    system = load(path)
    verdict = capacity(system, 1, ("instance", "zone"))
    expected = oracle_minimum(system, ("instance", "zone"), 1, 1.0)
    assert verdict.status == ("holds" if expected is None else "violated")
    if expected is not None:
        assert len(verdict.counterexample.failures) == expected
        repaired = verdict.repair.apply(system)
        assert capacity(repaired, 1, ("instance", "zone")).status == "holds"
        assert oracle_minimum(repaired, ("instance", "zone"), 1, 1.0) is None


def test_online_boutique_hardened_has_the_capacity_for_one_failure() -> None:
    system = load(SPECS / "online_boutique_hardened.yaml")
    assert capacity(system, 1, ("instance", "zone")).status == "holds"


# ---------------------------------------------------------------------------------------------
# Repairs
# ---------------------------------------------------------------------------------------------


def slots(system: System) -> int:
    return sum(s.replicas * s.workers for s in system.services.values())


def configurations(system: System, zones: tuple[str, ...], budget: int):
    """Every System with at most ``budget`` more worker slots (replicas and workers added)."""
    names = list(system.services)

    def options(name: str, left: int):
        service = system.services[name]
        base = service.replicas * service.workers
        for workers in range(service.workers, service.workers + left + 1):
            for extra in range(left + 1):
                cost = (service.replicas + extra) * workers - base
                if cost > left:
                    break
                for where in itertools.combinations_with_replacement(zones, extra):
                    yield cost, workers, where

    def walk(i: int, left: int, chosen: list[tuple[int, tuple[str, ...]]]):
        if i == len(names):
            yield list(chosen)
            return
        for cost, workers, where in options(names[i], left):
            chosen.append((workers, where))
            yield from walk(i + 1, left - cost, chosen)
            chosen.pop()

    for choice in walk(0, budget, []):
        doc = to_document(system)
        doc["zones"] = list(zones)
        for name, (workers, where) in zip(names, choice, strict=True):
            body = doc["services"][name]
            body["workers"] = workers
            for zone in where:
                body["placement"][zone] = body["placement"].get(zone, 0) + 1
                body["replicas"] += 1
        yield from_document(doc)


@st.composite
def near_capacity(draw: st.DrawFn) -> dict[str, Any]:
    """One or two services, loaded near their capacity so repairs are small but needed."""
    zones = ["a", "b", "c"][: draw(st.integers(1, 3))]

    def service(calls: list[str]) -> dict[str, Any]:
        placement = {z: n for z in zones if (n := draw(st.integers(0, 2)))} or {zones[0]: 1}
        return {"placement": placement, "workers": draw(st.integers(1, 2)),
                "endpoints": {"e": {"service_time": f"{draw(st.integers(5, 60))}ms",
                                    "calls": calls}}}

    services = {"s0": service(["s1.e"]), "s1": service([])} if draw(st.booleans()) \
        else {"s0": service([])}
    return {"system": "near", "zones": zones, "services": services,
            "workload": [{"entry": "s0.e", "rate": f"{draw(st.integers(5, 40))}/s"}]}


@settings(FAST, max_examples=150)
@given(doc=st.one_of(near_capacity(), spec_documents(
           max_services=2, max_replicas=2, max_zones=2, max_endpoints=1, max_calls=1,
           breakers=False, properties=False, scenarios=False)),
       budget=st.integers(0, 1), of=st.sampled_from(OFS), limit=st.sampled_from(LIMITS))
def test_repairs_make_it_hold_and_nothing_cheaper_does(doc: dict[str, Any], budget: int,
                                                       of: tuple[str, ...],
                                                       limit: float) -> None:
    system = from_document(doc)
    verdict = capacity(system, budget, of, limit)
    if verdict.status == "holds":
        return
    assert verdict.repair is not None, verdict.explanation
    repaired = verdict.repair.apply(system)
    assert capacity(repaired, budget, of, limit).status == "holds"
    assert oracle_minimum(repaired, of, budget, limit) is None
    added = slots(repaired) - slots(system)
    assert added >= 1
    # No configuration with fewer added worker slots (over every service and zone) holds.
    if added - 1 <= 4:
        for candidate in configurations(system, repaired.zones, added - 1):
            assert oracle_minimum(candidate, of, budget, limit) is not None


# ---------------------------------------------------------------------------------------------
# Deadlines
# ---------------------------------------------------------------------------------------------


def test_an_expired_deadline_gives_unknown_never_holds() -> None:
    system = load(SPECS / "online_boutique_hardened.yaml")
    for seconds in (0.0, 1e-9):
        assert check(system, Capacity(failures=1), Deadline(seconds)).status == "unknown"
    assert check(system, Capacity(failures=1), Deadline(60)).status == "holds"
