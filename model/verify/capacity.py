"""`capacity {failures: K, utilization: U}`: after any K failures, every loaded service keeps
its utilization ``demand / (surviving instances x workers)`` below U.

Decision procedure (exact):

  Offered load does not depend on failures (``load``: the worst case, every attempt made), so
  services are independent: the property fails iff some service with load > 0 is overloaded
  after the failures that remove the most of its instances. For a budget of j failures those
  are its j most-populated zones (or j instances with instances only; ``failures.
  worst_removal`` has the argument), and utilization only grows with removed instances. So the
  smallest failure set that overloads anything has size min over services of the least j <= K
  at which that service's worst j failures overload it; that set is the counterexample.

Arithmetic is exact (``Fraction``). An unbounded load (a call cycle that never ends) overloads
its services with no failure at all. The repair (``repairs``) adds the fewest worker slots.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from fractions import Fraction

from faultmesh.model import properties as P
from faultmesh.model.system import Service, System
from faultmesh.model.verify import checker
from faultmesh.model.verify.deadline import Deadline
from faultmesh.model.verify.failures import (
    FailureKinds,
    removal_profile,
    worst_removal,
    zone_counts,
)
from faultmesh.model.verify.load import exact, offered_load
from faultmesh.model.verify.repairs import (
    PlacementChange,
    PlacementSolver,
    RepairTimeout,
    as_repair,
    extra_zones,
)
from faultmesh.model.verify.verdict import Counterexample, Repair, Verdict
from faultmesh.model.verify.wording import number, out_of_time, percent, plural


@dataclass(frozen=True)
class Pressure:
    """One service under its worst ``failures`` failures."""

    service: Service
    load: Fraction
    demand: Fraction
    unbounded: bool
    failures: int  # how many failures (the worst ones for this service)
    surviving: int

    @property
    def capacity(self) -> int:
        return self.surviving * self.service.workers

    @property
    def utilization(self) -> Fraction | None:
        """demand / capacity; None when it is infinite (nothing survives, or unbounded load)."""
        if self.capacity == 0 or self.unbounded:
            return None
        return self.demand / self.capacity

    def overloaded(self, limit: Fraction) -> bool:
        u = self.utilization
        return u is None or u >= limit

    def rank(self) -> tuple[int, Fraction]:
        """Sort key: most utilized first (infinite before any finite)."""
        u = self.utilization
        return (0, Fraction(0)) if u is None else (1, -u)


@checker("capacity")
def check(system: System, prop: P.Property, deadline: Deadline) -> Verdict:
    assert isinstance(prop, P.Capacity)
    if deadline.expired():
        return out_of_time(prop)
    kinds = FailureKinds.of(prop.of)
    budget = prop.failures
    limit = exact(prop.utilization)
    load = offered_load(system)
    if deadline.expired():
        return out_of_time(prop)

    worst: list[Pressure] = []  # every loaded service at the full budget
    first: Pressure | None = None  # the smallest failure set that overloads something
    for name, service in system.services.items():
        rate, demand, unbounded = load.service(system, name)
        if rate == 0 and not unbounded:
            continue
        profile = removal_profile(list(zone_counts(service).values()), kinds, budget)
        at = [Pressure(service, rate, demand, unbounded, j, service.replicas - profile[j])
              for j in range(budget + 1)]
        worst.append(at[-1])
        breaking = next((p for p in at if p.overloaded(limit)), None)
        if breaking is not None and (first is None or (breaking.failures, breaking.rank())
                                     < (first.failures, first.rank())):
            first = breaking
    if deadline.expired():
        return out_of_time(prop)

    if first is None:
        if not worst:
            return Verdict(prop.name, prop.kind, "holds", "no service receives any load")
        busiest = min(worst, key=Pressure.rank)
        _, units = worst_removal(busiest.service, kinds, budget)
        after = f"after {', '.join(units)} down" if units else "with no failure"
        return Verdict(prop.name, prop.kind, "holds",
                       f"under any {plural(budget, 'failure')} of {kinds.describe()} every "
                       f"service stays below {percent(limit)} utilization: the busiest, "
                       f"{busiest.service.name}, reaches {percent(busiest.utilization)} "
                       f"{after} ({_numbers_text(busiest)})")

    _, units = worst_removal(first.service, kinds, first.failures)
    numbers = {"load": float(first.load), "demand": float(first.demand),
               "capacity": float(first.capacity), "surviving": float(first.surviving),
               "workers": float(first.service.workers)}
    if first.utilization is not None:
        numbers["utilization"] = float(first.utilization)
    if first.unbounded:
        numbers = {}
    counterexample = Counterexample(failures=units, down=(first.service.name,),
                                    chain=_chain(system, first.service.name), numbers=numbers)
    repair, note = _repair(system, [p for p in worst if p.overloaded(limit)], kinds, budget,
                           limit, deadline)
    return Verdict(prop.name, prop.kind, "violated",
                   _violation_text(first, units, limit) + (f"; {note}" if note else ""),
                   counterexample, repair)


def _violation_text(p: Pressure, units: tuple[str, ...], limit: Fraction) -> str:
    name = p.service.name
    when = f"after {', '.join(units)} down" if units else "with no failure at all"
    if p.unbounded:
        return (f"{name} receives an unbounded load {when}: a call cycle re-enters it with "
                f"probability that never dies out; break the cycle")
    if p.capacity == 0:
        return f"{name} has no instance left {when} but receives {number(p.load)} requests/s"
    return (f"{name} is overloaded {when}: {_numbers_text(p)}, utilization "
            f"{percent(p.utilization)} >= {percent(limit)}")


def _numbers_text(p: Pressure) -> str:
    return (f"{number(p.load)} requests/s keep {number(p.demand)} workers busy; "
            f"{p.surviving} of {plural(p.service.replicas, 'replica')} left x "
            f"{plural(p.service.workers, 'worker')} = capacity {p.capacity}")


def _repair(system: System, overloaded: list[Pressure], kinds: FailureKinds, budget: int,
            limit: Fraction, deadline: Deadline) -> tuple[Repair | None, str]:
    """Fewest added worker slots so that no service is overloaded after ``budget`` failures.

    With zone failures allowed and no more zones than failures nothing would survive, so the
    fewest new zones are added first (``zones`` in the changes).
    """
    if any(p.unbounded for p in overloaded):
        return None, "no replica count repairs an unbounded load"
    if limit <= 0:
        return None, "no capacity meets a utilization target of 0"
    zones = system.zones
    if kinds.zones and budget >= len(zones):
        zones = zones + extra_zones(zones, budget + 1 - len(zones))
    solver = PlacementSolver.for_system(system, zones, deadline)
    plan: list[PlacementChange] = []
    try:
        for p in overloaded:
            change = solver.for_capacity(p.service.name, zone_counts(p.service),
                                         p.service.workers, p.demand, limit, kinds, budget)
            if change is None:
                return None, "no repair by adding replicas or workers exists"
            plan.append(change)
    except RepairTimeout:
        return None, "the repair search ran out of time"
    return as_repair(plan, system.zones, zones), ""


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
