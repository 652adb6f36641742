"""`capacity`: the checker against a brute-force oracle (``capacity_oracle``), offered-load
arithmetic, the shipped specs, repairs (work and are minimal) and deadlines. Limits, balancer
shares and the simulator's agreement are in ``test_verify_capacity_limits``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from capacity_oracle import (
    busiest_share,
    exact_limits,
    oracle_broken,
    oracle_demand,
    oracle_minimum,
    survivors,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultmesh.model.properties import Capacity
from faultmesh.model.spec import from_document, load, to_document
from faultmesh.model.strategies import spec_documents
from faultmesh.model.system import System
from faultmesh.model.verify import Deadline, verify
from faultmesh.model.verify.capacity import check
from faultmesh.model.verify.thinning import Failing, cut_off

SPECS = Path(__file__).resolve().parent.parent / "specs"
OFS = [("instance", "zone"), ("instance",), ("zone",)]
LIMITS = [0.25, 0.5, 0.8, 1.0]
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.data_too_large])


def capacity(system: System, budget: int, of: tuple[str, ...], limit: float = 1.0,
             rejected: float = 0.001):
    prop = Capacity(failures=budget, of=of, utilization=limit, rejected=rejected)
    return verify(system, [prop], timeout=60).verdicts[0]


def documents(max_services: int = 4, *, limits: bool = False,
              balancers: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    return spec_documents(max_services=max_services, max_replicas=2, max_zones=3,
                          max_endpoints=1 if limits else 2, max_calls=3, breakers=False,
                          properties=False, scenarios=False, limits=limits,
                          balancers=balancers)


# ---------------------------------------------------------------------------------------------
# Soundness against the oracle
# ---------------------------------------------------------------------------------------------


def agrees_with_brute_force(system: System, budget: int, of: tuple[str, ...], limit: float,
                            rejected: float = 0.001) -> None:
    verdict = capacity(system, budget, of, limit, rejected)
    expected = oracle_minimum(system, of, budget, limit, rejected)
    # The oracle's rejections are the Erlang figure for Poisson arrivals at each instance:
    # exact for a service the workload feeds, split at random or by hashed keys (or with one
    # survivor); otherwise only the high bound (round robin and least request lose less;
    # callers space their calls), so the checker may say ``unknown`` between its bounds, and
    # a smaller failure set the oracle breaks only by that high bound need not be found.
    inexact = [name for name in limited_services(system) if not poisson_exact(system, name)]
    # A call on the way that can fail (a timeout within its callee's healthy worst case, a
    # callee that refuses), or one a breaker or ejection may cut off, thins the load behind
    # it: the oracle's nominal load is then only an upper bound, and the checker says
    # ``unknown`` (or breaks something else, later).
    failing = Failing(system, saturable(system, budget, of))
    inexact += [f"{s.name}->{c.target}" for s in system.services.values()
                for e in s.endpoints.values() for c in e.calls()
                if failing.call_can_fail(s.name, c) or cut_off(failing, s.name, c)]
    if verdict.status == "unknown":  # also where the oracle holds: bursts bound no loss
        assert inexact, verdict.explanation
        return
    if expected is None:
        assert verdict.status == "holds", verdict.explanation
        return
    assert verdict.status == "violated", verdict.explanation
    cx = verdict.counterexample
    assert len(cx.failures) >= expected if inexact else len(cx.failures) == expected
    assert all(unit.split(":")[0] in of for unit in cx.failures)
    load, demand = oracle_demand(system)
    (service,) = cx.down
    assert service in oracle_broken(system, set(cx.failures), limit, rejected, load, demand)
    assert cx.numbers["load"] == pytest.approx(float(load[service]))
    assert cx.numbers["demand"] == pytest.approx(float(demand[service]))
    surviving = cx.numbers["surviving"]
    workers = system.services[service].workers
    assert cx.numbers["capacity"] == surviving * workers
    if surviving:
        share = busiest_share(system, service, survivors(system, service, set(cx.failures)))
        assert cx.numbers["share"] == pytest.approx(float(share))
        assert cx.numbers["utilization"] == pytest.approx(float(demand[service] * share)
                                                          / workers)


def saturable(system: System, budget: int, of: tuple[str, ...]) -> set[str]:
    """Services whose busiest survivor may get more work than its workers can do within
    ``budget`` failures (their callers' calls may then time out): a coarse over-estimate."""
    _, demand = oracle_demand(system)
    out = set()
    for name, service in system.services.items():
        removed = budget * max(zone_counts_of(service)) if "zone" in of else budget
        left = service.replicas - removed
        if demand.get(name, 0) > 0 and (left <= 0 or demand[name] >= service.workers):
            out.add(name)  # one survivor may carry everything (consistent hashing)
    return out


def zone_counts_of(service: Any) -> list[int]:
    return [service.zones.count(z) for z in set(service.zones)] or [0]


def limited_services(system: System) -> list[str]:
    """Loaded services with a queue or concurrency limit (the ones that reject)."""
    load, _ = oracle_demand(system)
    return [name for name, s in system.services.items() if load.get(name, 0) > 0
            and (s.queue is not None or s.concurrency is not None)]


def poisson_exact(system: System, name: str) -> bool:
    """Do the requests reach each instance of ``name`` as a Poisson stream (the oracle's
    Erlang figure exact)? Only from the workload, and split at random or by hashing, or to
    a single replica."""
    called = any(c.service == name and c.probability > 0 for s in system.services.values()
                 for e in s.endpoints.values() for c in e.calls())
    service = system.services[name]
    return not called and (service.replicas == 1 or service.load_balancer.kind in (
        "random", "consistent_hash"))


@settings(FAST, max_examples=400)
@given(doc=documents(), budget=st.integers(0, 3), of=st.sampled_from(OFS),
       limit=st.sampled_from(LIMITS))
def test_capacity_agrees_with_brute_force(doc: dict[str, Any], budget: int,
                                          of: tuple[str, ...], limit: float) -> None:
    agrees_with_brute_force(from_document(doc), budget, of, limit)


@settings(FAST, max_examples=120)
@given(doc=documents(limits=True, balancers=True), budget=st.integers(0, 2),
       of=st.sampled_from(OFS), limit=st.sampled_from(LIMITS),
       rejected=st.sampled_from([0.001, 0.05, 0.3]))
def test_capacity_with_limits_and_balancers_agrees_with_brute_force(
        doc: dict[str, Any], budget: int, of: tuple[str, ...], limit: float,
        rejected: float) -> None:
    # Exact cases only (see capacity_oracle): no concurrency limit where requests wait on calls.
    for body in doc["services"].values():
        if any(c for ep in body["endpoints"].values() for c in ep.get("calls", ())):
            body.pop("concurrency", None)
    system = from_document(doc)
    assert exact_limits(system)
    agrees_with_brute_force(system, budget, of, limit, rejected)


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


def test_load_multiplies_probability_and_repeat_but_not_retries() -> None:
    system = one_call_system({"call": "db.q", "probability": 0.5, "repeat": 2, "retries": 2},
                             workers=4)
    # 100/s x 0.5 x 2 = 100/s, x 10 ms = 1 busy worker of 4. The retries fire only for failed
    # attempts, and nothing fails here: the worst case (every attempt made, 3 of 4 workers)
    # is not this scenario's load.
    verdict = capacity(system, 0, ("instance",))
    assert verdict.status == "holds" and "25%" in verdict.explanation
    assert capacity(system, 0, ("instance",), 0.25).status == "violated"
    assert capacity(system, 0, ("instance",), 0.26).status == "holds"


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
    if not exact_limits(system):
        # The oracle decides only exact losses; without the limits it still finds every
        # overload and every service left without an instance, which the verdict must report.
        doc = to_document(system)
        for body in doc["services"].values():
            body.pop("queue", None)
            body.pop("concurrency", None)
        expected = oracle_minimum(from_document(doc), ("instance", "zone"), 1, 1.0)
        if expected is not None:
            assert verdict.status == "violated"
            assert len(verdict.counterexample.failures) <= expected
        return
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


def changed_keys(system: System, other: System) -> int:
    """Services whose replicas (placement) differ, plus those whose workers differ."""
    return sum((s.zones != other.services[n].zones) + (s.workers != other.services[n].workers)
               for n, s in system.services.items())


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
    # Repairs change the fewest keys first (test_repair_fewest_keys): no configuration
    # changing no more keys with fewer added worker slots (over every service and zone) holds.
    keys = changed_keys(system, repaired)
    if added - 1 <= 4:
        for candidate in configurations(system, repaired.zones, added - 1):
            if changed_keys(system, candidate) <= keys:
                assert oracle_minimum(candidate, of, budget, limit) is not None


# ---------------------------------------------------------------------------------------------
# Deadlines
# ---------------------------------------------------------------------------------------------


def test_an_expired_deadline_gives_unknown_never_holds() -> None:
    system = load(SPECS / "online_boutique_hardened.yaml")
    for seconds in (0.0, 1e-9):
        assert check(system, Capacity(failures=1), Deadline(seconds)).status == "unknown"
    assert check(system, Capacity(failures=1), Deadline(60)).status == "holds"
