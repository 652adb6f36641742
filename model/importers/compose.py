"""Docker Compose files -> a spec draft.

- Each entry under ``services`` becomes a service. ``deploy.replicas`` (or the older
  ``scale``) gives its replicas (absent: 1, Compose's default).
- ``depends_on`` (a list, or a mapping with ``condition``) becomes ``depends_on``: faultmesh
  waits for readiness, which ``condition: service_healthy`` asks for; a dependency with
  ``service_started`` only waits for the start upstream, and its comment says so.
- ``healthcheck`` becomes the service's readiness: ``interval`` (default 30 s) is the period,
  ``retries`` (default 3) the failures, ``start_period`` (default 0) the initial delay.
- ``restart``: ``"no"`` (Compose's default) -> ``restart: never``; ``always``,
  ``unless-stopped`` and ``on-failure`` restart after 100 ms, the Docker daemon's first
  restart delay (it doubles after each restart).
- Calls: environment variables naming another service (``common.referenced_hosts``) and
  ``links`` (``svc`` or ``svc:alias``).
- Workers: ``deploy.resources.limits.cpus`` (else ``reservations.cpus``), one per whole CPU.
- Entries: services that publish ``ports`` and that no other service calls.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from faultmesh.model.importers.common import (
    ADDRESS_NAMES,
    Draft,
    Edge,
    ImportFailed,
    add_service_calls,
    expand_paths,
    finish_common,
    read_text,
    readiness_of,
    referenced_hosts,
    service_skeleton,
    spec_name,
    workers_from_cpu,
)
from faultmesh.model.spec.errors import SpecError
from faultmesh.model.spec.yaml_source import Source, read_yaml_documents

_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def compose_seconds(value: Any) -> float | None:
    """Compose durations (``1m30s``, ``10s``, ``500ms``) in seconds; None if unreadable."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


def import_compose(paths: Iterable[str | os.PathLike[str]], system: str = "imported") -> Draft:
    """Read Compose files into a draft (later files extend earlier ones, as ``-f a -f b``)."""
    draft = Draft(system)
    services: dict[str, tuple[dict[str, Any], Source]] = {}
    for file in expand_paths(paths, (".yaml", ".yml"), draft):
        sources = read_yaml_documents(read_text(file), str(file))
        for source in sources:
            draft.warnings.extend(source.errors)
            data = source.data
            if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
                line, column = source.locate(())
                raise ImportFailed([SpecError(str(file), line, column, "",
                                              "not a Compose file: no 'services' mapping")])
            for name, body in data["services"].items():
                if not isinstance(body, dict):
                    line, column = source.locate(("services", name))
                    draft.warn(str(file), line, column, f"service {name!r} is not a mapping; "
                               "skipped")
                    continue
                services[spec_name(str(name))] = (body, source)
            for key in data:
                if key not in ("services", "version", "name"):
                    draft.skip(f"top-level '{key}'", str(file))
        draft.sources.append(f"{file}: Docker Compose services")
    if not services:
        raise ImportFailed([SpecError(str(p), 0, 0, "", "no Compose services found")
                            for p in paths])
    hosts = {name.lower(): name for name in services}
    for name, (body, _) in services.items():
        for alias in (body.get("hostname"), body.get("container_name")):
            if isinstance(alias, str):
                hosts.setdefault(alias.lower(), name)
    edges: list[Edge] = []
    for name, (body, source) in services.items():
        _service(draft, name, body, hosts)
        edges.extend(_edges(draft, name, body, source, hosts))
    add_service_calls(draft, edges)
    called = {e.callee for e in edges}
    entries = [(name, "client") for name, (body, _) in services.items()
               if body.get("ports") and name not in called]
    finish_common(draft, entries, "services that publish ports and that no service calls")
    if edges:
        draft.assumptions.append("calls: each service has one endpoint ('serve') that calls "
                                 "every service its environment or links name, in name order")
    draft.assumptions.append("service times: 1 ms exponential everywhere (not in Compose)")
    return draft


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _service(draft: Draft, name: str, body: dict[str, Any], hosts: dict[str, str]) -> None:
    service_skeleton(draft, name)
    base = ("services", name)
    deploy = _mapping(body.get("deploy"))
    replicas = deploy.get("replicas", body.get("scale"))
    if isinstance(replicas, int) and replicas >= 1:
        draft.put((*base, "replicas"), replicas)
    else:
        draft.assume((*base, "replicas"), 1, "Compose runs one container")
    resources = _mapping(deploy.get("resources"))
    for part in ("limits", "reservations"):
        cpus = _mapping(resources.get(part)).get("cpus")
        workers = workers_from_cpu(cpus)
        if workers is not None:
            draft.put((*base, "workers"), workers, f"one per whole CPU of {part}.cpus {cpus}")
            break
    depends = body.get("depends_on")
    names: list[tuple[str, str | None]] = []
    if isinstance(depends, list):
        names = [(str(d), None) for d in depends]
    elif isinstance(depends, dict):
        names = [(str(d), (c or {}).get("condition") if isinstance(c, dict) else None)
                 for d, c in depends.items()]
    known = [(hosts[d.lower()], c) for d, c in names if d.lower() in hosts]
    if known:
        draft.put((*base, "depends_on"), [d for d, _ in known])
        started = [d for d, c in known if c in (None, "service_started")]
        if started:
            draft.comments[(*base, "depends_on")] = (
                f"{', '.join(started)}: Compose waits for the start only; faultmesh for "
                "readiness")
    health = body.get("healthcheck")
    if isinstance(health, dict) and not health.get("disable"):
        draft.put((*base, "readiness"),
                  readiness_of(compose_seconds(health.get("interval")) or 30,
                               health.get("retries", 3),
                               compose_seconds(health.get("start_period")) or 0),
                  "healthcheck (Compose defaults for fields it leaves out)")
    restart = body.get("restart", _mapping(deploy.get("restart_policy")).get("condition"))
    if restart in (None, "no", "none", False):
        draft.put((*base, "restart"), "never",
                  "restart: no" if restart is not None else "Compose's default: no restart")
    else:
        draft.put((*base, "restart"), {"delay": "100ms"},
                  f"restart: {restart}; the Docker daemon's first restart delay")


def _edges(draft: Draft, name: str, body: dict[str, Any], source: Source,
           hosts: dict[str, str]) -> list[Edge]:
    edges: list[Edge] = []
    environment = body.get("environment")
    pairs: list[tuple[str, str, tuple[Any, ...]]] = []
    if isinstance(environment, dict):
        pairs = [(str(k), str(v), (k,)) for k, v in environment.items() if v is not None]
    elif isinstance(environment, list):
        pairs = [(str(item).split("=", 1)[0], str(item).split("=", 1)[1], (i,))
                 for i, item in enumerate(environment) if "=" in str(item)]
    for var, value, at in pairs:
        for host in referenced_hosts(var, value):
            callee = hosts.get(host)
            if callee is not None and callee != name:
                edges.append(Edge(name, callee, f"environment {var}={value}"))
            elif callee is None and var.upper().endswith(ADDRESS_NAMES):
                line, column = source.locate(("services", name, "environment", *at))
                draft.warn(source.file, line, column, f"{name}: {var} names {host!r}, which is "
                           "not a service in the input; that call is not modelled")
    for link in body.get("links") or []:
        target = str(link).split(":", 1)[0].lower()
        if target in hosts and hosts[target] != name:
            edges.append(Edge(name, hosts[target], f"links: {link}"))
    return edges
