"""Kubernetes manifests (and the Istio kinds in them) -> a spec draft.

Reads one or many files or directories of YAML: multi-document streams, ``List`` kinds, and
what Kustomize (``kustomize build``) and Helm (``helm template``) print, which is plain YAML.

- Workloads (Deployment, StatefulSet, DaemonSet, ReplicaSet) become services, named after the
  workload. ``replicas`` is read (absent: 1, the Kubernetes default); a DaemonSet runs one pod
  per node, and the node count is not in the manifests (assumed 1).
- A Service is matched to the workload whose pod labels its ``selector`` selects; a call that
  names the Service (or any other Service selecting the same pods) reaches that workload.
- Calls come from the containers' environment variables (``common.referenced_hosts``).
  A workload that no Service selects but that calls others is a client (Online Boutique's
  load generator): it becomes a workload ``source`` sending to the services it calls.
- Zones: ``topologySpreadConstraints`` on ``topology.kubernetes.io/zone`` spread replicas over
  the zones (their names are not in the manifests: three zones are assumed); node affinity
  ``In`` a list of zones places the replicas over those zones.
- The first container's ``readinessProbe`` gives the service's readiness (``periodSeconds``
  default 10, ``failureThreshold`` default 3, ``initialDelaySeconds`` default 0);
  ``restartPolicy: Never`` gives ``restart: never``; otherwise restarts follow
  CrashLoopBackOff's first delay, 10 s.
- Workers: one per whole CPU of the first container's CPU limit (else its request), at
  least 1 (``common.workers_from_cpu``).
- Istio kinds (VirtualService, DestinationRule) are handed to ``importers.istio``; other kinds
  are listed in the header as skipped, with a warning each.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from faultmesh.model.importers import istio
from faultmesh.model.importers.common import (
    ADDRESS_NAMES,
    Draft,
    Edge,
    ImportFailed,
    Manifest,
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

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")
# Kinds that hold nothing the spec models; listed as skipped without a warning each.
QUIET_KINDS = ("Namespace", "ServiceAccount", "ConfigMap", "Secret", "PersistentVolume",
               "PersistentVolumeClaim", "Role", "RoleBinding", "ClusterRole",
               "ClusterRoleBinding", "NetworkPolicy", "PodDisruptionBudget", "Ingress")
ZONE_KEYS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
ASSUMED_ZONES = ["zone-a", "zone-b", "zone-c"]


@dataclass
class Workload:
    name: str
    manifest: Manifest
    pod: dict[str, Any]
    labels: dict[str, str]
    services: list[str] = field(default_factory=list)  # Service names selecting it


def read_manifests(paths: Iterable[str | os.PathLike[str]], draft: Draft) -> list[Manifest]:
    """Every object in the files, ``List`` kinds unpacked; unusable YAML raises SpecErrors."""
    manifests: list[Manifest] = []
    for file in expand_paths(paths, (".yaml", ".yml", ".json"), draft):
        sources = read_yaml_documents(read_text(file), str(file))
        draft.sources.append(f"{file}: {len(sources)} YAML document(s)")
        for source in sources:
            for error in source.errors:
                draft.warnings.append(error)
            manifests.extend(_objects(source, source.data, (), draft))
    return manifests


def _objects(source: Source, data: Any, path: tuple[Any, ...], draft: Draft) -> list[Manifest]:
    if not isinstance(data, dict) or "kind" not in data:
        line, column = source.locate(path)
        draft.warn(source.file, line, column, "not a Kubernetes object (no 'kind'); skipped")
        return []
    if str(data["kind"]).endswith("List") and isinstance(data.get("items"), list):
        out: list[Manifest] = []
        for i, item in enumerate(data["items"]):
            out.extend(_objects(source, item, (*path, "items", i), draft))
        return out
    return [Manifest(data, source, path)]


def _pod_spec(manifest: Manifest) -> tuple[dict[str, Any], dict[str, str]] | None:
    spec = manifest.data.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    pod = template.get("spec") if isinstance(template, dict) else None
    if not isinstance(pod, dict):
        return None
    meta = template.get("metadata") if isinstance(template, dict) else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return pod, {str(k): str(v) for k, v in (labels or {}).items()}


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in pod.get("containers") or [] if isinstance(c, dict)]


def import_k8s(paths: Iterable[str | os.PathLike[str]], system: str = "imported") -> Draft:
    """Read manifests into a draft (see the module docstring for what is read how)."""
    draft = Draft(system)
    manifests = read_manifests(paths, draft)
    workloads: dict[str, Workload] = {}
    k8s_services: list[Manifest] = []
    mesh: list[Manifest] = []
    for manifest in manifests:
        kind = manifest.kind
        if kind in WORKLOAD_KINDS:
            shape = _pod_spec(manifest)
            if shape is None or not manifest.name:
                file, line, column = manifest.where("spec")
                draft.warn(file, line, column, f"{kind} {manifest.name!r} has no pod template; "
                           "skipped")
                continue
            name = spec_name(manifest.name)
            if name in workloads:
                file, line, column = manifest.where("metadata", "name")
                draft.warn(file, line, column, f"a second workload named {name!r}; skipped")
                continue
            workloads[name] = Workload(name, manifest, *shape)
        elif kind == "Service":
            k8s_services.append(manifest)
        elif kind in istio.KINDS:
            mesh.append(manifest)
        else:
            draft.skip(kind or "(no kind)", manifest.name or "?")
            if kind not in QUIET_KINDS:
                file, line, column = manifest.where("kind")
                draft.warn(file, line, column, f"kind {kind!r} is not modelled; skipped")
    if not workloads:
        where = manifests[0].where() if manifests else ("<input>", 0, 0)
        skipped = ", ".join(sorted(draft.skipped)) or "none"
        raise_no_services(where, "no Deployment, StatefulSet, DaemonSet or ReplicaSet found "
                          f"(kinds skipped: {skipped})")
    hosts = _match_services(k8s_services, workloads, draft)
    unknown: list[tuple[tuple[str, int, int], str, str]] = []
    edges = _edges(workloads, hosts, unknown)
    warn_unknown_hosts(draft, unknown)
    clients = {w.name for w in workloads.values() if not w.services
               and any(e.caller == w.name for e in edges)}
    for workload in workloads.values():
        if workload.name not in clients:
            _service(draft, workload)
    add_service_calls(draft, [e for e in edges if e.caller not in clients])
    _zones(draft, [w for w in workloads.values() if w.name not in clients])
    draft.assume(("orchestration", "restart"), {"delay": "10s"},
                 "CrashLoopBackOff's first back-off is 10 s")
    draft.assume(("discovery", "mode"), "server",
                 "Services route through kube-proxy, which always has the fresh view")
    entries = [(e.callee, e.caller) for e in edges if e.caller in clients]
    if not entries:
        entries = [(name, "client") for name in _exposed(k8s_services, workloads)]
    finish_common(draft, sorted(set(entries)),
                  "the services that clients without a Service call" if clients else
                  "the workloads behind LoadBalancer/NodePort Services")
    if edges:
        draft.assumptions.append(
            "calls: each service has one endpoint ('serve') that calls every service its "
            "environment variables name, in name order, sequentially and always")
    istio.apply(draft, mesh, hosts)
    draft.assumptions.append("service times: 1 ms exponential everywhere (not in manifests)")
    return draft


def raise_no_services(where: tuple[str, int, int], message: str) -> None:
    raise ImportFailed([SpecError(where[0], where[1], where[2], "", message)])


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(str(k)) == str(v) for k, v in selector.items())


def _match_services(services: list[Manifest], workloads: dict[str, Workload],
                    draft: Draft) -> dict[str, str]:
    """Host name -> workload (service) name, from Services' selectors and workload names."""
    hosts = {name: name for name in workloads}
    for manifest in services:
        spec = manifest.data.get("spec")
        selector = spec.get("selector") if isinstance(spec, dict) else None
        chosen = [w for w in workloads.values()
                  if isinstance(selector, dict) and _selects(selector, w.labels)]
        if not chosen:
            file, line, column = manifest.where("spec")
            draft.warn(file, line, column, f"Service {manifest.name!r} selects no workload in "
                       "the input; calls to it are not modelled")
            continue
        target = chosen[0]
        target.services.append(manifest.name)
        hosts[manifest.name.lower()] = target.name
    return hosts


def _edges(workloads: dict[str, Workload], hosts: dict[str, str],
           unknown: list[tuple[tuple[str, int, int], str, str]]) -> list[Edge]:
    edges: list[Edge] = []
    for workload in workloads.values():
        for ci, container in enumerate(_containers(workload.pod)):
            for vi, var in enumerate(container.get("env") or []):
                if not isinstance(var, dict) or not isinstance(var.get("value"), str):
                    continue
                name, value = str(var.get("name", "")), var["value"]
                for host in referenced_hosts(name, value):
                    callee = hosts.get(host)
                    if callee is not None and callee != workload.name:
                        edges.append(Edge(workload.name, callee, f"env {name}={value}"))
                    elif callee is None and name.upper().endswith(ADDRESS_NAMES):
                        where = workload.manifest.where("spec", "template", "spec", "containers",
                                                        ci, "env", vi, "value")
                        unknown.append((where, f"{workload.name}: {name}", host))
    return edges


def warn_unknown_hosts(draft: Draft,
                       unknown: list[tuple[tuple[str, int, int], str, str]]) -> None:
    for (file, line, column), name, host in unknown:
        draft.warn(file, line, column, f"{name} names {host!r}, which is not "
                   "a service in the input; that call is not modelled")


def _exposed(services: list[Manifest], workloads: dict[str, Workload]) -> list[str]:
    out = []
    for manifest in services:
        spec = manifest.data.get("spec")
        if isinstance(spec, dict) and spec.get("type") in ("LoadBalancer", "NodePort"):
            for w in workloads.values():
                if manifest.name in w.services:
                    out.append(w.name)
    return out


def _service(draft: Draft, workload: Workload) -> None:
    name, manifest, pod = workload.name, workload.manifest, workload.pod
    service_skeleton(draft, name)
    base = ("services", name)
    spec = manifest.data.get("spec") or {}
    if manifest.kind == "DaemonSet":
        draft.assume((*base, "replicas"), 1, "a DaemonSet runs one per node; nodes unknown")
    elif isinstance(spec.get("replicas"), int) and spec["replicas"] >= 1:
        draft.put((*base, "replicas"), spec["replicas"])
    elif spec.get("replicas") == 0:
        file, line, column = manifest.where("spec", "replicas")
        draft.warn(file, line, column, f"{name} is scaled to 0 replicas; modelled with 1")
        draft.assume((*base, "replicas"), 1, "scaled to 0 upstream")
    else:
        draft.assume((*base, "replicas"), 1, "Kubernetes' default")
    containers = _containers(pod)
    main = containers[0] if containers else {}
    resources: dict[str, Any] = main.get("resources") or {}
    if not isinstance(resources, dict):
        resources = {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    cpu = limits.get("cpu") if isinstance(limits, dict) else None
    rule = "limit"
    if cpu is None and isinstance(requests, dict):
        cpu, rule = requests.get("cpu"), "request"
    workers = workers_from_cpu(cpu)
    if workers is not None:
        draft.put((*base, "workers"), workers, f"one per whole CPU of the CPU {rule} {cpu}")
    probe = main.get("readinessProbe")
    if isinstance(probe, dict):
        readiness = readiness_of(probe.get("periodSeconds", 10), probe.get("failureThreshold", 3),
                                 probe.get("initialDelaySeconds", 0))
        draft.put((*base, "readiness"), readiness, "readinessProbe (Kubernetes defaults for "
                  "fields it leaves out)")
    if pod.get("restartPolicy") == "Never":
        draft.put((*base, "restart"), "never", "restartPolicy: Never")


def _zone_choice(pod: dict[str, Any]) -> tuple[str, list[str]] | None:
    """('spread', []) or ('affinity', zones) when the pod spec places replicas by zone."""
    for constraint in pod.get("topologySpreadConstraints") or []:
        if isinstance(constraint, dict) and constraint.get("topologyKey") in ZONE_KEYS:
            return "spread", []
    affinity = ((pod.get("affinity") or {}).get("nodeAffinity") or {})
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    for term in required.get("nodeSelectorTerms") or []:
        for expression in (term or {}).get("matchExpressions") or []:
            if (isinstance(expression, dict) and expression.get("key") in ZONE_KEYS
                    and expression.get("operator") == "In"):
                return "affinity", [spec_name(str(z)) for z in expression.get("values") or []]
    selector = pod.get("nodeSelector") or {}
    for key in ZONE_KEYS:
        if isinstance(selector, dict) and key in selector:
            return "affinity", [spec_name(str(selector[key]))]
    return None


def _zones(draft: Draft, workloads: list[Workload]) -> None:
    choices = {w.name: c for w in workloads if (c := _zone_choice(w.pod)) is not None}
    if not choices:
        draft.assumptions.append("zones: no topology spread constraint or zone affinity: one "
                                 "zone")
        return
    named = sorted({z for kind, zones in choices.values() for z in zones})
    zones = named or list(ASSUMED_ZONES)
    if not named:
        draft.assume(("zones",), zones, "spread over zones whose names the manifests leave out")
    else:
        draft.put(("zones",), zones, "from node affinity to zones")
    draft.assumptions.append("zones: replicas with a zone spread constraint are placed "
                             "round-robin over the zones; others too (their zone is unknown)")
    for name, (kind, listed) in choices.items():
        if kind == "affinity" and listed:
            replicas = draft.get(("services", name, "replicas"), 1)
            placement = {z: 0 for z in listed}
            for i in range(replicas):
                placement[listed[i % len(listed)]] += 1
            draft.put(("services", name, "placement"), {z: n for z, n in placement.items() if n},
                      "node affinity to these zones")
            draft.document["services"][name].pop("replicas", None)
            draft.comments.pop(("services", name, "replicas"), None)
