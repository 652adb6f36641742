"""`survives {failures: K, of: [...]}`: no K failures take a workload entry down.

An entry is *down* when it serves none of its requests; a failure that only some of its
requests meet (a call made with probability p < 1 into a dead service) leaves it *degraded*:
up, serving a known share of its requests (``cones.availability``: the engine's draws of
probability, repeat and retries, multiplied). Degraded entries do not violate survives, which
speaks of up and down; they are reported, with their share, in the counterexample
(``degraded``) and, when no K failures take an entry down but some degrade one, in the
explanation. How much availability is enough is the ``availability`` property's question.

Decision procedure (exact, linear in the size of the endpoint graph):

  An entry is up iff every service in its certain cone is up (see ``cones``). So a
  failure set takes an entry down iff it kills some service of the cone, and the fewest failures
  that take the entry down is the minimum, over the cone's services, of the cost to kill one
  (``failures.kill_cost``: distinct zones occupied with zones allowed, replicas otherwise).
  Proof sketch: (<=) the kill set of the cheapest cone service takes the entry down; (>=) any
  set that takes the entry down kills some cone service s, and killing s costs >= kill_cost(s)
  because each failure unit removes instances of at most one zone of s, and every occupied zone
  of s needs at least one unit. Hence the property holds iff that minimum over all entries
  exceeds K, and the cheapest service's kill set is a minimum-cardinality counterexample.

  The minimum over cones is one pass over the strongly connected components (a cycle shares one
  cone), so 10,000 services decide in well under a second; z3 is used where it earns its place:
  the repair (``repairs``); an independent z3 encoding cross-checks it in the tests
  (``tests/survives_z3_oracle.py``).

The verdict names the weakest service, the failures, every entry they take down and the chain
of required calls from a downed entry to the dead service, with the smallest repair.

Outlier detection (``outlier_detection``) ejects hosts that fail. Removing a dead instance
from a caller's set neither revives it nor takes a live one away (when every instance is dead,
"no instance" replaces "instance down"). But a live host fails too when an attempt to it
times out or it refuses work (Envoy counts both as gateway errors, and every gateway error as
a 5xx), or when it answers with an error because one of its own required calls failed; and
Istio sets no panic threshold, so a caller whose detector ejected every host fails its calls
with "no healthy upstream". When the detector of a service an entry needs may eject as many
hosts as survive the failures (``max_ejection_percent``, or ``always_eject_one_host`` on a
single replica) and its live hosts can fail so (``ejectable``: the ``thinning`` rules, a
timeout within the callee's healthy worst case), the entry can go down with no failure at
all, as often as those timeouts fire: no bound on that is derived, so the verdict is
``unknown`` instead of ``holds``, naming the service.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from faultmesh.model import properties as P
from faultmesh.model.system import Call, Service, System
from faultmesh.model.verify import checker
from faultmesh.model.verify.cones import RequiredGraph, availability
from faultmesh.model.verify.deadline import (
    REPAIR_OUT_OF_TIME,
    Deadline,
    OutOfTime,
    out_of_time,
)
from faultmesh.model.verify.failures import (
    FailureKinds,
    FailureSet,
    instance_unit,
    kill_cost,
    kill_set,
    removal_profile,
    zone_counts,
    zone_unit,
)
from faultmesh.model.verify.repairs import (
    PlacementChange,
    PlacementSolver,
    RepairTimeout,
    as_repair,
    extra_zones,
)
from faultmesh.model.verify.thinning import Failing, refuses
from faultmesh.model.verify.timeouts import decimal, round_trip
from faultmesh.model.verify.verdict import Counterexample, Repair, Verdict
from faultmesh.model.verify.wording import IMPLICIT_ZONE, arrow, in_zone, listing, plural


@checker("survives")
def check(system: System, prop: P.Property, deadline: Deadline) -> Verdict:
    assert isinstance(prop, P.Survives)
    if deadline.expired():
        return out_of_time(prop, deadline)
    kinds = FailureKinds.of(prop.of)
    budget = prop.failures
    entries = system.entries
    if not entries:
        return Verdict(prop.name, prop.kind, "holds",
                       "no workload entries: there is nothing for failures to take down")

    graph = RequiredGraph(system, certain=True)
    cost = {name: kill_cost(service, kinds) for name, service in system.services.items()}
    cheapest = graph.min_cone_cost(cost, deadline)
    entry_nodes = [graph.index[e] for e in entries]
    weakest = min(cheapest[v] for v in entry_nodes)
    if deadline.expired():
        return out_of_time(prop, deadline)
    if math.isinf(weakest):
        return Verdict(prop.name, prop.kind, "holds",
                       f"no failure of {kinds.describe()} can take any service down")

    # The first entry (spec order) that is weakest, and the nearest cheapest service it needs.
    # Nearest matters: every endpoint before it on the chain belongs to a service that costs
    # more than `weakest`, so the counterexample's failures cannot kill it and the chain ends
    # exactly at the dead service.
    start = next(v for v in entry_nodes if cheapest[v] == weakest)
    path = graph.chain(start, lambda v: cost[graph.service[v]] == weakest, deadline)
    assert path is not None
    victim = system.services[graph.service[path[-1]]]
    chain = [graph.names[v] for v in path]

    if weakest > budget:
        if deadline.expired():
            return out_of_time(prop, deadline)
        if exposed := _ejectable_needed(system, graph, entry_nodes, kinds, budget, deadline):
            name, why = exposed
            when = "with no failure" if budget == 0 else \
                f"after any {plural(budget, 'failure')} of {kinds.describe()}"
            return Verdict(prop.name, prop.kind, "unknown",
                           f"{when} every service the entries need keeps an instance, but "
                           f"{name}'s callers may eject every live host of it ({why}): with "
                           f"no panic threshold their calls then fail as if it were down, as "
                           f"often as that happens, which is not bounded here")
        via = f" (via {arrow(chain)})" if len(chain) > 1 else ""
        return Verdict(prop.name, prop.kind, "holds",
                       f"every workload entry survives any {plural(budget, 'failure')} "
                       f"of {kinds.describe()}: the weakest service they need, {victim.name} "
                       f"({_placement(victim)}), takes {plural(int(weakest), 'failure')} to go "
                       f"down{via}" + _degradation(system, kinds, budget, cost, deadline))

    units = kill_set(victim, kinds)
    failed = FailureSet(units)
    unavailable = graph.unavailable(failed.services_down(system), deadline)
    if start not in unavailable:
        # The cheapest need is a fallback pair or a one_of, down only with all its callees:
        # the weakest value was a lower bound. Try killing every service of the witness.
        found: tuple[str, ...] | Verdict = ()
        for node in (v for v in dict.fromkeys(entry_nodes) if cheapest[v] <= budget):
            found = _together(system, graph, node, cost, cheapest, kinds, budget, deadline)
            if isinstance(found, tuple) or found.status == "unknown":
                start = node
                break
        if isinstance(found, Verdict):
            return Verdict(prop.name, prop.kind, found.status, found.explanation)
        units, chain = found, [graph.names[start]]
        failed = FailureSet(units)
        unavailable = graph.unavailable(failed.services_down(system), deadline)
        victim = system.services[next(s for s in sorted(failed.services_down(system)))]
    down = tuple(e for e in entries if graph.index[e] in unavailable)
    degraded = _degraded(system, failed, down, deadline)
    explanation = (f"{victim.name} has {_weakness(victim, kinds, budget)}: {', '.join(units)} down "
                   f"takes {listing(down)} down")
    if len(chain) > 1:
        explanation += f" (via {arrow(chain)})"
    if degraded:
        explanation += f" and degrades {_shares(degraded)}"
    counterexample = Counterexample(failures=units, down=down, chain=tuple(chain),
                                    degraded=degraded)

    repair, note = _repair(system, graph, entry_nodes, cost, kinds, budget, deadline)
    if note:
        explanation += f"; {note}"
    return Verdict(prop.name, prop.kind, "violated", explanation, counterexample, repair)


def ejectable(system: System, service: Service, kinds: FailureKinds, budget: int,
              failing: Failing, callers: Sequence[tuple[str, Call]] | None = None) -> str:
    """Why the callers' outlier detection may eject every live host of ``service`` within
    ``budget`` failures ("" when it cannot): it may eject as many hosts as survive, and a live
    host can produce a detection (a gateway error: a timeout or a refusal; or a 5xx).
    ``callers``: the calls into ``service`` as ``callers_of`` lists them (found here if not
    given; a caller checking many services builds that index once)."""
    policy = service.outlier_detection
    if policy is None:
        return ""
    survivors = service.replicas - removal_profile(
        list(zone_counts(service).values()), kinds, budget)[-1]
    allowed = policy.ejectable(service.replicas)
    if survivors <= 0 or allowed < survivors:
        return ""
    if callers is None:
        callers = callers_of(system).get(service.name, [])
    gateway = failing.lossy or refuses(service) or any(
        not c.asynchronous and decimal(c.timeout) <= failing.healthy_worst(c.target)
        + round_trip(system, caller, c.service) for caller, c in callers)
    errors = any(failing.endpoint_can_fail(f"{service.name}.{e}") for e in service.endpoints)
    if policy.consecutive_gateway_errors > 0 and gateway:
        what = f"{plural(policy.consecutive_gateway_errors, 'gateway error')} in a row"
    elif policy.consecutive_5xx > 0 and (gateway or errors):
        what = f"{plural(policy.consecutive_5xx, '5xx')} in a row"
    else:
        return ""
    return (f"a host is ejected after {what}, up to {allowed} of "
            f"{plural(service.replicas, 'replica')}, and calls to it can time out or fail")


def callers_of(system: System) -> dict[str, list[tuple[str, Call]]]:
    """Per callee service, every call into it that is ever made (probability > 0), with the
    calling service's name, in spec order."""
    callers: dict[str, list[tuple[str, Call]]] = {}
    for s in system.services.values():
        for e in s.endpoints.values():
            for c in e.calls():
                if c.probability > 0:
                    callers.setdefault(c.service, []).append((s.name, c))
    return callers


def _ejectable_needed(system: System, graph: RequiredGraph, entry_nodes: list[int],
                      kinds: FailureKinds, budget: int, deadline: Deadline
                      ) -> tuple[str, str] | None:
    """The first service some entry needs whose live hosts may all be ejected (see
    ``ejectable``), with why; None when there is none.

    Linear in the system, not quadratic: the calls into each service are indexed once, and
    the walk finding what a service takes down runs only for services in the entries' cone
    (a service down takes down only endpoints that reach it over required calls, so one
    outside the cone never takes an entry down). ``ejectable`` still asks ``failing`` about
    every service in spec order: its answers are cached, and round a call cycle the order of
    the questions decides where the cycle is cut.
    """
    if all(service.outlier_detection is None for service in system.services.values()):
        return None
    failing = Failing(system)
    entries = set(entry_nodes)
    cone = {graph.service[v] for v in graph.cone(entry_nodes, deadline)}
    callers = callers_of(system)
    for name, service in system.services.items():
        why = ejectable(system, service, kinds, budget, failing, callers.get(name, []))
        if why and name in cone and graph.unavailable({name}, deadline) & entries:
            return name, why
    return None


def _together(system: System, graph: RequiredGraph, start: int, cost: dict[str, int | None],
              cheapest: list[float], kinds: FailureKinds, budget: int,
              deadline: Deadline) -> tuple[str, ...] | Verdict:
    """Failures within ``budget`` taking ``start`` down through its fallbacks / one_ofs (every
    callee of one down together), or an ``unknown`` verdict saying what is known."""
    services = graph.witness(start, cost, cheapest, deadline) or set()
    units = tuple(dict.fromkeys(u for name in sorted(services)
                                for u in kill_set(system.services[name], kinds)))
    lower = int(cheapest[start])
    if units and len(units) <= budget and start in graph.unavailable(
            FailureSet(units).services_down(system), deadline):
        return units
    searched = _search(system, graph, start, kinds, budget, deadline)
    if isinstance(searched, tuple):
        return searched
    if searched:  # no set within the budget: the entry survives
        return Verdict("", "survives", "holds",
                       f"every workload entry survives any {plural(budget, 'failure')} of "
                       f"{kinds.describe()}: {graph.names[start]} goes down only with every "
                       f"callee of a fallback pair or one_of down, which takes more "
                       f"(z3 over the failure units of its cone)")
    return Verdict("", "survives", "unknown",
                   f"{graph.names[start]} needs a fallback pair or a one_of whose callees must "
                   f"all be down to take it down: that takes at least {plural(lower, 'failure')}"
                   f", and the cheapest set found takes {plural(len(units), 'failure')} "
                   f"({', '.join(units)}); whether {plural(budget, 'failure')} can is not "
                   "decided")


def _search(system: System, graph: RequiredGraph, start: int, kinds: FailureKinds,
            budget: int, deadline: Deadline) -> tuple[str, ...] | bool:
    """A failure set of at most ``budget`` units taking ``start`` down, by z3 over the units of
    its cone; True: none exists; False: undecided (solver gave up, or only a cyclic model).

    ``down(v) <-> service down or a single callee down or a clause all down`` over-approximates
    the least fixpoint on cycles, so an unsat answer is a proof; a model is checked exactly.
    """
    import z3

    cone = sorted(graph.cone([start], deadline))
    services = dict.fromkeys(graph.service[v] for v in cone)
    unit: dict[str, z3.BoolRef] = {}

    def fails(name: str) -> z3.BoolRef:
        if name not in unit:
            unit[name] = z3.Bool(name)
        return unit[name]

    svc_down: dict[str, z3.BoolRef] = {}
    for name in services:
        service = system.services[name]
        alive = []
        for i, zone in enumerate(service.zones):
            parts = []
            if kinds.zones:
                parts.append(fails(zone_unit(zone)))
            if kinds.instances:
                parts.append(fails(instance_unit(name, i)))
            alive.append(z3.Or(*parts) if parts else z3.BoolVal(False))
        svc_down[name] = z3.And(*alive)
    down = {v: z3.Bool(f"down[{graph.names[v]}]") for v in cone}
    solver = z3.Solver()
    solver.set("timeout", deadline.z3_ms())
    for v in cone:
        reasons = [svc_down[graph.service[v]], *(down[w] for w in graph.succ[v]),
                   *(z3.And(*(down[w] for w in c)) for c in graph.clauses[v])]
        solver.add(down[v] == z3.Or(*reasons))
    solver.add(down[start])
    solver.add(z3.Sum([z3.If(b, 1, 0) for b in unit.values()]) <= budget)
    answer = solver.check()
    if answer == z3.unsat:
        return True
    if answer != z3.sat:
        return False
    model = solver.model()
    units = tuple(name for name, b in unit.items() if z3.is_true(model.eval(b)))
    if start in graph.unavailable(FailureSet(units).services_down(system), deadline):
        return units
    return False


def _degraded(system: System, failed: FailureSet, down: tuple[str, ...],
              deadline: Deadline) -> dict[str, float]:
    """The entries ``failed`` leaves up but failing some requests, with the share they serve."""
    shares = availability(system, failed.services_down(system), deadline)
    return {e: shares[e] for e in dict.fromkeys(system.entries)
            if e not in down and shares[e] < 1.0}


def _shares(degraded: dict[str, float]) -> str:
    return listing([f"{entry} to {share:.2%} of its requests" for entry, share in
                    degraded.items()])


def _degradation(system: System, kinds: FailureKinds, budget: int,
                 cost: dict[str, int | None], deadline: Deadline) -> str:
    """When no ``budget`` failures take an entry down: a failure set that degrades one, if any.

    The cheapest service reached over required calls (probabilistic ones included) is killed
    as in the down case; with its kill set within the budget, some entry loses the requests
    that make a call into it.
    """
    graph = RequiredGraph(system)
    cheapest = graph.min_cone_cost(cost, deadline)
    starts = [graph.index[e] for e in dict.fromkeys(system.entries)]
    weakest = min(cheapest[v] for v in starts)
    if weakest > budget:
        return ""
    start = next(v for v in starts if cheapest[v] == weakest)
    path = graph.chain(start, lambda v: cost[graph.service[v]] == weakest, deadline)
    assert path is not None
    units = kill_set(system.services[graph.service[path[-1]]], kinds)
    degraded = _degraded(system, FailureSet(units), (), deadline)
    if not degraded:
        return ""
    return (f"; but {', '.join(units)} down degrades {_shares(degraded)} (calls made with "
            f"probability below 1: via {arrow([graph.names[v] for v in path])})")


def _repair(system: System, graph: RequiredGraph, entry_nodes: list[int],
            cost: dict[str, int | None], kinds: FailureKinds, budget: int,
            deadline: Deadline) -> tuple[Repair | None, str]:
    """Fewest added replicas making every service the entries need survive ``budget``.

    With zone failures allowed each such service must occupy ``budget + 1`` zones; when the
    system has fewer, the fewest new zones are added first (``zones`` in the changes).
    """
    zones = system.zones
    if kinds.zones and budget + 1 > len(zones):
        zones = zones + extra_zones(zones, budget + 1 - len(zones))
    plan: list[PlacementChange] = []
    try:
        needed = dict.fromkeys(graph.service[v] for v in sorted(graph.cone(entry_nodes,
                                                                          deadline)))
        weak = [name for name in needed if (c := cost[name]) is not None and c <= budget]
        solver = PlacementSolver.for_system(system, zones, deadline)
        for name in weak:
            # Answers are cached by shape, so only this check bounds a long run of cache hits.
            deadline.check()
            service = system.services[name]
            counts = zone_counts(service)
            new = solver.to_survive(counts, kinds, budget)
            if new is None:
                return None, "no repair by adding replicas exists"
            old = {z: counts.get(z, 0) for z in zones}
            plan.append(PlacementChange(name, old, new, service.workers, service.workers))
        return as_repair(plan, system.zones, zones, deadline), ""
    except (RepairTimeout, OutOfTime):
        return None, REPAIR_OUT_OF_TIME


def _placement(service: Service) -> str:
    counts = zone_counts(service)
    if set(counts) == {IMPLICIT_ZONE}:  # a spec without zones: there is nothing to say
        return plural(service.replicas, "replica")
    if service.replicas == 1:
        return f"1 replica, zone {service.zones[0]}"
    return f"{service.replicas} replicas: " + ", ".join(f"{z}: {n}" for z, n in counts.items())


def _weakness(service: Service, kinds: FailureKinds, budget: int) -> str:
    """Why the service is easy to kill, in words ("all 2 replicas in zone a")."""
    counts = zone_counts(service)
    if service.replicas == 1:
        where = "" if service.zones[0] == IMPLICIT_ZONE else f" (zone {service.zones[0]})"
        return f"its only replica {service.name}-0{where}"
    if not kinds.zones:
        return f"only {service.replicas} replicas, no more than the {budget} failures allowed"
    if len(counts) == 1:
        return f"all {service.replicas} replicas{in_zone(service.zones[0])}"
    spread = ", ".join(f"{z}: {n}" for z, n in counts.items())
    return (f"its {service.replicas} replicas in {len(counts)} zones ({spread}), no more than "
            f"the {budget} failures allowed")


__all__ = ["check"]
