"""Monitors: the spec's dynamic properties, checked while the run goes.

Each monitor watches one property and ends with a verdict: ``holds`` or ``violated``, with its
violations, each ``{"at", "until", "value", "detail"}`` (times in seconds; consecutive failing
checks merge into one violation).

* ``availability`` -- the entry's share of successful requests over every sliding window of
  ``window`` seconds after the warm-up (checked at each timeline bin), and over the whole run.
* ``latency`` -- the entry's latency quantile over every sliding window, and over the run.
* ``breaker_reaction`` -- after each fault starts, a circuit breaker on an edge the fault
  affects (or on the named edge) is open within ``within`` seconds: any of the edge's
  breakers, which live in the caller instances (one per caller instance and policy).
* ``staleness`` -- no workload request fails because a caller routed to an instance that its
  discovery view still listed after it went down (root cause ``instance down``).
* ``no_lost_requests`` -- always on: every request that entered ended exactly once with a cause,
  or is still in flight at an instance; the books balance.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Protocol, cast

from faultmesh.model.properties import Availability, BreakerReaction, Latency, Staleness
from faultmesh.model.units import format_duration, format_durations, format_percent
from faultmesh.simulations.observation.metrics import (
    COARSE,
    EntryStats,
    Histogram,
    Timeline,
    quantiles,
)
from faultmesh.simulations.observation.summary import PropertySummary, Violation
from faultmesh.simulations.outcomes import INSTANCE_DOWN, OUTCOMES

if TYPE_CHECKING:
    from faultmesh.simulations.breakers import CircuitBreaker
    from faultmesh.simulations.engine.faults import FaultRecord
    from faultmesh.simulations.engine.instances import Instance
    from faultmesh.simulations.engine.workload import Arrivals

MAX_VIOLATIONS = 100  # listed per property; the count covers all


class Monitor(Protocol):
    name: str
    kind: str

    def verdict(self) -> PropertySummary: ...


class Violations:
    """Violations of one property; consecutive failing checks extend the open one."""

    def __init__(self) -> None:
        self.items: list[Violation] = []
        self.count = 0
        self._open: Violation | None = None

    def check(self, time: float, bad: bool, value: float, detail: str, *,
              worse: bool = True) -> None:
        """One check at ``time``; ``worse``: larger values are worse (latency) or not."""
        if not bad:
            self._open = None
            return
        current = self._open
        if current is None:
            self._open = self.add(time, time, value, detail)
            return
        current["until"] = time
        previous = current["value"]
        if previous is None or ((value > previous) == worse and value != previous):
            current["value"] = value
            current["detail"] = detail

    def add(self, at: float | None, until: float | None, value: float | None,
            detail: str) -> Violation:
        """A new violation (listed while fewer than ``MAX_VIOLATIONS`` are)."""
        self.count += 1
        self._open = None
        item: Violation = {"at": at, "until": until, "value": value, "detail": detail}
        if len(self.items) < MAX_VIOLATIONS:
            self.items.append(item)
        return item

    def verdict(self, name: str, kind: str, **extra: Any) -> PropertySummary:
        # ``extra``: the keys of each kind, declared on PropertySummary.
        return cast(PropertySummary, {
            "name": name, "kind": kind, "status": "violated" if self.count else "holds",
            "violations": self.items, "violation_count": self.count, **extra})


class _WindowMonitor:
    """Shared machinery of the sliding-window monitors of one entry."""

    def __init__(self, name: str, entry: EntryStats, timeline: Timeline, window: float,
                 warmup: float) -> None:
        self.name = name
        self.entry = entry
        self.timeline = timeline
        self.warmup = warmup
        self.bins = max(1, round(window / timeline.width))
        self.window = self.bins * timeline.width
        self.violations = Violations()
        timeline.listeners.append(self._on_bin)

    def _on_bin(self, entry: EntryStats, start: float, counts: list[int],
                latency: dict[int, int]) -> None:
        if entry is self.entry and start >= self.warmup:
            self.bin(start + self.timeline.width, counts, latency)

    def bin(self, end: float, counts: list[int], latency: dict[int, int]) -> None:
        raise NotImplementedError


class AvailabilityMonitor(_WindowMonitor):
    kind = "availability"

    def __init__(self, prop: Availability, entry: EntryStats, timeline: Timeline,
                 warmup: float) -> None:
        super().__init__(prop.name, entry, timeline, prop.window, warmup)
        self.prop = prop
        self.recent: deque[tuple[int, int]] = deque()
        self.ended = 0
        self.ok = 0

    def bin(self, end: float, counts: list[int], latency: dict[int, int]) -> None:
        ok, ended = counts[0], sum(counts)
        self.recent.append((ended, ok))
        self.ended += ended
        self.ok += ok
        if len(self.recent) > self.bins:
            old_ended, old_ok = self.recent.popleft()
            self.ended -= old_ended
            self.ok -= old_ok
        if len(self.recent) == self.bins and self.ended:
            value = self.ok / self.ended
            self.violations.check(
                end, value < self.prop.at_least, value,
                f"availability {format_percent(value)} in the {format_duration(self.window)} "
                f"window ending at {format_duration(end)} "
                f"({self.ended - self.ok:,} of {self.ended:,} failed), below "
                f"{format_percent(self.prop.at_least)}", worse=False)

    def verdict(self) -> PropertySummary:
        summary = self.entry.summary()
        overall = summary["availability"]
        if overall is not None and overall < self.prop.at_least:
            self.violations.add(None, None, overall,
                                f"availability {format_percent(overall)} over the run "
                                f"({summary['failed']:,} of {summary['requests']:,} failed), "
                                f"below {format_percent(self.prop.at_least)}")
        return self.violations.verdict(self.name, self.kind, entry=self.entry.name,
                                       value=overall, threshold=self.prop.at_least)


class LatencyMonitor(_WindowMonitor):
    kind = "latency"

    def __init__(self, prop: Latency, entry: EntryStats, timeline: Timeline,
                 warmup: float) -> None:
        super().__init__(prop.name, entry, timeline, prop.window, warmup)
        self.prop = prop
        self.recent: deque[dict[int, int]] = deque()
        # The window's latencies: per-bin bucket counts merged in and out as the window slides.
        self.window_latency = Histogram(COARSE)
        self.label = f"p{prop.quantile * 100:g}".replace(".", "")

    def bin(self, end: float, counts: list[int], latency: dict[int, int]) -> None:
        latency = dict(latency)  # the timeline may reuse its mapping
        self.recent.append(latency)
        self.window_latency.merge_counts(latency)
        if len(self.recent) > self.bins:
            self.window_latency.merge_counts(self.recent.popleft(), -1)
        window = self.window_latency
        if len(self.recent) == self.bins and window.count:
            value = quantiles(window.counts, window.count, (self.prop.quantile,), COARSE)[0]
            shown, threshold = format_durations(value, self.prop.threshold)
            self.violations.check(
                end, value > self.prop.threshold, value,
                f"{self.label} {shown} in the {format_duration(self.window)} window ending at "
                f"{format_duration(end)}, above {threshold}")

    def verdict(self) -> PropertySummary:
        histogram = self.entry.latency
        overall = histogram.quantile(self.prop.quantile) if histogram.count else None
        if overall is not None and overall > self.prop.threshold:
            shown, threshold = format_durations(overall, self.prop.threshold)
            self.violations.add(None, None, overall,
                                f"{self.label} {shown} over the run, above {threshold}")
        return self.violations.verdict(self.name, self.kind, entry=self.entry.name,
                                       value=overall, threshold=self.prop.threshold)


class BreakerReactionMonitor:
    kind = "breaker_reaction"

    def __init__(self, prop: BreakerReaction, faults: list[FaultRecord],
                 breakers: dict[tuple[str, str], dict[str, CircuitBreaker]],
                 duration: float) -> None:
        self.name = prop.name
        self.prop = prop
        self.faults = faults
        self.breakers = breakers
        self.duration = duration
        self.edge: tuple[str, str] | None = None
        if prop.edge is not None:
            caller, _, callee = prop.edge.partition("->")
            self.edge = (caller.strip(), callee.strip())

    @staticmethod
    def _open_within(breaker: CircuitBreaker, start: float, until: float) -> float | None:
        """When the breaker opened in [start, until]; ``start`` if it was open already."""
        state = "closed"
        for time, new in breaker.transitions:
            if time < start:
                state = new
            elif time > until:
                break
            elif new == "open":
                return time
        return start if state == "open" else None

    def verdict(self) -> PropertySummary:
        violations = Violations()
        within = self.prop.within
        checked = 0
        for record in self.faults:
            edges = sorted(record.edges)
            if self.edge is not None:
                edges = [self.edge] if self.edge in record.edges else []
            if not edges or record.start + within > self.duration:
                continue
            checked += 1
            guarded = [e for e in edges if e in self.breakers]
            names = ", ".join(f"{a}->{b}" for a, b in edges)
            if not guarded:
                violations.add(record.start, record.start + within, None,
                               f"no circuit breaker guards {names} ({record.label} at "
                               f"{format_duration(record.start)})")
                continue
            # Any caller instance's breaker on a guarded edge reacting counts.
            opened = [t for e in guarded for breaker in self.breakers[e].values()
                      if (t := self._open_within(breaker, record.start,
                                                 record.start + within)) is not None]
            if not opened:
                violations.add(record.start, record.start + within, None,
                               f"no breaker on {names} opened within "
                               f"{format_duration(within)} of {record.label} at "
                               f"{format_duration(record.start)}")
        return violations.verdict(self.name, self.kind, faults_checked=checked)


class StalenessMonitor:
    kind = "staleness"
    GAP = 1.0  # failures closer than this many seconds belong to one violation

    def __init__(self, prop: Staleness, arrivals: list[Arrivals], bound: float) -> None:
        self.name = prop.name
        self.bound = bound
        self.violations = Violations()
        self.current: Violation | None = None
        self.failures = 0
        for source in arrivals:
            source.on_failure.append(self._on_failure)

    def _on_failure(self, time: float, entry: str, cause: str, root: str) -> None:
        if root != INSTANCE_DOWN:
            return
        self.failures += 1
        current = self.current
        if current is not None and time - (current["until"] or time) <= self.GAP:
            current["until"] = time
            current["value"] = (current["value"] or 0) + 1
            current["detail"] = (f"{current['value']:g} requests failed: routed to an instance "
                                 f"that was down but still in the caller's view")
            return
        self.current = self.violations.add(
            time, time, 1, f"{entry} failed: routed to an instance that was down but still in "
            "the caller's view")

    def verdict(self) -> PropertySummary:
        return self.violations.verdict(self.name, self.kind, failed_requests=self.failures,
                                       window_bound_s=self.bound)


class NoLostRequestsMonitor:
    """Always on: the ledger of requests balances and nothing in flight is unaccounted for."""

    name = "no_lost_requests"
    kind = "no_lost_requests"

    def __init__(self, arrivals: list[Arrivals], instances: list[Instance]) -> None:
        self.arrivals = arrivals
        self.instances = instances

    def totals(self) -> dict[str, int]:
        totals = dict.fromkeys(("started", *OUTCOMES, "in_flight"), 0)
        for source in self.arrivals:
            totals["started"] += source.started
            for name, n in zip(OUTCOMES, source.ended, strict=True):
                totals[name] += n
            totals["in_flight"] += len(source.open)
        return totals

    def verdict(self) -> PropertySummary:
        violations = Violations()
        for source in self.arrivals:
            entry = source.stats.name
            ended = sum(source.ended)
            if source.started != ended + len(source.open):
                violations.add(None, None, source.started - ended - len(source.open),
                               f"{entry}: {source.started} requests started but {ended} ended "
                               f"and {len(source.open)} are in flight")
            if source.causeless:
                violations.add(None, None, source.causeless,
                               f"{entry}: {source.causeless} requests failed without a cause")
        held = {id(job.waiter) for instance in self.instances for job in instance.active}
        in_transit = sum(instance.in_transit for instance in self.instances)
        unaccounted = sum(1 for source in self.arrivals for request in source.open.values()
                          if id(request) not in held)
        if unaccounted > in_transit:
            violations.add(None, None, unaccounted - in_transit,
                           f"{unaccounted - in_transit} requests are open but no instance "
                           f"holds them: lost")
        for instance in self.instances:
            if instance.accepted != instance.finished + len(instance.active):
                violations.add(None, None, None,
                               f"{instance.name}: {instance.accepted} jobs accepted, "
                               f"{instance.finished} finished, {len(instance.active)} active")
        return violations.verdict(self.name, self.kind, requests=self.totals())

