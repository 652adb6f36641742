"""``retry_amplification {max: N}``: how far retries can multiply one call.

Retries multiply along a chain: if A retries B 3 times and B retries C 3 times, one call into A
can reach C as 9 attempts -- exactly when C is already failing, which is how retry storms keep
an overloaded service down. The amplification of a service S is the worst case, over the call
paths from a workload entry to an endpoint of S, of the product of the attempts
(``retries + 1``) of the calls on the path:

    amplification(S) = max over paths entry -> ... -> S of Π over the path's calls (retries + 1)

It is 1 in a system without retries. Every call that happens counts -- optional and
asynchronous ones too, since their attempts reach the callee all the same; calls made with
probability 0 never happen. Entries are the workload's; a spec without a workload takes every
endpoint no call reaches.

What it deliberately leaves out: ``repeat``, fan-out and fan-in multiply the *load* a service
gets per entry request whether or not anything fails; that load is what ``capacity`` checks
(retries included). This property isolates the factor that retries add on top in the worst
case, so "no retries" always passes it, and a value of 27 reads "one call can become 27".
A callee's ``max_retries`` (Envoy's retry circuit breaker) does not lower the bound: it caps
the retries one caller instance has outstanding *at once*, not the attempts of any one call,
so a call that finds the limit free can still make all its retries.

Violated when some service's amplification exceeds ``max``, or when a call cycle containing a
retrying call is reachable from an entry (going round it multiplies without bound).
Counterexample: the worst path, with ``{"attempts", "max"}`` (for a cycle: the path into it and
round it). Repair: the fewest calls whose ``retries`` change (each one spec key), then among
those the smallest total reduction, that brings every path within ``max`` -- and so takes
every retry off a reachable cycle -- found with z3 Optimize (one integer per retrying call; a
path product becomes linear by case-splitting each retry count; the two objectives
lexicographic). Cutting a shared call upstream often does with one key what trimming every
branch below it would do with several. Beyond
2,000 retrying calls no repair is searched for: the optimisation is hard in general and a
topology that size needs a retry policy, not a list of edits.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property

import z3

from faultmesh.model import properties as P
from faultmesh.model.graph import component_index
from faultmesh.model.system import System
from faultmesh.model.verify import checker
from faultmesh.model.verify.deadline import REPAIR_OUT_OF_TIME, Deadline, out_of_time
from faultmesh.model.verify.sites import (
    CallSite,
    call_sites,
    entries_or_roots,
    path_from_entries,
    topological_order,
)
from faultmesh.model.verify.verdict import Counterexample, Repair, Verdict
from faultmesh.model.verify.wording import number

OPTIMIZE_LIMIT = 2000  # retrying calls beyond which no optimal repair is searched for


def _reachable(entries: Iterable[str], out: dict[str, list[CallSite]]) -> set[str]:
    seen = set(entries)
    stack = list(seen)
    while stack:
        node = stack.pop()
        for site in out.get(node, ()):
            if site.callee not in seen:
                seen.add(site.callee)
                stack.append(site.callee)
    return seen


class Worst:
    """The worst path into one endpoint: its attempt product, its endpoints and its calls.

    The path itself is traced back only when asked for (``path``, ``sites``): tracing it for
    every endpoint would cost the sum of all path lengths, quadratic down a long chain."""

    def __init__(self, attempts: int, target: str, via: dict[str, CallSite]) -> None:
        self.attempts = attempts
        self.target = target
        self._via = via  # shared: each endpoint's best incoming call

    @cached_property
    def sites(self) -> tuple[CallSite, ...]:
        sites: list[CallSite] = []
        node, seen = self.target, {self.target}
        while node in self._via:  # predecessors form a tree at convergence; ``seen`` guards
            site = self._via[node]
            sites.append(site)
            node = site.caller
            if node in seen:
                break
            seen.add(node)
        sites.reverse()
        return tuple(sites)

    @cached_property
    def path(self) -> tuple[str, ...]:
        sites = self.sites
        start = sites[0].caller if sites else self.target
        return (start, *(s.callee for s in sites))

    def text(self, keep: int = 6) -> str:
        parts = [self.path[0]]
        for site in self.sites:
            tag = f" (x{site.call.attempts})" if site.call.retries else ""
            parts.append(f"{site.callee}{tag}")
        if len(parts) > keep:
            hidden = len(parts) - keep + 1
            parts = [*parts[:keep // 2], f"... {hidden} more ...", *parts[-(keep - keep // 2 - 1):]]
        return " -> ".join(parts)


def worst_paths(entries: list[str], out: dict[str, list[CallSite]],
                nodes: set[str]) -> dict[str, Worst]:
    """For every endpoint reachable from ``entries``, a path with the largest product.

    Call only when no reachable cycle multiplies (every retrying call is off cycles): then
    going round a cycle never increases a product and the largest one is attained on a simple
    path. One pass in topological order when the reachable graph is acyclic; otherwise edges
    are relaxed until nothing improves (longest path, Bellman-Ford).
    """
    value = dict.fromkeys(entries, 1)
    via: dict[str, CallSite] = {}
    order = topological_order(nodes, out)
    rounds = [order] if order is not None else None
    changed = True
    while changed:
        changed = False
        for node in (rounds.pop() if rounds else sorted(nodes)):
            here = value.get(node)
            if here is None:
                continue
            for site in out.get(node, ()):
                product = here * site.call.attempts
                if product > value.get(site.callee, 0):
                    value[site.callee] = product
                    via[site.callee] = site
                    changed = order is None
    return {target: Worst(attempts, target, via) for target, attempts in value.items()}


def repair_retries(nodes: set[str], entries: list[str], out: dict[str, list[CallSite]],
                   limit: float, deadline: Deadline) -> dict[CallSite, int] | None:
    """Fewest calls whose retries change, then fewest retries removed in total, so that every
    path product is within ``limit``.

    ``most[v]`` bounds the product of every path into ``v`` from above; the constraints
    ``most[v] >= most[u] * attempts(c)`` for each call ``c: u -> v`` have a solution with
    ``most <= limit`` iff every path is within the limit. Returns site -> new retries for the
    changed sites; None if the solver found no answer in time.
    """
    opt = z3.Optimize()
    opt.set("timeout", deadline.z3_ms())
    cap = int(limit)
    most = {n: z3.Int(f"most[{n}]") for n in sorted(nodes)}
    for n, m in most.items():
        opt.add(m <= cap)
        if n in entries:
            opt.add(m >= 1)
    tries: dict[CallSite, z3.ArithRef] = {}
    for node in sorted(nodes):
        for site in out.get(node, ()):
            top = site.call.retries
            if top == 0:
                opt.add(most[site.callee] >= most[node])
                continue
            r = z3.Int(f"retries[{site.key('retries')}]")
            opt.add(r >= 0, r <= top)
            tries[site] = r
            product = z3.Sum([z3.If(r == k, (k + 1) * most[node], 0) for k in range(top + 1)])
            opt.add(most[site.callee] >= product)
    # Fewest calls changed first (each is one spec key), then the smallest total reduction.
    opt.minimize(z3.Sum([z3.If(r == site.call.retries, 0, 1) for site, r in tries.items()]))
    opt.minimize(z3.Sum([site.call.retries - r for site, r in tries.items()]))
    if opt.check() != z3.sat:
        return None
    model = opt.model()
    chosen = {site: model.eval(r, model_completion=True).as_long() for site, r in tries.items()}
    return {site: r for site, r in chosen.items() if r != site.call.retries}


@checker("retry_amplification")
def check_retry_amplification(system: System, prop: P.Property, deadline: Deadline) -> Verdict:
    assert isinstance(prop, P.RetryAmplification)
    if deadline.expired():
        return out_of_time(prop, deadline)
    limit = prop.max
    sites = list(call_sites(system))
    out: dict[str, list[CallSite]] = {}
    for site in sites:
        out.setdefault(site.caller, []).append(site)
    entries = entries_or_roots(system, sites)
    nodes = _reachable(entries, out)
    retrying = {n: [s.callee for s in out.get(n, ()) if s.call.retries > 0] for n in nodes}
    plain = {n: [s.callee for s in out.get(n, ())] for n in nodes}
    # A reachable cycle through a retrying call multiplies without bound: such a call has both
    # ends in one strongly connected component.
    component = component_index(plain, nodes)
    for node in sorted(nodes):
        for callee in retrying[node]:
            if component[callee] != component[node]:
                continue
            back = path_from_entries(plain, [callee], node)
            assert back is not None
            cycle = [node, *back]
            prefix = path_from_entries(plain, entries, node) or [node]
            repair, note = _repair(nodes, entries, out, limit, sites, deadline)
            return Verdict(
                prop.name, prop.kind, "violated",
                f"the call cycle {' -> '.join(cycle)} retries on the way round: a request "
                f"reaching {node} can cause unboundedly many attempts (max {limit:g})"
                + (f"; {note}" if note else ""),
                Counterexample(chain=(*prefix[:-1], *cycle), numbers={"max": limit}), repair)
    best = worst_paths(entries, out, nodes)
    per_service: dict[str, Worst] = {}
    for node, worst in best.items():
        service = node.partition(".")[0]
        if service not in per_service or worst.attempts > per_service[service].attempts:
            per_service[service] = worst
    if not per_service:
        return Verdict(prop.name, prop.kind, "holds",
                       "no entry: no workload, and every endpoint is called by another")
    top_service, top = max(per_service.items(), key=lambda kv: kv[1].attempts)
    if top.attempts <= limit:
        return Verdict(prop.name, prop.kind, "holds",
                       f"retries multiply a call at most {top.attempts}x (max {limit:g})")
    over = [s for s, w in per_service.items() if w.attempts > limit]
    more = len(over) - 1
    tail = f"; {more} more service{'s' if more > 1 else ''} over the limit" if more else ""
    # Retries compound down a deep chain past any float (10^5000 attempts at 10,000
    # services): written in scientific notation, and left out of the JSON numbers then.
    attempts = str(top.attempts) if top.attempts < 10**15 else number(top.attempts)
    explanation = (f"one request to {top.path[0]} can reach {top_service} as up to "
                   f"{attempts} attempts "
                   f"(max {limit:g}): {top.text()}{tail}")
    fits = top.attempts < 10**300
    cex = Counterexample(chain=top.path,
                         numbers={**({"attempts": top.attempts} if fits else {}), "max": limit})
    if limit < 1:
        explanation += "; no retry setting reaches a maximum below 1"
    repair, note = _repair(nodes, entries, out, limit, sites, deadline)
    return Verdict(prop.name, prop.kind, "violated",
                   explanation + (f"; {note}" if note else ""), cex, repair)


def _repair(nodes: set[str], entries: list[str], out: dict[str, list[CallSite]], limit: float,
            sites: list[CallSite], deadline: Deadline) -> tuple[Repair | None, str]:
    """The retry reductions as a Repair (a cycle's retries all go: its product must be 1),
    or None and why there is none (empty when the explanation already says it)."""
    retrying = sum(1 for n in nodes for site in out.get(n, ()) if site.call.retries)
    if limit < 1:
        return None, ""
    if retrying > OPTIMIZE_LIMIT:
        return None, (f"no repair searched: {retrying:,} calls retry, more than the "
                      f"{OPTIMIZE_LIMIT:,} the optimiser takes")
    if deadline.expired():
        return None, REPAIR_OUT_OF_TIME
    changes = repair_retries(nodes, entries, out, limit, deadline)
    if not changes:
        return None, REPAIR_OUT_OF_TIME if deadline.expired() else ""
    position = {site: i for i, site in enumerate(sites)}
    ordered = sorted(changes.items(), key=lambda kv: position[kv[0]])
    words = ", ".join(f"{s.describe()} from {s.call.retries} to {r}" for s, r in ordered[:3])
    if len(ordered) > 3:
        words += f" (and {len(ordered) - 3} more calls)"
    return Repair(f"reduce retries on {words}", {s.key("retries"): r for s, r in ordered}), ""


__all__ = ["Worst", "check_retry_amplification", "repair_retries", "worst_paths"]
