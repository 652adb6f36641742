"""`survives`: the combinatorial checker against a brute-force oracle, a z3 cross-check, the
shipped specs, repairs and deadlines.

The oracle below shares no code with the verifier: it enumerates every failure set of at most K
units (instances and zones, as ``of`` allows), marks instances and services down, and computes
endpoint availability by greatest-fixpoint iteration straight from the System's steps. An entry
is down when a call made on every request (probability 1) cannot get through; a call made with
probability p < 1 only degrades it, to the share ``oracle_share`` computes by recursion over
the steps (acyclic systems). The z3 cross-check (``survives_z3_oracle``) lives here, in the
tests, with its own rule for which calls take a caller down.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import survives_z3_oracle as survives_z3
from failure_units import oracle_units
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultmesh.model.properties import Survives
from faultmesh.model.spec import from_document, load, to_document
from faultmesh.model.strategies import spec_documents
from faultmesh.model.system import Call, ParallelCalls, System
from faultmesh.model.verify import Deadline, verify
from faultmesh.model.verify.survives import check

SPECS = Path(__file__).resolve().parent.parent / "specs"
OFS = [("instance", "zone"), ("instance",), ("zone",)]
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.data_too_large])


# ---------------------------------------------------------------------------------------------
# The oracle (independent of model.verify)
# ---------------------------------------------------------------------------------------------


def oracle_calls(system: System, target: str) -> list[Call]:
    service, _, endpoint = target.partition(".")
    calls: list[Call] = []
    for step in system.services[service].endpoints[endpoint].steps:
        calls.extend(step.calls if isinstance(step, ParallelCalls) else [step])
    return calls


def oracle_services_up(system: System, failed: set[str]) -> set[str]:
    return {name for name, s in system.services.items()
            if any(f"instance:{name}-{i}" not in failed and f"zone:{z}" not in failed
                   for i, z in enumerate(s.zones))}


def oracle_available(system: System, failed: set[str]) -> set[str]:
    """Greatest fixpoint: start from every endpoint of an up service, drop until stable."""
    up = oracle_services_up(system, failed)
    available = {f"{name}.{ep}" for name in up for ep in system.services[name].endpoints}
    changed = True
    while changed:
        changed = False
        for target in sorted(available):
            for call in oracle_calls(system, target):
                every_time = (not call.asynchronous and not call.optional
                              and call.probability == 1)
                if every_time and f"{call.service}.{call.endpoint}" not in available:
                    available.discard(target)
                    changed = True
                    break
    return available


def oracle_down(system: System, failed: set[str]) -> set[str]:
    available = oracle_available(system, failed)
    return {w.entry for w in system.workload if w.entry not in available}


def oracle_share(system: System, failed: set[str], target: str,
                 visiting: frozenset[str] = frozenset()) -> float | None:
    """Share of ``target``'s requests that succeed (None: a call cycle, not handled here).

    A request makes each step's calls in turn; a call happens with its probability, then
    ``repeat`` times in a row, each time trying ``retries + 1`` attempts, every attempt a fresh
    request to the callee. Optional and asynchronous calls never fail the request.
    """
    if target in visiting:
        return None
    service = target.partition(".")[0]
    if service not in oracle_services_up(system, failed):
        return 0.0
    share = 1.0
    for call in oracle_calls(system, target):
        if call.asynchronous or call.optional or call.probability == 0:
            continue
        callee = oracle_share(system, failed, f"{call.service}.{call.endpoint}",
                              visiting | {target})
        if callee is None:
            return None
        all_attempts_fail = (1 - callee) ** (call.retries + 1)
        made_and_ok = call.probability * (1 - all_attempts_fail) ** call.repeat
        share *= (1 - call.probability) + made_and_ok
    return share


def oracle_minimum(system: System, of: tuple[str, ...], budget: int) -> int | None:
    """The size of the smallest failure set (<= budget) that takes an entry down, or None."""
    units = oracle_units(system, of)
    for size in range(budget + 1):
        for combo in itertools.combinations(units, size):
            if oracle_down(system, set(combo)):
                return size
    return None


def oracle_holds(system: System, of: tuple[str, ...], budget: int) -> bool:
    return oracle_minimum(system, of, budget) is None


# ---------------------------------------------------------------------------------------------
# Generated topologies: the library strategy, plus probabilities 0/0.5 and endpoint cycles
# ---------------------------------------------------------------------------------------------


@st.composite
def documents(draw: st.DrawFn, *, max_services: int = 4, max_replicas: int = 2,
              cycles: bool = True) -> dict[str, Any]:
    doc = draw(spec_documents(max_services=max_services, max_replicas=max_replicas,
                              max_zones=3, max_endpoints=2, max_calls=3, breakers=False,
                              properties=False, scenarios=False,
                              cyclic_services=draw(st.booleans())))

    def vary(item: Any) -> Any:
        choice = draw(st.integers(0, 7))
        if choice > 1:
            return item
        mapping = {"call": item} if isinstance(item, str) else dict(item)
        mapping["probability"] = 0 if choice == 0 else 0.5
        return mapping

    for service in doc["services"].values():
        for endpoint in service["endpoints"].values():
            calls = endpoint["calls"]
            for i, item in enumerate(calls):
                if isinstance(item, dict) and "parallel" in item:
                    item["parallel"] = [vary(c) for c in item["parallel"]]
                else:
                    calls[i] = vary(item)
    if cycles and draw(st.integers(0, 3)) == 0:
        # A call back to an earlier (or the same) service: an endpoint-level cycle may form.
        names = list(doc["services"])
        i = draw(st.integers(0, len(names) - 1))
        j = draw(st.integers(0, i))
        source = draw(st.sampled_from(sorted(doc["services"][names[i]]["endpoints"])))
        target = draw(st.sampled_from(sorted(doc["services"][names[j]]["endpoints"])))
        doc["services"][names[i]]["endpoints"][source]["calls"].append(f"{names[j]}.{target}")
    return doc


def survives(system: System, budget: int, of: tuple[str, ...], seconds: float = 60.0):
    return verify(system, [Survives(failures=budget, of=of)], timeout=seconds).verdicts[0]


def assert_counterexample(system: System, verdict: Any, of: tuple[str, ...]) -> None:
    """The counterexample's failures really take exactly ``down`` down; the chain is real."""
    cx = verdict.counterexample
    assert cx is not None
    assert all(unit.split(":")[0] in of for unit in cx.failures)
    assert len(set(cx.failures)) == len(cx.failures)
    assert set(cx.failures) <= set(oracle_units(system, of))
    down = oracle_down(system, set(cx.failures))
    assert down and set(cx.down) == down
    chain = list(cx.chain)
    assert chain[0] in down
    for caller, callee in itertools.pairwise(chain):
        assert any(f"{c.service}.{c.endpoint}" == callee and not c.asynchronous
                   and not c.optional and c.probability == 1
                   for c in oracle_calls(system, caller))
    assert chain[-1].partition(".")[0] not in oracle_services_up(system, set(cx.failures))
    assert_degraded(system, set(cx.failures), cx.degraded)


def assert_degraded(system: System, failed: set[str], degraded: dict[str, float]) -> None:
    """``degraded`` names exactly the entries left up but below 1, with the oracle's shares."""
    down = oracle_down(system, failed)
    shares = {e: oracle_share(system, failed, e) for e in dict.fromkeys(system.entries)}
    if any(share is None for share in shares.values()):
        assert not set(degraded) & down  # cycles: only the consistency of the two lists
        return
    assert all(shares[e] == 0 for e in down)
    expected = {e: share for e, share in shares.items() if e not in down and share < 1}
    assert degraded == pytest.approx(expected, rel=1e-9, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Soundness: the checker against the oracle
# ---------------------------------------------------------------------------------------------


@settings(FAST, max_examples=500)
@given(doc=documents(), budget=st.integers(0, 3), of=st.sampled_from(OFS))
def test_survives_agrees_with_brute_force(doc: dict[str, Any], budget: int,
                                          of: tuple[str, ...]) -> None:
    system = from_document(doc)
    verdict = survives(system, budget, of)
    expected = oracle_minimum(system, of, budget)
    if expected is None:
        assert verdict.status == "holds", verdict.explanation
        assert verdict.counterexample is None
    else:
        assert verdict.status == "violated", verdict.explanation
        assert len(verdict.counterexample.failures) == expected
        assert_counterexample(system, verdict, of)


@settings(FAST, max_examples=200)
@given(doc=documents(max_services=7, max_replicas=3), budget=st.integers(0, 4),
       of=st.sampled_from(OFS))
def test_z3_encoding_agrees_with_combinatorial_checker(doc: dict[str, Any], budget: int,
                                                       of: tuple[str, ...]) -> None:
    system = from_document(doc)
    kinds = survives_z3.FailureKinds.of(of)
    # With a budget past every kill cost, the checker's counterexample size is the minimum.
    everything = len(oracle_units(system, ("instance", "zone")))
    combinatorial = survives(system, everything, of)
    found = survives_z3.minimum(system, kinds, timeout_ms=60_000)
    assert found != "unknown"
    assert found is not None and combinatorial.status == "violated"
    size, failures = found
    assert size == len(combinatorial.counterexample.failures)
    assert len(failures) == size and oracle_down(system, set(failures))
    decided = survives_z3.decide(system, kinds, budget, timeout_ms=60_000)
    assert decided == survives(system, budget, of).status


# ---------------------------------------------------------------------------------------------
# Semantics on hand-written systems
# ---------------------------------------------------------------------------------------------


def system_of(services: dict[str, Any], zones: list[str] | None = None,
              entries: tuple[str, ...] = ("front.home",)) -> System:
    doc: dict[str, Any] = {"system": "t", "services": services,
                           "workload": [{"entry": e, "rate": 10} for e in entries]}
    if zones:
        doc["zones"] = zones
    return from_document(doc)


def svc(calls: list[Any] | None = None, *, placement: dict[str, int] | None = None,
        replicas: int = 1, endpoint: str = "home", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"endpoints": {endpoint: {"calls": calls or []}}, **extra}
    if placement:
        out["placement"] = placement
    else:
        out["replicas"] = replicas
    return out


def test_single_replica_explanation_names_the_service_and_the_entries() -> None:
    system = system_of({"front": svc(["cart.get"], placement={"a": 1, "b": 1}),
                        "cart": svc(endpoint="get", placement={"a": 1})}, zones=["a", "b"])
    verdict = survives(system, 1, ("instance", "zone"))
    assert verdict.status == "violated"
    assert verdict.counterexample.failures == ("instance:cart-0",)
    assert verdict.counterexample.chain == ("front.home", "cart.get")
    assert verdict.explanation.startswith("cart has its only replica cart-0 (zone a): "
                                          "instance:cart-0 down takes front.home down")
    assert verdict.repair.description == "add one replica of cart in zone b"
    # One key: the spec editor puts a second replica in zone b, as the repair does.
    assert verdict.repair.changes == {"services.cart.replicas": 2}


def test_replicas_in_one_zone_die_with_the_zone_and_instances_only_spares_them() -> None:
    system = system_of({"front": svc(["db.q"], placement={"a": 1, "b": 1}),
                        "db": svc(endpoint="q", placement={"a": 3})}, zones=["a", "b"])
    zone = survives(system, 1, ("instance", "zone"))
    assert zone.counterexample.failures == ("zone:a",)
    assert "all 3 replicas in zone a" in zone.explanation
    assert survives(system, 1, ("instance",)).status == "holds"
    assert survives(system, 2, ("instance",)).counterexample.failures == (
        "instance:front-0", "instance:front-1")


@pytest.mark.parametrize("call", [
    {"call": "db.q", "optional": True},
    {"call": "db.q", "async": True},
    {"call": "db.q", "probability": 0},
])
def test_calls_that_are_not_required_do_not_take_the_caller_down(call: dict[str, Any]) -> None:
    system = system_of({"front": svc([call], replicas=2), "db": svc(endpoint="q")})
    assert survives(system, 1, ("instance",)).status == "holds"


def test_parallel_members_are_required() -> None:
    system = system_of({"front": svc([{"parallel": ["db.q", "x.q"]}], replicas=2),
                        "db": svc(endpoint="q"), "x": svc(endpoint="q", replicas=2)})
    verdict = survives(system, 1, ("instance",))
    assert verdict.counterexample.failures == ("instance:db-0",)
    assert verdict.counterexample.degraded == {}


def test_probabilistic_calls_degrade_the_entry_instead_of_taking_it_down() -> None:
    """A call made on 10 % of requests into a dead service fails those requests only: the
    entry serves 90 %, it is not down (the simulation measures 90 %: see test_replay)."""
    system = system_of({"front": svc([{"call": "db.q", "probability": 0.1}], replicas=2),
                        "db": svc(endpoint="q")})
    verdict = survives(system, 1, ("instance",))
    assert verdict.status == "holds"
    assert verdict.counterexample is None
    assert "instance:db-0 down degrades front.home to 90.00% of its requests" in \
        verdict.explanation


def test_degraded_share_counts_repeats_and_retries_as_the_engine_makes_them() -> None:
    """front.buy is down (pay is certain); front.home is degraded: its call to rec (p = 0.5,
    repeat 2, 1 retry) reaches rec.l, which calls the dead pay on 40 % of its requests."""
    system = system_of({
        "front": {"replicas": 2, "endpoints": {
            "home": {"calls": [{"call": "rec.l", "probability": 0.5, "repeat": 2,
                                "retries": 1}]},
            "buy": {"calls": ["pay.go"]}}},
        "rec": svc([{"call": "pay.go", "probability": 0.4}], endpoint="l", replicas=2),
        "pay": svc(endpoint="go")}, entries=("front.home", "front.buy"))
    verdict = survives(system, 1, ("instance",))
    assert verdict.status == "violated"
    cx = verdict.counterexample
    assert cx.failures == ("instance:pay-0",) and cx.down == ("front.buy",)
    rec = 0.6
    home = 0.5 + 0.5 * (1 - (1 - rec) ** 2) ** 2
    assert cx.degraded == {"front.home": pytest.approx(home)}
    assert cx.to_json()["degraded"] == {"front.home": pytest.approx(home)}
    assert "degrades front.home to" in verdict.explanation


def test_call_cycles_use_the_greatest_fixpoint() -> None:
    # front.home -> a.x -> b.y -> a.x: the cycle alone takes nothing down.
    system = system_of({"front": svc(["a.x"], replicas=2),
                        "a": svc(["b.y"], endpoint="x", replicas=2),
                        "b": svc(["a.x"], endpoint="y", replicas=3)})
    assert survives(system, 1, ("instance",)).status == "holds"
    verdict = survives(system, 2, ("instance",))
    assert verdict.counterexample.failures in {("instance:front-0", "instance:front-1"),
                                               ("instance:a-0", "instance:a-1")}


def test_no_workload_holds_vacuously() -> None:
    system = from_document({"system": "t", "services": {"a": svc()}})
    assert survives(system, 3, ("instance", "zone")).status == "holds"


def test_counterexample_lists_every_entry_it_takes_down() -> None:
    system = system_of({"front": {"replicas": 2, "endpoints": {
        "home": {"calls": ["cat.list"]}, "buy": {"calls": ["cat.list", "pay.go"]},
        "about": {}}},
        "cat": svc(endpoint="list", replicas=2), "pay": svc(endpoint="go")},
        entries=("front.home", "front.buy", "front.about"))
    verdict = survives(system, 1, ("instance",))
    assert verdict.counterexample.failures == ("instance:pay-0",)
    assert verdict.counterexample.down == ("front.buy",)


# ---------------------------------------------------------------------------------------------
# The shipped specs
# ---------------------------------------------------------------------------------------------

SHIPPED = sorted(SPECS.glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_spec_is_decided_like_the_oracle(path: Path) -> None:
    system = load(path)
    verdict = survives(system, 1, ("instance", "zone"))
    expected = oracle_minimum(system, ("instance", "zone"), 1)
    assert verdict.status == ("holds" if expected is None else "violated")
    if expected is not None:
        assert len(verdict.counterexample.failures) == expected
        assert_counterexample(system, verdict, ("instance", "zone"))
        assert_repair_works(system, verdict, 1, ("instance", "zone"))


def test_online_boutique_is_refuted_by_one_failure() -> None:
    system = load(SPECS / "online_boutique.yaml")
    verdict = survives(system, 1, ("instance", "zone"))
    assert verdict.status == "violated"
    cx = verdict.counterexample
    assert len(cx.failures) == 1 and cx.failures[0].startswith("instance:")
    dead = cx.failures[0].removeprefix("instance:").rsplit("-", 1)[0]
    assert dead in system.services and verdict.explanation.startswith(f"{dead} has its only")
    assert cx.down and all(entry in verdict.explanation for entry in cx.down[:5])


def test_online_boutique_hardened_holds_at_one_failure() -> None:
    system = load(SPECS / "online_boutique_hardened.yaml")
    assert survives(system, 1, ("instance", "zone")).status == "holds"
    assert oracle_holds(system, ("instance", "zone"), 1)


# ---------------------------------------------------------------------------------------------
# Repairs
# ---------------------------------------------------------------------------------------------


def added_replicas(system: System, repaired: System) -> int:
    return sum(repaired.services[n].replicas - s.replicas for n, s in system.services.items())


def assert_repair_works(system: System, verdict: Any, budget: int,
                        of: tuple[str, ...]) -> System:
    assert verdict.repair is not None, verdict.explanation
    repaired = verdict.repair.apply(system)
    assert survives(repaired, budget, of).status == "holds"
    if len(oracle_units(repaired, of)) < 40:  # the oracle too, where enumeration is cheap
        assert oracle_holds(repaired, of, budget)
    return repaired


def placements_adding(system: System, zones: tuple[str, ...], count: int):
    """Every way to add ``count`` replicas over (service, zone) pairs."""
    pairs = [(name, zone) for name in system.services for zone in zones]
    for combo in itertools.combinations_with_replacement(pairs, count):
        doc = to_document(system)
        doc["zones"] = list(zones)
        for name, zone in combo:
            placement = doc["services"][name]["placement"]
            placement[zone] = placement.get(zone, 0) + 1
            doc["services"][name]["replicas"] += 1
        yield from_document(doc)


@settings(FAST, max_examples=100)
@given(doc=documents(max_services=3, max_replicas=2, cycles=False), budget=st.integers(1, 2),
       of=st.sampled_from(OFS))
def test_repairs_make_it_hold_and_nothing_smaller_does(doc: dict[str, Any], budget: int,
                                                       of: tuple[str, ...]) -> None:
    system = from_document(doc)
    verdict = survives(system, budget, of)
    if verdict.status == "holds":
        return
    repaired = assert_repair_works(system, verdict, budget, of)
    added = added_replicas(system, repaired)
    assert added >= 1
    # Adding replicas never hurts, so checking every placement of one replica fewer, over
    # every service and every zone of the repaired system, proves minimality.
    if added - 1 <= 3:
        for candidate in placements_adding(system, repaired.zones, added - 1):
            assert not oracle_holds(candidate, of, budget), to_document(candidate)["services"]


# ---------------------------------------------------------------------------------------------
# Deadlines and scale
# ---------------------------------------------------------------------------------------------


def layered(n: int, fanout: int = 3) -> System:
    """n services, one replica per zone a/b/c, each calling the next and fanout-1 later ones."""
    services: dict[str, Any] = {}
    for i in range(n):
        later = sorted({i + 1, *((i * 7 + k * 13) % n for k in range(1, fanout))} - {i})
        calls = [f"s{j}.h" for j in later if i < j < n][:fanout]
        services[f"s{i}"] = {"placement": {"a": 1, "b": 1, "c": 1},
                             "endpoints": {"h": {"calls": calls}}}
    return from_document({"system": "layered", "zones": ["a", "b", "c"], "services": services,
                          "workload": [{"entry": "s0.h", "rate": 1}]})


def test_an_expired_deadline_gives_unknown_never_holds() -> None:
    system = layered(200)
    for seconds in (0.0, 1e-9):
        verdict = check(system, Survives(failures=2), Deadline(seconds))
        assert verdict.status == "unknown"
    assert check(system, Survives(failures=2), Deadline(60)).status == "holds"


def test_large_layered_topology_is_decided_exactly() -> None:
    system = layered(2000)
    assert survives(system, 2, ("instance", "zone")).status == "holds"
    verdict = survives(system, 3, ("instance", "zone"))
    assert verdict.status == "violated" and len(verdict.counterexample.failures) == 3
    assert verdict.counterexample.down == ("s0.h",)
    assert verdict.repair is not None and verdict.repair.changes["zones"] == ["a", "b", "c", "d"]


def test_a_spec_without_zones_only_fails_instances_by_default() -> None:
    """The implicit zone is not a failure domain: the repair adds replicas, not a zone."""
    system = load(SPECS / "online_boutique.yaml")
    (prop,) = [p for p in system.properties if p.kind == "survives"]
    assert prop.of == ("instance",)
    verdict = verify(system, kinds=["survives"]).verdicts[0]
    assert verdict.status == "violated"
    assert verdict.counterexample.failures == ("instance:frontend-0",)
    assert "zones" not in verdict.repair.changes
    repaired = verdict.repair.apply(system)
    assert verify(repaired, kinds=["survives"]).verdicts[0].status == "holds"
