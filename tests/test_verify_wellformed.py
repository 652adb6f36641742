"""Well-formedness (startup_order, call_cycles, errors_covered) against brute-force oracles.

The oracles share no code with ``model.verify``: cycles come from networkx (simple cycle
enumeration on the depends_on graph and on the endpoint graph), the errors an endpoint can
surface from enumerating every simple path of required calls below it, and minimal repairs
from trying every smaller edit set. Generated systems are mutated to add dependency edges and
calls that close cycles (the base strategy never does), so all verdicts occur.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultmesh.model import properties as P
from faultmesh.model.graph import call_graph
from faultmesh.model.spec import from_document, load, to_document
from faultmesh.model.spec.edit import apply_changes
from faultmesh.model.strategies import spec_documents
from faultmesh.model.system import Call, ParallelCalls, System
from faultmesh.model.verify import Deadline, verify
from faultmesh.model.verify.wellformed import (
    check_call_cycles,
    check_errors_covered,
    check_startup_order,
)

SPECS = Path(__file__).resolve().parent.parent / "specs"
MANY = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TRANSPORT = {"Unavailable", "DeadlineExceeded"}


def run(check: Any, system: System, prop: P.Property) -> Any:
    return check(system, prop, Deadline(60))


# ---------------------------------------------------------------------------------------------
# Generated systems, mutated to reach every verdict
# ---------------------------------------------------------------------------------------------


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    doc = draw(spec_documents(max_services=6, cyclic_services=draw(st.booleans()),
                              scenarios=False, properties=False))
    services = doc["services"]
    names = list(services)
    targets = [f"{s}.{e}" for s in names for e in services[s]["endpoints"]]
    # Extra startup dependencies, possibly closing cycles.
    for _ in range(draw(st.integers(0, 3))):
        a, b = draw(st.sampled_from(names)), draw(st.sampled_from(names))
        deps = services[a].setdefault("depends_on", [])
        if a != b and b not in deps:
            deps.append(b)
    # Extra calls, possibly closing endpoint cycles (synchronous or not, happening or not).
    for _ in range(draw(st.integers(0, 3))):
        caller = draw(st.sampled_from(targets))
        service, _, endpoint = caller.partition(".")
        item: dict[str, Any] = {"call": draw(st.sampled_from(targets))}
        item["async"] = draw(st.integers(0, 3)) == 0
        item["optional"] = draw(st.booleans())
        if draw(st.integers(0, 5)) == 0:
            item["probability"] = 0
        services[service]["endpoints"][endpoint]["calls"].append(item)
    # Sometimes make every endpoint typed, or declare the transport errors.
    for service in services.values():
        for ep in service["endpoints"].values():
            errors = ep["signature"]["errors"]
            if draw(st.integers(0, 2)) == 0:
                ep["signature"]["errors"] = sorted(set(errors) | TRANSPORT)
    return doc


def oracle_calls(system: System, target: str) -> list[Call]:
    service, _, endpoint = target.partition(".")
    calls: list[Call] = []
    for step in system.services[service].endpoints[endpoint].steps:
        calls.extend(step.calls if isinstance(step, ParallelCalls) else [step])
    return calls


def endpoint_names(system: System) -> list[str]:
    return [f"{s}.{e}" for s, svc in system.services.items() for e in svc.endpoints]


def is_cycle(chain: tuple[str, ...], graph: nx.DiGraph) -> bool:
    return (len(chain) >= 2 and chain[0] == chain[-1]
            and all(graph.has_edge(u, v) for u, v in itertools.pairwise(chain)))


def shortest_cycle_length(graph: nx.DiGraph) -> int:
    return min(len(c) for c in nx.simple_cycles(graph))


def min_feedback(graph: nx.DiGraph) -> int:
    """Fewest edges whose removal leaves the graph acyclic, by trying every smaller set."""
    edges = [e for e in graph.edges if any(e[0] in c and e[1] in c
                                           for c in nx.strongly_connected_components(graph))]
    for size in range(len(edges) + 1):
        for subset in itertools.combinations(edges, size):
            g = graph.copy()
            g.remove_edges_from(subset)
            if nx.is_directed_acyclic_graph(g):
                return size
    raise AssertionError


# --- startup_order ----------------------------------------------------------------------------


def depends_graph(system: System) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(system.services)
    g.add_edges_from((s, d) for s, svc in system.services.items() for d in svc.depends_on)
    return g


@MANY
@given(mutated_documents())
def test_startup_order_matches_networkx(doc: dict[str, Any]) -> None:
    system = from_document(doc)
    graph = depends_graph(system)
    verdict = run(check_startup_order, system, P.StartupOrder())
    acyclic = nx.is_directed_acyclic_graph(graph)
    assert verdict.status == ("holds" if acyclic else "violated")
    if acyclic:
        return
    chain = verdict.counterexample.chain
    assert is_cycle(chain, graph)
    assert len(chain) == shortest_cycle_length(graph) + 1
    assert chain[0] in verdict.explanation
    repaired = from_document(apply_changes(to_document(system), verdict.repair.changes))
    assert nx.is_directed_acyclic_graph(depends_graph(repaired))
    removed = graph.number_of_edges() - depends_graph(repaired).number_of_edges()
    assert removed == min_feedback(graph)


# --- call_cycles ------------------------------------------------------------------------------


def sync_endpoint_graph(system: System) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(endpoint_names(system))
    for target in endpoint_names(system):
        for call in oracle_calls(system, target):
            if not call.asynchronous and call.probability > 0:
                g.add_edge(target, f"{call.service}.{call.endpoint}")
    return g


@MANY
@given(mutated_documents())
def test_call_cycles_match_networkx_per_endpoint(doc: dict[str, Any]) -> None:
    system = from_document(doc)
    graph = sync_endpoint_graph(system)
    verdict = run(check_call_cycles, system, P.CallCycles())
    try:
        nx.find_cycle(graph)
        acyclic = False
    except nx.NetworkXNoCycle:
        acyclic = True
    assert verdict.status == ("holds" if acyclic else "violated")
    if acyclic:
        return
    chain = verdict.counterexample.chain
    assert is_cycle(chain, graph)
    assert len(chain) == shortest_cycle_length(graph) + 1
    repaired = from_document(apply_changes(to_document(system), verdict.repair.changes))
    assert run(check_call_cycles, repaired, P.CallCycles()).status == "holds"
    assert len(verdict.repair.description.split(" -> ")) - 1 == min_feedback(graph)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec_documents(max_services=6, cyclic_services=True, scenarios=False))
def test_service_cycles_that_are_not_endpoint_cycles_pass(doc: dict[str, Any]) -> None:
    system = from_document(doc)
    assert run(check_call_cycles, system, P.CallCycles()).status == "holds"


def test_service_cycle_example_passes_but_endpoint_cycle_fails() -> None:
    doc: dict[str, Any] = {"system": "t", "services": {
        "user": {"endpoints": {"Register": {"calls": ["graph.InsertUser"]},
                               "GetUserId": {}}},
        "graph": {"endpoints": {"InsertUser": {}, "Follow": {"calls": ["user.GetUserId"]}}}}}
    assert run(check_call_cycles, from_document(doc), P.CallCycles()).status == "holds"
    doc["services"]["graph"]["endpoints"]["InsertUser"]["calls"] = ["user.Register"]
    verdict = run(check_call_cycles, from_document(doc), P.CallCycles())
    assert verdict.status == "violated"
    assert verdict.counterexample.chain in (
        ("user.Register", "graph.InsertUser", "user.Register"),
        ("graph.InsertUser", "user.Register", "graph.InsertUser"))


# --- errors_covered ---------------------------------------------------------------------------


def required_graph(system: System) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(endpoint_names(system))
    for target in endpoint_names(system):
        for call in oracle_calls(system, target):
            if not call.asynchronous and not call.optional and call.probability > 0:
                g.add_edge(target, f"{call.service}.{call.endpoint}")
    return g


def declared(system: System, target: str) -> set[str]:
    return set(system.endpoint(target).signature.errors)


def oracle_escapes(system: System) -> dict[str, set[str]]:
    """For each typed endpoint, the errors that reach it undeclared, by path enumeration."""
    graph = required_graph(system)
    out = {}
    for e in endpoint_names(system):
        if not declared(system, e):
            continue
        reach: set[str] = set()
        stack: list[tuple[str, frozenset[str]]] = [(e, frozenset([e]))]
        while stack:  # every simple path e -> ... (each edge adds transport errors)
            node, seen = stack.pop()
            for nxt in graph.successors(node):
                reach |= TRANSPORT | declared(system, nxt)
                if nxt not in seen:
                    stack.append((nxt, seen | {nxt}))
        out[e] = reach - declared(system, e)
    return {e: errs for e, errs in out.items() if errs}


@MANY
@given(mutated_documents())
def test_errors_covered_matches_path_enumeration(doc: dict[str, Any]) -> None:
    system = from_document(doc)
    escapes = oracle_escapes(system)
    verdict = run(check_errors_covered, system, P.ErrorsCovered())
    assert verdict.status == ("violated" if escapes else "holds")
    if not escapes:
        return
    match = re.search(r"can fail with (\w+), which (\S+) does not declare", verdict.explanation)
    assert match, verdict.explanation
    error, endpoint = match.groups()
    assert error in escapes[endpoint]
    chain = verdict.counterexample.chain
    graph = required_graph(system)
    assert all(graph.has_edge(u, v) for u, v in itertools.pairwise(chain))
    tail = chain[chain.index(endpoint):]
    assert len(tail) >= 2
    assert error in TRANSPORT or error in declared(system, tail[-1])
    # The repair declares exactly the escaping errors, and then the property holds.
    changes = verdict.repair.changes
    assert {k.split(".")[1] + "." + k.split(".")[3] for k in changes} == set(escapes)
    repaired = from_document(apply_changes(to_document(system), changes))
    assert run(check_errors_covered, repaired, P.ErrorsCovered()).status == "holds"


def test_untyped_endpoints_pass_errors_through() -> None:
    doc: dict[str, Any] = {"system": "t", "services": {
        "front": {"endpoints": {"checkout": {
            "signature": {"errors": ["Unavailable", "DeadlineExceeded"]},
            "calls": ["checkout.PlaceOrder"]}}},
        "checkout": {"endpoints": {"PlaceOrder": {"calls": [
            "payment.Charge", {"call": "audit.Log", "optional": True}]}}},
        "payment": {"endpoints": {"Charge": {"signature": {"errors": ["CardDeclined"]}}}},
        "audit": {"endpoints": {"Log": {"signature": {"errors": ["Full"]}}}}}}
    verdict = run(check_errors_covered, from_document(doc), P.ErrorsCovered())
    assert verdict.status == "violated"
    assert verdict.counterexample.chain == ("front.checkout", "checkout.PlaceOrder",
                                            "payment.Charge")
    assert verdict.explanation.startswith(
        "payment.Charge can fail with CardDeclined, which front.checkout does not declare")
    assert "Full" not in str(verdict.repair.changes)  # the optional call's error is swallowed


def test_transport_errors_are_required_of_typed_callers() -> None:
    doc: dict[str, Any] = {"system": "t", "services": {
        "a": {"endpoints": {"x": {"signature": {"errors": ["NotFound"]},
                                  "calls": [{"call": "b.y", "timeout": "200ms"}]}}},
        "b": {"endpoints": {"y": {}}}}}
    verdict = run(check_errors_covered, from_document(doc), P.ErrorsCovered())
    assert verdict.status == "violated"
    assert "a.x's call to b.y" in verdict.explanation
    assert verdict.repair.changes == {
        "services.a.endpoints.x.signature.errors": ["NotFound", "DeadlineExceeded",
                                                    "Unavailable"]}


# ---------------------------------------------------------------------------------------------
# Shipped specs, deadlines
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_spec_is_well_formed(path: Path) -> None:
    system = load(path)
    report = verify(system, [P.StartupOrder(), P.CallCycles(), P.ErrorsCovered()])
    assert [v.status for v in report.verdicts] == ["holds"] * 3, report.to_json()


def test_social_network_service_cycle_is_not_a_call_cycle() -> None:
    system = load(SPECS / "dsb_social_network.yaml")
    services = call_graph(system)
    assert nx.has_path(services, "user-service", "social-graph-service")
    assert nx.has_path(services, "social-graph-service", "user-service")
    assert run(check_call_cycles, system, P.CallCycles()).status == "holds"


@pytest.mark.parametrize("check,prop", [(check_startup_order, P.StartupOrder()),
                                        (check_call_cycles, P.CallCycles()),
                                        (check_errors_covered, P.ErrorsCovered())])
def test_deadline_zero_is_unknown(check: Any, prop: P.Property) -> None:
    system = load(SPECS / "online_boutique.yaml")
    assert check(system, prop, Deadline(0)).status == "unknown"
