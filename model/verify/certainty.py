"""The certain loads ``capacity`` compares a violation with, each found once per check.

A violation under the offered load (an upper bound) is certain only if the load sure to arrive
(``thinning.certain_load``) breaks the service too. Which services are broken beside it depends
on the failure count and the failure set; the certain load depends on those and on the shares
each service accepts. One check asks for the same few loads tens of thousands of times (once
per loaded service and failure count), so they are kept here, with what every pass shares
(``thinning.Walks``) when the call graph has no cycle.
"""

from __future__ import annotations

import math
from fractions import Fraction

from faultmesh.model.graph import components
from faultmesh.model.system import Call, System
from faultmesh.model.verify.deadline import Deadline
from faultmesh.model.verify.failures import FailureSet
from faultmesh.model.verify.load import OfferedLoad
from faultmesh.model.verify.pressure import CallTimes, Pressure, ServiceModel
from faultmesh.model.verify.thinning import Failing, Walks, certain_load


class CertainLoads:
    """The certain loads ``_thinned`` compares with, each found once: per failure count and
    set of broken services (the services broken beside one service are those of its failure
    count, itself left out), with the broken sets built once per failure set."""

    def __init__(self, system: System, load: OfferedLoad, profiles: dict[str, list[Pressure]],
                 deadline: Deadline) -> None:
        self.system = system
        self.nominal = load
        self.profiles = profiles
        self.deadline = deadline
        self.saturated: dict[int, frozenset[str]] = {}
        self.sets: dict[tuple[int, tuple[str, ...]], tuple[frozenset[str], frozenset[str]]] = {}
        self.loads: dict[tuple[int, frozenset[str]], OfferedLoad] = {}
        self._acyclic: bool | None = None
        self.zone_gone: dict[frozenset[str], frozenset[str]] = {}
        self.unions: dict[tuple[int, frozenset[str]], frozenset[str]] = {}
        self.walks = Walks()  # certain_load's findings, shared when acyclic
        self.models: dict[tuple[str, tuple[Fraction | int, ...]], ServiceModel] = {}
        self._into: dict[str, list[tuple[str, Call]]] | None = None  # calls into each service

    @property
    def acyclic(self) -> bool:
        """Has the call graph no cycle (no endpoint reaches itself)?"""
        if self._acyclic is None:
            succ = {f"{s.name}.{ep}": [c.target for c in e.calls()]
                    for s in self.system.services.values() for ep, e in s.endpoints.items()}
            self._acyclic = all(len(c) == 1 and c[0] not in succ.get(c[0], ())
                                for c in components(succ))
        return self._acyclic

    def broken(self, failures: int, units: tuple[str, ...]) -> tuple[frozenset[str],
                                                                       frozenset[str]]:
        """The services saturated at ``failures`` or left with nothing by ``units``, and
        those left with nothing."""
        key = (failures, units)
        if key not in self.sets:
            if failures not in self.saturated:
                self.saturated[failures] = frozenset(
                    name for name, at in self.profiles.items() if _saturated(at[failures]))
            dead = FailureSet(units)
            services = self.system.services
            if dead.zones not in self.zone_gone:  # every instance in a failed zone
                self.zone_gone[dead.zones] = frozenset(
                    name for name, s in services.items() if all(z in dead.zones for z in s.zones))
            named = {i.rpartition("-")[0] for i in dead.instances}
            gone = self.zone_gone[dead.zones] | {
                name for name in named if name in services and dead.surviving(services[name]) == 0}
            saturated = self.saturated[failures]
            if gone:
                # One union per distinct set left with nothing: failure sets differ per service
                # (its own instances), the services they empty seldom do, and a union (or a
                # new key for the certain loads) costs as much as there are broken services.
                both = self.unions.get((failures, gone))
                if both is None:
                    both = self.unions[(failures, gone)] = saturated | gone
            else:
                both = saturated
            self.sets[key] = (both, gone)
        return self.sets[key]

    def breaking_changes_nothing(self, name: str, broken: frozenset[str]) -> bool:
        """Is the certain load with ``broken`` (which may hold ``name``) the same as with
        ``broken`` but ``name``? So when every attempt into the service fails anyway with
        it left out (``Failing.static_here``, else its endpoint able to fail): a broken
        service only makes the attempts into it fail (its own calls go on), so every answer
        of ``Failing`` is then the same. Only without call cycles (the shared answers are only
        kept then)."""
        if self._into is None:
            self._into = {}
            for s in self.system.services.values():
                for endpoint in s.endpoints.values():
                    for call in endpoint.calls():
                        self._into.setdefault(call.service, []).append((s.name, call))
        failing = Failing(self.system, broken - {name}, self.walks.healthy, self.walks.static)
        for caller, call in self._into.get(name, ()):
            for refusals in (False, True):
                here = failing.static_here(caller, call, refusals)
                if here is None and not failing.endpoint_can_fail(call.target):
                    return False
        return True

    def model(self, name: str, load: OfferedLoad, times: CallTimes) -> ServiceModel:
        """``ServiceModel(system, name, load, times)`` for one of these certain loads, found
        once per distinct load of the service: the model reads nothing else of a certain
        load (its attempts and called services are the nominal load's, shared by all), and
        at 100,000 services most keep the same load from one failure count to the next."""
        key = (name, tuple(load.endpoints.get(f"{name}.{ep}", 0)
                           for ep in self.system.services[name].endpoints))
        found = self.models.get(key)
        if found is None:
            found = self.models[key] = ServiceModel(self.system, name, load, times)
        return found

    def load(self, failures: int, broken: frozenset[str]) -> OfferedLoad:
        key = (failures, broken)
        if key not in self.loads:
            # Each service refuses at most its upper loss bound at its worst failures this size.
            accepts = {name: _accepted(at[failures].loss.high)
                       for name, at in self.profiles.items()}
            self.loads[key] = certain_load(self.system, self.nominal, broken, accepts,
                                           self.deadline, self.walks if self.acyclic else None)
        return self.loads[key]


def _accepted(refused: float) -> float:
    """At most one minus ``refused`` (a share): the float difference, stepped toward zero
    unless nothing is refused (so the certain load below stays a lower bound)."""
    return 1.0 if refused <= 0 else max(0.0, math.nextafter(1.0 - refused, 0.0))


def _saturated(p: Pressure) -> bool:
    """Nothing left, an unbounded load, or more work than its workers can do."""
    u = p.utilization
    return u is None or u >= 1


__all__ = ["CertainLoads"]
