"""``staleness`` against an oracle that walks the spec data itself (not the System): which
required calls go to a replicated service, which of them retry onto another replica (retries
with ``retry_other_instance``), and the window ``ttl + refresh``. Repairs are applied to the
document and re-verified. A simulation shows why plain retries are not cover: each attempt is
balanced anew and can pick the same dead instance, as often as the checker says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultmesh.model import properties as P
from faultmesh.model.spec import from_document, load, loads, to_document
from faultmesh.model.spec.edit import apply_changes
from faultmesh.model.strategies import spec_documents
from faultmesh.model.units import parse_duration
from faultmesh.model.verify import Deadline, verify
from faultmesh.model.verify.staleness import check_staleness
from faultmesh.model.verify.timeouts import offences, worst_cases

SPECS = Path(__file__).resolve().parent.parent / "specs"
MANY = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROP = P.Staleness()
EXPECTED = {  # hotelReservation is client-side with ttl 1h, but every service is one replica
    "chain": "holds", "dsb_hotel_reservation": "holds", "dsb_social_network": "holds",
    "mm1": "holds", "mmc": "holds", "online_boutique": "holds",
    "online_boutique_hardened": "violated", "sock_shop": "holds", "zone_outage_shop": "violated",
    # Server-side and stale for 50 s, but front and back are one replica each: no live
    # replica to route to instead, so no call is exposed (survives speaks of them).
    "retry_storm": "holds", "retry_storm_hardened": "holds",
}  # the two violated are server-side: a crash stays listed until readiness probes notice it


def check(system: Any, seconds: float = 60) -> Any:
    return check_staleness(system, PROP, Deadline(seconds))


# ---------------------------------------------------------------------------------------------
# The oracle: straight from the spec document
# ---------------------------------------------------------------------------------------------


def replicas(service: dict[str, Any]) -> int:
    if "placement" in service and "replicas" not in service:
        return sum(service["placement"].values())
    return int(service.get("replicas", 1))


def call_items(endpoint: dict[str, Any]) -> list[Any]:
    items = []
    for item in endpoint.get("calls", []):
        if isinstance(item, dict) and "parallel" in item:
            items.extend(item["parallel"])
        else:
            items.append(item)
    return items


def keyed_items(endpoint: dict[str, Any], prefix: str) -> list[tuple[str, Any]]:
    """``call_items`` with each call's spec key path (``prefix.calls[i].parallel[j]``)."""
    items = []
    for i, item in enumerate(endpoint.get("calls", [])):
        if isinstance(item, dict) and "parallel" in item:
            items += [(f"{prefix}.calls[{i}].parallel[{j}]", member)
                      for j, member in enumerate(item["parallel"])]
        else:
            items.append((f"{prefix}.calls[{i}]", item))
    return items


def oracle(doc: dict[str, Any]) -> tuple[bool, list[str]]:
    """(client-side discovery?, uncovered "caller -> callee" calls): server-side discovery is
    stale too, for its detection delay (readiness probes, node grace period). A call that
    retries on another replica is still uncovered when it has a circuit breaker (the refused
    attempts can open it) or a timeout that does not nest (the live retry can time out):
    which timeouts nest is ``timeouts_nest``'s finding, tested against its own oracle."""
    client = doc.get("discovery", {}).get("mode", "server") == "client"
    default_retries = doc.get("defaults", {}).get("call", {}).get("retries", 0)
    default_breaker = doc.get("defaults", {}).get("call", {}).get("circuit_breaker")
    system = from_document(doc)
    short = {o.key.rpartition(".")[0] for o in offences(system, worst_cases(system))}
    uncovered = []
    for name, service in doc["services"].items():
        for ep_name, endpoint in service["endpoints"].items():
            for key, item in keyed_items(endpoint, f"services.{name}.endpoints.{ep_name}"):
                item = {"call": item} if isinstance(item, str) else item
                callee = item["call"].partition(".")[0]
                if item.get("async") or item.get("optional") or item.get("probability") == 0:
                    continue
                if replicas(doc["services"][callee]) < 2:
                    continue
                retries = item.get("retries", default_retries)
                breaker = item.get("circuit_breaker", default_breaker)
                if retries < 1 or not item.get("retry_other_instance", False) \
                        or breaker not in (None, "none") or key in short:
                    uncovered.append(f"{name}.{ep_name} -> {item['call']}")
    return client, uncovered


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    doc = draw(spec_documents(max_services=6, scenarios=False, properties=False))
    if draw(st.integers(0, 3)):
        doc["discovery"] = {"mode": "client",
                            "ttl": f"{draw(st.integers(1, 90))}s",
                            "refresh": f"{draw(st.integers(1, 60))}s"}
    else:
        doc["discovery"] = {"mode": "server"}
    for service in doc["services"].values():
        if draw(st.integers(0, 3)) == 0:
            service["load_balancer"] = draw(st.sampled_from(
                ["random", "consistent_hash", "least_request", "round_robin"]))
    if draw(st.booleans()):
        doc["defaults"]["call"]["retries"] = draw(st.integers(0, 1))
    for service in doc["services"].values():
        for endpoint in service["endpoints"].values():
            calls = endpoint.get("calls", [])
            for i, item in enumerate(calls):
                if not isinstance(item, dict) or "parallel" in item or draw(st.booleans()):
                    continue
                calls[i] = {**item, "retry_other_instance": True}
    return doc


@MANY
@given(documents())
def test_staleness_matches_the_document(doc: dict[str, Any]) -> None:
    system = from_document(doc)
    client, uncovered = oracle(doc)
    verdict = check(system)
    assert verdict.status == ("violated" if uncovered else "holds")
    if client:
        window = (parse_duration(doc["discovery"]["ttl"])
                  + parse_duration(doc["discovery"]["refresh"]))
    else:
        assert "server-side" in verdict.explanation
        # Defaults: readiness 10 s x 3 failures = 30 s; zone_detection 50 s (the longer).
        window = 50.0
    if not uncovered:
        return
    numbers = verdict.counterexample.numbers
    assert numbers["window_s"] == pytest.approx(window)
    chain = verdict.counterexample.chain
    assert f"{chain[-2]} -> {chain[-1]}" == uncovered[0]
    assert numbers["replicas"] == replicas(doc["services"][chain[-1].partition(".")[0]])
    more = len(uncovered) - 1
    assert (f"and {more} more" in verdict.explanation) == (more > 0)
    changed = apply_changes(to_document(system), verdict.repair.changes)
    assert check(from_document(changed)).status == "holds"
    assert oracle(changed)[1] == []


def test_breaker_alone_does_not_cover_and_consistent_hash_pins() -> None:
    """Also the regression of plain retries: ``session.Get`` retries twice, which used to count
    as cover; without retry_other_instance each attempt may pick the same dead instance."""
    doc: dict[str, Any] = {"system": "t", "discovery": {"mode": "client"}, "services": {
        "web": {"endpoints": {"home": {"calls": [
            {"call": "cart.Get", "circuit_breaker": {"consecutive_failures": 3,
                                                     "open_for": "10s"}},
            {"call": "session.Get", "retries": 2},
            {"call": "ads.Get", "optional": True},
            {"call": "audit.Log", "async": True}]}}},
        "cart": {"replicas": 3, "endpoints": {"Get": {}}},
        "session": {"replicas": 2, "load_balancer": "consistent_hash",
                    "endpoints": {"Get": {}}},
        "ads": {"replicas": 2, "endpoints": {"Get": {}}},
        "audit": {"replicas": 2, "endpoints": {"Log": {}}}},
        "workload": [{"entry": "web.home", "rate": 1}]}
    verdict = check(from_document(doc))
    assert verdict.status == "violated"
    assert verdict.counterexample.chain == ("web.home", "cart.Get")
    assert verdict.counterexample.numbers == {"window_s": 60.0, "replicas": 3,
                                              "failure_probability": pytest.approx(1 / 3),
                                              "failure_probability_exact": 0.0}
    assert "up to 1m (ttl 30s + refresh 30s)" in verdict.explanation
    assert "(and 1 more call)" in verdict.explanation
    assert verdict.repair.changes == {
        "services.web.endpoints.home.calls[0].retries": 1,
        "services.web.endpoints.home.calls[0].retry_other_instance": True,
        # The breaker would count the refused attempts and could open: it goes too.
        "services.web.endpoints.home.calls[0].circuit_breaker": "none",
        "services.web.endpoints.home.calls[1].retry_other_instance": True}
    repaired = verdict.repair.apply(from_document(doc))
    assert check(repaired).status == "holds"


def test_plain_retries_under_random_balancing_fail_with_the_stated_probability() -> None:
    doc: dict[str, Any] = {"system": "t", "discovery": {"mode": "client"}, "services": {
        "web": {"endpoints": {"home": {"calls": [{"call": "cart.Get", "retries": 1}]}}},
        "cart": {"replicas": 2, "load_balancer": "random", "endpoints": {"Get": {}}}},
        "workload": [{"entry": "web.home", "rate": 1}]}
    verdict = check(from_document(doc))
    assert verdict.status == "violated"
    assert verdict.counterexample.numbers["failure_probability"] == pytest.approx(0.25)
    assert "exactly 0.25 of its requests" in verdict.explanation
    doc["services"]["web"]["endpoints"]["home"]["calls"][0]["retry_other_instance"] = True
    assert check(from_document(doc)).status == "holds"


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_specs(path: Path) -> None:
    system = load(path)
    verdict = verify(system, [PROP]).verdicts[0]
    assert verdict.status == EXPECTED.get(path.stem, verdict.status)
    _, uncovered = oracle(to_document(system))
    assert verdict.status == ("violated" if uncovered else "holds")


def test_every_shipped_spec_has_an_expectation() -> None:
    assert {p.stem for p in SPECS.glob("*.yaml")} <= set(EXPECTED)


def test_deadline_zero_is_unknown() -> None:
    assert check(load(SPECS / "online_boutique_hardened.yaml"), 0).status == "unknown"


STALE_SPEC = """
system: stale
discovery: {mode: client, ttl: 30s, refresh: 30s, heartbeat: 5s}
orchestration: {restart: never}
services:
  web:
    replicas: 2
    endpoints:
      home:
        calls: [{call: cart.Get, retries: 1, timeout: 100ms, retry_other_instance: OTHER}]
  cart:
    replicas: 2
    load_balancer: random
    endpoints: {Get: {service_time: 1ms}}
workload: [{entry: web.home, rate: 150/s}]
scenarios:
  stale: {duration: 35s, faults: [{at: 5s, for: 30s, crash: "instance:cart-0"}]}
"""


@pytest.mark.parametrize("other", [False, True])
def test_simulated_stale_window_fails_as_often_as_the_checker_says(other: bool) -> None:
    """cart-0 dies and stays in the callers' views (ttl + refresh > the run): the measured
    failure share of web.home matches ``failure_probability`` within a 99 % binomial CI."""
    from faultmesh.simulations import simulate

    system = loads(STALE_SPEC.replace("OTHER", str(other).lower()))
    verdict = check(system)
    expected = 0.0 if other else verdict.counterexample.numbers["failure_probability"]
    assert verdict.status == ("holds" if other else "violated")
    run = simulate(system, "stale", seed=5)
    frame = run.timeline
    rows = frame[(frame["entry"] == "web.home") & (frame["time_s"] >= 6)]
    n = int(rows["requests"].sum())
    failed = (n - int(rows["ok"].sum())) / n
    half = 2.576 * (expected * (1 - expected) / n) ** 0.5
    assert n > 3000
    assert expected - half - 1e-9 <= failed <= expected + half + 1e-9, (failed, expected, n)
