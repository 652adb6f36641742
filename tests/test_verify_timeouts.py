"""``timeouts_nest`` against an exact oracle: worst cases in rational arithmetic, every call
checked, and the least repair computed bottom-up (which the z3 Optimize repair must equal).

The oracle shares no code with ``model.verify``: it reads the System's steps, computes each
endpoint's worst case with ``fractions.Fraction`` straight from the documented formula
(backoff delays recomputed from the strategy/base/cap), adds the network round trip by going
over every pair of caller and callee instances, and finds the least whole-millisecond
timeouts strictly above what each must cover by processing endpoints callees first. The
simulator checks the network rule on a two-hop chain: where the verifier says a timeout is too
short, the simulation times out; where it says the timeouts nest, none does.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultmesh.model import properties as P
from faultmesh.model.spec import from_document, load, to_document
from faultmesh.model.spec.edit import apply_changes
from faultmesh.model.strategies import spec_documents
from faultmesh.model.system import Call, ParallelCalls, System
from faultmesh.model.verify import Deadline, verify
from faultmesh.model.verify.timeouts import check_timeouts_nest, least_timeouts
from faultmesh.simulations import simulate

SPECS = Path(__file__).resolve().parent.parent / "specs"
MANY = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROP = P.TimeoutsNest()
EXPECTED = {  # spec -> status (10 s budgets at every hop cannot nest)
    "chain": "holds", "dsb_hotel_reservation": "violated", "dsb_social_network": "violated",
    "mm1": "holds", "mmc": "holds", "online_boutique": "violated",
    "online_boutique_hardened": "holds", "sock_shop": "violated", "zone_outage_shop": "holds",
    # back's exponential service time has a tail past front's 50 ms per-try timeout
    "retry_storm": "violated", "retry_storm_hardened": "violated",
}


def check(system: System, seconds: float = 60) -> Any:
    return check_timeouts_nest(system, PROP, Deadline(seconds))


# ---------------------------------------------------------------------------------------------
# The oracle
# ---------------------------------------------------------------------------------------------


def bound(dist: Any) -> Fraction:
    """Upper bound, or p99.9 when unbounded, rounded up to the microsecond."""
    upper = dist.upper
    exact = Fraction(repr(upper if math.isfinite(upper) else dist.quantile(0.999)))
    return Fraction(math.ceil(exact * 10**6), 10**6)


def backoff_delays(call: Call) -> Fraction:
    b = call.backoff
    total = Fraction(0)
    for n in range(1, call.retries + 1):
        if b.strategy == "none":
            continue
        delay = b.base if b.strategy == "constant" else b.base * 2 ** (n - 1)
        total += Fraction(repr(min(delay, b.cap)))
    return total


def awaited(call: Call) -> bool:
    return not call.asynchronous and call.probability > 0


def worst(system: System, target: str, timeout: dict[tuple[str, int, int], Fraction]
          ) -> Fraction:
    """worst(e) with the given timeouts (keyed by caller, step, member)."""
    service, _, name = target.partition(".")
    endpoint = system.services[service].endpoints[name]
    total = bound(endpoint.service_time)
    for i, step in enumerate(endpoint.steps):
        members = step.calls if isinstance(step, ParallelCalls) else (step,)
        costs = [call.repeat * (call.attempts * timeout[(target, i, j)] + backoff_delays(call))
                 for j, call in enumerate(members) if awaited(call)]
        total += max(costs, default=Fraction(0))
    return total


def round_trip(system: System, caller: str, callee: str) -> Fraction:
    """Twice the largest one-way latency bound over every (caller instance, callee instance)."""
    net = system.communication
    worst_hop = Fraction(0)
    for here in system.services[caller].zones:
        for there in system.services[callee].zones:
            dist = net.same_zone_latency if here == there else net.cross_zone_latency
            worst_hop = max(worst_hop, bound(dist))
    return worst_hop * 2


def sites(system: System) -> list[tuple[tuple[str, int, int], Call]]:
    out = []
    for s, svc in system.services.items():
        for e, endpoint in svc.endpoints.items():
            for i, step in enumerate(endpoint.steps):
                members = step.calls if isinstance(step, ParallelCalls) else (step,)
                out += [((f"{s}.{e}", i, j), c) for j, c in enumerate(members)]
    return out


def key_path(site: tuple[str, int, int], system: System) -> str:
    target, i, j = site
    service, _, name = target.partition(".")
    step = system.services[service].endpoints[name].steps[i]
    member = f".parallel[{j}]" if isinstance(step, ParallelCalls) else ""
    return f"services.{service}.endpoints.{name}.calls[{i}]{member}.timeout"


def oracle(system: System) -> tuple[set[str], dict[str, float]]:
    """(key paths of offending timeouts, least whole-millisecond repair)."""
    timeout = {k: Fraction(repr(c.timeout)) for k, c in sites(system)}
    offending = set()
    for k, call in sites(system):
        need = worst(system, call.target, timeout) + round_trip(system, k[0].split(".")[0],
                                                                 call.service)
        if awaited(call) and timeout[k] <= need:
            offending.add(key_path(k, system))
    for n, w in enumerate(system.workload):
        if w.timeout is not None and \
                Fraction(repr(w.timeout)) <= worst(system, w.entry, timeout):
            offending.add(f"workload[{n}].timeout")
    if not offending:
        return offending, {}
    graph = nx.DiGraph()
    graph.add_nodes_from(f"{s}.{e}" for s, svc in system.services.items() for e in svc.endpoints)
    graph.add_edges_from((k[0], c.target) for k, c in sites(system) if awaited(c))
    least = dict(timeout)
    changes: dict[str, float] = {}

    def raise_to(current: Fraction, need: Fraction) -> Fraction | None:
        if current > need:
            return None
        ms = Fraction(math.ceil(need * 1000), 1000)
        return ms if ms > need else ms + Fraction(1, 1000)

    for target in reversed(list(nx.topological_sort(graph))):  # callees first
        for k, call in sites(system):
            if k[0] == target and awaited(call):
                new = raise_to(least[k], worst(system, call.target, least)
                               + round_trip(system, target.split(".")[0], call.service))
                if new is not None:
                    least[k] = new
                    changes[key_path(k, system)] = float(new)
    for n, w in enumerate(system.workload):
        if w.timeout is not None:
            new = raise_to(Fraction(repr(w.timeout)), worst(system, w.entry, least))
            if new is not None:
                changes[f"workload[{n}].timeout"] = float(new)
    return offending, changes


# ---------------------------------------------------------------------------------------------
# Generated systems
# ---------------------------------------------------------------------------------------------


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    doc = draw(spec_documents(max_services=6, scenarios=False, properties=False))
    doc["defaults"]["call"]["timeout"] = draw(st.sampled_from(["50ms", "1s", "10s"]))
    if draw(st.booleans()):
        doc["defaults"]["call"]["backoff"] = draw(st.sampled_from([
            "none", {"strategy": "constant", "base": "20ms", "cap": "20ms"},
            {"strategy": "exponential", "base": "10ms", "cap": "45ms"}]))
    for item in doc["workload"]:
        if draw(st.integers(0, 2)) == 0:
            item["timeout"] = f"{draw(st.integers(10, 30000))}ms"
    if draw(st.booleans()):  # network latency: bounded, unbounded, same- and cross-zone
        same = draw(st.sampled_from(["1ms", "5ms", {"uniform": ["1ms", "3ms"]},
                                     {"exponential": "2ms"}]))
        cross = draw(st.sampled_from(["5ms", "20ms", {"empirical": ["1ms", "9ms"]},
                                      {"lognormal": {"mean": "4ms", "p99": "30ms"}}]))
        doc["network"] = {"latency": {"same_zone": same, "cross_zone": cross}}
    if draw(st.integers(0, 3)) == 0:  # constant service times: exact upper bounds
        for service in doc["services"].values():
            for ep in service["endpoints"].values():
                ep["service_time"] = f"{draw(st.integers(0, 20))}ms"
    return doc


@MANY
@given(documents())
def test_timeouts_nest_matches_exact_oracle(doc: dict[str, Any]) -> None:
    system = from_document(doc)
    offending, least = oracle(system)
    verdict = check(system)
    assert verdict.status == ("violated" if offending else "holds")
    if not offending:
        return
    numbers = verdict.counterexample.numbers
    assert numbers["timeout"] <= numbers["callee_worst"] + numbers["network"]
    more = len(offending) - 1
    assert (f"and {more} more" in verdict.explanation) == (more > 0)
    chain = verdict.counterexample.chain
    assert chain[-1] in {c.target for _, c in sites(system)} | set(system.entries)
    # The z3 Optimize repair is the least solution, and applying it makes the property hold.
    assert verdict.repair is not None
    assert verdict.repair.changes == pytest.approx(least, abs=1e-12)
    assert least_timeouts(system) == verdict.repair.changes  # the large-topology fallback
    repaired = from_document(apply_changes(to_document(system), verdict.repair.changes))
    assert check(repaired).status == "holds"
    assert oracle(repaired)[0] == set()


def test_counterexample_names_the_path_and_numbers() -> None:
    doc: dict[str, Any] = {"system": "shop", "services": {
        "frontend": {"endpoints": {"checkout": {"service_time": "5ms", "calls": [
            {"call": "checkout.PlaceOrder", "timeout": "1s"}]}}},
        "checkout": {"endpoints": {"PlaceOrder": {"service_time": "200ms", "calls": [
            {"call": "payment.Charge", "timeout": "1s", "retries": 2,
             "backoff": {"strategy": "constant", "base": "100ms", "cap": "100ms"}},
            {"call": "audit.Log", "timeout": "30s", "async": True}]}}},
        "payment": {"endpoints": {"Charge": {"service_time": "10ms"}}},
        "audit": {"endpoints": {"Log": {}}}},
        "workload": [{"entry": "frontend.checkout", "rate": "1/s"}]}
    system = from_document(doc)
    verdict = check(system)
    assert verdict.status == "violated"
    assert verdict.counterexample.chain == ("frontend.checkout", "checkout.PlaceOrder")
    assert verdict.counterexample.numbers == {"timeout": 1.0, "network": 0.0,
                                              "callee_worst": pytest.approx(3.4)}
    assert "timeout 1s < 3.4s" in verdict.explanation
    # Strictly above: at exactly 3.4 s the response and the timeout would be due together.
    assert verdict.repair.description.startswith(
        "raise the frontend.checkout -> checkout.PlaceOrder timeout to 3.401s")
    assert verdict.repair.changes == {
        "services.frontend.endpoints.checkout.calls[0].timeout": 3.401}


# ---------------------------------------------------------------------------------------------
# Shipped specs, deadlines
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_specs(path: Path) -> None:
    system = load(path)
    verdict = verify(system, [PROP]).verdicts[0]
    assert verdict.status == EXPECTED.get(path.stem, verdict.status)
    offending, least = oracle(system)
    assert verdict.status == ("violated" if offending else "holds")
    if verdict.status == "violated":
        assert verdict.repair is not None
        assert verdict.repair.changes == pytest.approx(least, abs=1e-12)
        repaired = from_document(apply_changes(to_document(system), verdict.repair.changes))
        assert check(repaired).status == "holds"


def test_every_shipped_spec_has_an_expectation() -> None:
    assert {p.stem for p in SPECS.glob("*.yaml")} <= set(EXPECTED)


def test_deadline_zero_is_unknown() -> None:
    assert check(load(SPECS / "online_boutique.yaml"), 0).status == "unknown"


# ---------------------------------------------------------------------------------------------
# Network latency: the verifier against the simulator
# ---------------------------------------------------------------------------------------------


def two_hop_chain(inner_timeout: str, *, same: str = "5ms", cross: str = "5ms",
                  zones: tuple[str, str] | None = None) -> System:
    """a -> b -> c with 1 ms, 1 ms and 10 ms of service; the b -> c timeout is the question."""
    doc: dict[str, Any] = {
        "system": "chain2",
        "network": {"latency": {"same_zone": same, "cross_zone": cross}},
        "services": {
            "a": {"endpoints": {"home": {"service_time": "1ms", "calls": [
                {"call": "b.mid", "timeout": "40ms"}]}}},
            "b": {"endpoints": {"mid": {"service_time": "1ms", "calls": [
                {"call": "c.leaf", "timeout": inner_timeout}]}}},
            "c": {"endpoints": {"leaf": {"service_time": "10ms"}}}},
        # Evenly spaced arrivals: no request ever waits for a worker (queueing is capacity's
        # business, not this property's), so every timeout is the network's doing.
        "workload": [{"entry": "a.home", "rate": "20/s", "arrivals": "constant"}],
    }
    if zones is not None:
        doc["zones"] = sorted(set(zones))
        doc["services"]["b"]["placement"] = {zones[0]: 1}
        doc["services"]["c"]["placement"] = {zones[1]: 1}
    return from_document(doc)


def inner_calls(system: System) -> dict[str, Any]:
    return simulate(system, None, duration=20.0, seed=3).summary["calls"]["b->c"]


def test_network_latency_counts_on_each_hop_and_the_simulation_agrees() -> None:
    # 12 ms covers c's 10 ms but not the 5 ms request and 5 ms response around it.
    system = two_hop_chain("12ms")
    verdict = check(system)
    assert verdict.status == "violated", verdict.explanation
    assert verdict.counterexample.chain == ("a.home", "b.mid", "c.leaf")
    assert verdict.counterexample.numbers == {"timeout": 0.012, "callee_worst": 0.01,
                                              "network": pytest.approx(0.01)}
    assert "10ms of network there and back" in verdict.explanation
    calls = inner_calls(system)
    assert calls["calls"] > 300 and calls["causes"] == {"timeout": calls["calls"]}
    # The repair nests, and the simulation times out nothing.
    repaired = verdict.repair.apply(system)
    assert verdict.repair.changes == {"services.b.endpoints.mid.calls[0].timeout": 0.021}
    assert check(repaired).status == "holds"
    assert inner_calls(repaired)["failed"] == 0


def test_a_timeout_equal_to_the_worst_case_does_not_nest() -> None:
    # 5 + 10 + 5 ms against a 20 ms timeout: the response and the timeout are due together,
    # and the engine's float sums make most such calls time out.
    system = two_hop_chain("20ms")
    assert check(system).status == "violated"
    assert inner_calls(system)["causes"].get("timeout", 0) > 0


def test_the_worst_latency_the_placement_allows_is_charged() -> None:
    # Same zone: 1 ms each way; different zones: 8 ms each way. c.leaf takes 10 ms.
    assert check(two_hop_chain("13ms", same="1ms", cross="8ms", zones=("a", "a"))).status \
        == "holds"
    apart = check(two_hop_chain("13ms", same="1ms", cross="8ms", zones=("a", "b")))
    assert apart.status == "violated"
    assert apart.counterexample.numbers["network"] == pytest.approx(0.016)
    # Unbounded latency is charged at its 99.9th percentile, as service times are.
    slow = check(two_hop_chain("13ms", same={"exponential": "1ms"}))  # type: ignore[arg-type]
    p999 = math.ceil(-math.log(0.001) * 1000) / 10**6  # 6.908 ms, to the microsecond
    assert slow.counterexample.numbers["network"] == pytest.approx(2 * p999)
