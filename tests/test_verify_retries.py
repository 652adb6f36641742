"""``retry_amplification`` against brute force: every simple call path from every entry is
enumerated (networkx), its attempt product taken, the maximum per service compared with the
verdict; unbounded cases are cycles through a retrying call; repairs are applied, and on small
systems compared with the least total reduction found by trying every retry setting.
"""

from __future__ import annotations

import itertools
import math
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
from faultmesh.model.verify.retries import check_retry_amplification

SPECS = Path(__file__).resolve().parent.parent / "specs"
MANY = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
EXPECTED = {  # spec -> status with the spec's own max (default 8)
    "chain": "holds", "dsb_hotel_reservation": "holds", "dsb_social_network": "holds",
    "mm1": "holds", "mmc": "holds", "online_boutique": "holds",
    "online_boutique_hardened": "holds", "sock_shop": "holds", "zone_outage_shop": "holds",
    "retry_storm": "holds", "retry_storm_hardened": "holds",
}


def check(system: System, prop: P.RetryAmplification, seconds: float = 60) -> Any:
    return check_retry_amplification(system, prop, Deadline(seconds))


# ---------------------------------------------------------------------------------------------
# The oracle
# ---------------------------------------------------------------------------------------------

Edge = tuple[str, int, int]  # caller, step, member


def edges(system: System) -> list[tuple[Edge, Call]]:
    out = []
    for s, svc in system.services.items():
        for e, endpoint in svc.endpoints.items():
            for i, step in enumerate(endpoint.steps):
                members = step.calls if isinstance(step, ParallelCalls) else (step,)
                out += [((f"{s}.{e}", i, j), c) for j, c in enumerate(members)
                        if c.probability > 0]
    return out


def roots(system: System) -> list[str]:
    if system.workload:
        return list(dict.fromkeys(w.entry for w in system.workload))
    called = {c.target for _, c in edges(system)}
    return [f"{s}.{e}" for s, svc in system.services.items() for e in svc.endpoints
            if f"{s}.{e}" not in called]


def multigraph(system: System, retries: dict[Edge, int]) -> nx.MultiDiGraph:
    g = nx.MultiDiGraph()
    g.add_nodes_from(f"{s}.{e}" for s, svc in system.services.items() for e in svc.endpoints)
    for edge, call in edges(system):
        g.add_edge(edge[0], call.target, key=edge, attempts=retries[edge] + 1)
    return g


def oracle(system: System, retries: dict[Edge, int] | None = None
           ) -> dict[str, int] | None:
    """Max attempt product per service over all simple paths; None when unbounded."""
    retries = retries if retries is not None else {e: c.retries for e, c in edges(system)}
    g = multigraph(system, retries)
    starts = roots(system)
    reachable = set(starts).union(*(nx.descendants(g, r) for r in starts))
    for u, v, data in g.edges(data=True):
        if u in reachable and data["attempts"] > 1 and nx.has_path(g, v, u):
            return None
    best: dict[str, int] = {}
    for root in starts:
        best[root.partition(".")[0]] = max(best.get(root.partition(".")[0], 1), 1)
        for target in reachable - {root}:
            for path in nx.all_simple_edge_paths(g, root, target):
                product = math.prod(g.edges[e]["attempts"] for e in path)
                service = target.partition(".")[0]
                best[service] = max(best.get(service, 0), product)
    return best


def least_reduction(system: System, limit: float) -> tuple[int, int] | None:
    """Fewest calls changed, then smallest total retry reduction, with every service within
    ``limit`` (brute force)."""
    current = {e: c.retries for e, c in edges(system)}
    tunable = [e for e, r in current.items() if r > 0]
    if math.prod(current[e] + 1 for e in tunable) > 256:
        return None
    best = None
    for choice in itertools.product(*(range(current[e] + 1) for e in tunable)):
        trial = {**current, **dict(zip(tunable, choice, strict=True))}
        amp = oracle(system, trial)
        if amp is not None and max(amp.values()) <= limit:
            cost = (sum(trial[e] != current[e] for e in tunable),
                    sum(current[e] - trial[e] for e in tunable))
            best = cost if best is None else min(best, cost)
    return best


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    doc = draw(spec_documents(max_services=6, scenarios=False, properties=False))
    services = doc["services"]
    targets = [f"{s}.{e}" for s in services for e in services[s]["endpoints"]]
    if draw(st.integers(0, 4)) == 0:  # a call back up the graph: a cycle, maybe retried
        caller = draw(st.sampled_from(targets))
        service, _, endpoint = caller.partition(".")
        services[service]["endpoints"][endpoint]["calls"].append(
            {"call": draw(st.sampled_from(targets)), "retries": draw(st.integers(0, 2)),
             "async": draw(st.booleans())})
    if draw(st.booleans()):
        doc["workload"] = []  # then every endpoint nothing calls is an entry
    return doc


@MANY
@given(documents(), st.integers(1, 20))
def test_retry_amplification_matches_path_enumeration(doc: dict[str, Any], limit: int) -> None:
    system = from_document(doc)
    prop = P.RetryAmplification(max=limit)
    expected = oracle(system)
    verdict = check(system, prop)
    if expected is None:
        assert verdict.status == "violated"
        assert "unbounded" in verdict.explanation
        repaired = from_document(apply_changes(to_document(system), verdict.repair.changes))
        after = oracle(repaired)
        assert after is not None and max(after.values()) <= limit
        return
    peak = max(expected.values(), default=1)
    assert verdict.status == ("violated" if peak > limit else "holds")
    assert f"{peak}" in verdict.explanation or not expected
    if peak <= limit:
        return
    numbers = verdict.counterexample.numbers
    assert numbers == {"attempts": peak, "max": limit}
    chain = verdict.counterexample.chain
    assert chain[0] in roots(system)
    assert expected[chain[-1].partition(".")[0]] == peak
    g = multigraph(system, {e: c.retries for e, c in edges(system)})
    assert max(math.prod(g.edges[e]["attempts"] for e in path)
               for path in nx.all_simple_edge_paths(g, chain[0], chain[-1])
               if [u for u, _, _ in path] + [chain[-1]] == list(chain)) == peak
    # The repair brings every service within the limit, changing the fewest calls and then
    # with the least total reduction.
    assert verdict.repair is not None
    repaired = from_document(apply_changes(to_document(system), verdict.repair.changes))
    after = oracle(repaired)
    assert after is not None and max(after.values()) <= limit
    least = least_reduction(system, limit)
    if least is not None:
        removed = sum(c.retries for _, c in edges(system)) - \
            sum(c.retries for _, c in edges(repaired))
        assert (len(verdict.repair.changes), removed) == least


def test_example_path_and_repair() -> None:
    doc: dict[str, Any] = {"system": "t", "services": {
        "a": {"endpoints": {"x": {"calls": [{"call": "b.y", "retries": 2}]}}},
        "b": {"endpoints": {"y": {"calls": [{"call": "c.z", "retries": 2},
                                            {"call": "c.z", "repeat": 5}]}}},
        "c": {"endpoints": {"z": {}}}},
        "workload": [{"entry": "a.x", "rate": 1}]}
    system = from_document(doc)
    verdict = check(system, P.RetryAmplification(max=4))
    assert verdict.status == "violated"
    assert verdict.counterexample.chain == ("a.x", "b.y", "c.z")
    assert verdict.counterexample.numbers == {"attempts": 9, "max": 4}
    assert verdict.explanation.startswith("one request to a.x can reach c as up to 9 attempts")
    # repeat is load, not amplification: 5 repeated calls without retries do not count.
    removed = sum(2 - r for r in verdict.repair.changes.values())
    assert removed == 2  # 3 x 3 -> 3 x 1 or 2 x 2: two retries removed, no fewer do
    repaired = from_document(apply_changes(to_document(system), verdict.repair.changes))
    assert check(repaired, P.RetryAmplification(max=4)).status == "holds"
    assert check(system, P.RetryAmplification(max=9)).status == "holds"


def test_no_retries_means_amplification_one() -> None:
    system = load(SPECS / "online_boutique.yaml")  # repeat: 9 on Convert, no retries
    verdict = check(system, P.RetryAmplification(max=1))
    assert verdict.status == "holds"
    assert "at most 1x" in verdict.explanation


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_specs(path: Path) -> None:
    system = load(path)
    props = [p for p in system.properties if isinstance(p, P.RetryAmplification)]
    prop = props[0] if props else P.RetryAmplification()
    verdict = verify(system, [prop]).verdicts[0]
    assert verdict.status == EXPECTED.get(path.stem, verdict.status)
    peak = max((oracle(system) or {"": math.inf}).values())
    assert verdict.status == ("violated" if peak > prop.max else "holds")
    strict = check(system, P.RetryAmplification(max=1))
    if strict.status == "violated":
        repaired = from_document(apply_changes(to_document(system), strict.repair.changes))
        assert check(repaired, P.RetryAmplification(max=1)).status == "holds"


def test_every_shipped_spec_has_an_expectation() -> None:
    assert {p.stem for p in SPECS.glob("*.yaml")} <= set(EXPECTED)


def test_deadline_zero_is_unknown() -> None:
    system = load(SPECS / "online_boutique_hardened.yaml")
    assert check(system, P.RetryAmplification(), 0).status == "unknown"
