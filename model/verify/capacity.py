"""`capacity {failures: K, utilization: U, rejected: R}`: after any K failures, every
surviving instance of every loaded service stays below utilization U and rejects at most a
share R of its requests (default 0.1 %; rejections come from ``queue`` and ``concurrency``
limits).

The load (``load``) is the system's own, each call made once with its probability and repeat:
retries are counted only as the failure scenario causes them, i.e. the attempts an instance's
limits reject (``pressure``); the all-retries-fire case is metastability, not capacity.

Decision procedure:

  Load into a service does not grow with failures elsewhere (removed instances refuse at once,
  and a request whose call fails makes no later calls), so services are independent: the
  property fails iff some loaded service fails after its own worst failures. For a budget of j
  those leave its busiest survivor the largest share of its load (``pressure``: the j
  most-populated zones for balancers that spread evenly; every failure set, with the engine's
  exact ring shares, under consistent hashing). Utilization (exact, ``Fraction``) and losses
  only grow with that share, so the smallest failure set that breaks anything has size min
  over services of the least j <= K at which that service's worst j failures break it; that
  set is the counterexample.

  Losses come from ``blocking``: exact where queueing theory has a formula (Erlang B with no
  waiting room, any service-time distribution; M/M/s/L for exponential service times) and
  bounded otherwise. The verdict is ``violated`` when utilization reaches U or the loss's lower
  bound exceeds R, ``unknown`` when only its upper bound does, ``holds`` when neither.

  The offered load is an upper bound: a request whose call fails makes no later calls. So a
  service breaking under it is a counterexample only if the load sure to arrive
  (``thinning.certain_load``: calls that can fail on the way stop their requests' later
  calls) breaks it as well; otherwise that service is ``unknown`` and the search goes on.

An unbounded load (a call cycle that never ends) overloads its services with no failure at
all. The repair (``repairs``) changes the fewest spec keys of each broken service (its
replicas, or its workers, rather than both), then adds the fewest worker slots that bring both
measures within their targets (fewest under even balancing; under consistent hashing the ring
of the new names is checked and survivors are added until it passes).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction

from faultmesh.model import properties as P
from faultmesh.model.spec.edit import apply_changes
from faultmesh.model.spec.limits import MAX_REPLICAS, MAX_WORKERS
from faultmesh.model.system import Service, System
from faultmesh.model.verify import checker
from faultmesh.model.verify.certainty import CertainLoads
from faultmesh.model.verify.deadline import (
    REPAIR_OUT_OF_TIME,
    Deadline,
    OutOfTime,
    out_of_time,
)
from faultmesh.model.verify.failures import FailureKinds, zone_counts
from faultmesh.model.verify.load import OfferedLoad, exact, offered_load
from faultmesh.model.verify.pressure import CallTimes, Pressure, ServiceModel, saturated
from faultmesh.model.verify.repairs import (
    PlacementChange,
    PlacementSolver,
    RepairTimeout,
    as_repair,
    extra_zones,
)
from faultmesh.model.verify.shares import even
from faultmesh.model.verify.verdict import Counterexample, Repair, Verdict
from faultmesh.model.verify.wording import number, percent, plural

REPAIR_ROUNDS = 16  # consistent hashing: replicas added one by one until the ring passes


@checker("capacity")
def check(system: System, prop: P.Property, deadline: Deadline) -> Verdict:
    assert isinstance(prop, P.Capacity)
    if deadline.expired():
        return out_of_time(prop, deadline)
    kinds = FailureKinds.of(prop.of)
    budget = prop.failures
    limit = exact(prop.utilization)
    rejected = prop.rejected
    load = offered_load(system)
    if deadline.expired():
        return out_of_time(prop, deadline)

    times = CallTimes(system, load, kinds, budget)
    models: dict[str, ServiceModel] = {}
    worst: list[Pressure] = []  # every loaded service at the full budget
    first: Pressure | None = None  # the smallest failure set that breaks something
    open_: list[Pressure] = []  # services whose verdict is unknown
    profiles: dict[str, list[Pressure]] = {}
    for name in system.services:
        deadline.check()
        model = ServiceModel(system, name, load, times)
        if model.rate == 0 and not model.unbounded:
            continue
        models[name] = model
        profiles[name] = model.profile(kinds, budget, deadline)
        worst.append(profiles[name][-1])
    sure_loads = CertainLoads(system, load, profiles, deadline)
    for at in profiles.values():
        deadline.check()
        breaking, unsure = None, None
        for p in at:
            if p.status(limit, rejected) != "violated":
                continue
            why = _thinned(system, load, times, profiles, p, limit, rejected, sure_loads)
            if not why:
                breaking = p
                break
            unsure = unsure or replace(p, undecided=why)
        if breaking is None:
            if unsure is not None:
                open_.append(unsure)
            elif at[-1].status(limit, rejected) == "unknown":
                open_.append(at[-1])
            continue
        if first is None or (breaking.failures, breaking.rank()) < (first.failures,
                                                                      first.rank()):
            first = breaking
        if deadline.expired():
            return out_of_time(prop, deadline)

    if first is None and open_:
        p = min(open_, key=Pressure.rank)
        if p.undecided == _NOT_CERTAIN:  # its explanation, found only now it is shown
            p = replace(p, undecided=_thinned(system, load, times, profiles, p, limit,
                                              rejected, sure_loads, explain=True))
        more = f" (and {plural(len(open_) - 1, 'more service')})" if len(open_) > 1 else ""
        return Verdict(prop.name, prop.kind, "unknown", _unknown_text(p, rejected) + more)
    if first is None:
        if not worst:
            return Verdict(prop.name, prop.kind, "holds", "no service receives any load")
        busiest = min(worst, key=Pressure.rank)
        after = f"after {', '.join(busiest.units)} down" if busiest.units else "with no failure"
        return Verdict(prop.name, prop.kind, "holds",
                       f"under any {plural(budget, 'failure')} of {kinds.describe()} every "
                       f"instance stays below {percent(limit)} utilization and rejects at "
                       f"most {percent(rejected)}: the busiest, {_where(busiest)}, reaches "
                       f"{percent(busiest.utilization)} {after} ({_numbers_text(busiest)})")

    numbers = _numbers(first)
    counterexample = Counterexample(failures=first.units, down=(first.service.name,),
                                    chain=_chain(system, first.service.name), numbers=numbers)
    broken = [p for p in worst if p.status(limit, rejected) == "violated"]
    repair, note = _repair(system, models, broken, kinds, budget, limit, rejected, deadline)
    return Verdict(prop.name, prop.kind, "violated",
                   _violation_text(first, limit, rejected) + (f"; {note}" if note else ""),
                   counterexample, repair)


def _thinned(system: System, load: OfferedLoad, times: CallTimes,
             profiles: dict[str, list[Pressure]], p: Pressure, limit: Fraction,
             rejected: float, certain: CertainLoads, explain: bool = False) -> str:
    """Why ``p``'s violation is not certain ("" when it is): the nominal load breaks the
    service, but the load sure to arrive (``thinning``: calls on the way that can fail stop
    their requests' later calls) does not. Without ``explain`` the answer may be
    ``_NOT_CERTAIN`` instead of the explanation (which needs the service's own certain
    load)."""
    if p.unbounded or p.surviving == 0:
        return ""
    name = p.service.name
    # Calls fail into a service with nothing left or loaded past saturation (its queue grows
    # until callers time out); one merely above the utilization target answers them all,
    # and refusals are counted by share below. The service itself is not broken for its own
    # certain load.
    everyone, gone = certain.broken(p.failures, p.units)
    sure = None
    if name in everyone and name not in gone and certain.acyclic:
        # Its own certain load (every saturated service broken but itself) lies between two
        # shared by every service of this failure set: with itself broken too (fewer calls
        # sure to succeed), and with only the services left with nothing broken. When even
        # the lower one breaks it, with the same endpoints loaded (so the same loss formulas
        # apply, each rising with the load), the violation is certain; when the two agree on
        # its endpoints, its own is that. (Only without call cycles: the certain load leaves
        # a cycle's calls out, and a broken callee can split a cycle, so it is monotone in
        # the broken services only on an acyclic call graph.)
        less = certain.load(p.failures, everyone)
        lower = certain.model(name, less, times)
        if lower.rate == p.load or (_loaded_alike(p.service, less, load) and lower.pressure(
                p.failures, p.units, [p.busiest] * p.surviving, p.share,
                p.busiest).status(limit, rejected) == "violated"):
            return ""
        more = certain.load(p.failures, gone)
        if all(less.endpoints.get(k, 0) == more.endpoints.get(k, 0)
               for k in (f"{name}.{ep}" for ep in p.service.endpoints)):
            sure = less
        elif not explain and _loaded_alike(p.service, less, more) and certain.model(
                name, more, times).pressure(
                p.failures, p.units, [p.busiest] * p.surviving, p.share,
                p.busiest).status(limit, rejected) != "violated":
            return _NOT_CERTAIN  # not even the upper one breaks it, nor then its own
        elif certain.breaking_changes_nothing(name, everyone):
            sure = less  # its own certain load is the lower one: no need to find it anew
        else:
            sure = certain.load(p.failures, everyone - {name})
    if sure is None:
        sure = certain.load(p.failures, everyone)
    model = certain.model(p.service.name, sure, times)
    if model.rate == p.load:
        return ""
    q = model.pressure(p.failures, p.units, [p.busiest] * p.surviving, p.share, p.busiest)
    if q.status(limit, rejected) == "violated":
        return ""
    if not explain:
        return _NOT_CERTAIN  # written out only for the one shown (thousands may be unsure)
    after = f"after {', '.join(p.units)} down" if p.units else "with no failure"
    return (f"{_where(p)} {after} breaks its targets at its full load ({number(p.load)} "
            f"requests/s: {percent(p.utilization)} busy, rejecting up to "
            f"{percent(p.loss.high)}), but calls on the way to it can fail (a timeout "
            f"within its callee's healthy worst case, a callee that refuses work or is "
            f"itself broken) and a request whose call fails makes no later calls: only "
            f"{number(q.load)} requests/s are sure to arrive, and they stay within the "
            f"targets")


# ``_thinned``'s answer for a violation proved uncertain before its explanation is written.
_NOT_CERTAIN = "not certain"


def _loaded_alike(service: Service, load: OfferedLoad, nominal: OfferedLoad) -> bool:
    """Does ``load`` reach the same endpoints of the service as the nominal load?"""
    keys = [f"{service.name}.{ep}" for ep in service.endpoints]
    return all((load.endpoints.get(k, 0) > 0) == (nominal.endpoints.get(k, 0) > 0)
               for k in keys)


def _numbers(p: Pressure) -> dict[str, float]:
    if p.unbounded:
        return {}
    numbers = {"load": saturated(p.load), "demand": saturated(p.demand),
               "capacity": float(p.capacity), "surviving": float(p.surviving),
               "workers": float(p.service.workers), "share": float(p.share)}
    if p.utilization is not None:
        numbers["utilization"] = saturated(p.utilization)
    # A load compounded past a float (10^308 requests/s) is left out of the JSON numbers (no
    # JSON number holds it); the explanation writes it out.
    numbers = {key: value for key, value in numbers.items() if math.isfinite(value)}
    if p.service.queue is not None or p.service.concurrency is not None:
        numbers["rejected"] = p.loss.high
        if not p.loss.exact:
            numbers["rejected_low"] = p.loss.low
    return numbers


def _where(p: Pressure) -> str:
    if even(p.service.load_balancer.kind) or not p.busiest:
        return p.service.name
    return f"{p.busiest} ({percent(p.share)} of {p.service.name}'s requests by consistent hashing)"


def _violation_text(p: Pressure, limit: Fraction, rejected: float) -> str:
    name = p.service.name
    when = f"after {', '.join(p.units)} down" if p.units else "with no failure at all"
    if p.unbounded:
        return (f"{name} receives an unbounded load {when}: a call cycle re-enters it with "
                f"probability that never dies out; break the cycle")
    if p.capacity == 0:
        return f"{name} has no instance left {when} but receives {number(p.load)} requests/s"
    u = p.utilization
    if u is not None and u >= limit:
        return (f"{_where(p)} is overloaded {when}: {_numbers_text(p)}, utilization "
                f"{percent(u)} >= {percent(limit)}")
    bound = "" if p.loss.exact else "at least "
    return (f"{_where(p)} rejects {bound}{percent(p.loss.low)} of its requests {when} "
            f"(> {percent(rejected)}; {p.loss.why}): {_numbers_text(p)}")


def _unknown_text(p: Pressure, rejected: float) -> str:
    if p.undecided:
        return f"{p.undecided}; capacity is not proved"
    after = f"after {', '.join(p.units)} down" if p.units else "with no failure"
    return (f"{_where(p)} {after} rejects between {percent(p.loss.low)} and "
            f"{percent(p.loss.high)} of its requests ({p.loss.why}), and the target "
            f"{percent(rejected)} lies in between: not proved either way")


def _numbers_text(p: Pressure) -> str:
    per = "" if p.surviving <= 1 or even(p.service.load_balancer.kind) else \
        f", {number(p.instance_demand)} of them on {p.busiest}"
    limits = ""
    if p.service.queue is not None or p.service.concurrency is not None:
        limits = f"; rejects {percent(p.loss.high)}"
    return (f"{number(p.load)} requests/s keep {number(p.demand)} workers busy{per}; "
            f"{p.surviving} of {plural(p.service.replicas, 'replica')} left x "
            f"{plural(p.service.workers, 'worker')} = capacity {p.capacity}{limits}")


def _repair(system: System, models: dict[str, ServiceModel], broken: list[Pressure],
            kinds: FailureKinds, budget: int, limit: Fraction, rejected: float,
            deadline: Deadline) -> tuple[Repair | None, str]:
    """Fewest changed spec keys, then fewest added worker slots, so that no service breaks
    after ``budget`` failures (``_fewest_keys``, service by service: keys and slots both add
    up over services).

    With zone failures allowed and no more zones than failures nothing would survive, so the
    fewest new zones are added first (``zones`` in the changes). Limits add a second need per
    workers-per-instance count: enough survivors that each one's loss is within the target.
    """
    if any(p.unbounded for p in broken):
        return None, "no replica count repairs an unbounded load"
    if limit <= 0:
        return None, "no capacity meets a utilization target of 0"
    zones = system.zones
    if kinds.zones and budget >= len(zones):
        zones = zones + extra_zones(zones, budget + 1 - len(zones))
    solver = PlacementSolver.for_system(system, zones, deadline)
    plan: list[PlacementChange] = []
    try:
        for p in broken:
            deadline.check()
            model = models[p.service.name]
            # Without queue or concurrency limits nothing is rejected at any worker count:
            # no second need, and the search may skip the worker counts that change nothing.
            losses = _losses_need(model, rejected, deadline) if model.station.limited else None
            change = _fewest_keys(system, solver, zones, model, p, kinds, budget, limit,
                                  rejected, losses, deadline)
            if change is None:
                return None, ("no repair by adding replicas or workers exists within the "
                              f"spec's limits ({MAX_REPLICAS:,} replicas, {MAX_WORKERS:,} "
                              "workers)")
            plan.append(change)
        return as_repair(plan, system.zones, zones, deadline), ""
    except (RepairTimeout, OutOfTime):
        return None, REPAIR_OUT_OF_TIME


def _fewest_keys(system: System, solver: PlacementSolver, zones: tuple[str, ...],
                 model: ServiceModel, p: Pressure, kinds: FailureKinds, budget: int,
                 limit: Fraction, rejected: float, losses: Callable[[int], int | None] | None,
                 deadline: Deadline) -> PlacementChange | None:
    """The service's repair changing the fewest spec keys, then adding the fewest worker
    slots: a one-key change (replicas, or workers) when one passes, else the cheapest change
    of both. Under consistent hashing the solver's sizing is checked on the ring of the new
    names (``_passes``) and, where it falls short, asked for more survivors, round by round;
    even balancing passes at once."""
    counts = zone_counts(p.service)
    args = (p.service.name, counts, p.service.workers, p.demand, limit, kinds, budget, losses)
    for extra in range(REPAIR_ROUNDS):
        options = solver.one_key_capacity(*args, extra)
        if not options:
            break  # more survivors asked of the same placement or workers cannot help
        for change in options:
            if _passes(system, zones, model, change, kinds, budget, limit, rejected, deadline):
                return change
    for extra in range(REPAIR_ROUNDS):
        both = solver.for_capacity(*args, extra)
        if both is None or _passes(system, zones, model, both, kinds, budget, limit,
                                   rejected, deadline):
            return both
    return None


def _losses_need(model: ServiceModel, rejected: float,
                 deadline: Deadline) -> Callable[[int], int | None]:
    """Survivors needed, for ``w`` workers each, so that each loses at most ``rejected`` under
    even balancing (None: no number of them does). Each step checks the deadline: the loss
    formulas cost up to O(workers) each, and the solver asks for many ``w``."""

    def need(w: int) -> int | None:
        station = model.with_workers(w)
        if not station.limited:
            return 0
        m = 1
        while model.rejection(float(model.rate) / m, station).high > rejected:
            deadline.check()
            m *= 2
            if m > 1 << 20:
                return None
        low = m // 2 + 1 if m > 1 else 1
        while low < m:  # the least m in (m/2, m] that passes: losses fall as m grows
            deadline.check()
            mid = (low + m) // 2
            if model.rejection(float(model.rate) / mid, station).high > rejected:
                low = mid + 1
            else:
                m = mid
        return m

    return need


def _passes(system: System, zones: tuple[str, ...], model: ServiceModel,
            change: PlacementChange, kinds: FailureKinds, budget: int, limit: Fraction,
            rejected: float, deadline: Deadline) -> bool:
    """Does the changed service pass (the exact check, shares of the new names included)?
    Each failure set tried checks ``deadline``: a repaired ring has more names, and its
    enumeration can outlast the verifier's timeout."""
    if even(model.service.load_balancer.kind):
        return True  # the solver's sizing is already exact for even balancing
    from faultmesh.model.spec import from_document, to_document  # pydantic: only here

    changes = {**change.changes(), "zones": list(zones)}
    repaired = from_document(apply_changes(to_document(system), changes))
    load = offered_load(repaired)
    again = ServiceModel(repaired, model.service.name, load,
                         CallTimes(repaired, load, kinds, budget))
    return again.profile(kinds, budget, deadline)[-1].status(limit, rejected) == "ok"


def _chain(system: System, target: str) -> tuple[str, ...]:
    """A shortest call path from a workload entry to an endpoint of ``target``."""
    parent: dict[str, str | None] = {}
    queue: deque[str] = deque()
    for entry in system.entries:
        if entry not in parent:
            parent[entry] = None
            queue.append(entry)
    while queue:
        node = queue.popleft()
        if node.partition(".")[0] == target:
            path = [node]
            while (up := parent[path[-1]]) is not None:
                path.append(up)
            return tuple(reversed(path))
        for call in system.endpoint(node).calls():
            if call.probability > 0 and call.target not in parent:
                parent[call.target] = node
                queue.append(call.target)
    return ()


__all__ = ["check"]
