"""An independent z3 encoding of `survives`, the cross-check of the combinatorial checker.

It encodes the semantics directly (instances, zones, endpoint availability) rather than the
cone theorem the checker relies on, so agreement between the two on many generated topologies
is evidence for both. It shares no code with ``faultmesh.model.verify``: its own rule says which
calls take a caller down (``takes_caller_down``), its own components come from networkx. Two
reductions keep it small without changing the answer:

* Cone of influence: only endpoints reachable from a workload entry over required calls, their
  services and the zones those occupy are encoded; nothing else can affect an entry.
* Symmetry: replicas of one service in one zone are interchangeable, so their failures are a
  unary counter (``fail[s,z,1] >= fail[s,z,2] >= ...``: the failed ones are a prefix) instead of
  free Booleans, and zones holding the same replica counts of every encoded service are
  interchangeable, so their failures are ordered too (lex-leader symmetry breaking). Both only
  remove solutions that have a same-cost twin, so minimums and verdicts are unchanged.

Unavailability is encoded as the least fixpoint (the complement of availability's greatest
fixpoint): an endpoint may be marked down only with a justification (its service is down, or a
required callee is down), and inside call cycles the justification must descend a rank, so a
cycle cannot justify itself. Not part of the product: ``tests/test_verify_survives.py`` and
``bench/verify.py`` use it.
"""

from __future__ import annotations

import itertools
from collections import Counter, deque
from dataclasses import dataclass
from typing import Literal

import networkx as nx
import z3

from faultmesh.model.system import Call, System

Answer = Literal["holds", "violated", "unknown"]


@dataclass(frozen=True)
class FailureKinds:
    """Which failure units may fail (instances, zones)."""

    instances: bool
    zones: bool

    @classmethod
    def of(cls, kinds: tuple[str, ...] | list[str]) -> FailureKinds:
        return cls(instances="instance" in kinds, zones="zone" in kinds)


def takes_caller_down(call: Call) -> bool:
    """A dead callee takes the caller down: the caller awaits the call (not ``async``), does not
    swallow its failure (not ``optional``) and makes it on every request (probability 1; a
    rarer call only fails the requests that make it)."""
    if call.asynchronous or call.optional:
        return False
    return call.probability >= 1


def components(succ: list[list[int]]) -> dict[int, int]:
    """Node -> strongly connected component id."""
    graph = nx.DiGraph()
    graph.add_nodes_from(range(len(succ)))
    graph.add_edges_from((v, w) for v, targets in enumerate(succ) for w in targets)
    return {v: c for c, members in enumerate(nx.strongly_connected_components(graph))
            for v in members}


@dataclass
class Encoding:
    """The z3 variables and constraints of one System under one failure model."""

    constraints: list[z3.BoolRef]
    cost: z3.ArithRef  # number of failures
    entry_down: z3.BoolRef  # some workload entry is unavailable
    units: list[tuple[str, z3.BoolRef]]  # (failure unit name, whether it failed)


def encode(system: System, kinds: FailureKinds) -> Encoding:
    # Cone of influence over required calls, from the entries.
    entries = list(system.entries)
    seen = dict.fromkeys(entries)
    queue = deque(entries)
    while queue:
        node = queue.popleft()
        for call in system.endpoint(node).calls():
            if takes_caller_down(call) and call.target not in seen:
                seen[call.target] = None
                queue.append(call.target)
    nodes = list(seen)
    services = list(dict.fromkeys(n.partition(".")[0] for n in nodes))

    constraints: list[z3.BoolRef] = []
    cost_terms: list[z3.ArithRef] = []
    units: list[tuple[str, z3.BoolRef]] = []

    zone_failed: dict[str, z3.BoolRef] = {}
    if kinds.zones:
        occupied = list(dict.fromkeys(z for s in services for z in system.services[s].zones))
        for zone in occupied:
            zone_failed[zone] = z3.Bool(f"zone:{zone}")
            units.append((f"zone:{zone}", zone_failed[zone]))
            cost_terms.append(z3.If(zone_failed[zone], 1, 0))
        # Zones with identical replica counts of every encoded service: order their failures.
        signature: dict[tuple[int, ...], list[str]] = {}
        for zone in occupied:
            key = tuple(system.services[s].zones.count(zone) for s in services)
            signature.setdefault(key, []).append(zone)
        for group in signature.values():
            for earlier, later in itertools.pairwise(group):
                constraints.append(z3.Implies(zone_failed[later], zone_failed[earlier]))

    service_down: dict[str, z3.BoolRef] = {}
    for name in services:
        service = system.services[name]
        # Per zone (or all together with instances only): the replicas there all down?
        groups = Counter(service.zones) if kinds.zones else Counter({"*": service.replicas})
        wiped: list[z3.BoolRef] = []
        for zone, count in groups.items():
            conditions: list[z3.BoolRef] = []
            if kinds.zones:
                conditions.append(zone_failed[zone])
            if kinds.instances:
                # Unary counter: fail[1] >= fail[2] >= ... >= fail[count].
                fails = [z3.Bool(f"fail:{name}@{zone}#{k}") for k in range(1, count + 1)]
                for a, b in itertools.pairwise(fails):
                    constraints.append(z3.Implies(b, a))
                members = [i for i, z in enumerate(service.zones) if z == zone or zone == "*"]
                for k, f in enumerate(fails):
                    units.append((f"instance:{name}-{members[k]}", f))
                    cost_terms.append(z3.If(f, 1, 0))
                conditions.append(fails[-1])
            wiped.append(z3.Or(*conditions) if conditions else z3.BoolVal(False))
        service_down[name] = z3.Bool(f"down:{name}")
        constraints.append(service_down[name] == z3.And(*wiped))

    # Endpoint unavailability as a justified least fixpoint.
    position = {n: i for i, n in enumerate(nodes)}
    succ = [list(dict.fromkeys(position[c.target] for c in system.endpoint(n).calls()
                               if takes_caller_down(c))) for n in nodes]
    component_of = components(succ)
    cyclic = {v for v in range(len(nodes))
              if v in succ[v] or any(component_of[w] == component_of[v] for w in succ[v])}
    down = [z3.Bool(f"unavailable:{n}") for n in nodes]
    rank = {v: z3.Int(f"rank:{nodes[v]}") for v in cyclic}
    for v, node in enumerate(nodes):
        own = service_down[node.partition(".")[0]]
        reasons: list[z3.BoolRef] = [own]
        for w in succ[v]:
            if component_of[w] == component_of[v]:
                reasons.append(z3.And(down[w], rank[w] < rank[v]))
            else:
                reasons.append(down[w])
        constraints.append(z3.Implies(down[v], z3.Or(*reasons)))
        # Closure: a down service or a down callee does take the endpoint down.
        constraints.append(z3.Implies(z3.Or(own, *[down[w] for w in succ[v]]), down[v]))

    cost = z3.Sum(cost_terms) if cost_terms else z3.IntVal(0)
    entry_down = z3.Or(*[down[position[e]] for e in entries]) if entries else z3.BoolVal(False)
    return Encoding(constraints, cost, entry_down, units)


def decide(system: System, kinds: FailureKinds, failures: int, timeout_ms: int) -> Answer:
    """`survives {failures}` by satisfiability: is there a small enough set taking one down?"""
    enc = encode(system, kinds)
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    solver.add(*enc.constraints, enc.entry_down, enc.cost <= failures)
    result = solver.check()
    if result == z3.sat:
        return "violated"
    return "holds" if result == z3.unsat else "unknown"


def minimum(system: System, kinds: FailureKinds,
            timeout_ms: int) -> tuple[int, tuple[str, ...]] | Literal["unknown"] | None:
    """The fewest failures taking some entry down, with such a set (None: no set does)."""
    enc = encode(system, kinds)
    opt = z3.Optimize()
    opt.set("timeout", timeout_ms)
    opt.add(*enc.constraints, enc.entry_down)
    opt.minimize(enc.cost)
    result = opt.check()
    if result == z3.unsat:
        return None
    if result != z3.sat:
        return "unknown"
    model = opt.model()
    failed = tuple(name for name, var in enc.units if z3.is_true(model.eval(var)))
    return model.eval(enc.cost).as_long(), failed


__all__ = ["Encoding", "FailureKinds", "decide", "encode", "minimum", "takes_caller_down"]
