"""Call sites: every call of a System with its place in the spec, and the walks over them.

A *call site* is one call as written in the spec: the calling endpoint, the step it is in and,
inside a ``parallel`` group, its member index. Its ``key`` gives the spec key path of one of its
fields, the form a ``Repair`` uses for its changes::

    services.frontend.endpoints.home.calls[0].timeout
    services.cart.endpoints.GetCart.calls[2].parallel[1].retries

``model.spec.edit.apply_changes`` writes such changes into spec data
(``model.spec.to_document``), so a repair can be applied and the result loaded again with
``model.spec.from_document``.

``path_from_entries`` finds a shortest chain of calls from a workload entry to an endpoint, the
prefix a counterexample's chain starts with so a person sees how a request gets there.

A call made with probability 0 never happens; ``call_sites`` leaves such calls out unless asked.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from faultmesh.model.graph import components
from faultmesh.model.system import (
    Call,
    Fallback,
    FrozenMap,
    Group,
    OneOf,
    ParallelCalls,
    Step,
    System,
    step_calls,
)


@dataclass(frozen=True, slots=True)
class CallSite:
    """One call of ``caller`` (``service.endpoint``), located by step and parallel member."""

    caller: str
    step: int
    member: int | None
    call: Call
    # Where the member sits in its step's spec (``.one_of[1]``, ``.fallback``); None: the
    # parallel member ``.parallel[member]`` (or the step itself when ``member`` is None).
    suffix: str | None = None

    @property
    def callee(self) -> str:
        return self.call.target

    @property
    def caller_service(self) -> str:
        return self.caller.partition(".")[0]

    def key(self, field: str) -> str:
        """The spec key path of one field of this call, e.g. ``...calls[0].timeout``."""
        service, _, endpoint = self.caller.partition(".")
        path = f"services.{service}.endpoints.{endpoint}.calls[{self.step}]"
        if self.suffix is not None:
            path += self.suffix
        elif self.member is not None:
            path += f".parallel[{self.member}]"
        return f"{path}.{field}"

    def describe(self) -> str:
        """``frontend.home -> cart.GetCart`` (with the position when the pair repeats)."""
        return f"{self.caller} -> {self.callee}"


def call_sites(system: System, *, include_never: bool = False) -> Iterator[CallSite]:
    """Every call of every endpoint, in spec order (probability-0 calls only if asked).

    Found once per services map (the checks of one ``verify`` walk them a dozen times, and at
    100,000 services each walk builds 300,000 sites): a System is immutable, so its sites
    are too."""
    key = (id(system.services), include_never)
    hit = _SITES.get(key)
    if hit is None or hit[0]() is not system.services:
        if len(_SITES) > 8:
            _SITES.clear()
        hit = (weakref.ref(system.services), tuple(_walk_sites(system, include_never)))
        _SITES[key] = hit
    return iter(hit[1])


# The sites of the last few services maps, keyed by the map's id and ``include_never`` (held
# weakly: a map whose id is reused is told apart by its reference).
_SITES: dict[tuple[int, bool], tuple[weakref.ref[FrozenMap], tuple[CallSite, ...]]] = {}


def _walk_sites(system: System, include_never: bool) -> Iterator[CallSite]:
    for service_name, service in system.services.items():
        for endpoint_name, endpoint in service.endpoints.items():
            caller = f"{service_name}.{endpoint_name}"
            for step_index, step in enumerate(endpoint.steps):
                for member_index, call in enumerate(step_calls(step)):
                    if call.probability <= 0 and not include_never:
                        continue
                    member = None if isinstance(step, Call) else member_index
                    yield CallSite(caller, step_index, member, call,
                                   member_suffix(step, member_index))


def member_suffix(step: Step, index: int) -> str | None:
    """The spec path of member ``index`` of a step, after ``calls[i]`` (None: the parallel
    form's ``.parallel[index]``, or the step itself for a plain call)."""
    if isinstance(step, OneOf):
        return f".one_of[{index}]"
    if isinstance(step, Group):
        return f".group.{'parallel' if step.parallel else 'calls'}[{index}]"
    if isinstance(step, Fallback):
        return ".fallback" if index else ""
    return None


def with_call_fields(system: System,
                     fields: Iterable[tuple[CallSite, Mapping[str, Any]]]) -> System:
    """The System with each site's call given new field values (``Call`` fields, e.g.
    ``{"retries": 1, "circuit_breaker": None}``): what writing the same changes into the spec
    and loading it again gives, without the round trip (at 100,000 services a repair touches
    hundreds of thousands of keys, and dumping, editing and reloading the whole spec costs
    more than the check)."""
    by_endpoint: dict[str, dict[int, dict[int, Mapping[str, Any]]]] = {}
    # (Pairs, not a mapping: hashing a site hashes its whole call, policies and all.)
    for site, values in fields:
        member = 0 if site.member is None else site.member
        by_endpoint.setdefault(site.caller, {}).setdefault(site.step, {})[member] = values
    services = dict(system.services)
    for caller, steps in by_endpoint.items():
        service_name, _, endpoint_name = caller.partition(".")
        service = services[service_name]
        endpoint = service.endpoints[endpoint_name]
        new_steps = list(endpoint.steps)
        for index, members in steps.items():
            new_steps[index] = _step_with(new_steps[index], members)
        endpoints = FrozenMap({**service.endpoints,
                               endpoint_name: replace(endpoint, steps=tuple(new_steps))})
        services[service_name] = replace(service, endpoints=endpoints)
    return replace(system, services=FrozenMap(services))


def _step_with(step: Step, members: Mapping[int, Mapping[str, Any]]) -> Step:
    """One step with its members ``{index: field values}`` changed."""
    if isinstance(step, Call):
        return replace(step, **members[0])
    if isinstance(step, Fallback):
        return replace(step, primary=replace(step.primary, **members.get(0, {})),
                       fallback=replace(step.fallback, **members.get(1, {})))
    calls = tuple(replace(c, **members[i]) if i in members else c
                  for i, c in enumerate(step.calls))
    assert isinstance(step, ParallelCalls | OneOf | Group)
    return replace(step, calls=calls)


def endpoints(system: System) -> list[str]:
    """Every ``service.endpoint`` of the System, in spec order."""
    return [f"{s}.{e}" for s, service in system.services.items() for e in service.endpoints]


def entries_or_roots(system: System, sites: Iterable[CallSite]) -> list[str]:
    """The workload entries; without a workload, every endpoint no call reaches."""
    if system.workload:
        return list(system.entries)
    called = {site.callee for site in sites}
    return [e for e in endpoints(system) if e not in called]


def path_from_entries(
    successors: Mapping[str, Iterable[str]], entries: Iterable[str], target: str
) -> list[str] | None:
    """A shortest chain ``[entry, ..., target]`` over ``successors``; None if none reaches."""
    parent: dict[str, str] = {}
    queue: deque[str] = deque()
    for entry in entries:
        if entry not in parent:
            parent[entry] = entry
            queue.append(entry)
    while queue:
        node = queue.popleft()
        if node == target:
            path = [node]
            while parent[path[-1]] != path[-1]:
                path.append(parent[path[-1]])
            return path[::-1]
        for nxt in successors.get(node, ()):
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return None


def shortest_cycle(successors: Mapping[str, Iterable[str]],
                   order: Iterable[str]) -> list[str] | None:
    """A shortest directed cycle ``[v0, v1, ..., v0]`` (first in ``order`` among the shortest).

    A cycle lies inside one strongly connected component, so only nodes of components with a
    cycle are searched, each by breadth-first search within its component (the shortest cycle
    through ``v`` is a shortest path from ``v`` back to ``v``). Acyclic graphs cost one
    linear pass; the quadratic search only runs over the cyclic parts.
    """
    order = list(order)
    out = {u: list(dict.fromkeys(vs)) for u, vs in successors.items()}
    component: dict[str, int] = {}
    for index, members in enumerate(components(out, order)):
        if len(members) > 1 or members[0] in out.get(members[0], ()):
            component.update(dict.fromkeys(members, index))
    best: list[str] | None = None
    for start in order:
        if start not in component:
            continue
        home = component[start]
        parent: dict[str, str] = {}
        depth = {start: 0}
        queue: deque[str] = deque([start])
        found: str | None = None
        while queue and found is None:
            node = queue.popleft()
            if best is not None and depth[node] + 1 >= len(best) - 1:
                break
            for nxt in out.get(node, ()):
                if nxt == start:
                    found = node
                    break
                if nxt not in depth and component.get(nxt) == home:
                    depth[nxt] = depth[node] + 1
                    parent[nxt] = node
                    queue.append(nxt)
        if found is None:
            continue
        path = [found]
        while path[-1] != start:
            path.append(parent[path[-1]])
        cycle = [*path[::-1], start]
        if best is None or len(cycle) < len(best):
            best = cycle
    return best


def topological_order(nodes: Iterable[str],
                      out: Mapping[str, Iterable[CallSite]]) -> list[str] | None:
    """Callers before callees over the ``caller -> sites`` map; None when there is a cycle.

    Deterministic: ties are taken in reverse name order, so reports do not depend on hashing.
    """
    indegree = dict.fromkeys(nodes, 0)
    for node in indegree:
        for site in out.get(node, ()):
            indegree[site.callee] += 1
    ready = sorted(n for n, d in indegree.items() if d == 0)
    order = []
    while ready:
        node = ready.pop()
        order.append(node)
        for site in out.get(node, ()):
            indegree[site.callee] -= 1
            if indegree[site.callee] == 0:
                ready.append(site.callee)
    return order if len(order) == len(indegree) else None


def successors_of(sites: Iterable[CallSite],
                  keep: Callable[[CallSite], bool] = lambda site: True) -> dict[str, list[str]]:
    """``caller -> [callee, ...]`` (each callee once, in spec order) over the kept sites."""
    out: dict[str, list[str]] = {}
    for site in sites:
        if keep(site):
            targets = out.setdefault(site.caller, [])
            if site.callee not in targets:
                targets.append(site.callee)
    return out


__all__ = ["CallSite", "call_sites", "endpoints", "entries_or_roots", "path_from_entries",
           "shortest_cycle", "successors_of", "topological_order"]
