"""The load a service is sure to receive: a lower bound beside ``load``'s upper one.

``load.offered_load`` counts every call once with its probability and repeat. That is the
most a service receives: a request whose call fails makes no later calls, so failures only
thin the load below it. ``capacity`` says ``violated`` on a utilization or a rejected share
only when the load certain to arrive (this module) breaks the service too; when only the
upper bound does, the verdict is ``unknown`` (a 35 ms timeout on a 32 ms mean exponential
callee fails about 13 % of the requests after two attempts, and their later calls never
happen: measured, a service predicted at 96 % ran at 64 %).

A required synchronous call *can fail* in a run without hung dependencies when

* the network loses messages;
* its callee can refuse work: a queue or concurrency limit (it refuses at most the share
  ``capacity``'s upper loss bound gives, so a later step still gets at least the rest), a
  token bucket or a bound on the wait in its queue (``queue_discipline`` timeout, adaptive
  LIFO: no bound on the share, so nothing later is certain);
* its callee is *broken* in the scenario: no instance left, or itself over its targets (its
  queueing then makes callers time out), given by the caller of ``certain_load``;
* its timeout is not above the callee's healthy worst case plus the round trip (``healthy``:
  the ``timeouts`` rule with each awaited call charged the least of its timeouts and its
  callee's healthy worst case, i.e. nothing hangs; unbounded draws at their p99.9, queueing
  left out as ``timeouts_nest`` leaves it out);
* the callee's endpoint makes a required call that can fail (its error is returned).

Optional and asynchronous calls never fail their caller. A step that can fail stops the
certain flow to every later step of the endpoint (or keeps the share its callee surely
accepts), a service that refuses a share of its own requests makes that share of none of
their calls (an entry's limits thin everything below it), and a fallback's callee is certain
to get nothing (it is called only when the primary fails). A call with a circuit breaker, or
into a service whose callers' outlier detection may eject every host, is sure of nothing when
its attempts can fail: the breaker opens, or no host is left to send them to. Every
simplification lowers the bound: the calls inside a call cycle are left out (one pass,
callers first, linear in the call graph), so the result stays a lower bound.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from faultmesh.model.graph import strongly_connected
from faultmesh.model.system import (
    Call,
    Endpoint,
    Fallback,
    Service,
    System,
    step_calls,
)
from faultmesh.model.verify.deadline import Deadline
from faultmesh.model.verify.load import OfferedLoad, endpoint_shares, exact
from faultmesh.model.verify.timeouts import (
    awaited,
    call_worst,
    decimal,
    round_trip,
    service_bound,
    worst_cases,
)


def sheds(service: Service) -> bool:
    """Can the service refuse a share of its requests that ``capacity`` does not bound (token
    buckets, bounded waits in its queue)?"""
    discipline = service.queue_discipline
    return (service.rate_limit is not None
            or any(e.rate_limit is not None for e in service.endpoints.values())
            or discipline.timeout is not None or discipline.kind == "adaptive_lifo")


def refuses(service: Service) -> bool:
    """Can the service refuse a request outright (limits, token buckets, bounded waits)?"""
    return service.queue is not None or service.concurrency is not None or sheds(service)


class Failing:
    """Which calls can fail, for one system and a set of broken services."""

    def __init__(self, system: System, broken: Iterable[str] = (),
                 healthy: dict[str, Fraction] | None = None,
                 static: dict[tuple[str, int], list[bool | None]] | None = None) -> None:
        """``healthy``: healthy worst cases already found for this system, shared (they do
        not depend on ``broken``; share them only without call cycles, where a walk's order
        decides where a cycle is cut). ``static``: ``_attempt_here``'s answers with no
        service broken, shared on the same terms (they rest on the healthy worst cases)."""
        self.system = system
        self.broken = frozenset(broken)
        self.lossy = system.communication.loss > 0
        self._hang: Mapping[str, Fraction] | None = None
        self.healthy: dict[str, Fraction] = {} if healthy is None else healthy
        self.static: dict[tuple[str, int], list[bool | None]] = {} if static is None else static
        self.fails: dict[str, bool] = {}
        self.busy: set[str] = set()

    @property
    def hang(self) -> Mapping[str, Fraction]:
        """The charge around a call cycle (``worst_cases``; found on first need: a system
        without call cycles never needs it)."""
        if self._hang is None:
            self._hang = worst_cases(self.system)
        return self._hang

    def healthy_worst(self, target: str) -> Fraction:
        """The endpoint's healthy worst case (module docstring).

        Depth first down the calls with a stack of its own (a chain can be thousands deep),
        visiting calls in the order a recursive walk would, so that a call cycle is cut where
        such a walk cuts it (the endpoint being walked charged its ``worst_cases`` figure)."""
        if target in self.healthy:
            return self.healthy[target]
        if target in self.busy:
            return self.hang[target]  # a call cycle: every attempt charged its timeout
        # A frame: [endpoint, its service, its calls (every step's, in order), next, total].
        # In parallel or not, the sum bounds a step (a coarse bound errs long, which only
        # makes a caller's timeout look likelier to fire: a lower certain load).
        stack = [self._healthy_frame(target)]
        while True:
            frame = stack[-1]
            name, service, calls, i, total = frame
            if i < len(calls):
                call = calls[i]
                if awaited(call):
                    callee = call.target
                    if callee in self.healthy:
                        worst = self.healthy[callee]
                    elif callee in self.busy:
                        worst = self.hang[callee]
                    else:
                        stack.append(self._healthy_frame(callee))
                        continue
                    frame[4] = total + self._healthy_cost(service, call, worst)
                frame[3] = i + 1
                continue
            stack.pop()
            self.busy.discard(name)
            self.healthy[name] = total
            if not stack:
                return total
            parent = stack[-1]
            parent[4] += self._healthy_cost(parent[1], parent[2][parent[3]], total)
            parent[3] += 1

    def _healthy_frame(self, target: str) -> list[Any]:
        self.busy.add(target)
        endpoint = self.system.endpoint(target)
        calls = [c for step in endpoint.steps for c in step_calls(step)]
        return [target, target.partition(".")[0], calls, 0, service_bound(endpoint.service_time)]

    def _healthy_cost(self, caller: str, call: Call, callee_worst: Fraction) -> Fraction:
        once = callee_worst + round_trip(self.system, caller, call.service)
        return min(call_worst(call), call.repeat * once)

    def call_healthy(self, caller: str, call: Call) -> Fraction:
        if not awaited(call):
            return Fraction(0)
        return self._healthy_cost(caller, call, self.healthy_worst(call.target))

    def call_can_fail(self, caller: str, call: Call, *, refusals: bool = True) -> bool:
        """Can this call fail its caller's request (required, awaited, and some way to fail)?
        Without ``refusals`` the callee's own queue and concurrency limits are left out (the
        caller counts them by their share)."""
        if not awaited(call) or not call.required:
            return False
        return self.attempt_can_fail(caller, call, refusals=refusals)

    def attempt_can_fail(self, caller: str, call: Call, *, refusals: bool = True) -> bool:
        """Can an attempt of this call fail (whether or not its caller waits for it)?"""
        here = self._attempt_here(caller, call, refusals)
        return self.endpoint_can_fail(call.target) if here is None else here

    def _attempt_here(self, caller: str, call: Call, refusals: bool) -> bool | None:
        """``attempt_can_fail`` without looking below the callee (None: it fails exactly when
        the callee's endpoint can)."""
        if call.service in self.broken:
            return True
        return self.static_here(caller, call, refusals)

    def static_here(self, caller: str, call: Call, refusals: bool) -> bool | None:
        """``_attempt_here`` with no service broken (True: the attempt can fail whatever is
        broken, so breaking its callee changes nothing for it)."""
        # It does not depend on what is broken: found once per call (keyed by the call
        # object, alive as long as the system is, and its caller, whose placement sets the
        # round trip), since capacity asks again for every set of broken services.
        key = (caller, id(call))
        known = self.static.get(key)
        if known is None:
            callee = self.system.services[call.service]
            # [refuses whatever is asked, refuses by its limits, times out: found on need]
            known = self.static[key] = [self.lossy or sheds(callee), refuses(callee), None]
        if known[0] or (refusals and known[1]):
            return True
        if known[2] is None:  # one comparison serves both questions (with refusals or not)
            known[2] = decimal(call.timeout) <= (self.healthy_worst(call.target)
                                                 + round_trip(self.system, caller, call.service))
        return True if known[2] else None

    def endpoint_can_fail(self, target: str) -> bool:
        """Can a request to the endpoint fail (one of its required calls can)?

        Depth first with a stack of its own, in the order a recursive walk would take: an
        endpoint being walked counts as able to fail (around a cycle the bound only drops)."""
        if target in self.fails:
            return self.fails[target]
        self.fails[target] = True
        stack = [self._fails_frame(target)]  # a frame: [endpoint, service, calls, next]
        while stack:
            frame = stack[-1]
            name, service, calls, i = frame
            result = False
            while i < len(calls):
                call = calls[i]
                here: bool | None = False
                if awaited(call) and call.required:
                    here = self._attempt_here(service, call, True)
                if here is None:
                    if call.target not in self.fails:
                        break  # walk the callee first, then look at this call again
                    here = self.fails[call.target]
                if here:
                    result = True
                    break
                i += 1
            frame[3] = i
            if i < len(calls) and not result:
                callee = calls[i].target
                self.fails[callee] = True
                stack.append(self._fails_frame(callee))
                continue
            stack.pop()
            self.fails[name] = result
        return self.fails[target]

    def _fails_frame(self, target: str) -> list[Any]:
        calls = [c for step in self.system.endpoint(target).steps for c in step_calls(step)]
        return [target, target.partition(".")[0], calls, 0]


def cut_off(failing: Failing, caller: str, call: Call) -> bool:
    """May the caller stop sending this call's attempts at all? Its circuit breaker opens
    after attempts fail, and outlier detection that may eject every host of the callee
    leaves it none to send them to, whenever an attempt can fail."""
    if call.circuit_breaker is None and not _ejects_all(failing.system.services[call.service]):
        return False
    return failing.attempt_can_fail(caller, call)


def _ejects_all(service: Service) -> bool:
    policy = service.outlier_detection
    return policy is not None and policy.ejectable(service.replicas) >= service.replicas


@dataclass
class Walks:
    """What ``certain_load`` finds that does not depend on the broken services or the accepted
    shares, kept for its next call on the same system: shared only without call cycles
    (``Failing``'s answers, and a callers-first order of every endpoint, rest on that)."""

    healthy: dict[str, Fraction] = field(default_factory=dict)  # as for ``Failing``
    static: dict[tuple[str, int], list[bool | None]] = field(default_factory=dict)  # likewise
    order: list[str] | None = None  # every endpoint, callers first (found on first need)
    # Per endpoint: its service and, per step, each call with its base weight, whether it is
    # a fallback's callee, whether a breaker or ejection can cut it off, whether its failure
    # fails the caller (``_plan``).
    plans: dict[str, tuple[str, list[list[tuple[Call, float, bool, bool, bool]]]]] = field(
        default_factory=dict)


def certain_load(system: System, nominal: OfferedLoad, broken: Iterable[str] = (),
                 accepts: Mapping[str, Fraction | float] | None = None,
                 deadline: Deadline | None = None, walks: Walks | None = None) -> OfferedLoad:
    """Requests/s sure to reach each endpoint when every call that can fail does (a lower
    bound), with ``broken`` services failing every call into them and each service accepting
    at least the share ``accepts`` gives of its requests (absent: all; ``capacity`` passes
    one minus its upper loss bound). ``deadline`` is checked once per service and once per
    component of the call graph (``OutOfTime`` when spent); ``walks``: what earlier calls on
    this system (without call cycles) found.

    The sums are floats, each inexact result rounded toward zero (``_below``, ``_times``,
    ``_plus``), so every figure stays at most the exact one: a lower bound, as cheap on a deep
    call graph as on a shallow one (exact fractions there grow to thousands of digits). A sum
    past the largest float stays at the largest float, still below the exact figure."""
    failing = Failing(system, broken, None if walks is None else walks.healthy,
                      None if walks is None else walks.static)
    accept = {name: _below(share) for name, share in (accepts or {}).items()}
    inflow: dict[str, float] = {}
    for w in system.workload:
        inflow[w.entry] = _plus(inflow.get(w.entry, 0.0), _below(w.rate))
    for sessions in system.sessions:
        for entry, rate in sessions.step_rates().items():
            if rate != float("inf"):
                inflow[entry] = _plus(inflow.get(entry, 0.0), _below(rate))
    if walks is not None:  # no call cycle: one order of every endpoint serves every pass
        return replace(nominal, endpoints=_acyclic_pass(system, failing, accept, inflow, walks,
                                                        deadline),
                       unbounded=frozenset())
    weights: dict[str, dict[str, float]] = {}
    for service_name, service in system.services.items():
        if deadline is not None:
            deadline.check()
        for ep_name, endpoint in service.endpoints.items():
            source = f"{service_name}.{ep_name}"
            out: dict[str, float] = {}
            found = _bases(endpoint)
            reach = accept.get(service_name, 1.0)  # the requests it serves
            for step, based in zip(endpoint.steps, found, strict=True):
                members = step_calls(step)
                for call, base in based:
                    fallback = isinstance(step, Fallback) and call is step.fallback
                    weight = _times(base, reach)
                    if weight > 0 and not fallback and not cut_off(failing, service_name, call):
                        out[call.target] = _plus(out.get(call.target, 0.0), weight)
                # Later steps are reached only by the requests this one lets through.
                if any(failing.call_can_fail(service_name, c, refusals=False)
                       for c in members):
                    break
                for c in members:
                    if failing.call_can_fail(service_name, c):  # by its callee's limits
                        reach = _times(reach, accept.get(c.service, 1.0))
            weights[source] = out
    load = {name: inflow.get(name, 0.0) for name in weights}
    # Callers first (Tarjan lists callees first), one pass: linear in the call graph. Calls
    # inside a cycle's component are left out, which only lowers the bound.
    names = list(weights)
    index = {name: i for i, name in enumerate(names)}
    succ = [[index[t] for t in weights[name]] for name in names]
    for component in reversed(strongly_connected(succ)):
        if deadline is not None:
            deadline.check()
        inside = {names[v] for v in component}
        for v in component:
            source = names[v]
            if load[source]:
                for target, weight in weights[source].items():
                    if target not in inside:
                        load[target] = _plus(load[target], _times(load[source], weight))
    # Everything else (attempts, which services are called) is the nominal load's.
    return replace(nominal, endpoints={k: Fraction(v) for k, v in load.items() if v},
                   unbounded=frozenset())


def _acyclic_pass(system: System, failing: Failing, accept: dict[str, float],
                  inflow: dict[str, float], walks: Walks,
                  deadline: Deadline | None) -> dict[str, Fraction]:
    """``certain_load``'s sums without call cycles, in one walk callers first: each endpoint's
    load is final when it is reached, so it is sent down its calls at once (endpoints with
    none are skipped), each call's share rounded down as in the general pass."""
    if walks.order is None:
        walks.order = _callers_first(system)
    load = dict(inflow)
    plans = walks.plans
    for k, source in enumerate(walks.order):
        if deadline is not None and k % 1024 == 0:
            deadline.check()
        here = load.get(source, 0.0)
        if not here:
            continue
        plan = plans.get(source)
        if plan is None:
            plan = plans[source] = _plan(system, source)
        service_name, steps = plan
        reach = accept.get(service_name, 1.0)  # the requests it serves
        for members in steps:
            for call, base, fallback, cuttable, _ in members:
                if fallback:
                    continue
                weight = _times(base, reach)
                if weight > 0 and not (cuttable
                                       and failing.attempt_can_fail(service_name, call)):
                    target = call.target
                    load[target] = _plus(load.get(target, 0.0), _times(here, weight))
            # Later steps are reached only by the requests this one lets through
            # (``call_can_fail`` for the calls that fail their caller, ``required``).
            if any(required and failing.attempt_can_fail(service_name, call, refusals=False)
                   for call, _, _, _, required in members):
                break
            for call, _, _, _, required in members:
                share = accept.get(call.service, 1.0)
                if share < 1.0 and required and failing.attempt_can_fail(service_name, call):
                    reach = _times(reach, share)  # by its callee's limits
    return {k: Fraction(v) for k, v in load.items() if v}


def _plan(system: System,
          source: str) -> tuple[str, list[list[tuple[Call, float, bool, bool, bool]]]]:
    """One endpoint's calls for ``_acyclic_pass``: per step, (call, base weight, a fallback's
    callee?, can a breaker or ejection cut it off?, does its failure fail the caller?)."""
    service_name = source.partition(".")[0]
    endpoint = system.endpoint(source)
    steps = []
    for step, based in zip(endpoint.steps, _bases(endpoint), strict=True):
        steps.append([(call, base, isinstance(step, Fallback) and call is step.fallback,
                       call.circuit_breaker is not None
                       or _ejects_all(system.services[call.service]),
                       awaited(call) and call.required)
                      for call, base in based])
    return service_name, steps


def _callers_first(system: System) -> list[str]:
    """Every endpoint, each before everything it calls (on a call graph without cycles)."""
    names = [f"{s}.{e}" for s, service in system.services.items() for e in service.endpoints]
    index = {name: i for i, name in enumerate(names)}
    succ = [[index[c.target] for c in system.endpoint(name).calls()] for name in names]
    order = [names[v] for component in reversed(strongly_connected(succ)) for v in component]
    return order


def _bases(endpoint: Endpoint) -> list[list[tuple[Call, float]]]:
    """Per step, each call with at most probability x repeat x share (``endpoint_shares``)."""
    shares = iter(endpoint_shares(endpoint))
    return [[(call, _times(_times(_below(call.probability), float(call.repeat)),
                           _below(share)))
             for call, share in (next(shares) for _ in step_calls(step))]
            for step in endpoint.steps]


_LARGEST = sys.float_info.max


@functools.lru_cache(maxsize=4096, typed=True)  # 0.1 (a decimal) is no Fraction(0.1)
def _below(x: Fraction | float) -> float:
    """A float at most ``x`` (>= 0; a float stands for the decimal it prints as, as
    ``load.exact`` reads it): the nearest one when it is ``x`` exactly, otherwise stepped
    toward zero. (Few distinct values: probabilities, shares, rates; hence the cache.)"""
    value = exact(x) if isinstance(x, float) else x
    try:
        near = float(value)
    except OverflowError:  # a fraction past the largest float
        return _LARGEST
    return near if Fraction(near) == value else math.nextafter(near, 0.0)


# Veltkamp's splitting constant (2^27 + 1) for Dekker's exact product error; a product this
# (or a factor) far from 1 is stepped down untested (its splitting could overflow or underflow).
_SPLIT = 134217729.0
_TESTED = 1e290
_TINY = 1 / _TESTED


def _times(a: float, b: float) -> float:
    """At most a x b (both >= 0): the float product, stepped toward zero when it rounded up
    (its error, found exactly by Dekker's two-product, is negative) or overflowed."""
    if a == 1.0 or b == 0.0:
        return b
    if b == 1.0 or a == 0.0:
        return a
    p = a * b
    if not (_TINY < a < _TESTED and _TINY < b < _TESTED and _TINY < p < _TESTED):
        return math.nextafter(p, 0.0)  # infinity steps back to the largest float
    c = _SPLIT * a
    ah = c - (c - a)
    al = a - ah
    c = _SPLIT * b
    bh = c - (c - b)
    bl = b - bh
    if ((ah * bh - p) + ah * bl + al * bh) + al * bl < 0:
        return math.nextafter(p, 0.0)
    return p


def _plus(a: float, b: float) -> float:
    """At most a + b (both >= 0): the float sum, stepped toward zero when it rounded up (its
    error, found exactly by Knuth's two-sum, is negative) or overflowed."""
    s = a + b
    if s == math.inf:
        return _LARGEST
    back = s - a
    if (a - (s - back)) + (b - back) < 0:
        return math.nextafter(s, 0.0)
    return s


__all__ = ["Failing", "Walks", "certain_load", "cut_off", "refuses", "sheds"]
