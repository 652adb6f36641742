"""Hypothesis strategies for valid specs and Systems, for our tests and for users' own.

``spec_documents(...)`` draws spec data (what a YAML file holds) and ``systems(...)`` loads it,
so every generated System went through the same validation and default resolution as a file.
Shape is controllable: number of services, endpoints per service, fan-out, replicas, zones,
and which features appear (optional, async and parallel calls, retries, breakers, placement;
``call_forms``: one_of, group and fallback steps).
Off by default, so that existing property tests keep drawing the same systems: ``balancers``
(every load-balancing policy), ``probabilities`` (calls made with probability below 1),
``network_latency`` (same- and cross-zone latency), ``limits`` (``concurrency``, ``queue``,
``max_retries``), ``discovery`` (client-side or server-side with short heartbeat, TTL and
refresh) and ``all_properties`` (capacity, timeouts_nest and staleness next to survives, and
workload timeouts).

Services are named ``s0, s1, ...`` and only call services with a larger index, so the call
graph is acyclic at the service level and ``depends_on`` always has a startup order. Pass
``cyclic_services=True`` to let a later service call back into an earlier one through a
different endpoint (a service-level cycle that is not an endpoint cycle, as DeathStarBench has).
"""

from __future__ import annotations

from typing import Any

from faultmesh.model.extras import requires
from faultmesh.model.spec.load import from_document
from faultmesh.model.spec.schema import CallSpec, DiscoverySpec, ReadinessSpec
from faultmesh.model.system import System

with requires("strategies", "faultmesh.model.strategies"):
    from hypothesis import strategies as st

ZONE_NAMES = ("a", "b", "c", "d", "e")
ERRORS = ("Unavailable", "DeadlineExceeded", "NotFound", "InvalidArgument")


def _ms(value: float) -> str:
    return f"{value:g}ms"


@st.composite
def spec_documents(
    draw: st.DrawFn,
    *,
    min_services: int = 1,
    max_services: int = 8,
    max_endpoints: int = 2,
    max_calls: int = 3,
    max_replicas: int = 3,
    max_zones: int = 3,
    optional_calls: bool = True,
    async_calls: bool = True,
    parallel_calls: bool = True,
    retries: bool = True,
    breakers: bool = True,
    explicit_placement: bool = True,
    cyclic_services: bool = False,
    properties: bool = True,
    scenarios: bool = True,
    balancers: bool = False,
    probabilities: bool = False,
    network_latency: bool = False,
    limits: bool = False,
    discovery: bool = False,
    all_properties: bool = False,
    call_forms: bool = False,
) -> dict[str, Any]:
    """Spec data for a valid system of the requested size and features."""
    n = draw(st.integers(min_services, max_services))
    zones = list(ZONE_NAMES[: draw(st.integers(1, max_zones))])
    names = [f"s{i}" for i in range(n)]
    endpoint_names = {name: [f"e{j}" for j in range(draw(st.integers(1, max_endpoints)))]
                      for name in names}

    def call_item(target: str) -> Any:
        mapping: dict[str, Any] = {"call": target}
        if optional_calls and draw(st.integers(0, 3)) == 0:
            mapping["optional"] = True
        if async_calls and draw(st.integers(0, 5)) == 0:
            mapping["async"] = True
        if retries and draw(st.booleans()):
            mapping["retries"] = draw(st.integers(0, 3))
            mapping["timeout"] = _ms(draw(st.integers(5, 2000)))
            if discovery and "retry_other_instance" in CallSpec.model_fields \
                    and draw(st.booleans()):
                mapping["retry_other_instance"] = True
        if breakers and draw(st.integers(0, 3)) == 0:
            mapping["circuit_breaker"] = draw(st.sampled_from([
                {"consecutive_failures": draw(st.integers(1, 10)), "open_for": "5s"},
                {"failure_rate": "50%", "window": 10, "min_calls": 5, "open_for": "10s",
                 "half_open_calls": 2},
            ]))
        if draw(st.integers(0, 5)) == 0:
            mapping["repeat"] = draw(st.integers(2, 3))
        if probabilities and draw(st.integers(0, 3)) == 0:
            mapping["probability"] = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))
        return target if len(mapping) == 1 else mapping

    services: dict[str, Any] = {}
    for i, name in enumerate(names):
        later = [f"{other}.{ep}" for other in names[i + 1:] for ep in endpoint_names[other]]
        earlier = [f"{other}.{ep}" for other in names[:i] for ep in endpoint_names[other]]
        endpoints: dict[str, Any] = {}
        for j, ep in enumerate(endpoint_names[name]):
            # With cyclic_services, the last endpoint of a service may call back into an earlier
            # service's endpoint; earlier services only reach endpoints e0..e{k-2}... of later
            # ones, so endpoint-level cycles cannot form (the callback endpoint is never called).
            pool = list(later)
            if cyclic_services and earlier and j == len(endpoint_names[name]) - 1 and j > 0:
                pool = earlier
            elif cyclic_services:
                pool = [t for t in later
                        if not (t.split(".")[1] == endpoint_names[t.split(".")[0]][-1]
                                and len(endpoint_names[t.split(".")[0]]) > 1)]
            targets = draw(st.lists(st.sampled_from(pool), max_size=max_calls, unique=True)) \
                if pool else []
            calls: list[Any] = []
            k = 0
            while k < len(targets):
                form = draw(st.integers(0, 3)) if call_forms and k + 1 < len(targets) else 3
                if form == 0:  # one_of, by weight
                    calls.append({"one_of": [
                        {**_mapping(call_item(targets[k])), "weight": draw(st.integers(1, 4))},
                        {**_mapping(call_item(targets[k + 1])),
                         "weight": draw(st.integers(1, 4))}]})
                    k += 2
                elif form == 1:  # a call with a fallback
                    calls.append({**_mapping(call_item(targets[k])),
                                  "fallback": call_item(targets[k + 1])})
                    k += 2
                elif form == 2:  # a group made with one probability
                    key = draw(st.sampled_from(["parallel", "calls"]))
                    calls.append({"group": {
                        "probability": draw(st.sampled_from([0.0, 0.2, 0.5, 1.0])),
                        key: [call_item(targets[k]), call_item(targets[k + 1])]}})
                    k += 2
                elif parallel_calls and k + 1 < len(targets) and draw(st.integers(0, 3)) == 0:
                    calls.append({"parallel": [call_item(targets[k]), call_item(targets[k + 1])]})
                    k += 2
                else:
                    calls.append(call_item(targets[k]))
                    k += 1
            errors = draw(st.lists(st.sampled_from(ERRORS), unique=True, max_size=3))
            endpoints[ep] = {
                "service_time": {"exponential": _ms(draw(st.integers(1, 50)))},
                "signature": {"input": "Req", "output": "Resp", "errors": errors},
                "calls": calls,
            }
        service: dict[str, Any] = {"endpoints": endpoints,
                                   "workers": draw(st.integers(1, 4))}
        if balancers and draw(st.booleans()):
            service["load_balancer"] = draw(st.sampled_from(
                ["round_robin", "random", "least_request", "consistent_hash",
                 {"least_request": {"choices": 3}}]))
        if balancers and draw(st.integers(0, 3)) == 0:
            service["outlier_detection"] = {
                "consecutive_5xx": draw(st.integers(0, 5)),
                "consecutive_gateway_errors": draw(st.integers(0, 5)),
                "interval": _ms(draw(st.integers(100, 10_000))),
                "base_ejection_time": _ms(draw(st.integers(100, 30_000))),
                "max_ejection_percent": draw(st.sampled_from([0, 10, 34, 50, 100])),
                "always_eject_one_host": draw(st.booleans())}
        if limits and draw(st.integers(0, 2)) == 0:
            service["concurrency"] = draw(st.integers(1, 16))
        if limits and draw(st.integers(0, 3)) == 0:
            service["max_retries"] = draw(st.sampled_from([0, 1, 3, "unlimited"]))
        if limits and draw(st.integers(0, 2)) == 0:
            service["queue"] = draw(st.integers(0, 16))
        replicas = draw(st.integers(1, max_replicas))
        if explicit_placement and len(zones) > 1 and draw(st.booleans()):
            counts = draw(st.lists(st.integers(0, max_replicas), min_size=len(zones),
                                   max_size=len(zones)).filter(lambda c: sum(c) > 0))
            service["placement"] = {z: c for z, c in zip(zones, counts, strict=True) if c}
        else:
            service["replicas"] = replicas
        callees = sorted({t.split(".")[0] for t in later})
        has_callees = bool(callees)  # (a plain `callees and draw(...)` confuses mypy's context)
        if has_callees and draw(st.booleans()):
            service["depends_on"] = draw(st.lists(st.sampled_from(callees), unique=True,
                                                  max_size=2))
        services[name] = service

    entry_endpoints = [f"{names[0]}.{ep}" for ep in endpoint_names[names[0]]]
    document: dict[str, Any] = {
        "system": "generated",
        "zones": zones,
        "defaults": {"call": {"timeout": "1s"}},
        "services": services,
        "workload": [{"entry": e, "rate": f"{draw(st.integers(1, 50))}/s"}
                     for e in draw(st.lists(st.sampled_from(entry_endpoints), min_size=1,
                                            unique=True))],
    }
    if network_latency and draw(st.booleans()):
        document["network"] = {"latency": {
            "same_zone": draw(st.sampled_from([0, "0.5ms", "1ms", {"exponential": "1ms"}])),
            "cross_zone": draw(st.sampled_from([0, "2ms", "5ms", {"uniform": ["1ms", "5ms"]}])),
        }}
    if discovery and draw(st.booleans()):
        # Short delays, so that a crash is noticed within a few simulated seconds.
        document["discovery"] = {"mode": draw(st.sampled_from(["client", "server"])),
                                 "heartbeat": "1s", "ttl": _ms(draw(st.integers(1, 4)) * 1000),
                                 "refresh": _ms(draw(st.integers(1, 4)) * 1000)}
        if "zone_detection" in DiscoverySpec.model_fields:
            document["discovery"]["zone_detection"] = _ms(draw(st.integers(1, 4)) * 1000)
        readiness: dict[str, Any] = {"period": "1s", "failures": draw(st.integers(1, 3))}
        if "initial_delay" in ReadinessSpec.model_fields:
            readiness["initial_delay"] = 0
        document["orchestration"] = {"readiness": readiness}
    if all_properties:
        for item in document["workload"]:
            if draw(st.integers(0, 3)) == 0:
                item["timeout"] = _ms(draw(st.integers(50, 5000)))
    if properties:
        budget = draw(st.integers(0, 2))
        document["properties"] = [{"survives": {"failures": budget}}]
        if all_properties:
            document["properties"] += [
                {"capacity": {"failures": budget,
                              "utilization": draw(st.sampled_from(["80%", "95%", "100%"]))}},
                {"timeouts_nest": {}},
                {"staleness": {}},
            ]
    if scenarios:
        victim = draw(st.sampled_from(names))
        document["scenarios"] = {
            "crash": {"duration": "60s", "warmup": "5s",
                      "faults": [{"at": "10s", "for": "20s", "crash": f"service:{victim}"}]},
        }
    return document


def _mapping(item: Any) -> dict[str, Any]:
    """A call item as a mapping (a bare ``service.endpoint`` becomes ``{call: ...}``)."""
    return {"call": item} if isinstance(item, str) else dict(item)


def systems(**kwargs: Any) -> st.SearchStrategy[System]:
    """Valid Systems; keyword arguments as for ``spec_documents``."""
    return spec_documents(**kwargs).map(from_document)
