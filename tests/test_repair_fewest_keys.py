"""Repairs prefer the fewest changed spec keys (a key: one path in ``Repair.changes``), then
the smallest change: hand-made systems where the smallest change alone (fewest worker slots,
least retry reduction) touches more keys than needed, brute force over the alternatives the
solvers can see on small generated systems, and every repair re-verified on the spec it
writes.
"""

from __future__ import annotations

import itertools
from typing import Any

from capacity_oracle import oracle_minimum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultmesh.model import properties as P
from faultmesh.model.properties import Capacity
from faultmesh.model.spec import from_document, to_document
from faultmesh.model.spec.edit import apply_changes
from faultmesh.model.system import System
from faultmesh.model.verify import Deadline, verify
from faultmesh.model.verify.retries import check_retry_amplification
from faultmesh.model.verify.staleness import check_staleness
from faultmesh.model.verify.timeouts import check_timeouts_nest
from faultmesh.model.verify.verdict import Repair, Verdict

SOME = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def repair(verdict: Verdict) -> Repair:
    assert verdict.repair is not None, verdict.explanation
    return verdict.repair


def capacity(system: System, failures: int, of: tuple[str, ...] = ("instance", "zone"),
             limit: float = 1.0) -> Any:
    prop = Capacity(failures=failures, of=of, utilization=limit)
    return verify(system, [prop], timeout=60).verdicts[0]


def one_service(workers: int, rate: str, *, zones: list[str] | None = None,
                placement: dict[str, int] | None = None, replicas: int = 1) -> System:
    """One service ``db`` whose endpoint keeps a worker 100 ms per request."""
    body: dict[str, Any] = {"workers": workers, "endpoints": {"q": {"service_time": "100ms"}}}
    if placement is not None:
        body["placement"] = placement
    else:
        body["replicas"] = replicas
    doc: dict[str, Any] = {"system": "t", "services": {"db": body},
                           "workload": [{"entry": "db.q", "rate": rate}]}
    if zones is not None:
        doc["zones"] = zones
    return from_document(doc)


# ---------------------------------------------------------------------------------------------
# capacity: hand-made
# ---------------------------------------------------------------------------------------------


def test_capacity_adds_replicas_alone_where_fewer_slots_would_change_two_keys() -> None:
    """3.5 workers busy, one instance may fail, one replica of 3 workers: two replicas of 4
    workers (8 slots) change two keys; three replicas of 3 (9 slots) change one."""
    system = one_service(3, "35/s")
    verdict = capacity(system, 1, ("instance",))
    assert verdict.status == "violated"
    assert repair(verdict).changes == {"services.db.replicas": 3}
    assert repair(verdict).description == "add 2 replicas of db"
    assert capacity(repair(verdict).apply(system), 1, ("instance",)).status == "holds"


def test_capacity_in_zones_changes_the_placement_alone_not_replicas_placement_and_workers(
        ) -> None:
    """6 workers busy, a zone may fail, one replica of 3 workers in zone a: the fewest slots
    (a replica per zone of 4 workers, 12) would change the replicas and the workers; the
    placement alone (five replicas of 3, 15 slots) is one key."""
    system = one_service(3, "60/s", zones=["a", "b", "c"], placement={"a": 1})
    verdict = capacity(system, 1, ("zone",))
    assert verdict.status == "violated"
    assert set(repair(verdict).changes) == {"services.db.placement"}
    repaired = repair(verdict).apply(system)
    assert repaired.services["db"].workers == 3 and repaired.services["db"].replicas == 5
    assert capacity(repaired, 1, ("zone",)).status == "holds"


def test_capacity_raises_workers_alone_when_that_is_the_cheapest_one_key_change() -> None:
    """7.5 workers busy, one replica of 3 workers, no failure: two replicas of 4 workers (8
    slots) change two keys; 8 workers on the one replica (8 slots) change one, and three
    replicas of 3 (9 slots), the other one-key change, cost more."""
    system = one_service(3, "75/s")
    verdict = capacity(system, 0, ("instance",))
    assert verdict.status == "violated"
    assert repair(verdict).changes == {"services.db.workers": 8}
    assert repair(verdict).description == "raise db's workers from 3 to 8"
    repaired = repair(verdict).apply(system)
    assert capacity(repaired, 0, ("instance",)).status == "holds"
    assert oracle_minimum(repaired, ("instance",), 0, 1.0) is None


def test_replicas_alone_when_the_editor_places_them_as_the_repair_does() -> None:
    """A new replica count is written as ``replicas`` alone when the spec editor's rule (each
    new replica to the zone with the fewest) gives the repair's placement."""
    system = one_service(1, "5/s", zones=["a", "b"], placement={"a": 1})
    verdict = verify(system, [P.Survives(failures=1, of=("zone",))]).verdicts[0]
    assert repair(verdict).changes == {"services.db.replicas": 2}
    assert verify(repair(verdict).apply(system),
                  [P.Survives(failures=1, of=("zone",))]).verdicts[0].status == "holds"


# ---------------------------------------------------------------------------------------------
# capacity: brute force over the alternatives on small generated systems
# ---------------------------------------------------------------------------------------------


def changed_keys(system: System, other: System) -> int:
    """Keys a change between two systems needs: per service, its replicas (one key, written as
    ``replicas`` or ``placement``) and its workers; and ``zones`` if they differ."""
    keys = int(system.zones != other.zones)
    for name, service in system.services.items():
        after = other.services[name]
        keys += (sorted(service.zones) != sorted(after.zones)) + \
            (service.workers != after.workers)
    return keys


def alternatives(system: System, zones: tuple[str, ...], keys: int,
                 most_replicas: int = 3, most_workers: int = 5) -> list[System]:
    """Every system changing at most ``keys`` service keys: per service, keep it, add up to
    ``most_replicas`` replicas (anywhere in ``zones``), raise the workers by up to
    ``most_workers``, or both."""
    names = list(system.services)

    def options(name: str) -> list[tuple[int, tuple[str, ...], int]]:
        workers = system.services[name].workers
        out: list[tuple[int, tuple[str, ...], int]] = []
        for w in range(workers, workers + most_workers + 1):
            for extra in range(most_replicas + 1):
                for where in itertools.combinations_with_replacement(zones, extra):
                    out.append(((w != workers) + (extra > 0), where, w))
        return out

    found = []
    for choice in itertools.product(*(options(n) for n in names)):
        if sum(k for k, _, _ in choice) > keys:
            continue
        doc = to_document(system)
        doc["zones"] = list(zones)
        for name, (_, where, w) in zip(names, choice, strict=True):
            body = doc["services"][name]
            body["workers"] = w
            for zone in where:
                body["placement"][zone] = body["placement"].get(zone, 0) + 1
                body["replicas"] += 1
        found.append(from_document(doc))
    return found


@st.composite
def small_loaded(draw: st.DrawFn) -> dict[str, Any]:
    """One or two services near their capacity, over one to three zones."""
    zones = ["a", "b", "c"][: draw(st.integers(1, 3))]

    def service(calls: list[str]) -> dict[str, Any]:
        placement = {z: n for z in zones if (n := draw(st.integers(0, 2)))} or {zones[0]: 1}
        return {"placement": placement, "workers": draw(st.integers(1, 3)),
                "endpoints": {"e": {"service_time": f"{draw(st.integers(10, 80))}ms",
                                    "calls": calls}}}

    services = {"s0": service(["s1.e"]), "s1": service([])} if draw(st.booleans()) \
        else {"s0": service([])}
    return {"system": "small", "zones": zones, "services": services,
            "workload": [{"entry": "s0.e", "rate": f"{draw(st.integers(10, 120))}/s"}]}


@settings(SOME, max_examples=80)
@given(doc=small_loaded(), budget=st.integers(0, 1),
       of=st.sampled_from([("instance", "zone"), ("instance",), ("zone",)]))
def test_capacity_repairs_change_no_more_keys_than_any_alternative(
        doc: dict[str, Any], budget: int, of: tuple[str, ...]) -> None:
    system = from_document(doc)
    verdict = capacity(system, budget, of)
    if verdict.status == "holds":
        return
    assert verdict.repair is not None, verdict.explanation
    repaired = repair(verdict).apply(system)
    assert capacity(repaired, budget, of).status == "holds"
    assert oracle_minimum(repaired, of, budget, 1.0) is None
    keys = changed_keys(system, repaired)
    # Repair.changes writes each changed thing as one key (zones included).
    assert len(repair(verdict).changes) == keys
    zone_key = int(repaired.zones != system.zones)
    fewer = alternatives(system, repaired.zones, keys - zone_key - 1)
    for candidate in fewer:
        assert oracle_minimum(candidate, of, budget, 1.0) is not None


# ---------------------------------------------------------------------------------------------
# retry_amplification
# ---------------------------------------------------------------------------------------------


def test_retries_cut_once_upstream_rather_than_on_every_branch() -> None:
    """a retries b 4 times (x5), b retries c and d once each (x2): 10 attempts reach c and d,
    max 5. Taking b's two retries away removes 2 in two keys; a's from 4 to 1 removes 3 in
    one key."""
    doc: dict[str, Any] = {"system": "t", "services": {
        "a": {"endpoints": {"x": {"calls": [{"call": "b.y", "retries": 4}]}}},
        "b": {"endpoints": {"y": {"calls": [{"call": "c.z", "retries": 1},
                                            {"call": "d.z", "retries": 1}]}}},
        "c": {"endpoints": {"z": {}}}, "d": {"endpoints": {"z": {}}}},
        "workload": [{"entry": "a.x", "rate": 1}]}
    system = from_document(doc)
    prop = P.RetryAmplification(max=5)
    verdict = check_retry_amplification(system, prop, Deadline(60))
    assert verdict.status == "violated"
    assert repair(verdict).changes == {"services.a.endpoints.x.calls[0].retries": 1}
    repaired = from_document(apply_changes(to_document(system), repair(verdict).changes))
    assert check_retry_amplification(repaired, prop, Deadline(60)).status == "holds"


# ---------------------------------------------------------------------------------------------
# staleness
# ---------------------------------------------------------------------------------------------


def stale_doc(call: dict[str, Any], callee: dict[str, Any]) -> dict[str, Any]:
    return {"system": "t", "discovery": {"mode": "client"}, "services": {
        "web": {"endpoints": {"home": {"calls": [call]}}},
        "cart": {"replicas": 2, "endpoints": {"Get": {}}, **callee}},
        "workload": [{"entry": "web.home", "rate": 1}]}


def test_staleness_does_not_rewrite_what_is_already_set() -> None:
    """retries and retry_other_instance are already there; only the breaker is in the way."""
    doc = stale_doc({"call": "cart.Get", "retries": 1, "retry_other_instance": True,
                     "circuit_breaker": {"consecutive_failures": 3, "open_for": "10s"}}, {})
    system = from_document(doc)
    verdict = check_staleness(system, P.Staleness(), Deadline(60))
    assert verdict.status == "violated"
    assert repair(verdict).changes == {
        "services.web.endpoints.home.calls[0].circuit_breaker": "none"}
    assert check_staleness(repair(verdict).apply(system), P.Staleness(),
                           Deadline(60)).status == "holds"


def test_staleness_relies_on_ejection_at_the_first_failure_where_it_is_set() -> None:
    doc = stale_doc({"call": "cart.Get"},
                    {"outlier_detection": {"consecutive_5xx": 1, "max_ejection_percent": 50}})
    system = from_document(doc)
    verdict = check_staleness(system, P.Staleness(), Deadline(60))
    assert verdict.status == "violated"
    assert repair(verdict).changes == {"services.web.endpoints.home.calls[0].retries": 1}
    assert check_staleness(repair(verdict).apply(system), P.Staleness(),
                           Deadline(60)).status == "holds"


def test_staleness_repair_lifts_the_callees_max_retries() -> None:
    """Envoy's max_retries may refuse the retry: the repair that ignored it did not hold."""
    system = from_document(stale_doc({"call": "cart.Get"}, {"max_retries": 3}))
    verdict = check_staleness(system, P.Staleness(), Deadline(60))
    assert repair(verdict).changes["services.cart.max_retries"] == "unlimited"
    assert check_staleness(repair(verdict).apply(system), P.Staleness(),
                           Deadline(60)).status == "holds"


# ---------------------------------------------------------------------------------------------
# timeouts_nest: the least raises change only keys every repair must change
# ---------------------------------------------------------------------------------------------


@st.composite
def chains(draw: st.DrawFn) -> dict[str, Any]:
    """A chain or small tree of services with short, random timeouts."""
    n = draw(st.integers(2, 4))
    services: dict[str, Any] = {}
    for i in range(n):
        callees = [j for j in range(i + 1, n) if draw(st.booleans())] or \
            ([i + 1] if i + 1 < n else [])
        services[f"s{i}"] = {"endpoints": {"e": {
            "service_time": f"{draw(st.integers(1, 40))}ms",
            "calls": [{"call": f"s{j}.e", "timeout": f"{draw(st.integers(5, 120))}ms",
                       "retries": draw(st.integers(0, 1))} for j in callees]}}}
    return {"system": "c", "services": services, "workload": [{"entry": "s0.e", "rate": 1}]}


@SOME
@given(doc=chains())
def test_every_raised_timeout_is_needed(doc: dict[str, Any]) -> None:
    system = from_document(doc)
    prop = P.TimeoutsNest()
    verdict = check_timeouts_nest(system, prop, Deadline(60))
    if verdict.status == "holds":
        return
    changes = repair(verdict).changes
    assert check_timeouts_nest(repair(verdict).apply(system), prop,
                               Deadline(60)).status == "holds"
    # Keeping any one changed timeout at its old value fails, even with every other raised.
    for key in changes:
        rest = {k: v for k, v in changes.items() if k != key}
        partial = from_document(apply_changes(to_document(system), rest))
        assert check_timeouts_nest(partial, prop, Deadline(60)).status == "violated"
