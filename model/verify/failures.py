"""Failure units and what they take down: the vocabulary shared by `survives` and `capacity`.

A failure unit is one instance (``instance:cart-0``) or one zone (``zone:a``); each counts one
failure, and a property's ``of`` says which kinds may fail. An instance is down iff it failed or
its zone failed; a service is up iff one of its instances is up.

Everything here is exact combinatorics about one service at a time:

* ``kill_cost`` / ``kill_set``: the fewest failures that take every instance of a service down.
  With zones allowed that is the number of distinct zones it occupies (each occupied zone costs
  one failure: the zone itself, or its single instance when it holds one; failing instances one
  by one is never cheaper, since an occupied zone holds at least one); with instances only it is
  the replica count.
* ``worst_removal``: the at-most-``j`` failures that remove the most instances of a service, for
  capacity. With zones allowed these are its ``j`` most-populated zones (a zone removes at least
  as many instances as a single-instance failure, and failures in distinct zones never overlap);
  with instances only, any ``j`` instances.

``FailureSet`` evaluates an arbitrary set of failures against a System (which instances and
services it takes down); the checkers use it to fill in a counterexample's consequences.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from faultmesh.model.system import Service, System

INSTANCE = "instance"
ZONE = "zone"


@dataclass(frozen=True, slots=True)
class FailureKinds:
    """Which kinds of failure unit a property lets fail."""

    instances: bool
    zones: bool

    @classmethod
    def of(cls, kinds: Iterable[str]) -> FailureKinds:
        wanted = set(kinds)
        return cls(instances=INSTANCE in wanted, zones=ZONE in wanted)

    def describe(self) -> str:
        if self.instances and self.zones:
            return "instances or zones"
        return "zones" if self.zones else "instances"


def zone_unit(zone: str) -> str:
    return f"{ZONE}:{zone}"


def instance_unit(service: str, index: int) -> str:
    return f"{INSTANCE}:{service}-{index}"


def zone_counts(service: Service) -> dict[str, int]:
    """Replicas of the service per zone, zones in order of first replica."""
    return dict(Counter(service.zones))


def kill_cost(service: Service, kinds: FailureKinds) -> int | None:
    """The fewest failures that take every instance of ``service`` down (None: impossible)."""
    if kinds.zones:
        return len(set(service.zones))
    if kinds.instances:
        return service.replicas
    return None


def kill_set(service: Service, kinds: FailureKinds) -> tuple[str, ...]:
    """A smallest failure set taking the service down (``kill_cost`` units).

    Where a zone holds exactly one of its instances and instances may fail, the instance is
    named rather than the zone: both cost one, and the instance takes nothing else down, so the
    counterexample blames the service rather than the whole zone.
    """
    if kinds.zones:
        units = []
        for zone, count in zone_counts(service).items():
            if count == 1 and kinds.instances:
                units.append(instance_unit(service.name, service.zones.index(zone)))
            else:
                units.append(zone_unit(zone))
        return tuple(units)
    if kinds.instances:
        return tuple(instance_unit(service.name, i) for i in range(service.replicas))
    return ()


def worst_removal(service: Service, kinds: FailureKinds,
                  budget: int) -> tuple[int, tuple[str, ...]]:
    """The at most ``budget`` failures removing the most instances: (instances removed, units).

    Exact: with zones allowed, failing the most-populated zones first is optimal, because every
    failure unit removes instances of at most one zone (a zone, or an instance in it) and a zone
    removes all of its instances; so ``j`` failures remove at most the ``j`` largest zone counts.
    """
    if budget <= 0:
        return 0, ()
    if kinds.zones:
        by_size = sorted(zone_counts(service).items(), key=lambda item: -item[1])
        chosen = by_size[:budget]
        units = []
        for zone, count in chosen:
            if count == 1 and kinds.instances:
                units.append(instance_unit(service.name, service.zones.index(zone)))
            else:
                units.append(zone_unit(zone))
        return sum(count for _, count in chosen), tuple(units)
    if kinds.instances:
        removed = min(budget, service.replicas)
        return removed, tuple(instance_unit(service.name, i) for i in range(removed))
    return 0, ()


def removal_profile(counts: Sequence[int], kinds: FailureKinds, budget: int) -> list[int]:
    """Instances removed by the worst ``j`` failures, for ``j = 0..budget`` (from zone counts)."""
    total = sum(counts)
    if kinds.zones:
        ordered = sorted((c for c in counts if c > 0), reverse=True)
        profile = [0]
        for j in range(1, budget + 1):
            profile.append(profile[-1] + (ordered[j - 1] if j - 1 < len(ordered) else 0))
        return profile
    if kinds.instances:
        return [min(j, total) for j in range(budget + 1)]
    return [0] * (budget + 1)


@dataclass(frozen=True)
class FailureSet:
    """A set of failed units, evaluated against a System."""

    units: tuple[str, ...]

    @cached_property
    def zones(self) -> frozenset[str]:
        return frozenset(u.partition(":")[2] for u in self.units if u.startswith(ZONE + ":"))

    @cached_property
    def instances(self) -> frozenset[str]:
        return frozenset(u.partition(":")[2] for u in self.units if u.startswith(INSTANCE + ":"))

    def surviving(self, service: Service) -> int:
        """How many instances of the service stay up."""
        zones, instances = self.zones, self.instances
        return sum(1 for i, zone in enumerate(service.zones)
                   if zone not in zones and f"{service.name}-{i}" not in instances)

    def services_down(self, system: System) -> set[str]:
        """Services with no instance left up."""
        return {name for name, service in system.services.items() if self.surviving(service) == 0}


__all__ = ["INSTANCE", "ZONE", "FailureKinds", "FailureSet", "instance_unit", "kill_cost",
           "kill_set", "removal_profile", "worst_removal", "zone_counts", "zone_unit"]
