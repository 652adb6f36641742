"""Pressure on one service under failures: its busiest surviving instance, its utilization and
the share of requests it rejects. ``capacity`` decides with these; ``repairs`` sizes with them.

For a budget of ``j`` failures the worst failures for a service are the ones that leave its
busiest surviving instance the largest share of the service's load (utilization and losses
only grow with an instance's load, and every instance of a service is alike):

* balancers that spread evenly (``shares.even``): the failures removing the most instances,
  i.e. the ``j`` most-populated zones (``failures.worst_removal``), each survivor getting
  ``1/m``;
* consistent hashing: every failure set of at most ``j`` units touching the service (its
  instances, its zones) is tried, each leaving the survivors the exact ring shares
  (``shares.consistent_hash_shares``); beyond ``ENUMERATION_LIMIT`` sets, ``unknown``.

Both loops check the checker's ``Deadline`` once per failure set (``OutOfTime`` when spent), so
a budget of a thousand failures over many services stays within ``--timeout``.

Retries enter as the scenario causes them: an attempt an instance rejects is retried (with the
largest ``attempts`` of the calls into the service), so an instance rejecting a share ``p``
receives ``rate x (1 + p + ... + p^(attempts-1))``; that fixed point is found by iteration
(monotone from below). Nothing else is retried: see ``load`` for why removed instances do not
add load to the survivors.
"""

from __future__ import annotations

import itertools
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property
from math import comb
from typing import Any

from faultmesh.model.distributions import Exponential
from faultmesh.model.system import Call, Communication, FrozenMap, Service, System, step_calls
from faultmesh.model.verify.blocking import (
    NONE,
    Loss,
    Station,
    loss,
    mmsl_wait,
    second_moment,
)
from faultmesh.model.verify.bursts import simultaneous
from faultmesh.model.verify.deadline import Deadline
from faultmesh.model.verify.failures import (
    FailureKinds,
    instance_unit,
    removal_profile,
    worst_removal,
    zone_counts,
    zone_unit,
)
from faultmesh.model.verify.load import OfferedLoad, exact
from faultmesh.model.verify.shares import consistent_hash_shares, even
from faultmesh.model.verify.timeouts import call_worst

ENUMERATION_LIMIT = 20_000  # failure sets tried per service under consistent hashing
# Offered load (busy workers' worth) past which an instance is taken as saturated: it
# rejects ``1 - servers / a`` of its requests or more, which is 1.0 in floating point well
# before a float overflows (a call graph's fan-out compounds loads past 10^308 requests/s).
SATURATED = 1e150
FIXED_POINT_STEPS = 200


@dataclass(frozen=True)
class Pressure:
    """One service after one failure set (the worst of its size for this service)."""

    service: Service
    load: Fraction  # requests/s into the service, each call made once
    demand: Fraction  # busy workers over the whole service at that load
    unbounded: bool
    failures: int  # the size of the failure set
    units: tuple[str, ...]  # the failure set
    surviving: int
    share: Fraction  # the busiest survivor's share of the load
    busiest: str  # its name ("" when nothing survives)
    loss: Loss  # what the busiest survivor rejects, retries of rejections included
    undecided: str = ""  # why the worst failure set could not be found (then status unknown)

    @property
    def capacity(self) -> int:
        return self.surviving * self.service.workers

    # Cached: exact divisions of loads with hundreds of digits, asked for again by every
    # status, rank and explanation.
    @cached_property
    def instance_demand(self) -> Fraction:
        return self.demand * self.share

    @cached_property
    def utilization(self) -> Fraction | None:
        """The busiest survivor's busy workers over its workers; None when infinite."""
        if self.surviving == 0 or self.unbounded:
            return None
        return self.instance_demand / self.service.workers

    def status(self, limit: Fraction, rejected: float) -> str:
        """``violated``, ``unknown`` or ``ok`` against the utilization and rejection targets."""
        u = self.utilization
        if u is None or u >= limit or self.loss.low > rejected:
            return "violated"
        if self.undecided or self.loss.high > rejected:
            return "unknown"
        return "ok"

    def rank(self) -> tuple[int, Fraction, float]:
        """Sort key: most utilized first (infinite before any finite), then most rejecting."""
        u = self.utilization
        return (0, Fraction(0), 0.0) if u is None else (1, -u, -self.loss.high)


class CallTimes:
    """How long a request waits on its calls, on average, in a failure scenario (for the
    concurrency slots it holds meanwhile).

    In a scenario that only crashes instances no callee hangs: an attempt on a crashed instance
    is refused at once, so a call lasts a round trip plus its callee's response time, and a
    retry its round trip plus the backoff. The estimate errs on the long side: every retry is
    charged (round trip and largest backoff), a parallel group costs the sum of its members,
    and each callee waits for a worker as at its busiest instance after the worst ``budget``
    failures (mean wait of M/M/s/L, exact for exponential service times, times Allen and
    Cunneen's ``(1 + SCV) / 2`` otherwise). No attempt lasts beyond its timeout, so a call costs
    at most its ``timeouts_nest`` worst case; around a call cycle that worst case is used.
    """

    def __init__(self, system: System, load: OfferedLoad, kinds: FailureKinds,
                 budget: int) -> None:
        self.system = system
        self.load = load
        self.kinds = kinds
        self.budget = budget
        self.response: dict[str, float] = {}
        self.busy: set[str] = set()
        self.waits: dict[str, float] = {}

    def round_trip(self, caller: str, callee: str) -> float:
        net = self.system.communication
        here = set(self.system.services[caller].zones)
        there = set(self.system.services[callee].zones)
        hop = 0.0
        if here & there:
            hop = max(hop, net.same_zone_latency.mean)
        if any(a != b for a in here for b in there):
            hop = max(hop, net.cross_zone_latency.mean)
        return 2 * hop

    def wait(self, name: str) -> float:
        if name not in self.waits:
            model = ServiceModel(self.system, name, self.load, None)
            service = model.service
            removed = removal_profile(list(zone_counts(service).values()), self.kinds,
                                      self.budget)[-1]
            left = max(1, service.replicas - removed)
            station = model.station
            a = saturated(model.rate) / left * station.mean
            if a > SATURATED:
                w = math.inf  # the longest wait: only ever an upper bound's input
            else:
                w = mmsl_wait(station.workers, station.room, a, station.mean) if a > 0 else 0.0
            if not station.exponential:
                w *= max(1.0, (1 + station.scv) / 2)
            self.waits[name] = w
        return self.waits[name]

    def of_endpoint(self, target: str) -> float:
        """Mean time a request to ``target`` spends on its calls (its response time minus its
        own wait and service)."""
        return self._walk(target, respond=False)

    def of_call(self, caller: str, call: Call) -> float:
        cost = self._cost(caller, call)
        if cost is None:
            self._walk(call.target, respond=True)
            cost = self._cost(caller, call)
            assert cost is not None
        return cost

    def _cost(self, caller: str, call: Call) -> float | None:
        """A call's mean time, or None while its callee's response time is not known yet."""
        if call.asynchronous or call.probability <= 0:
            return 0.0
        cap = float(call_worst(call))
        target = call.target
        if target in self.busy:
            return cap * call.probability  # a call cycle: charge the timeouts
        if target not in self.response:
            return None
        trip = self.round_trip(caller, call.service)
        retries = sum(trip + call.backoff.max_delay(r) for r in range(1, call.retries + 1))
        once = trip + self.response[target] + retries
        return call.probability * call.repeat * min(cap / call.repeat, once)

    def _walk(self, target: str, respond: bool) -> float:
        """Depth first down the calls below ``target`` with a stack of its own (a chain can
        be thousands deep), in the order, and with the same sums, a recursive walk would take:
        each callee's response time (its wait, its own service and its calls) is found once,
        and a callee being walked is charged its timeouts. ``respond``: walk ``target`` as a
        callee (its response time is recorded) rather than only sum its calls."""
        stack = [self._frame(target, respond)]
        while True:
            # A frame: [endpoint, service, steps' calls, step, member, step sum, total, callee?]
            frame = stack[-1]
            name, service, steps, i, j, part, total, callee = frame
            if i < len(steps):
                if j < len(steps[i]):
                    cost = self._cost(service, steps[i][j])
                    if cost is None:
                        stack.append(self._frame(steps[i][j].target, True))
                        continue
                    frame[5] = part + cost
                    frame[4] = j + 1
                else:  # every member summed: an upper bound of the step, parallel or not
                    frame[6] = total + part
                    frame[3], frame[4], frame[5] = i + 1, 0, 0
                continue
            stack.pop()
            if callee:
                own = self.system.services[service].endpoints[
                    name.partition(".")[2]].service_time.mean
                self.response[name] = self.wait(service) + own + total
                self.busy.discard(name)
            if not stack:
                return total

    def _frame(self, target: str, callee: bool) -> list[Any]:
        if callee:
            self.busy.add(target)
        service, _, name = target.partition(".")
        steps = [step_calls(step) for step in self.system.services[service].endpoints[name].steps]
        return [target, service, steps, 0, 0, 0, 0.0, callee]


class ServiceModel:
    """What the checker knows of one service: load, service-time mixture, call times."""

    def __init__(self, system: System, name: str, load: OfferedLoad,
                 times: CallTimes | None) -> None:
        """``times``: how long requests wait on their calls (None: not needed, e.g. for the
        waits ``CallTimes`` itself computes)."""
        self.system = system
        self.service = service = system.services[name]
        self.rate, self.demand, self.unbounded = load.service(system, name)
        self.attempts = load.attempts.get(name, 1)
        self.called = name in load.called
        self.bursty = self.called and name in _simultaneous(system)
        rates = [(r, ep, service.endpoints[ep]) for ep in service.endpoints
                 if (r := load.endpoints.get(f"{name}.{ep}", Fraction(0))) > 0]
        total = saturated(self.rate)
        beyond = not (math.isfinite(total) and math.isfinite(saturated(self.demand)))
        if beyond:  # past a float: weigh the endpoints by their shares of the load instead
            loaded = [(float(r / self.rate), ep, e) for r, ep, e in rates]
            total = 1.0
        else:
            loaded = [(float(r), ep, e) for r, ep, e in rates]
        mean = second = calls = 0.0
        if total > 0 and not self.unbounded:
            mean = float(self.demand / self.rate) if beyond else float(self.demand) / total
            second = sum(r * second_moment(e.service_time) for r, _, e in loaded) / total
            # Only a concurrency limit counts requests while they wait on their calls.
            if times is not None and service.concurrency is not None:
                calls = sum(r * times.of_endpoint(f"{name}.{ep}") for r, ep, _ in loaded) / total
        dists = [e.service_time for _, _, e in loaded]
        exponential = bool(dists) and all(isinstance(d, Exponential) for d in dists) \
            and len({d.mean for d in dists}) == 1
        self.station = Station(service.workers, service.queue, service.concurrency, mean,
                               second / mean ** 2 - 1 if mean > 0 else 0.0, exponential,
                               calls)

    def with_workers(self, workers: int) -> Station:
        s = self.station
        return Station(workers, s.queue, s.concurrency, s.mean, s.scv, s.exponential, s.calls)

    def rejection(self, rate: float, station: Station | None = None,
                  survivors: int = 1) -> Loss:
        """The busiest instance's loss at ``rate`` nominal requests/s, rejected attempts
        retried (the fixed point of the module docstring, for each bound), for one of
        ``survivors`` instances sharing the service's load."""
        station = station or self.station
        if not station.limited or rate <= 0:
            return NONE
        if rate * station.mean > SATURATED:
            a = rate * station.mean
            return Loss(max(0.0, 1.0 - station.servers / a), 1.0, False,
                        f"an offered load of {a:.3g} workers' worth: every instance rejects "
                        f"all but a vanishing share")
        first = self._loss(station, rate, survivors)
        if self.attempts <= 1:
            return first

        def settle(pick: str) -> float:
            offered = rate
            p = getattr(first, pick)
            for _ in range(FIXED_POINT_STEPS):
                offered = rate * sum(p ** k for k in range(self.attempts))
                nxt = getattr(self._loss(station, offered, survivors), pick)
                if abs(nxt - p) < 1e-12:
                    break
                p = nxt
            return p

        return Loss(settle("low"), settle("high"), first.exact, first.why)

    def _loss(self, station: Station, rate: float, survivors: int) -> Loss:
        """One instance's loss at ``rate``: Poisson arrivals (a ``random`` split, or keys
        hashed onto a ring) make it the ``blocking`` figure; ``round_robin`` and
        ``least_request`` send an instance more regular arrivals (every m-th request), or
        steer them to the least busy instance, and lose less than a Poisson split, so that
        figure is only the high bound. Their low bound is the pooled station: all survivors
        as one loss system with every worker, queue slot and concurrency slot (no dispatch
        of the same Poisson stream over the parts does better than the whole)."""
        alone = loss(station, rate)
        if alone.high == 0:
            return alone
        if self.called:
            # Requests from other services are not a Poisson stream: callers' own workers and
            # limits throttle and space them (one caller worker never has two calls out at
            # once), so they can lose far less; only the capacity floor is certain.
            a = rate * station.mean
            floor = max(0.0, 1.0 - station.servers / a) if a > 0 else 0.0
            if self.bursty:
                # A request can have several calls to it in flight at once: they arrive in
                # bursts, and the Poisson figure bounds nothing.
                return Loss(min(alone.low, floor), 1.0, False,
                            f"{alone.why}, no bound: a request can have several calls to it "
                            f"in flight at once (parallel, asynchronous, hedged, or a retry "
                            f"beside its timed-out attempt)")
            alone = Loss(min(alone.low, floor), alone.high, False,
                         f"{alone.why}; an upper bound: its callers' requests are not Poisson")
        kind = self.service.load_balancer.kind
        if survivors <= 1 or kind in ("random", "consistent_hash"):
            return alone
        pooled = loss(Station(
            station.workers * survivors,
            None if station.queue is None else station.queue * survivors,
            None if station.concurrency is None else station.concurrency * survivors,
            station.mean, station.scv, station.exponential, station.calls), rate * survivors)
        return Loss(min(alone.low, pooled.low), alone.high, False,
                    f"{alone.why}; {kind} balancing loses less than that Poisson split, at "
                    f"least what all {survivors} survivors pooled would lose")

    def pressure(self, failures: int, units: tuple[str, ...], survivors: list[str],
                 share: Fraction | None = None, busiest: str = "") -> Pressure:
        m = len(survivors)
        if share is None:
            share = Fraction(1, m) if m else Fraction(1)
            busiest = survivors[0] if survivors else ""
        rejected = NONE if m == 0 or self.unbounded else \
            self.rejection(saturated(self.rate * share), survivors=m)
        return Pressure(self.service, self.rate, self.demand, self.unbounded, failures, units,
                        m, share, busiest, rejected)

    def profile(self, kinds: FailureKinds, budget: int,
                deadline: Deadline | None = None) -> list[Pressure]:
        """The worst pressure for each budget ``j = 0..budget`` (monotone in ``j``)."""
        tick = deadline.check if deadline is not None else _no_check
        service = self.service
        names = [f"{service.name}-{i}" for i in range(service.replicas)]
        if even(service.load_balancer.kind):
            removed = removal_profile(list(zone_counts(service).values()), kinds, budget)
            out = []
            for j in range(budget + 1):
                tick()
                _, units = worst_removal(service, kinds, j)
                out.append(self.pressure(j, units, names[removed[j]:]))
            return out
        return self._consistent_hash_profile(kinds, budget, names, tick)

    def _consistent_hash_profile(self, kinds: FailureKinds, budget: int, names: list[str],
                                 tick: Callable[[], None]) -> list[Pressure]:
        service = self.service
        units: list[tuple[str, frozenset[int]]] = []
        if kinds.instances:
            units += [(instance_unit(service.name, i), frozenset([i]))
                      for i in range(service.replicas)]
        if kinds.zones:
            for zone in zone_counts(service):
                units.append((zone_unit(zone), frozenset(
                    i for i, z in enumerate(service.zones) if z == zone)))
        sets = sum(comb(len(units), j) for j in range(min(budget, len(units)) + 1))
        if sets > ENUMERATION_LIMIT:
            worst = self.pressure(0, (), names)
            why = (f"{service.name} balances by consistent hashing over "
                   f"{service.replicas} replicas: {sets} failure sets are too many to try")
            return [replace(worst, undecided=why)] * (budget + 1)
        best: Pressure | None = None
        out = []
        for j in range(budget + 1):
            for combo in itertools.combinations(units, j):
                tick()
                gone = frozenset().union(*(members for _, members in combo))
                survivors = [n for i, n in enumerate(names) if i not in gone]
                shares = consistent_hash_shares(survivors)
                top = max(survivors, key=lambda n: (shares[n], n)) if survivors else ""
                p = self.pressure(j, tuple(u for u, _ in combo), survivors,
                                  shares[top] if survivors else Fraction(1), top)
                if best is None or _worse(p, best):
                    best = p
            assert best is not None
            out.append(best)
        return out


# What ``thinning.simultaneous`` found, per system: it depends on the services and the
# network alone, and every ``ServiceModel`` of a check (and of the certain loads beside it)
# asks. Keyed by the services map (held weakly: a System has no weak references) and the
# network it was found with.
_BURSTS: dict[int, tuple[weakref.ref[FrozenMap], Communication, frozenset[str]]] = {}


def _simultaneous(system: System) -> frozenset[str]:
    """``thinning.simultaneous`` once per system."""
    key = id(system.services)
    hit = _BURSTS.get(key)
    if hit is not None and hit[0]() is system.services and hit[1] is system.communication:
        return hit[2]
    if len(_BURSTS) > 8:
        _BURSTS.clear()
    found = simultaneous(system)
    _BURSTS[key] = (weakref.ref(system.services), system.communication, found)
    return found


def saturated(x: Fraction) -> float:
    """``x`` as a float, infinity when it is beyond one."""
    try:
        return float(x)
    except OverflowError:
        return math.inf


def _no_check() -> None:
    return None


def _worse(a: Pressure, b: Pressure) -> bool:
    """Is ``a`` a worse failure set than ``b`` (a larger busiest share; ties: fewer units)?"""
    if (a.surviving == 0) != (b.surviving == 0):
        return a.surviving == 0
    return (a.share, -a.failures) > (b.share, -b.failures)


__all__ = ["ENUMERATION_LIMIT", "SATURATED", "CallTimes", "Pressure", "ServiceModel", "exact",
           "saturated"]
