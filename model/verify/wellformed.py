"""Always-on well-formedness: a startup order, no synchronous call cycles, errors that compose.

Three questions every spec is asked, each its own checker:

``startup_order``
    ``depends_on`` must have a topological order, or some services can never all become ready.
    Counterexample: a shortest dependency cycle (``chain`` closes on its first service). Repair:
    the fewest ``depends_on`` entries to drop so that no cycle is left (a minimum feedback arc
    set, found with z3 Optimize over ranks).

``call_cycles``
    No cycle of synchronous calls between *endpoints*. The nodes are ``service.endpoint``, not
    services: DeathStarBench's socialNetwork has user -> social-graph (RegisterUser ->
    InsertUser) and social-graph -> user (FollowWithUsername -> GetUserId), a service-level
    cycle that no request can follow round, and it must pass. Asynchronous calls are not
    awaited, so they close no cycle; optional calls are awaited, so they do; calls made with
    probability 0 never happen. Counterexample: a shortest endpoint cycle. Repair: the fewest
    calls to make asynchronous (or remove) so that no cycle is left.

``errors_covered`` (the service algebra)
    An endpoint's signature ``handle(input) -> Result[output, errors]`` composes with those of
    its callees. The errors an endpoint can *surface* are

        surface(e) = declared(e)  ∪  ⋃ { surface(callee(c)) ∪ transport(c) : c required in e }

    where a *required* call is synchronous, not optional and made with probability > 0 (an
    optional call's failure is swallowed, an asynchronous call is not awaited) and
    ``transport(c) = {Unavailable, DeadlineExceeded}``: every call has a finite timeout (so it
    can end in ``DeadlineExceeded``) and its callee can have no live instance, or be cut off by
    an open circuit breaker (``Unavailable``). Retries do not change the set: the last attempt's
    error is the one surfaced.

    Rule: an endpoint that declares at least one error is *typed* and must declare every error
    its required calls can surface; an endpoint declaring none is *untyped* and is not checked
    (it makes no claim), though errors still pass through it to its callers. So a typed
    endpoint with any required call must declare ``Unavailable`` and ``DeadlineExceeded``.
    Counterexample: the chain from an entry through the offending endpoint down to where the
    error starts, and the error. Repair: declare the missing errors (every offending endpoint).

The graph questions are answered by graph search (that is what they are); z3 earns its place
in the repairs, where "fewest edits that remove every cycle" is an optimisation problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import z3

from faultmesh.model import properties as P
from faultmesh.model.graph import component_index
from faultmesh.model.system import System
from faultmesh.model.units import format_duration
from faultmesh.model.verify import checker
from faultmesh.model.verify.deadline import Deadline, out_of_time
from faultmesh.model.verify.sites import (
    CallSite,
    call_sites,
    endpoints,
    path_from_entries,
    shortest_cycle,
    successors_of,
)
from faultmesh.model.verify.verdict import Counterexample, Repair, Verdict
from faultmesh.model.verify.wording import plural

TRANSPORT_ERRORS = ("Unavailable", "DeadlineExceeded")


def min_feedback_edges(edges: Sequence[tuple[str, str]], deadline: Deadline,
                       ) -> list[int] | None:
    """Indices of the fewest edges whose removal leaves the graph acyclic (None: timed out).

    z3 Optimize: each kept edge u -> v needs rank(u) > rank(v); a graph is acyclic iff such
    ranks exist. Only edges inside strongly connected components can be on a cycle, so callers
    pass just those.
    """
    if not edges:
        return []
    opt = z3.Optimize()
    opt.set("timeout", deadline.z3_ms())
    nodes = sorted({n for edge in edges for n in edge})
    rank = {n: z3.Int(f"rank_{i}") for i, n in enumerate(nodes)}
    keep = [z3.Bool(f"keep_{i}") for i in range(len(edges))]
    for k, (u, v) in zip(keep, edges, strict=True):
        opt.add(z3.Implies(k, rank[u] > rank[v]))
        opt.add_soft(k)
    if opt.check() != z3.sat:
        return None
    model = opt.model()
    return [i for i, k in enumerate(keep) if not z3.is_true(model.eval(k, model_completion=True))]


def _cyclic_edges(successors: dict[str, list[str]], edges: Iterable[tuple[str, str]],
                  ) -> list[int]:
    """Indices of the edges that lie on some cycle (both ends in one strong component)."""
    edges = list(edges)
    component = component_index(successors, (n for edge in edges for n in edge))
    return [i for i, (u, v) in enumerate(edges) if component[u] == component[v]]


# --- startup_order ----------------------------------------------------------------------------


@checker("startup_order")
def check_startup_order(system: System, prop: P.Property, deadline: Deadline) -> Verdict:
    if deadline.expired():
        return out_of_time(prop, deadline)
    successors = {name: list(s.depends_on) for name, s in system.services.items()}
    cycle = shortest_cycle(successors, system.services)
    if cycle is None:
        return Verdict(prop.name, prop.kind, "holds",
                       f"depends_on has a startup order ({len(system.services)} services)")
    edges = [(name, dep) for name, deps in successors.items() for dep in deps]
    on_cycles = _cyclic_edges(successors, edges)
    dropped = min_feedback_edges([edges[i] for i in on_cycles], deadline)
    repair = None
    if dropped is not None:
        removed = [edges[on_cycles[i]] for i in dropped]
        changes: dict[str, object] = {}
        for service in dict.fromkeys(s for s, _ in removed):
            gone = {d for s, d in removed if s == service}
            changes[f"services.{service}.depends_on"] = [
                d for d in system.services[service].depends_on if d not in gone]
        words = ", ".join(f"{d} from {s}'s depends_on" for s, d in removed)
        repair = Repair(f"drop {words}", changes)
    loop = " -> ".join(cycle)
    return Verdict(
        prop.name, prop.kind, "violated",
        f"depends_on cycle {loop}: none of these services can start before the others",
        Counterexample(chain=tuple(cycle)), repair)


# --- call_cycles ------------------------------------------------------------------------------


def _awaited(site: CallSite) -> bool:
    return not site.call.asynchronous


@checker("call_cycles")
def check_call_cycles(system: System, prop: P.Property, deadline: Deadline) -> Verdict:
    if deadline.expired():
        return out_of_time(prop, deadline)
    sites = [s for s in call_sites(system) if _awaited(s)]
    successors = successors_of(sites)
    cycle = shortest_cycle(successors, endpoints(system))
    if cycle is None:
        return Verdict(prop.name, prop.kind, "holds",
                       "no synchronous call cycle between endpoints")
    pairs = list(dict.fromkeys((s.caller, s.callee) for s in sites))
    on_cycles = _cyclic_edges(successors, pairs)
    cut = min_feedback_edges([pairs[i] for i in on_cycles], deadline)
    repair = None
    if cut is not None:
        removed = {pairs[on_cycles[i]] for i in cut}
        changes = {s.key("async"): True for s in sites if (s.caller, s.callee) in removed}
        words = ", ".join(f"{u} -> {v}" for u, v in sorted(removed))
        repair = Repair(f"make the call{'s' if len(removed) > 1 else ''} {words} asynchronous "
                        "(or remove it)", changes)
    loop = " -> ".join(cycle)
    services = dict.fromkeys(e.partition(".")[0] for e in cycle)
    where = "within " + next(iter(services)) if len(services) == 1 else \
        "between " + ", ".join(services)
    return Verdict(
        prop.name, prop.kind, "violated",
        f"synchronous call cycle {loop} ({where}): a request can wait on itself until timeouts "
        "cut it", Counterexample(chain=tuple(cycle)), repair)


# --- errors_covered ---------------------------------------------------------------------------


def is_required(site: CallSite) -> bool:
    """Does a failure of this call fail the caller? (``Call.required``: the one rule)."""
    return site.call.required


def surfaces(system: System) -> dict[str, set[str]]:
    """The errors each endpoint can surface (least fixpoint; terminates on cycles too)."""
    sites = [s for s in call_sites(system) if is_required(s)]
    surface = {e: set(system.endpoint(e).signature.errors) for e in endpoints(system)}
    callers: dict[str, list[CallSite]] = {}
    for site in sites:
        callers.setdefault(site.callee, []).append(site)
        surface[site.caller].update(TRANSPORT_ERRORS)
    work = list(surface)
    while work:
        callee = work.pop()
        for site in callers.get(callee, ()):
            before = len(surface[site.caller])
            surface[site.caller] |= surface[callee]
            if len(surface[site.caller]) != before:
                work.append(site.caller)
    return surface


@dataclass(frozen=True)
class _Escape:
    endpoint: str
    error: str
    chain: tuple[str, ...]  # endpoint ... origin
    transport: CallSite | None  # the call that introduces it, for transport errors


def _origin(endpoint: str, error: str, successors: dict[str, list[CallSite]],
            surface: dict[str, set[str]], declared: dict[str, set[str]]) -> _Escape:
    """Nearest place below ``endpoint`` where ``error`` starts (a callee's declaration or a
    call's transport), by breadth-first search over required calls."""
    parent: dict[str, str] = {endpoint: endpoint}
    frontier = [endpoint]
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for site in successors.get(node, ()):
                if error in TRANSPORT_ERRORS:
                    chain = [*_walk(parent, node), site.callee]
                    return _Escape(endpoint, error, tuple(chain), site)
                callee = site.callee
                if callee in parent:
                    continue
                parent[callee] = node
                if error in declared[callee]:
                    return _Escape(endpoint, error, tuple(_walk(parent, callee)), None)
                if error in surface[callee]:
                    nxt.append(callee)
        frontier = nxt
    raise AssertionError(f"{error} in surface({endpoint}) has no origin")


def _walk(parent: dict[str, str], node: str) -> list[str]:
    path = [node]
    while parent[path[-1]] != path[-1]:
        path.append(parent[path[-1]])
    return path[::-1]


@checker("errors_covered")
def check_errors_covered(system: System, prop: P.Property, deadline: Deadline) -> Verdict:
    if deadline.expired():
        return out_of_time(prop, deadline)
    surface = surfaces(system)
    declared = {e: set(system.endpoint(e).signature.errors) for e in endpoints(system)}
    sites = [s for s in call_sites(system) if is_required(s)]
    by_caller: dict[str, list[CallSite]] = {}
    for site in sites:
        by_caller.setdefault(site.caller, []).append(site)
    missing = {e: sorted(surface[e] - declared[e]) for e in endpoints(system)
               if declared[e] and surface[e] - declared[e]}
    typed = sum(1 for e in declared if declared[e])
    if not missing:
        return Verdict(prop.name, prop.kind, "holds",
                       f"{plural(typed, 'typed endpoint')} declare every error their required "
                       f"calls can surface ({plural(len(declared) - typed, 'untyped endpoint')} "
                       "not checked)")
    if deadline.expired():
        return out_of_time(prop, deadline)
    escapes = [_origin(e, x, by_caller, surface, declared)
               for e, errors in missing.items() for x in errors]
    order = {e: i for i, e in enumerate(endpoints(system))}
    worst = min(escapes, key=lambda x: (len(x.chain), order[x.endpoint], x.error))
    successors = successors_of(sites)
    prefix = path_from_entries(successors, system.entries, worst.endpoint) or [worst.endpoint]
    chain = (*prefix[:-1], *worst.chain)
    if worst.transport is not None:
        call = worst.transport.call
        why = (f"its timeout of {format_duration(call.timeout)} can expire"
               if worst.error == "DeadlineExceeded"
               else f"{call.service} can have no live instance")
        source = f"{worst.transport.caller}'s call to {worst.transport.callee} ({why})"
    else:
        source = worst.chain[-1]
    more = len(escapes) - 1
    tail = f" (and {plural(more, 'more undeclared error')})" if more else ""
    explanation = (f"{source} can fail with {worst.error}, which {worst.endpoint} does not "
                   f"declare{tail}")
    changes = {f"services.{e.partition('.')[0]}.endpoints.{e.partition('.')[2]}"
               ".signature.errors": [*system.endpoint(e).signature.errors, *errors]
               for e, errors in missing.items()}
    first = worst.endpoint
    words = f"declare {', '.join(missing[first])} in {first}"
    if len(missing) > 1:
        words += f" (and the missing errors of {plural(len(missing) - 1, 'more endpoint')})"
    return Verdict(prop.name, prop.kind, "violated", explanation,
                   Counterexample(chain=chain), Repair(words, changes))


__all__ = ["TRANSPORT_ERRORS", "check_call_cycles", "check_errors_covered",
           "check_startup_order", "min_feedback_edges", "surfaces"]
