"""Replaying a proof's counterexample as a simulation, and checking the two agree.

``verify`` says "this failure set does this". ``replay`` crashes exactly that failure set for a
window of the run (``Verdict.to_scenario``), lets discovery and breakers react for ``settle``
seconds, and compares what the property claims with what the run measures in the window:

* ``survives``: each entry's share of successful requests. An entry predicted down must be
  mostly down, an entry predicted up must stay up, and a *degraded* entry (reached only through
  calls made with probability below 1) must serve the share the proof computed, within a
  binomial confidence interval of the requests measured.
* ``capacity``: the overloaded service's utilization over its surviving instances (the
  quantity the proof bounds: demand / (surviving instances x workers)) and the requests it
  rejected. Capacity speaks of that service, not of the entries, so entries are not compared.
* ``overload_recovery``: the counterexample's trigger (a slowdown of the saturated service)
  runs, and the entries whose calls reach that service are measured once the trigger has
  ended and its backlog would have drained without a storm (``OVERLOAD_SETTLE`` seconds, or
  ``DRAIN_FACTOR`` x the proof's fluid drain time if longer): the proof says they stay down.
  The surge trigger (the loop's entry at a multiple of its rate) runs too and must leave them
  down as well, and the verdict's repair, under the same slowdown, must bring them back up.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from faultmesh.model import properties as P
from faultmesh.model.detection import stale_window
from faultmesh.model.units import format_percent
from faultmesh.model.verify.verdict import Verdict
from faultmesh.simulations.engine.simulation import simulate

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from faultmesh.model.system import System
    from faultmesh.simulations.observation.results import Run

# An entry predicted down must serve at most this share of its requests in the window; an
# entry predicted up at least this share. Far apart on purpose: the proof speaks of up/down,
# the simulation of rates, and the gap absorbs requests in flight when the failure starts.
DOWN_AT_MOST = 0.5
UP_AT_LEAST = 0.95
# An entry predicted back up after an overload may end this far below its fault-free level.
LEVEL_TOLERANCE = 0.05
# A degraded entry's measured share must lie within Z standard errors (99.9 %, two-sided) of
# the predicted share, widened by SLACK for the requests in flight at the window's edges.
DEGRADED_Z = 3.29
DEGRADED_SLACK = 0.02
# A capacity replay agrees when the measured utilization of the surviving instances is within
# this of the predicted one (capped at 1: a saturated server is busy all the time).
UTILIZATION_TOLERANCE = 0.05
# Callers' attempts that did not reach the service are counted by subtraction (attempts made
# minus requests received, both counted after the warm-up): a share below this is noise.
SHED_NOISE = 0.05
# Standard errors of the arrived work that the measured utilization may stray (99.9 %).
NOISE_Z = 3.09

Prediction = Literal["down", "degraded", "up"]


@dataclass(frozen=True)
class EntryReplay:
    """One workload entry: what survives predicted, what the window measured."""

    entry: str
    predicted: Prediction
    expected: float  # the share of requests predicted to succeed (0 down, 1 up)
    availability: float | None  # inside the failure window; None without requests there
    requests: int = 0
    # ``up`` measured against a fault-free run of the same system over the same window (a
    # system that sheds some requests at its nominal load recovers to that level, not 100 %).
    level: float | None = None

    @property
    def predicted_down(self) -> bool:
        return self.predicted == "down"

    @property
    def agrees(self) -> bool:
        if self.availability is None:
            return True  # nothing arrived in the window: nothing to contradict
        if self.predicted == "down":
            return self.availability <= DOWN_AT_MOST
        if self.predicted == "up":
            if self.level is not None:
                return self.availability >= min(UP_AT_LEAST, self.level - LEVEL_TOLERANCE)
            return self.availability >= UP_AT_LEAST
        p = self.expected
        half = DEGRADED_Z * math.sqrt(p * (1 - p) / self.requests) + DEGRADED_SLACK
        return abs(self.availability - p) <= half

    def claim(self) -> str:
        if self.predicted == "degraded":
            return f"degraded to {format_percent(self.expected)}"
        return self.predicted


@dataclass(frozen=True)
class ServiceReplay:
    """The service a capacity counterexample overloads: predicted and measured utilization."""

    service: str
    predicted: float | None  # demand / surviving capacity; None: infinite (nothing left, or
    #                          an unbounded load)
    limit: float  # the property's utilization target
    surviving: int  # instances of the service outside the failure set
    utilization: float | None  # measured over the surviving instances; None: none survives
    requests: int  # requests the service's instances received in the window
    rejected: int
    # A violation by rejections (queue/concurrency limits): the predicted share rejected (its
    # low estimate where the formula is not exact) and the property's bound on it.
    predicted_rejected: float | None = None
    rejected_bound: float = 1.0
    # Attempts its callers made that never reached it (every host ejected by outlier
    # detection, or refused by an open breaker): past saturation, shedding on the callers'
    # side instead of its own queue.
    shed: int = 0
    # Z standard errors of the measured utilization (the work that arrived in the window is
    # compound Poisson); the tolerance is at least this.
    noise: float = 0.0

    @property
    def rejections_claimed(self) -> bool:
        return self.predicted_rejected is not None and self.predicted_rejected > \
            self.rejected_bound and (self.predicted is None or self.predicted < self.limit)

    @property
    def agrees(self) -> bool:
        if self.surviving == 0:
            # Nothing left to serve: the claim is that its load finds no instance at all.
            return self.requests == 0
        if self.rejections_claimed:
            # The claim is that more than the bound is rejected: the measured share must not be
            # confidently below the predicted one (a 99.9 % one-sided binomial margin).
            assert self.predicted_rejected is not None
            if self.requests == 0:
                return False
            share = self.rejected / self.requests
            p = self.predicted_rejected
            margin = 3.09 * (p * (1 - p) / self.requests) ** 0.5 + 0.01
            return share > self.rejected_bound or share >= p - margin
        measured = self.utilization or 0.0
        if self.predicted is None:  # an unbounded load keeps every survivor busy
            return measured >= 1 - UTILIZATION_TOLERANCE or self.rejected > 0
        expected = min(self.predicted, 1.0)
        if abs(measured - expected) <= max(UTILIZATION_TOLERANCE, self.noise):
            return True
        # Overloaded past saturation: a bounded queue sheds the excess instead of queueing it.
        # A loss system (no waiting room, or a concurrency limit) sheds so much that what it
        # carries stays below the target, so rejecting more than the bound shows it too.
        shed = self.requests > 0 and self.rejected / self.requests > self.rejected_bound
        if shed and self.predicted >= self.limit:
            # Its limits refuse more than the property allows: overloaded all the same
            # (requests holding concurrency slots while they wait on calls fill them early).
            return True
        # Callers that eject it or open their breakers shed the load before it arrives.
        offered = self.requests + self.shed
        by_callers = offered > 0 and self.shed / offered > max(self.rejected_bound, SHED_NOISE)
        return self.predicted >= 1 and ((self.rejected > 0 and measured >= self.limit)
                                        or by_callers)

    def claim(self) -> str:
        if self.surviving == 0:
            return "no instance left"
        if self.rejections_claimed:
            assert self.predicted_rejected is not None
            return (f"rejects {format_percent(self.predicted_rejected)} "
                    f"(> {format_percent(self.rejected_bound)})")
        if self.predicted is None:
            return "unbounded load"
        return f"utilization {self.predicted:.2%} (>= {self.limit:.0%})"

    def measured(self) -> str:
        if self.surviving == 0:
            return f"{self.requests:,} requests reached it"
        shown = "n/a" if self.utilization is None else f"{self.utilization:.2%}"
        shed = f", {self.shed:,} shed by its callers" if self.shed else ""
        return f"utilization {shown}, {self.rejected:,} of {self.requests:,} rejected{shed}"


@dataclass(frozen=True)
class Replay:
    verdict: Verdict
    run: Run
    window: tuple[float, float]
    entries: tuple[EntryReplay, ...]
    services: tuple[ServiceReplay, ...] = ()
    # overload_recovery: the run's ``recovers`` monitor results for the loop's entries (status
    # and what sustained the overload), as the run's summary gives them.
    recovers: tuple[dict[str, Any], ...] = ()
    # overload_recovery: further runs, each (what ran, its judged window, its entries): the
    # surge trigger (entries predicted down) and the repaired system under the slowdown
    # (entries predicted up again).
    others: tuple[tuple[str, tuple[float, float], tuple[EntryReplay, ...]], ...] = ()

    @property
    def agrees(self) -> bool:
        return all(e.agrees for e in self.entries) and all(s.agrees for s in self.services) \
            and all(e.agrees for _, _, entries in self.others for e in entries)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "property": self.verdict.name,
            "kind": self.verdict.kind,
            "failures": list(self.verdict.counterexample.failures)
            if self.verdict.counterexample else [],
            "window_s": list(self.window),
            "agrees": self.agrees,
            "entries": [{"entry": e.entry, "predicted": e.predicted, "expected": e.expected,
                         "availability": e.availability, "requests": e.requests,
                         "agrees": e.agrees}
                        for e in self.entries],
        }
        if self.others:
            out["other_runs"] = [
                {"run": what, "window_s": list(window),
                 "entries": [{"entry": e.entry, "predicted": e.predicted,
                              "availability": e.availability, "requests": e.requests,
                              "agrees": e.agrees} for e in entries]}
                for what, window, entries in self.others]
        if self.recovers:
            out["recovers"] = [{"name": r["name"], "status": r["status"],
                                "violations": r.get("violations", [])} for r in self.recovers]
        if self.services:
            out["services"] = [{"service": s.service, "predicted_utilization": s.predicted,
                                "limit": s.limit, "surviving": s.surviving,
                                "utilization": s.utilization, "requests": s.requests,
                                "rejected": s.rejected, "shed": s.shed, "agrees": s.agrees}
                               for s in self.services]
        return out

    def plot(self) -> Figure:
        from faultmesh.simulations.presentation import plots

        return plots.timeline(self.run)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(e.entry)}</td><td>{html.escape(e.claim())}</td>"
            f"<td>{format_percent(e.availability)}</td>"
            f"<td>{'✓' if e.agrees else '✗'}</td></tr>"
            for e in self.entries)
        rows += "".join(
            f"<tr><td>{html.escape(s.service)}</td><td>{html.escape(s.claim())}</td>"
            f"<td>{html.escape(s.measured())}</td><td>{'✓' if s.agrees else '✗'}</td></tr>"
            for s in self.services)
        head = "agrees with the proof" if self.agrees else "DISAGREES with the proof"
        failures = ", ".join(self.verdict.counterexample.failures) \
            if self.verdict.counterexample else ""
        return (f"<div><b>replay of {html.escape(self.verdict.name)}</b> "
                f"(crash {html.escape(failures)} during {self.window[0]:g}–{self.window[1]:g}s):"
                f" {head}<table><thead><tr><th>entry or service</th><th>proof says</th>"
                f"<th>measured in window</th><th>agrees</th></tr></thead>"
                f"<tbody>{rows}</tbody></table></div>")


def window_requests(run: Run, entry: str, start: float, end: float) -> tuple[int, int]:
    """(requests, successful ones) of the entry among those timed in [start, end)."""
    frame = run.timeline
    rows = frame[(frame["entry"] == entry) & (frame["time_s"] >= start) & (frame["time_s"] < end)]
    return int(rows["requests"].sum()), int(rows["ok"].sum())


def window_availability(run: Run, entry: str, start: float, end: float) -> float | None:
    """Share of the entry's requests that succeeded among those timed in [start, end)."""
    requests, ok = window_requests(run, entry, start, end)
    return None if requests == 0 else ok / requests


SETTLE_MARGIN = 15.0


def replay(system: System, verdict: Verdict, *, at: float = 60.0, duration: float = 120.0,
           settle: float | None = None, after: float = 60.0, seed: int = 0,
           others: bool = True) -> Replay:
    """Simulate the verdict's counterexample and compare it with what the property claims.

    ``settle`` seconds after the failure starts are left out of the comparison: discovery has
    to notice the dead instances (``model.detection.stale_window``), and requests in flight
    and breakers need a moment, which the proofs do not model (the default is that window
    plus ``SETTLE_MARGIN``; the failure then lasts at least 60 s past it). For
    survives the run goes on ``after`` seconds past the window, so the timeline shows the
    recovery too; for capacity the run ends with the window, whose start is the end of the
    warm-up, so the run's service totals are the window's.
    """
    if settle is None:
        settle = stale_window(system) + SETTLE_MARGIN
        duration = max(duration, settle + 60.0)
    if verdict.kind == "capacity":
        return _replay_capacity(system, verdict, at=at, duration=duration, settle=settle,
                                seed=seed)
    if verdict.kind == "overload_recovery":
        return _replay_overload(system, verdict, at=at, after=after, seed=seed,
                                others=others)
    scenario = verdict.to_scenario(at=at, duration=duration, total=at + duration + after,
                                   warmup=min(10.0, at / 2))
    run = simulate(system, scenario, seed=seed)
    ce = verdict.counterexample
    down = set(ce.down) if ce else set()
    degraded = dict(ce.degraded) if ce else {}
    start, end = at + settle, at + duration
    entries = []
    for entry in dict.fromkeys(system.entries):
        requests, ok = window_requests(run, entry, start, end)
        measured = None if requests == 0 else ok / requests
        if entry in down:
            entries.append(EntryReplay(entry, "down", 0.0, measured, requests))
        elif entry in degraded:
            entries.append(EntryReplay(entry, "degraded", degraded[entry], measured, requests))
        else:
            entries.append(EntryReplay(entry, "up", 1.0, measured, requests))
    return Replay(verdict, run, (start, end), tuple(entries))


# An overload that sustains itself is judged this long after its trigger ended: the backlog
# the trigger left would have drained by then were the storm not feeding it.
OVERLOAD_SETTLE = 20.0
DRAIN_FACTOR = 3.0


def _judged(run: Run, entries: tuple[str, ...], start: float, after: float,
            predicted: Prediction) -> tuple[EntryReplay, ...]:
    out = []
    for entry in entries:
        requests, ok = window_requests(run, entry, start, start + after)
        out.append(EntryReplay(entry, predicted, 0.0 if predicted == "down" else 1.0,
                               None if requests == 0 else ok / requests, requests))
    return tuple(out)


def _replay_overload(system: System, verdict: Verdict, *, at: float, after: float,
                     seed: int, others: bool = True) -> Replay:
    """Run the counterexample's trigger and measure the loop's entries after it ended: the
    proof says they stay down (the storm sustains itself with the trigger gone). With
    ``others``, the surge trigger runs too (down again), and the verdict's repair under the
    same slowdown (the entries are up again once its backlog has drained)."""
    from faultmesh.model.faults import Scenario, Slowdown
    from faultmesh.model.verify.overload import drain_bound, surge_trigger

    ce = verdict.counterexample
    assert ce is not None
    end_of_trigger = at + max((f.end or 0.0 for f in ce.trigger), default=0.0)
    # Judged once the trigger's backlog would have drained DRAIN_FACTOR times over were there
    # no storm (the proof's fluid drain time): a slow drain is not a storm.
    start = end_of_trigger + max(OVERLOAD_SETTLE, DRAIN_FACTOR * ce.numbers.get("drain", 0.0))
    scenario = verdict.to_scenario(at=at, duration=0.0, total=start + after,
                                   warmup=min(10.0, at / 2))
    more = []
    if others:
        from faultmesh.simulations.engine.faults import describe

        for surge in surge_trigger(ce):
            s_start = at + (surge.end or 0.0) + max(
                OVERLOAD_SETTLE, DRAIN_FACTOR * ce.numbers.get("surge_drain", 0.0))
            s_run = simulate(system, Scenario(f"replay-{verdict.name}-surge",
                                              (replace(surge, at=at),), s_start + after,
                                              min(10.0, at / 2)), seed=seed)
            more.append((describe(surge), (s_start, s_start + after),
                         _judged(s_run, ce.down, s_start, after, "down")))
        if verdict.repair is not None and ce.trigger:
            from faultmesh.model.spec.errors import SpecErrors

            try:
                repaired = verdict.repair.apply(system)
            except (SpecErrors, KeyError, ValueError) as error:  # shown, not raised
                more.append((f"repair does not apply: {error}", (start, start), ()))
            else:
                # Judged once the repaired system's backlog has certainly drained (the fluid
                # bound its own proof gives), plus the usual settling time.
                drain = drain_bound(repaired, tuple(f for f in ce.trigger
                                                    if isinstance(f, Slowdown)))
                r_start = end_of_trigger + OVERLOAD_SETTLE + (drain or 0.0)
                r_run = simulate(repaired, replace(scenario, duration=r_start + after),
                                 seed=seed)
                plain = simulate(repaired, replace(scenario, faults=(),
                                                   duration=r_start + after), seed=seed)
                judged = tuple(
                    replace(e, level=window_availability(plain, e.entry, r_start,
                                                         r_start + after))
                    for e in _judged(r_run, ce.down, r_start, after, "up"))
                more.append((f"repaired ({verdict.repair.description})",
                             (r_start, r_start + after), judged))
    # The ``recovers`` monitor watches each loop entry too: it says for how long the entry
    # stayed down and which edges' retries, hedges and orphaned work sustained it.
    watched = {p.entry for p in system.properties if isinstance(p, P.Recovers)}
    names = {p.name for p in system.properties}
    added = tuple(P.Recovers(name=f"recovers:{e}", entry=e, within=OVERLOAD_SETTLE)
                  for e in ce.down if e not in watched and f"recovers:{e}" not in names)
    run = simulate(replace(system, properties=system.properties + added), scenario, seed=seed)
    entries = []
    for entry in ce.down:
        requests, ok = window_requests(run, entry, start, start + after)
        entries.append(EntryReplay(entry, "down", 0.0, None if requests == 0 else ok / requests,
                                   requests))
    recovers = tuple(dict(p) for p in run.summary.get("properties", [])
                     if p.get("kind") == "recovers" and p.get("entry") in ce.down)
    return Replay(verdict, run, (start, start + after), tuple(entries), (), recovers,
                  tuple(more))


def _limit(system: System, verdict: Verdict) -> float:
    for prop in system.properties:
        if isinstance(prop, P.Capacity) and prop.name == verdict.name:
            return prop.utilization
    return P.Capacity().utilization


def _rejected_bound(system: System, verdict: Verdict) -> float:
    for prop in system.properties:
        if isinstance(prop, P.Capacity) and prop.name == verdict.name:
            return prop.rejected
    return P.Capacity().rejected


def caller_shed(system: System, summary: Any, name: str) -> int:
    """Attempts ``name``'s callers made (or had refused by an open breaker) that it never
    received: the load its callers shed (all hosts ejected, breakers open)."""
    made = sum(edge["attempts"] + edge["causes"].get("circuit open", 0)
               for key, edge in summary["calls"].items() if key.endswith(f"->{name}"))
    entries = sum(summary["entries"][w.entry]["requests"] for w in system.workload
                  if w.service == name and w.entry in summary["entries"])
    return max(0, made - max(0, int(summary["services"][name]["requests"]) - entries))


def utilization_noise(system: System, name: str, stats: Any, alive: int,
                      seconds: float) -> float:
    """``NOISE_Z`` standard errors of the mean utilization of ``alive`` instances over
    ``seconds``: the work of ``n`` requests, compound Poisson, has variance ``n E[S^2]``."""
    service = system.services[name]
    if alive == 0 or seconds <= 0:
        return 0.0
    second = max((sum(e.service_time.quantile((i + 0.5) / 200) ** 2 for i in range(200)) / 200
                  for e in service.endpoints.values()), default=0.0)
    requests = int(stats["requests"])
    return NOISE_Z * math.sqrt(requests * second) / (service.workers * alive * seconds)


def _replay_capacity(system: System, verdict: Verdict, *, at: float, duration: float,
                     settle: float, seed: int) -> Replay:
    scenario = verdict.to_scenario(at=at, duration=duration, total=at + duration,
                                   warmup=at + settle)
    run = simulate(system, scenario, seed=seed)
    ce = verdict.counterexample
    assert ce is not None  # to_scenario refused a verdict without one
    failed = {f.partition(":")[2] for f in ce.failures if f.startswith("instance:")}
    zones = {f.partition(":")[2] for f in ce.failures if f.startswith("zone:")}
    services = []
    for name in ce.down:
        if name not in system.services:
            continue
        service = system.services[name]
        summary = run.summary["services"][name]
        alive = [i.name for i in service.instances
                 if i.name not in failed and i.zone not in zones]
        per_instance = summary["instances"]
        utilization = (sum(per_instance[i]["utilization"] for i in alive) / len(alive)
                       if alive else None)
        predicted = ce.numbers.get("utilization")
        claimed = ce.numbers.get("rejected_low", ce.numbers.get("rejected"))
        services.append(ServiceReplay(
            name, None if predicted is None else float(predicted), _limit(system, verdict),
            len(alive), utilization, int(summary["requests"]), int(summary["rejected"]),
            None if claimed is None else float(claimed), _rejected_bound(system, verdict),
            caller_shed(system, run.summary, name),
            utilization_noise(system, name, summary, len(alive),
                              run.summary["duration_s"] - run.summary["warmup_s"])))
    return Replay(verdict, run, (at + settle, at + duration), (), tuple(services))


__all__ = ["DEGRADED_SLACK", "DEGRADED_Z", "DOWN_AT_MOST", "NOISE_Z", "SETTLE_MARGIN",
           "SHED_NOISE", "UP_AT_LEAST", "UTILIZATION_TOLERANCE", "EntryReplay", "Replay",
           "ServiceReplay", "caller_shed", "replay", "utilization_noise", "window_availability",
           "window_requests"]
