"""What a simulation run will cost, estimated before it runs: the events the engine processes.

Pure arithmetic on a System, a scenario and a duration; nothing is simulated. The estimate is
the sum of its ``Part``\\ s, each tied to the spec item it comes from (a workload item, a fault,
the discovery or readiness settings), so a refusal can name what to change:

* requests: every endpoint visit a workload item causes (``verify.load.offered_load``, the
  verifier's per-endpoint load: fan-out, ``repeat`` and ``probability`` multiplied along the
  calls; retries at their nominal rate, i.e. none, as they fire only for failed attempts),
  times ``EVENTS_PER_VISIT``, times the duration;
* stochastic crashes (``mttf``/``mttr``): one failure and one repair per cycle of
  ``mttf + mttr`` for each instance the fault targets, while the fault is active;
* discovery: with client-side discovery every instance heartbeats every ``heartbeat`` and
  every instance refreshes its cache every ``refresh``; readiness probes run every ``period``
  per instance.

``EVENTS_PER_SECOND`` (the engine's measured pace, ``bench/simulate.py``) turns events into
wall-clock time for the warning; ``MAX_EVENTS`` is the hard limit past which a run is refused:
at about a kilobyte of live state per pending event and tens of microseconds per event, two
billion events is over a day of computing, which no run finishes in practice.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from faultmesh.model.faults import Crash, Scenario, Target
from faultmesh.model.system import System

# Engine events per endpoint visit, as counted on the shipped specs (SimPy steps over visits:
# 2 for mm1, about 3 for online_boutique and zone_outage_shop, network hops included).
EVENTS_PER_VISIT = 3
EVENTS_PER_SECOND = 150_000.0  # the engine's measured pace on one core (145k-220k/s)
WARN_EVENTS = 5_000_000  # above this, say how long the run may take before it starts
MAX_EVENTS = 2_000_000_000  # above this, refuse: it cannot finish in memory or time
WARN_RATE = 100_000.0  # a workload rate from here on is almost certainly a mistake


@dataclass(frozen=True)
class Part:
    """Events one spec item causes: ``path`` is its key path in the spec document."""

    path: tuple[str | int, ...]
    what: str
    events: float


@dataclass(frozen=True)
class Estimate:
    """The events a run will take, by spec item (largest first)."""

    duration: float
    parts: tuple[Part, ...]
    unbounded: tuple[str, ...] = ()  # endpoints a call cycle loads without limit

    @property
    def events(self) -> float:
        return float("inf") if self.unbounded else sum(p.events for p in self.parts)

    @property
    def seconds(self) -> float:
        """Wall-clock seconds the run may take, at the engine's usual pace."""
        return self.events / EVENTS_PER_SECOND

    @property
    def largest(self) -> Part | None:
        return self.parts[0] if self.parts else None


def estimate(system: System, scenario: Scenario | None, duration: float) -> Estimate:
    """The events a run of ``duration`` simulated seconds will take (see the module doc)."""
    from faultmesh.model.verify.load import offered_load

    parts: list[Part] = []
    unbounded: list[str] = []
    for index, item in enumerate(system.workload):
        # The load of this item alone: every visit it causes, down the call graph.
        alone = System(system.services, communication=system.communication,
                       zones=system.zones, workload=(item,))
        load = offered_load(alone)
        if load.unbounded:
            unbounded.extend(sorted(load.unbounded))
            continue
        visits = sum(load.endpoints.values(), Fraction(0))
        parts.append(Part(("workload", index, "rate"),
                          f"workload {item.entry} at {item.rate:g}/s",
                          float(visits) * duration * EVENTS_PER_VISIT))
    if scenario is not None:
        for index, fault in enumerate(scenario.faults):
            if isinstance(fault, Crash) and fault.mttf is not None:
                start = min(fault.at, duration)
                end = duration if fault.end is None else min(fault.end, duration)
                cycle = fault.mttf + (fault.mttr or 0.0)
                instances = _instances(system, fault.target)
                parts.append(Part(("scenarios", scenario.name, "faults", index),
                                  f"crash {fault.target} every {cycle:g}s per instance",
                                  2 * instances * max(0.0, end - start) / cycle))
    instances = sum(s.replicas for s in system.services.values())
    if system.discovery.mode == "client":
        per_instance = 1 / system.discovery.heartbeat + 1 / system.discovery.refresh
        parts.append(Part(("discovery",), "discovery heartbeats and cache refreshes",
                          instances * per_instance * duration))
    probes = sum(s.replicas / s.readiness.period for s in system.services.values())
    parts.append(Part(("orchestration", "readiness"), "readiness probes", probes * duration))
    parts.sort(key=lambda p: -p.events)
    return Estimate(duration, tuple(parts), tuple(dict.fromkeys(unbounded)))


def _instances(system: System, target: Target) -> int:
    """How many instances a fault's target covers."""
    if target.kind == "zone":
        return sum(1 for s in system.services.values() for z in s.zones if z == target.name)
    if target.kind == "instance":
        return 1
    service = system.services.get(target.name.partition(".")[0])
    return service.replicas if service is not None else 0


class RunTooLarge(ValueError):
    """A run that cannot finish in memory or time (past ``MAX_EVENTS``, or unbounded).

    ``path`` is the key path of the spec item most responsible (for a located message)."""

    def __init__(self, message: str, path: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


class LongRun(UserWarning):
    """A run past ``WARN_EVENTS``: it will take a while (the message says about how long)."""


def refusal(cost: Estimate) -> RunTooLarge | None:
    """The refusal of a run that cannot finish, naming the item that costs most; else None."""
    if cost.unbounded:
        return RunTooLarge(
            f"a call cycle gives {', '.join(cost.unbounded[:3])} an unbounded load: every "
            "request spawns another forever, so no run finishes; break the cycle",
            ("workload",))
    if cost.events <= MAX_EVENTS:
        return None
    top = cost.largest
    assert top is not None
    return RunTooLarge(
        f"this run would take about {_count(cost.events)} events, {_count(top.events)} of "
        f"them from {top.what}; at most {_count(MAX_EVENTS)} events can finish in memory "
        f"and time: lower it or the duration ({cost.duration:g}s)", top.path)


def long_run(cost: Estimate) -> str | None:
    """What to say before a run past ``WARN_EVENTS`` (None: nothing)."""
    if cost.events <= WARN_EVENTS:
        return None
    minutes = cost.seconds / 60
    when = f"{minutes:.0f} minutes" if minutes >= 1.5 else "about a minute"
    top = cost.largest
    most = f" (mostly {top.what})" if top is not None else ""
    return f"about {_count(cost.events)} events; this may take {when}{most}"


def _count(events: float) -> str:
    if events >= 1e9:
        return f"{events / 1e9:.1f} billion"
    if events >= 1e6:
        return f"{events / 1e6:.0f} million"
    return f"{events:,.0f}"


def too_fast(system: System) -> list[tuple[tuple[str | int, ...], str]]:
    """Workload items with a rate of ``WARN_RATE`` or more: (key path, message)."""
    return [(("workload", i, "rate"),
             f"{w.entry} receives {w.rate:,.0f} requests/s: every request is simulated, so a "
             f"second of simulated time costs about {w.rate * EVENTS_PER_VISIT / 1e6:.0f} "
             "million events; was a smaller rate meant?")
            for i, w in enumerate(system.workload) if w.rate >= WARN_RATE]


__all__ = ["EVENTS_PER_SECOND", "EVENTS_PER_VISIT", "MAX_EVENTS", "WARN_EVENTS", "WARN_RATE",
           "Estimate", "LongRun", "Part", "RunTooLarge", "estimate", "long_run", "refusal",
           "too_fast"]
