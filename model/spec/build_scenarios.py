"""Building a spec's properties and scenarios (their faults): part of ``Builder``.

``Builder`` (``model.spec.build``) inherits these, and provides the reference and target
checks they use (``check_ref``, ``check_target``) and the error list (``fail``).
"""

from __future__ import annotations

from typing import Any

from faultmesh.model import faults as F
from faultmesh.model import properties as P
from faultmesh.model.spec import schema as S
from faultmesh.model.spec.yaml_source import Path
from faultmesh.model.system import FrozenMap
from faultmesh.model.units import format_durations


class ScenariosBuilder:
    """The property and scenario part of ``Builder`` (see the module docstring)."""

    spec: S.Spec

    def fail(self, path: Path, message: str, *, key: bool = False) -> None:
        raise NotImplementedError

    def check_ref(self, ref: str, path: Path) -> bool:
        raise NotImplementedError

    def check_target(self, text: str, path: Path, *, kinds: tuple[str, ...]) -> F.Target | None:
        raise NotImplementedError

    def properties(self) -> tuple[P.Property, ...]:
        built: list[P.Property] = []
        names: dict[str, int] = {}
        for i, item in enumerate(self.spec.properties):
            kind = next(iter(type(item).model_fields))
            model = getattr(item, kind)
            path: Path = ("properties", i, kind)
            prop = self.property(kind, model, path)
            if prop is None:
                continue
            if prop.name in names:
                if model.name is not None:
                    self.fail((*path, "name"), f"property name {prop.name!r} is used twice")
                    continue
                names[prop.name] += 1
                prop = type(prop)(**{**_fields(prop), "name": f"{prop.name}#{names[prop.name]}"})
            names.setdefault(prop.name, 1)
            built.append(prop)
        return tuple(built)

    def property(self, kind: str, spec: Any, path: Path) -> P.Property | None:
        name = spec.name
        if kind in ("availability", "latency") and not self.check_ref(spec.entry, (*path, "entry")):
            return None
        if kind in ("survives", "capacity"):
            # A spec that declares no zones has one implicit zone; losing it is losing
            # everything, which no topology survives. Unless the user says otherwise, only
            # instances fail there.
            of = tuple(spec.of) if "of" in spec.model_fields_set or self.spec.zones \
                else ("instance",)
            if kind == "survives":
                return P.Survives(name=name or kind, failures=spec.failures, of=of)
            return P.Capacity(name=name or kind, failures=spec.failures, of=of,
                              utilization=spec.utilization, rejected=spec.rejected)
        if kind == "timeouts_nest":
            return P.TimeoutsNest(name=name or kind)
        if kind == "retry_amplification":
            return P.RetryAmplification(name=name or kind, max=spec.max)
        if kind == "staleness":
            return P.Staleness(name=name or kind)
        if kind == "breaker":
            return P.BreakerSafety(name=name or kind)
        if kind == "overload_recovery":
            return P.OverloadRecovery(name=name or kind)
        if kind == "availability":
            return P.Availability(name=name or f"availability:{spec.entry}", entry=spec.entry,
                                  at_least=spec.at_least, window=spec.window)
        if kind == "latency":
            key, quantile = next((k, q) for k, q in P.LATENCY_QUANTILES.items()
                                 if getattr(spec, k) is not None)
            return P.Latency(name=name or f"latency:{spec.entry}:{key}", entry=spec.entry,
                             quantile=quantile, threshold=getattr(spec, key), window=spec.window)
        if kind == "recovers":
            if not self.check_ref(spec.entry, (*path, "entry")):
                return None
            return P.Recovers(name=name or f"recovers:{spec.entry}", entry=spec.entry,
                              within=spec.within, to=spec.to)
        if kind == "breaker_reaction":
            if spec.edge is not None:
                caller, sep, callee = spec.edge.partition("->")
                for who in (caller.strip(), callee.strip()):
                    if not sep or who not in self.spec.services:
                        self.fail((*path, "edge"), f"edge {spec.edge!r} must be 'caller->callee' "
                                  "between two known services")
                        return None
            return P.BreakerReaction(name=name or kind, within=spec.within, edge=spec.edge)
        raise AssertionError(kind)

    def fault(self, spec: S.FaultSpec, path: Path) -> F.Fault | None:
        at, duration = spec.at, spec.for_
        everything = ("zone", "service", "instance")
        if spec.crash is not None:
            target = self.check_target(spec.crash, (*path, "crash"), kinds=everything)
            if target is None:
                return None
            return F.Crash(target=target, mttf=spec.mttf, mttr=spec.mttr, at=at, duration=duration)
        if spec.latency is not None:
            target = self.check_target(spec.latency.target, (*path, "latency", "target"),
                                       kinds=(*everything, "endpoint"))
            if target is None:
                return None
            return F.LatencyFault(target=target, add=spec.latency.add, at=at, duration=duration)
        if spec.errors is not None:
            target = self.check_target(spec.errors.target, (*path, "errors", "target"),
                                       kinds=("service", "instance", "endpoint"))
            if target is None:
                return None
            return F.ErrorFault(target=target, rate=spec.errors.rate, at=at, duration=duration)
        if spec.partition is not None:
            ends = self.pair(spec.partition.between, (*path, "partition", "between"))
            if ends is None:
                return None
            return F.Partition(between=ends, oneway=spec.partition.oneway, at=at, duration=duration)
        if spec.loss is not None:
            ends = None
            if spec.loss.between is not None:
                ends = self.pair(spec.loss.between, (*path, "loss", "between"))
                if ends is None:
                    return None
            return F.LossFault(rate=spec.loss.rate, between=ends, at=at, duration=duration)
        if spec.slowdown is not None:
            target = self.check_target(spec.slowdown.target, (*path, "slowdown", "target"),
                                       kinds=everything)
            if target is None:
                return None
            return F.Slowdown(target=target, factor=spec.slowdown.factor, at=at, duration=duration)
        if spec.registry_outage is not None:
            return F.RegistryOutage(at=at, duration=duration)
        if spec.rolling_restart is not None:
            target = self.check_target(spec.rolling_restart.target,
                                       (*path, "rolling_restart", "target"), kinds=("service",))
            if target is None:
                return None
            return F.RollingRestart(target=target, interval=spec.rolling_restart.interval,
                                    at=at, duration=duration)
        if spec.surge is not None:
            where: Path = (*path, "surge", "entry")
            if not self.check_ref(spec.surge.entry, where):
                return None
            from faultmesh.model.spec.build import did_you_mean as hint

            entries = [e for w in self.spec.workload
                       for e in ([w.entry] if w.entry else w.mix or ())]
            if spec.surge.entry not in entries:
                self.fail(where, f"not a workload entry: {spec.surge.entry!r}"
                          f"{hint(spec.surge.entry, entries)} (a surge scales the "
                          "workload arriving at one)")
                return None
            return F.Surge(entry=spec.surge.entry, factor=spec.surge.factor,
                           rate=spec.surge.rate, at=at, duration=duration)
        raise AssertionError("schema guarantees one fault kind")

    def pair(self, between: list[str], path: Path) -> tuple[F.Target, F.Target] | None:
        ends = [self.check_target(t, (*path, i), kinds=("zone", "service", "instance"))
                for i, t in enumerate(between)]
        if ends[0] is None or ends[1] is None:
            return None
        if ends[0].kind == "zone" and ends[1].kind != "zone":
            self.fail(path, "a partition is between two zones or between services/instances")
            return None
        return ends[0], ends[1]

    def scenarios(self) -> FrozenMap:
        built = {}
        for name, spec in self.spec.scenarios.items():
            path: Path = ("scenarios", name)
            faults = [self.fault(f, (*path, "faults", i)) for i, f in enumerate(spec.faults)]
            if spec.duration is not None:
                if spec.warmup is not None and spec.duration <= spec.warmup:
                    warmup, duration = format_durations(spec.warmup, spec.duration)
                    self.fail((*path, "warmup"), f"warmup ({warmup}) must be shorter than "
                              f"the duration ({duration})")
                for i, fault in enumerate(faults):
                    if fault is not None and fault.at >= spec.duration:
                        at, duration = format_durations(fault.at, spec.duration)
                        self.fail((*path, "faults", i, "at"),
                                  f"the fault starts at {at}, after the scenario ends "
                                  f"({duration})")
            built[name] = F.Scenario(name, tuple(f for f in faults if f is not None),
                                     spec.duration, spec.warmup)
        return FrozenMap(built)


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}
