"""The workload: requests arriving from outside, and how each one ends.

Each workload item sends requests to its entry endpoint, Poisson (exponential gaps) or at a
constant rate. A rate that changes over time (a profile of steps and linear ramps, or a
``surge`` fault scaling or setting an entry's rate for its window) is followed exactly by
inversion of the integrated rate: the next arrival comes when the rate integrated since the last
one reaches a draw of Exp(1) (Poisson: a non-homogeneous Poisson process) or 1 (constant: one
request per unit of integrated rate). Between profile points the rate is linear, so the integral
is a sum of trapezoids and the crossing time solves a quadratic; a surge starting or ending
replans the pending arrival with the integral consumed so far kept. A constant rate without surges
keeps the plain gap draw.

An implicit ingress routes each request to one of the entry service's live instances with that
service's load balancer; no network is crossed, and the request has no timeout unless the
workload item sets one. A request ends exactly once, when the entry job responds or its timeout
fires, whichever is first; the entry's statistics and the opt-in trace record it then.
``Arrivals`` also keeps the ledger the no-lost-requests monitor checks: requests started, ended
by outcome, and still open.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING

import simpy
from simpy.events import Timeout

from faultmesh.model.faults import Surge
from faultmesh.model.system import RatePoint, Workload, profile_rate
from faultmesh.simulations.observation.metrics import EntryStats, RequestTrace
from faultmesh.simulations.outcomes import NO_INSTANCE, OK, TIMED_OUT, outcome_of

if TYPE_CHECKING:
    from faultmesh.simulations.balancers import Balancer
    from faultmesh.simulations.engine.instances import Instance
    from faultmesh.simulations.engine.jobs import EndpointRuntime
    from faultmesh.simulations.engine.timeouts import Deadlines

FailureHook = Callable[[float, str, str, str], None]
"""Called as ``hook(time, entry, cause, root_cause)`` when a workload request fails."""


class EntryRequest:
    """A request from outside, waiting for the entry job's response."""

    __slots__ = ("arrived", "awaiting", "done", "ident", "instance", "source")

    def __init__(self, source: Arrivals, ident: int, arrived: float) -> None:
        self.source = source
        self.ident = ident
        self.arrived = arrived
        self.done = False
        self.awaiting = 1  # token 1 until the request ends (see simulations.timeouts)
        self.instance: Instance | None = None

    def expire(self, token: int) -> None:
        self.source.end(self, False, TIMED_OUT, TIMED_OUT)

    def respond(self, token: int, ok: bool, cause: str | None, root: str | None) -> None:
        if not self.done:
            self.source.end(self, ok, cause, root)

    def lose(self, token: int, cause: str) -> None:  # the ingress crosses no network
        pass


class Arrivals:
    """One workload item: its arrival process, its ingress routing, its ledger."""

    def __init__(self, env: simpy.Environment, workload: Workload, endpoint: EndpointRuntime,
                 live: dict[str, tuple[Instance, ...]], balancer: Balancer, stats: EntryStats,
                 rng: random.Random, ids: Iterator[int], deadlines: Deadlines | None,
                 trace: RequestTrace | None,
                 active: Counter[Instance] | None = None) -> None:
        self.env = env
        # Requests out per instance, kept when the balancer is least request (its load).
        self.active = active
        self.workload = workload
        self.endpoint = endpoint
        self.service = workload.service
        self.live = live
        self.balancer = balancer
        self.stats = stats
        self.ids = ids
        self.deadlines = deadlines
        self.trace = trace
        rate = workload.rate
        if workload.arrivals == "poisson":
            self.gap: Callable[[], float] = partial(rng.expovariate, rate)
        else:
            self.gap = partial(float, 1.0 / rate if rate > 0 else math.inf)
        self.started = 0
        self.ended = [0, 0, 0, 0]  # by outcome, warm-up included
        self.open: dict[int, EntryRequest] = {}
        self.causeless = 0  # failures that came without a cause
        self.on_failure: list[FailureHook] = []
        # A time-varying rate (profile or surges): the integrated rate the next arrival still
        # needs, counted from ``since``; ``plan`` tells the live timer from stale ones.
        self.rng = rng
        self.surges: dict[int, tuple[Surge, int]] = {}  # fault index -> (surge, items sharing)
        self.need = 0.0
        self.since = 0.0
        self.plan = 0
        self.inverting = bool(workload.profile)  # False: the plain gap draw (constant rate)
        self.next_at = math.inf  # the plain draw's pending arrival

    def start(self) -> None:
        if not self.inverting:
            if self.workload.rate > 0:
                self._gap()
            return
        self.need = self._draw()
        self.since = self.env.now
        self._plan()

    # --- a rate that varies ---------------------------------------------------------------

    def _draw(self) -> float:
        return self.rng.expovariate(1.0) if self.workload.arrivals == "poisson" else 1.0

    def rate(self, t: float) -> float:
        """The item's arrival rate at ``t``, with the surges now active."""
        return self._surged(self.workload.rate_at(t))

    def _surged(self, rate: float) -> float:
        for surge, sharing in self.surges.values():
            rate = surge.rate / sharing if surge.rate is not None else surge.applied(rate)
        return rate

    def add_surge(self, index: int, surge: Surge, sharing: int) -> None:
        """A surge starts: ``sharing`` workload items of the entry split a ``rate:`` surge."""
        self._replan(lambda: self.surges.__setitem__(index, (surge, sharing)))

    def remove_surge(self, index: int) -> None:
        self._replan(lambda: self.surges.pop(index, None))

    def _replan(self, change: Callable[[], object]) -> None:
        now = self.env.now
        if self.inverting:
            self.need = max(0.0, self.need - integrated(self._segments(self.since), now))
        else:
            # The plain draw's pending gap, as integrated rate still to go (exact for constant
            # arrivals; for Poisson the memoryless remainder has the same law).
            self.inverting = True
            self.need = ((self.next_at - now) * self.workload.rate
                         if self.next_at < math.inf else self._draw())
        self.since = now
        change()
        self._plan()

    def _segments(self, start: float) -> Iterator[tuple[float, float, float, float]]:
        """From ``start`` on: ``(t0, t1, r0, r1)``, the rate linear from r0 at t0 to r1 at t1."""
        yield from (
            (t0, t1, self._surged(r0), self._surged(r1))
            for t0, t1, r0, r1 in segments(self.workload.profile, self.workload.rate, start))

    def _plan(self) -> None:
        self.plan += 1
        at = crossing(self._segments(self.since), self.need)
        if at < math.inf:
            plan = self.plan
            Timeout(self.env, max(0.0, at - self.env.now)).callbacks.append(
                lambda _event: self._planned(plan))

    def _planned(self, plan: int) -> None:
        if plan != self.plan:
            return  # a surge re-planned this arrival
        self.need = self._draw()
        self.since = self.env.now
        self._plan()
        self._request()

    def _gap(self) -> None:
        gap = self.gap()
        self.next_at = self.env.now + gap
        Timeout(self.env, gap).callbacks.append(self._arrive)

    def _arrive(self, _event: object) -> None:
        if self.inverting:
            return  # a surge took over the plan (``_replan``) from this timer
        self._gap()
        self._request()

    def _request(self) -> None:
        env = self.env
        ident = next(self.ids)
        request = EntryRequest(self, ident, env.now)
        self.open[ident] = request
        self.started += 1
        # The workload's timeout is the request's deadline (None: nobody stops waiting).
        deadlines = self.deadlines
        deadline = None
        if deadlines is not None:
            now = env.now
            deadlines.add(request, 1, now)
            deadline = now + deadlines.length
        view = self.live[self.service]
        n = len(view)
        if n == 0:
            self.end(request, False, NO_INSTANCE, NO_INSTANCE)
            return
        instance = view[0] if n == 1 else self.balancer.choose(view, ident)
        request.instance = instance
        if self.active is not None:
            self.active[instance] += 1
        instance.receive(self.endpoint, request, 1, ident, None, deadline)

    def end(self, request: EntryRequest, ok: bool, cause: str | None, root: str | None) -> None:
        """``request`` ends: ok, or failed for ``cause`` (``root`` below it)."""
        request.done = True
        request.awaiting = 0
        now = self.env.now
        del self.open[request.ident]
        if self.active is not None and request.instance is not None:
            self.active[request.instance] -= 1
        if ok:
            outcome = OK
            self.stats.record_ok(request.arrived, now)
        else:
            if not cause or not root:  # a bug: the no-lost-requests monitor reports it
                self.causeless += 1
                cause, root = cause or "unknown", root or "unknown"
            outcome = outcome_of(cause)
            self.stats.record_failure(request.arrived, now, outcome, cause, root)
            for hook in self.on_failure:
                hook(now, self.stats.name, cause, root)
        self.ended[outcome] += 1
        if self.trace is not None:
            instance = request.instance
            self.trace.add(request.ident, self.stats.name,
                           instance.name if instance is not None else None,
                           request.arrived, now, outcome, cause, root)


# --- rate profiles (pure) ---------------------------------------------------------------------

Segment = tuple[float, float, float, float]


def segments(profile: tuple[RatePoint, ...], base: float, start: float) -> Iterator[Segment]:
    """The rate from ``start`` on as linear pieces ``(t0, t1, r0, r1)``; the last ends at inf."""
    t0, r0 = start, profile_rate(profile, base, start)
    for point in profile:
        if point.at <= t0:
            continue
        r1 = point.rate if point.ramp else r0
        yield t0, point.at, r0, r1
        t0, r0 = point.at, profile_rate(profile, base, point.at)
    yield t0, math.inf, r0, r0


def integrated(pieces: Iterable[Segment], until: float) -> float:
    """The rate integrated from the first piece's start to ``until`` (arrivals expected)."""
    total = 0.0
    for t0, t1, r0, r1 in pieces:
        if t0 >= until:
            break
        end = min(t1, until)
        slope = (r1 - r0) / (t1 - t0) if t1 < math.inf else 0.0
        total += (r0 + 0.5 * slope * (end - t0)) * (end - t0)
    return total


def crossing(pieces: Iterable[Segment], need: float) -> float:
    """The time at which the rate integrated from the first piece's start reaches ``need``
    (inf: never, the rate stays 0)."""
    for t0, t1, r0, r1 in pieces:
        slope = (r1 - r0) / (t1 - t0) if t1 < math.inf else 0.0
        area = (r0 + r1) / 2 * (t1 - t0) if t1 < math.inf else (math.inf if r0 > 0 else 0.0)
        if need <= area and area > 0:
            # r0 g + slope g^2 / 2 = need, in the form that stays exact as slope -> 0.
            root = math.sqrt(max(0.0, r0 * r0 + 2.0 * slope * need))
            return t0 + 2.0 * need / (r0 + root)
        need -= area
    return math.inf
