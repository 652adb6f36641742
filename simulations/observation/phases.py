"""The per-phase view of a scenario: the run cut where faults start and end.

Each phase is a stretch of time with one set of active faults (``baseline`` when none, and
``warm-up`` before the warm-up ends). For every phase it gives, per entry, the requests that
ended in it, their availability and latency quantiles, and per circuit breaker the transitions
that happened in it, so one sees an outage's impact, breakers opening and closing, and recovery.
Requests are assigned by the timeline bin they ended in, so phase edges round to bins.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from faultmesh.simulations.observation.metrics import COARSE, EntryStats, Timeline, quantiles

if TYPE_CHECKING:
    from faultmesh.simulations.breakers import CircuitBreaker
    from faultmesh.simulations.observation.summary import PhaseEntry, PhaseSpan, PhaseSummary


class Phases:
    """Accumulates timeline bins into phases bounded by the scenario's fault times."""

    def __init__(self, spans: list[tuple[str, float, float | None]], duration: float,
                 warmup: float, timeline: Timeline) -> None:
        """``spans``: each fault's label and the time it acts, from start to end (None: on)."""
        cuts = {0.0, duration}
        if 0 < warmup < duration:
            cuts.add(warmup)
        for _, begin, finish in spans:
            for t in (begin, finish):
                if t is not None and 0 < t < duration:
                    cuts.add(t)
        points = sorted(cuts)
        self.phases: list[PhaseSpan] = []
        for start, end in itertools.pairwise(points):
            active = [label for label, begin, finish in spans
                      if begin <= start and (finish is None or finish > start)]
            label = ("warm-up" if end <= warmup
                     else " + ".join(active) if active else "baseline")
            self.phases.append({"from": start, "to": end, "label": label, "faults": active})
        self.entries: list[EntryStats] = []
        self.counts: list[dict[str, list[int]]] = [{} for _ in self.phases]
        self.latency: list[dict[str, dict[int, int]]] = [{} for _ in self.phases]
        self.position = 0
        timeline.listeners.append(self._on_bin)

    def _on_bin(self, entry: EntryStats, start: float, counts: list[int],
                latency: dict[int, int]) -> None:
        while (self.position + 1 < len(self.phases)
               and start >= self.phases[self.position]["to"]):
            self.position += 1
        mine = self.counts[self.position].setdefault(entry.name, [0, 0, 0, 0])
        for i, n in enumerate(counts):
            mine[i] += n
        buckets = self.latency[self.position].setdefault(entry.name, {})
        for key, n in latency.items():
            buckets[key] = buckets.get(key, 0) + n

    def summary(self, breakers: dict[tuple[str, str], dict[str, CircuitBreaker]]
                ) -> list[PhaseSummary]:
        """Each phase with its entries' figures and, per edge, the transitions of all the
        edge's breakers (every caller instance's) that happened in it, counted by state."""
        result: list[PhaseSummary] = []
        for phase, counts, latency in zip(self.phases, self.counts, self.latency, strict=True):
            entries: dict[str, PhaseEntry] = {}
            for name, (ok, errors, timeouts, rejected) in counts.items():
                requests = ok + errors + timeouts + rejected
                p50, p99 = quantiles(latency.get(name, {}), ok, (0.5, 0.99), COARSE)
                entries[name] = {
                    "requests": requests, "ok": ok, "errors": errors, "timeouts": timeouts,
                    "rejected": rejected,
                    "availability": ok / requests if requests else None,
                    "p50": None if ok == 0 else p50, "p99": None if ok == 0 else p99,
                }
            transitions: dict[str, dict[str, int]] = {}
            for (caller, callee), scoped in breakers.items():
                moves = [state for breaker in scoped.values() for t, state in breaker.transitions
                         if phase["from"] <= t < phase["to"]]
                if moves:
                    transitions[f"{caller}->{callee}"] = {
                        state: moves.count(state) for state in ("open", "half_open", "closed")
                        if state in moves}
            result.append({"from": phase["from"], "to": phase["to"], "label": phase["label"],
                           "faults": phase["faults"], "entries": entries,
                           "breakers": transitions})
        return result
