"""The ``recovers`` monitor: after the last trigger, does the entry come back, and what keeps
it down?

The trigger ends when the scenario's last fault or surge ends (the latest ``end`` of its
faults); a fault without an end (a crash that is never lifted, a stochastic crash over the whole
run) leaves nothing to recover from, and the property is then reported not applicable, as it is
when the run ends before ``within`` has passed after the trigger. With no faults at all the
reference is the start of the measured run: the entry must be up within ``within`` and stay up.

Availability is measured over a short sliding window of ``WINDOW`` seconds (5 s, rounded to
whole timeline bins), so a recovery shows within seconds rather than being averaged away. The
property holds when every window ending later than ``within`` after the trigger has at least
``to`` of its requests succeed; a window in which no request ended while the workload was
sending counts as down (nothing came back). A violation says how long the entry stayed down
(or that it never recovered in the rest of the run) and what sustained it, from the counters
over the stretch after the trigger: the services that stayed saturated, and per edge into
each the share of the callee's load that was retries, hedges, and orphaned work (served after
its caller had given up).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from simpy.events import Timeout

from faultmesh.model.properties import Recovers
from faultmesh.model.units import format_duration, format_percent
from faultmesh.simulations.observation.monitors import Violations
from faultmesh.simulations.observation.summary import PropertySummary

if TYPE_CHECKING:
    import simpy

    from faultmesh.model.faults import Fault
    from faultmesh.model.system import Workload
    from faultmesh.simulations.engine.edge_stats import EdgeStats
    from faultmesh.simulations.engine.instances import ServiceRuntime
    from faultmesh.simulations.observation.metrics import EntryStats, Timeline

WINDOW = 5.0  # seconds of the sliding availability window
SATURATED = 0.9  # a service this busy after the trigger is named as saturated

Edge = tuple[str, str]


def trigger_end(faults: tuple[Fault, ...], duration: float) -> tuple[float | None, str | None]:
    """When the last trigger ends, or (None, why the property does not apply)."""
    fired = [f for f in faults if f.at < duration]
    if not fired:
        return 0.0, None
    open_ended = [f for f in fired if f.end is None]
    if open_ended:
        return None, (f"not applicable: the {open_ended[0].kind} fault at "
                      f"{format_duration(open_ended[0].at)} has no end to recover from")
    return max(f.end for f in fired if f.end is not None), None


class RecoversMonitor:
    kind = "recovers"

    def __init__(self, prop: Recovers, entry: EntryStats, timeline: Timeline, *,
                 env: simpy.Environment, faults: tuple[Fault, ...], duration: float,
                 warmup: float, workload: list[Workload], services: dict[str, ServiceRuntime],
                 edges: dict[Edge, EdgeStats]) -> None:
        self.name = prop.name
        self.prop = prop
        self.entry = entry
        self.env = env
        self.duration = duration
        self.workload = workload
        self.services = services
        self.edges = edges
        self.width = timeline.width
        self.bins = max(1, round(WINDOW / timeline.width))
        self.window = self.bins * timeline.width
        end, self.note = trigger_end(faults, duration)
        self.trigger = max(end, warmup) if end is not None else None
        if self.note is None and self.trigger is not None \
                and self.trigger + prop.within > duration:
            self.note = (f"not applicable: the run ends {format_duration(duration - self.trigger)}"
                         f" after the trigger, before the {format_duration(prop.within)} allowed")
        self.recent: deque[tuple[int, int]] = deque()
        self.ended = self.ok = 0
        self.last_bad: float | None = None  # end of the last window below ``to`` after the trigger
        self.worst: float | None = None
        self.last_end = 0.0
        self.before: dict[str, Any] | None = None
        self.after: dict[str, Any] | None = None
        timeline.listeners.append(self._on_bin)
        if self.trigger is not None:
            Timeout(env, self.trigger).callbacks.append(lambda _event: self._snapshot_before())

    # --- availability ----------------------------------------------------------------------

    def _sending(self, t: float) -> bool:
        return any(w.rate_at(t) > 0 for w in self.workload)

    def _on_bin(self, entry: EntryStats, start: float, counts: list[int],
                latency: dict[int, int]) -> None:
        if entry is not self.entry:
            return
        end = start + self.width
        self.recent.append((sum(counts), counts[0]))
        self.ended += self.recent[-1][0]
        self.ok += counts[0]
        if len(self.recent) > self.bins:
            old_ended, old_ok = self.recent.popleft()
            self.ended -= old_ended
            self.ok -= old_ok
        if self.trigger is None or end <= self.trigger or len(self.recent) < self.bins:
            return
        self.last_end = end
        if self.ended:
            value = self.ok / self.ended
        elif self._sending(end):
            value = 0.0
        else:
            return
        if value < self.prop.to:
            self.last_bad = end
            if end > self.trigger + self.prop.within:
                self.worst = value if self.worst is None else min(self.worst, value)

    # --- what sustains it ------------------------------------------------------------------

    def _counters(self) -> dict[str, Any]:
        services = {}
        for name, service in self.services.items():
            instances = service.instances
            services[name] = {
                "busy": sum(i.busy_area + (i.workers - i.free) * (self.env.now - i.busy_since)
                            for i in instances),
                "arrivals": sum(i.arrivals for i in instances),
                "capacity": service.workers * len(instances),
                "orphaned": _merge(i.orphaned_by for i in instances),
            }
        edges = {}
        for edge, stats in self.edges.items():
            edges[edge] = {"attempts": stats.attempts, "calls": stats.calls,
                           "retries": getattr(stats, "retries", None),
                           "hedges": getattr(stats, "hedges", None)}
        return {"time": self.env.now, "services": services, "edges": edges}

    def _snapshot_before(self) -> None:
        self.before = self._counters()

    def close(self) -> None:
        """The run ends: note the counters (before any warm-up truncation touches them)."""
        if self.before is not None:
            self.after = self._counters()

    def sustained_by(self) -> list[dict[str, Any]]:
        """Per edge into each saturated service after the trigger: the load's make-up."""
        before, after = self.before, self.after
        if before is None or after is None or after["time"] <= before["time"]:
            return []
        span = after["time"] - before["time"]
        found: list[dict[str, Any]] = []
        for name, now in after["services"].items():
            then = before["services"][name]
            # Capped: float sums of busy time may overshoot 100 % in the last digits.
            utilization = min(1.0, (now["busy"] - then["busy"]) / (now["capacity"] * span))
            load = now["arrivals"] - then["arrivals"]
            if utilization < SATURATED or load <= 0:
                continue
            for (caller, callee), counts in after["edges"].items():
                if callee != name:
                    continue
                old = before["edges"][(caller, callee)]
                attempts = counts["attempts"] - old["attempts"]
                if counts["retries"] is not None:
                    retries = counts["retries"] - old["retries"]
                else:  # attempts beyond the calls that ended: the retries, near enough
                    retries = max(0, attempts - (counts["calls"] - old["calls"]))
                hedges = 0 if counts["hedges"] is None else counts["hedges"] - old["hedges"]
                orphaned = now["orphaned"].get(caller, 0) - then["orphaned"].get(caller, 0)
                found.append({"edge": f"{caller}->{callee}", "utilization": utilization,
                              "load": load, "attempts": attempts,
                              "retries": retries / load, "hedges": hedges / load,
                              "orphaned": orphaned / load})
        return found

    # --- verdict ---------------------------------------------------------------------------

    def verdict(self) -> PropertySummary:
        violations = Violations()
        prop = self.prop
        extra: dict[str, Any] = {"entry": self.entry.name, "threshold": prop.to,
                                 "window_s": self.window, "trigger_end_s": self.trigger,
                                 "applicable": self.note is None}
        if self.note is not None or self.trigger is None:
            return violations.verdict(self.name, self.kind, note=self.note, **extra)
        trigger = self.trigger
        recovered = trigger if self.last_bad is None else self.last_bad
        never = self.last_bad is not None and self.last_bad >= self.last_end
        extra["recovered_s"] = None if never else recovered - trigger
        sustained = self.sustained_by()
        extra["sustained_by"] = sustained
        if recovered - trigger > prop.within:
            if never:
                how = (f"never recovered in the remaining "
                       f"{format_duration(self.duration - trigger)}")
            else:
                how = (f"stayed below {format_percent(prop.to)} for "
                       f"{format_duration(recovered - trigger)}, past the "
                       f"{format_duration(prop.within)} allowed")
            detail = (f"{self.entry.name} {how} after the trigger ended at "
                      f"{format_duration(trigger)} ({format_duration(self.window)} windows); "
                      f"{describe_sustained(sustained)}")
            violations.add(trigger, recovered, self.worst, detail)
        return violations.verdict(self.name, self.kind, **extra)


def describe_sustained(found: list[dict[str, Any]]) -> str:
    """One clause naming what kept the entry down, for the violation's detail."""
    if not found:
        return "no service stayed saturated after the trigger"
    # One decimal is what a reader acts on (and hides float noise such as 99.99999999%).
    parts = [f"{item['edge']}: retries {item['retries']:.1%}, hedges {item['hedges']:.1%}, "
             f"orphaned {item['orphaned']:.1%} of the callee's load (utilization "
             f"{item['utilization']:.1%})"
             for item in found]
    return "sustained by " + "; ".join(parts)


def _merge(maps: Any) -> dict[str | None, int]:
    total: dict[str | None, int] = {}
    for counts in maps:
        for key, n in counts.items():
            total[key] = total.get(key, 0) + n
    return total
