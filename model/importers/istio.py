"""Istio's VirtualService and DestinationRule -> call policies, scenarios and service limits.

They sit in the same files as the Kubernetes objects (``faultmesh import k8s`` and
``faultmesh import istio`` read the same streams); ``apply`` edits a draft the Kubernetes
reader made. A rule's ``host`` (short name or ``name.ns.svc.cluster.local``) names a Service.

VirtualService (first ``http`` route of each):
- ``retries.attempts`` -> ``retries`` of every call to the host (Istio's attempts are retries
  after the first try); ``retries.perTryTimeout`` -> the call's ``timeout`` (faultmesh's call
  timeout bounds each attempt); without it the route's ``timeout`` is used; ``retryOn``
  conditions are noted: faultmesh retries every failure.
- ``fault.delay`` -> a scenario with a ``latency`` fault on the host; ``fault.abort`` -> one with
  an ``errors`` fault at ``percentage`` (a delay's percentage below 100 is noted: the latency
  fault applies to every request).
DestinationRule ``trafficPolicy``:
- ``loadBalancer.simple``: ROUND_ROBIN, LEAST_REQUEST (and LEAST_CONN, its old name), RANDOM;
  ``consistentHash`` -> ``consistent_hash``.
- ``connectionPool.http.http2MaxRequests`` (in flight) -> ``concurrency`` and
  ``http1MaxPendingRequests`` -> ``queue``, each divided over the service's replicas: Envoy
  counts them per caller proxy for the whole cluster, faultmesh per instance;
  ``maxRetries`` -> ``max_retries``, kept per caller instance as Envoy keeps it per client
  sidecar (the retries one caller may have outstanding to the host at once); 0 or a value past
  faultmesh's bound is Istio's default, unlimited.
- ``outlierDetection`` -> the service's ``outlier_detection`` (kept by each caller instance, as
  each client sidecar runs its own detector): ``consecutive5xxErrors`` -> ``consecutive_5xx``,
  ``consecutiveGatewayErrors`` (and the deprecated ``consecutiveErrors``, which counted
  502/503/504) -> ``consecutive_gateway_errors``, ``interval``, ``baseEjectionTime``,
  ``maxEjectionPercent``; unset keys take Istio's defaults (5, off, 10s, 30s, 10%) and Envoy's
  ``max_ejection_time`` 300s. ``minHealthPercent`` (Envoy's panic threshold; Istio's default 0
  is what faultmesh models), ``splitExternalLocalOriginErrors`` and
  ``consecutiveLocalOriginFailures`` are noted, not modelled.
"""

from __future__ import annotations

import math
import re
from typing import Any

from faultmesh.model.importers.common import ENDPOINT, Draft, Manifest, spec_name
from faultmesh.model.spec.fields import MAX_IN_FLIGHT

KINDS = ("VirtualService", "DestinationRule", "Gateway", "ServiceEntry", "Sidecar",
         "PeerAuthentication", "AuthorizationPolicy", "EnvoyFilter", "HTTPRoute")
BALANCERS = {"ROUND_ROBIN": "round_robin", "LEAST_REQUEST": "least_request",
             "LEAST_CONN": "least_request", "RANDOM": "random"}


def _duration(value: Any) -> str | None:
    """Istio durations (``2s``, ``500ms``, ``1.5s``, ``1m``) in spec spelling."""
    if not isinstance(value, str) or not re.fullmatch(r"\d+(\.\d+)?(ms|s|m|h)", value.strip()):
        return None
    return value.strip()


def _host(value: Any, hosts: dict[str, str]) -> str | None:
    if not isinstance(value, str):
        return None
    short = value.split(".")[0].lower()
    return hosts.get(short)


def _calls_to(draft: Draft, service: str) -> list[tuple[Any, ...]]:
    """Paths of every call (in calls lists) whose target is ``service``'s endpoint."""
    paths = []
    for name, svc in (draft.document.get("services") or {}).items():
        for ep, endpoint in (svc.get("endpoints") or {}).items():
            for i, call in enumerate(endpoint.get("calls") or []):
                target = call if isinstance(call, str) else call.get("call")
                if target == f"{service}.{ENDPOINT}":
                    paths.append(("services", name, "endpoints", ep, "calls", i))
    return paths


def _set_call(draft: Draft, path: tuple[Any, ...], key: str, value: Any, why: str) -> None:
    call = draft.get(path)
    if isinstance(call, str):
        call = {"call": call}
    call[key] = value
    draft.put(path, call, draft.comments.get(path))
    note = draft.comments.get(path, "")
    draft.comments[path] = f"{note}; {why}" if note else why


def apply(draft: Draft, manifests: list[Manifest], hosts: dict[str, str]) -> None:
    """Fold the Istio objects into ``draft`` (whose services came from Kubernetes)."""
    for manifest in manifests:
        spec = manifest.data.get("spec")
        if not isinstance(spec, dict):
            continue
        if manifest.kind == "VirtualService":
            _virtual_service(draft, manifest, spec, hosts)
        elif manifest.kind == "DestinationRule":
            _destination_rule(draft, manifest, spec, hosts)
        else:
            draft.skip(f"Istio {manifest.kind}", manifest.name or "?")
    if manifests:
        draft.sources.append(f"Istio: {len(manifests)} object(s) "
                             f"({', '.join(sorted({m.kind for m in manifests}))})")


def _virtual_service(draft: Draft, manifest: Manifest, spec: dict[str, Any],
                     hosts: dict[str, str]) -> None:
    targets = {t for h in spec.get("hosts") or [] if (t := _host(h, hosts)) is not None}
    routes = [r for r in spec.get("http") or [] if isinstance(r, dict)]
    if not targets or not routes:
        return
    route = routes[0]
    if len(routes) > 1:
        file, line, column = manifest.where("spec", "http", 1)
        draft.warn(file, line, column, f"VirtualService {manifest.name!r}: only the first http "
                   "route is read (faultmesh calls do not match on paths or headers)")
    retries: dict[str, Any] = route.get("retries") or {}
    if not isinstance(retries, dict):
        retries = {}
    timeout = _duration(retries.get("perTryTimeout")) or _duration(route.get("timeout"))
    label = f"VirtualService {manifest.name}"
    for service in sorted(targets):
        for path in _calls_to(draft, service):
            if timeout is not None:
                _set_call(draft, path, "timeout", timeout, f"{label} "
                          + ("perTryTimeout" if retries.get("perTryTimeout") else "timeout"))
            if isinstance(retries.get("attempts"), int):
                _set_call(draft, path, "retries", retries["attempts"], f"{label} attempts")
        if retries.get("retryOn"):
            draft.assumptions.append(f"{label}: retryOn {retries['retryOn']!r} is read as "
                                     "'retry every failure'")
        if route.get("timeout") and retries.get("perTryTimeout"):
            draft.assumptions.append(f"{label}: the overall timeout {route['timeout']} is not "
                                     "modelled; perTryTimeout bounds each attempt")
        _fault(draft, manifest, route.get("fault"), service)


def _percentage(fault: dict[str, Any]) -> float:
    share = fault.get("percentage")
    if isinstance(share, dict) and isinstance(share.get("value"), int | float):
        return float(share["value"])
    if isinstance(fault.get("percent"), int | float):
        return float(fault["percent"])
    return 100.0


def _fault(draft: Draft, manifest: Manifest, fault: Any, service: str) -> None:
    if not isinstance(fault, dict):
        return
    faults: list[dict[str, Any]] = []
    delay, abort = fault.get("delay"), fault.get("abort")
    if isinstance(delay, dict) and _duration(delay.get("fixedDelay")):
        faults.append({"latency": {"target": service, "add": delay["fixedDelay"]}})
        if _percentage(delay) < 100:
            draft.assumptions.append(f"VirtualService {manifest.name}: the delay applies to "
                                     f"{_percentage(delay):g}% of requests upstream, to all in "
                                     "the scenario")
    if isinstance(abort, dict):
        faults.append({"errors": {"target": service, "rate": f"{_percentage(abort):g}%"}})
    if faults:
        name = spec_name(f"istio-fault-{manifest.name}")
        draft.put(("scenarios", name), {"duration": "5m", "faults": faults},
                  f"fault injection of VirtualService {manifest.name}; duration assumed")


def _destination_rule(draft: Draft, manifest: Manifest, spec: dict[str, Any],
                      hosts: dict[str, str]) -> None:
    service = _host(spec.get("host"), hosts)
    policy = spec.get("trafficPolicy")
    if service is None or not isinstance(policy, dict):
        return
    base = ("services", service)
    label = f"DestinationRule {manifest.name}"
    balancer = policy.get("loadBalancer")
    if isinstance(balancer, dict):
        if balancer.get("simple") in BALANCERS:
            draft.put((*base, "load_balancer"), BALANCERS[balancer["simple"]],
                      f"{label} loadBalancer {balancer['simple']}")
        elif "consistentHash" in balancer:
            draft.put((*base, "load_balancer"), "consistent_hash", f"{label} consistentHash")
    pool = policy.get("connectionPool")
    http = pool.get("http") if isinstance(pool, dict) else None
    replicas = draft.get((*base, "replicas"), 1)
    if isinstance(http, dict):
        for key, spec_key in (("http2MaxRequests", "concurrency"),
                              ("http1MaxPendingRequests", "queue")):
            if isinstance(http.get(key), int) and http[key] > 0:
                per_instance = max(1, math.ceil(http[key] / replicas))
                draft.put((*base, spec_key), per_instance,
                          f"{label} {key} {http[key]} over {replicas} replica(s)")
        if "maxRetries" in http:
            _max_retries(draft, http["maxRetries"], base, label)
    if isinstance(policy.get("outlierDetection"), dict):
        _outlier_detection(draft, manifest, policy["outlierDetection"], base, label)


OUTLIER_KEYS = {"consecutive5xxErrors": "consecutive_5xx",
                "consecutiveGatewayErrors": "consecutive_gateway_errors",
                "consecutiveErrors": "consecutive_gateway_errors",
                "interval": "interval", "baseEjectionTime": "base_ejection_time",
                "maxEjectionPercent": "max_ejection_percent"}
OUTLIER_NOTED = ("minHealthPercent", "splitExternalLocalOriginErrors",
                 "consecutiveLocalOriginFailures")


def _max_retries(draft: Draft, value: Any, base: tuple[Any, ...], label: str) -> None:
    """Envoy's ``max_retries``: Istio leaves 0 (unset) at its default 2^32-1, unlimited."""
    count = _count(value)
    if count is None or count == 0 or count > MAX_IN_FLIGHT:
        draft.assumptions.append(f"{label}: maxRetries {value!r} read as unlimited "
                                 "(Istio's default)")
        return
    draft.put((*base, "max_retries"), count, f"{label} maxRetries")
    draft.assumptions.append(f"{label}: maxRetries {count} -> max_retries, counted per caller "
                             "instance as Envoy counts it per client sidecar (retries "
                             "outstanding at once, not retries per request)")


def _count(value: Any) -> int | None:
    """An Istio UInt32Value: a plain integer, or ``{value: n}`` as some tools write it."""
    if isinstance(value, dict):
        value = value.get("value")
    return value if isinstance(value, int) and not isinstance(value, bool) \
        and value >= 0 else None


def _outlier_detection(draft: Draft, manifest: Manifest, rule: dict[str, Any],
                       base: tuple[Any, ...], label: str) -> None:
    out: dict[str, Any] = {}
    for key, value in rule.items():
        spec_key = OUTLIER_KEYS.get(key)
        if spec_key in ("interval", "base_ejection_time"):
            read: Any = _duration(value)
        elif spec_key == "max_ejection_percent":
            read = value if isinstance(value, int | float) and not isinstance(value, bool) \
                and 0 <= value <= 100 else None
        elif spec_key is not None:
            read = _count(value)
        elif key in OUTLIER_NOTED:
            if not value:  # 0 / false: what faultmesh models (Istio's defaults)
                continue
            draft.assumptions.append(f"{label}: outlierDetection {key} {value!r} is not "
                                     "modelled (faultmesh: no panic threshold, local-origin "
                                     "errors counted as gateway errors)")
            continue
        else:
            file, line, column = manifest.where("spec", "trafficPolicy", "outlierDetection",
                                                key)
            draft.warn(file, line, column, f"{label}: outlierDetection {key!r} is not "
                       "modelled; ignored")
            continue
        if read is None:
            file, line, column = manifest.where("spec", "trafficPolicy", "outlierDetection",
                                                key)
            draft.warn(file, line, column, f"{label}: outlierDetection {key} {value!r} is "
                       "not a value faultmesh reads; Istio's default used")
            continue
        if key == "consecutiveErrors":
            if "consecutiveGatewayErrors" in rule:
                continue  # the newer key wins
            draft.assumptions.append(f"{label}: the deprecated consecutiveErrors is read as "
                                     "consecutiveGatewayErrors (it counted 502/503/504)")
        out[spec_key] = read
    if "maxEjectionPercent" not in rule:
        out["max_ejection_percent"] = 10
    draft.put((*base, "outlier_detection"), out,
              f"{label} outlierDetection; unset keys: Istio's defaults")
    replicas = draft.get((*base, "replicas"), 1)
    percent = out.get("max_ejection_percent", 10)
    if isinstance(replicas, int) and replicas > 0 and 100.0 / replicas > percent:
        draft.assumptions.append(
            f"{label}: maxEjectionPercent {percent:g} of {replicas} replica(s) lets no host be "
            "ejected (Envoy ejects only while (ejected + 1) / hosts stays within the percent)")
