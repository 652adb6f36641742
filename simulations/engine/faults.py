"""Fault injection: a scenario's faults, applied at ``at`` and lifted after ``for``.

Targets resolve to instances: ``zone:a`` (every instance in the zone), ``service:cart``,
``instance:cart-0``, or an endpoint ``cart.GetCart`` (the service's instances, that endpoint
only). Overlapping faults compose: each is kept under its own id and lifted alone.

* ``crash`` -- with ``for``, the instances are held down for that long and start again after
  it (an outage); without, they crash once and restart after their restart delay. With
  ``mttf``/``mttr`` each instance independently fails after exponential up-times and stays down
  for exponential repair times, from ``at`` to the end of the fault (or of the run). The repair
  time is the whole time down: the restart delay is part of it, not added to it, and with the
  default ``readiness.initial_delay`` of 0 the restarted instance is ready at once, so an
  instance is in service a share ``mttf / (mttf + mttr)`` of the time and k-of-n replicas follow
  the binomial law. The next up-time is drawn when the instance restarts (up time counts from
  the restart, not from readiness). A ``zone:`` target crashes the zone's nodes: server-side
  discovery notices after ``discovery.zone_detection``, not by readiness probes.
* ``latency`` -- requests reaching the target wait an extra draw of ``add`` first.
* ``errors`` -- the target fails each request with probability ``rate``, at once.
* ``partition`` -- messages between the two sides are dropped (one way with ``oneway``).
* ``loss`` -- extra message loss, everywhere or between two sides.
* ``slowdown`` -- service times at the target are multiplied by ``factor``.
* ``registry_outage`` -- discovery views freeze.
* ``rolling_restart`` -- the service's instances restart one after another, ``interval`` apart.
* ``surge`` -- the workload arriving at the entry is multiplied by ``factor`` (or set to
  ``rate``, split evenly among the workload items of that entry) for the window; surges that
  overlap apply in the order they started.

Every fault that starts is logged (``FaultRecord``) with the service edges it should make a
circuit breaker react on, for the monitors and the per-phase view. A fault whose ``at`` is not
before the end of the run never starts; it is kept in ``not_fired`` so the summary can say so.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import simpy
from simpy.events import Timeout

from faultmesh.model.faults import (
    Crash,
    ErrorFault,
    Fault,
    LatencyFault,
    LossFault,
    Partition,
    RegistryOutage,
    RollingRestart,
    Slowdown,
    Surge,
    Target,
)
from faultmesh.model.units import format_duration
from faultmesh.simulations.engine.discovery import Discovery
from faultmesh.simulations.engine.instances import Instance
from faultmesh.simulations.engine.network import Network
from faultmesh.simulations.engine.orchestration import Orchestrator
from faultmesh.simulations.engine.streams import Streams
from faultmesh.simulations.engine.workload import Arrivals
from faultmesh.simulations.observation.summary import FaultSummary

Edge = tuple[str, str]


def describe(fault: Fault) -> str:
    """A one-line label of a fault, as the per-phase view shows it."""
    if isinstance(fault, Crash):
        text = f"crash {fault.target}"
        if fault.mttf is not None and fault.mttr is not None:
            text += f" (mttf {format_duration(fault.mttf)}, mttr {format_duration(fault.mttr)})"
        return text
    if isinstance(fault, LatencyFault):
        return f"latency {fault.target} +{format_duration(fault.add.mean)}"
    if isinstance(fault, ErrorFault):
        return f"errors {fault.target} {fault.rate:.0%}"
    if isinstance(fault, Partition):
        arrow = "->" if fault.oneway else "<->"
        return f"partition {fault.between[0]} {arrow} {fault.between[1]}"
    if isinstance(fault, LossFault):
        where = f" {fault.between[0]} <-> {fault.between[1]}" if fault.between else ""
        return f"loss {fault.rate:.3g}{where}"
    if isinstance(fault, Slowdown):
        return f"slowdown {fault.target} x{fault.factor:g}"
    if isinstance(fault, RegistryOutage):
        return "registry outage"
    if isinstance(fault, RollingRestart):
        return f"rolling restart {fault.target} every {format_duration(fault.interval)}"
    if isinstance(fault, Surge):
        if fault.rate is not None:
            return f"surge {fault.entry} to {fault.rate:g}/s"
        return f"surge {fault.entry} x{fault.factor:g}"
    raise TypeError(f"unknown fault {fault!r}")


@dataclass
class FaultRecord:
    """A fault as it happened in the run."""

    index: int
    kind: str
    label: str
    start: float
    end: float | None  # None: lasts to the end of the run
    edges: frozenset[Edge] = field(default_factory=frozenset)  # where a breaker should react

    def to_json(self) -> FaultSummary:
        return {"kind": self.kind, "fault": self.label, "at": self.start, "until": self.end,
                "edges": sorted(f"{a}->{b}" for a, b in self.edges)}


class FaultInjector:
    """Schedules a scenario's faults and applies them to instances, network and discovery."""

    def __init__(self, env: simpy.Environment, faults: tuple[Fault, ...], *,
                 instances: dict[str, list[Instance]], zones: tuple[str, ...],
                 edges: frozenset[Edge], network: Network, discovery: Discovery,
                 orchestrator: Orchestrator, streams: Streams, duration: float,
                 arrivals: list[Arrivals] | None = None) -> None:
        self.env = env
        self.faults = faults
        self.instances = instances
        self.zones = zones
        self.edges = edges
        self.network = network
        self.discovery = discovery
        self.orchestrator = orchestrator
        self.streams = streams
        self.duration = duration
        self.arrivals = arrivals or []
        self.log: list[FaultRecord] = []
        self.not_fired: list[Fault] = []  # starting at or after the end of the run
        self.on_start: list[Callable[[FaultRecord], None]] = []

    def schedule(self) -> None:
        for index, fault in enumerate(self.faults):
            if fault.at < self.duration:
                self._after(fault.at, partial(self._start, index, fault))
            else:
                self.not_fired.append(fault)

    def _after(self, delay: float, action: Callable[[], None]) -> None:
        Timeout(self.env, delay).callbacks.append(lambda _event: action())

    # --- targets ------------------------------------------------------------------------------

    def resolve(self, target: Target) -> tuple[list[Instance], str | None]:
        """The instances a target names, and the endpoint it narrows to (if any)."""
        if target.kind == "zone":
            return [i for group in self.instances.values() for i in group
                    if i.zone == target.name], None
        if target.kind == "service":
            return list(self.instances[target.name]), None
        if target.kind == "instance":
            service, _, index = target.name.rpartition("-")
            return [self.instances[service][int(index)]], None
        service, _, endpoint = target.name.partition(".")
        return list(self.instances[service]), endpoint

    def _into(self, instances: list[Instance]) -> frozenset[Edge]:
        services = {i.service for i in instances}
        return frozenset(e for e in self.edges if e[1] in services)

    def _between(self, a: list[Instance], b: list[Instance], oneway: bool) -> frozenset[Edge]:
        sa, sb = {i.service for i in a}, {i.service for i in b}
        pairs = {(x, y) for x, y in self.edges if x in sa and y in sb}
        if not oneway:
            pairs |= {(x, y) for x, y in self.edges if x in sb and y in sa}
        return frozenset(pairs)

    @staticmethod
    def _pairs(a: list[Instance], b: list[Instance], oneway: bool) -> set[tuple[int, int]]:
        pairs = {(x.uid, y.uid) for x in a for y in b if x is not y}
        if not oneway:
            pairs |= {(y, x) for x, y in pairs}
        return pairs

    # --- applying -----------------------------------------------------------------------------

    def _start(self, index: int, fault: Fault) -> None:
        now = self.env.now
        end = None if fault.duration is None else now + fault.duration
        record = FaultRecord(index, fault.kind, describe(fault), now, end)
        lift: Callable[[], None] | None = None
        if isinstance(fault, Crash):
            record.edges, lift = self._crash(index, fault, end)
        elif isinstance(fault, LatencyFault | ErrorFault | Slowdown):
            instances, endpoint = self.resolve(fault.target)
            record.edges = self._into(instances)
            rng = self.streams(f"fault/{index}")
            for instance in instances:
                if isinstance(fault, LatencyFault):
                    instance.add_delay(index, endpoint, fault.add.sampler(rng))
                elif isinstance(fault, ErrorFault):
                    instance.add_errors(index, endpoint, fault.rate)
                else:
                    instance.add_slowdown(index, fault.factor)

            def lift() -> None:
                for instance in instances:
                    instance.remove_fault(index)
        elif isinstance(fault, Partition):
            a, _ = self.resolve(fault.between[0])
            b, _ = self.resolve(fault.between[1])
            record.edges = self._between(a, b, fault.oneway)
            self.network.add_partition(index, self._pairs(a, b, fault.oneway))

            def lift() -> None:
                self.network.remove(index)
        elif isinstance(fault, LossFault):
            if fault.between is None:
                record.edges = self.edges
                self.network.add_loss(index, fault.rate, None)
            else:
                a, _ = self.resolve(fault.between[0])
                b, _ = self.resolve(fault.between[1])
                record.edges = self._between(a, b, False)
                self.network.add_loss(index, fault.rate, self._pairs(a, b, False))

            def lift() -> None:
                self.network.remove(index)
        elif isinstance(fault, RegistryOutage):
            self.discovery.outage(True)

            def lift() -> None:
                self.discovery.outage(False)
        elif isinstance(fault, RollingRestart):
            instances, _ = self.resolve(fault.target)
            for k, instance in enumerate(instances):
                self._after(k * fault.interval,
                            partial(self.orchestrator.restart, instance))
        elif isinstance(fault, Surge):
            sources = [a for a in self.arrivals if a.workload.entry == fault.entry]
            for source in sources:
                source.add_surge(index, fault, len(sources))

            def lift() -> None:
                for source in sources:
                    source.remove_surge(index)
        else:  # pragma: no cover - the loader only builds the kinds above
            raise TypeError(f"unknown fault {fault!r}")
        self.log.append(record)
        for hook in self.on_start:
            hook(record)
        if lift is not None and end is not None and end < self.duration:
            self._after(end - now, lift)

    def _crash(self, index: int, fault: Crash, end: float | None
               ) -> tuple[frozenset[Edge], Callable[[], None] | None]:
        instances, _ = self.resolve(fault.target)
        edges = self._into(instances)
        orchestrator = self.orchestrator
        node = fault.target.kind == "zone"
        if fault.mttf is not None and fault.mttr is not None:
            stop = self.duration if end is None else min(end, self.duration)
            processes = [
                _Flapping(self.env, orchestrator, instance, fault.mttf, fault.mttr, stop,
                          self.streams(f"fault/{index}/{instance.name}"))
                for instance in instances
            ]
            for process in processes:
                process.start()
            return edges, None
        if end is None:
            for instance in instances:
                orchestrator.crash(instance, node)
            return edges, None
        for instance in instances:
            orchestrator.hold(instance, node)

        def lift() -> None:
            for instance in instances:
                orchestrator.release(instance)

        return edges, lift


class _Flapping:
    """One instance failing and being repaired at random until ``stop``."""

    def __init__(self, env: simpy.Environment, orchestrator: Orchestrator, instance: Instance,
                 mttf: float, mttr: float, stop: float, rng: random.Random) -> None:
        self.env = env
        self.orchestrator = orchestrator
        self.instance = instance
        self.mttf = mttf
        self.mttr = mttr
        self.stop = stop
        self.rng = rng
        self.held = False

    def start(self) -> None:
        if self.mttf <= 0 and self.mttr <= 0:
            return  # would fail and recover forever at one instant
        self._schedule(self.rng.expovariate(1.0 / self.mttf) if self.mttf > 0 else 0.0,
                       self._fail)
        if self.stop < math.inf:
            Timeout(self.env, max(0.0, self.stop - self.env.now)).callbacks.append(self._end)

    def _schedule(self, delay: float, action: Callable[[object], None]) -> None:
        if self.env.now + delay < self.stop:
            Timeout(self.env, delay).callbacks.append(action)

    def _fail(self, _event: object) -> None:
        if self.held or self.env.now >= self.stop:
            return
        self.held = True
        self.orchestrator.hold(self.instance)
        self._schedule(self.rng.expovariate(1.0 / self.mttr) if self.mttr > 0 else 0.0,
                       self._repair)

    def _repair(self, _event: object) -> None:
        if not self.held:
            return
        self.held = False
        self.orchestrator.release(self.instance)
        self._schedule(self.rng.expovariate(1.0 / self.mttf) if self.mttf > 0 else 0.0,
                       self._fail)

    def _end(self, _event: object) -> None:
        if self.held:
            self.held = False
            self.orchestrator.release(self.instance)
