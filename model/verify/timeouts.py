"""``timeouts_nest``: every caller's timeout covers its callee's worst case.

When a caller's timeout expires before its callee could possibly finish, the callee keeps
working (and calling, and retrying) for a caller that has already given up: wasted capacity
exactly when the system is slow. The property asks that along every synchronous chain the
timeouts nest: each call's timeout is at least the worst-case time of the endpoint it calls,
plus the network the attempt crosses.

Worst case of an endpoint (calls made with probability 0 never happen; optional calls are
awaited, so they count; asynchronous calls are not awaited and contribute 0)::

    worst(e)    = bound(service_time(e)) + Σ over e's steps of worst(step)
    worst(step) = worst(call), or the max over a parallel group's members
    worst(call) = repeat × (attempts × timeout + Σ_{r=1..retries} backoff.max_delay(r))

An attempt is charged its full timeout, not the callee's own worst case: the situations this
property is about are exactly those in which a callee hangs (a crashed instance still routed
to, a partition, a lost message, a dependency that is itself waiting out its timeouts), and
then an attempt lasts until the caller's timeout. So "e's timeouts nest" means: even if every
dependency below hangs, e's caller still waits long enough to get e's answer. (Bounding an
attempt by ``min(timeout, worst(callee) + network)`` instead would only describe a healthy
system, where timeouts never fire.)

The network (``network``): the engine starts an attempt's timeout when the request is sent,
and the request and the response are each one message with its own latency draw (same-zone or
cross-zone by the two instances' zones; ``simulations.engine.network``). So a call from ``a``
to ``b`` nests when

    timeout > worst(b) + 2 × hop(a, b),

where ``hop(a, b)`` is the largest ``bound`` of the latency distributions the placements of
``a`` and ``b`` allow (the cross-zone one if some replica of ``a`` and some replica of ``b``
sit in different zones, the same-zone one if some pair shares a zone). A workload item's
requests cross no network (the ingress delivers them at once), so its timeout must cover
``worst(entry)`` alone. The inequality is strict: at equality the response and the timeout
are due at the same instant, and which the engine sees first is decided by floating-point
rounding of the sums (5 + 10 + 5 ms under a 20 ms timeout times out 339 times in 399). The
callee's own calls are already inside ``worst(b)``: each of its
attempts is charged its full timeout, which covers that hop's messages.

Arithmetic is exact, in the decimals the spec was written in (a float ``0.2`` is read as 1/5,
not as the binary number nearest it), so a repair to 3.4 s is checked as 3.4 s.

``bound(d)`` is one rule for service times and network latency alike: a distribution's upper
bound when finite (constant, uniform, empirical) and its 99.9th percentile otherwise
(exponential, log-normal, normal): an unbounded distribution has no worst case, and p99.9 is
the usual engineering stand-in; bounds are rounded up to the microsecond. Each term is bounded
separately (the sum of p99.9s is at least the p99.9 of the sum for these distributions, so the
rule errs on the long side). Time spent queueing for a worker is not included: it is
unbounded without a queue limit and is what ``capacity`` is about; latency and slowdown faults
of a scenario are not included either (a scenario is not the system).

Violated when some call's timeout is not above ``worst(callee) + 2 × hop``, or a workload
item's ``timeout`` is not above ``worst(entry)``. Counterexample: the chain from an entry to the
worst offending call, with ``{"timeout", "callee_worst", "network"}`` (``network`` is the round trip
charged, 0 for a workload item). Around a synchronous call cycle the timeouts cannot all
nest unless no time is spent on the way (each would have to exceed itself plus the service
times round the cycle); then no repair exists (``call_cycles`` reports the cycle).

Repair: the smallest raises of timeouts (in whole milliseconds, so the least whole millisecond
above what a timeout must exceed) that make every timeout nest,
found with z3 Optimize over the timeouts involved: the offending ones and every timeout whose
callee's worst case grows when those are raised (a raised timeout lengthens its caller's worst
case, which may then need its own caller's timeout raised, up the chain). The objective is the
total increase; since worst cases only grow with timeouts, the optimum is the pointwise least
solution, which the tests check independently; beyond 2,000 timeouts involved (a 10,000-service
topology), building the Optimize instance costs more than it is worth and that least solution
is computed directly, bottom-up. (Lowering inner timeouts is the other way to
make budgets nest, but it can make healthy calls time out, so it is not proposed.)
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from types import MappingProxyType

import z3

from faultmesh.model import properties as P
from faultmesh.model.distributions import Distribution
from faultmesh.model.policies import Backoff
from faultmesh.model.system import Call, Fallback, FrozenMap, Group, Step, System, step_calls
from faultmesh.model.units import format_duration, format_durations
from faultmesh.model.verify import checker
from faultmesh.model.verify.deadline import REPAIR_OUT_OF_TIME, Deadline, out_of_time
from faultmesh.model.verify.sites import (
    CallSite,
    call_sites,
    endpoints,
    path_from_entries,
    successors_of,
    topological_order,
)
from faultmesh.model.verify.verdict import Counterexample, Repair, Verdict

QUANTILE = 0.999  # stand-in for the worst case of an unbounded distribution
GRANULARITY = 1000  # repairs raise timeouts to whole milliseconds
MICRO = 10**6  # service-time bounds are rounded up to the microsecond
OPTIMIZE_LIMIT = 2000  # beyond this many timeouts involved, the least solution is computed
# No repair raises a timeout beyond this (about 32 years). Raises cascade up a chain (a raised
# timeout lengthens its caller's worst case), and down a deep fan-out they grow exponentially:
# past this they are no repair anyone would make, and exact arithmetic on their thousands of
# digits would make the repair quadratic in the depth.
LONGEST = Fraction(10**9)


# Cached: a 10,000-service spec asks for the same few durations tens of thousands of times.
@lru_cache(maxsize=4096)
def decimal(x: float) -> Fraction:
    """A float as the decimal it was written as (``0.2`` is 1/5, not the binary nearest it):
    spec durations are decimals, and repairs should not read 3.401 s for 3.4 s."""
    return Fraction(repr(x))


def bound(dist: Distribution) -> float:
    """The distribution's upper bound if finite, else its 99.9th percentile."""
    upper = dist.upper
    return upper if math.isfinite(upper) else dist.quantile(QUANTILE)


@lru_cache(maxsize=4096)
def service_bound(dist: Distribution) -> Fraction:
    """``bound(dist)`` exactly, rounded up to the microsecond (a p99.9 has 17 digits that
    carry no information and would make the repair's integers needlessly huge)."""
    return Fraction(math.ceil(decimal(bound(dist)) * MICRO), MICRO)


def round_trip(system: System, caller: str, callee: str) -> Fraction:
    """The network an attempt from service ``caller`` to service ``callee`` crosses: the
    request and the response, each at the largest latency bound the two placements allow
    (same-zone if some pair of their replicas shares a zone, cross-zone if some pair does not).
    """
    net = system.communication
    return _round_trip(system.services[caller].zones, system.services[callee].zones,
                       net.same_zone_latency, net.cross_zone_latency)


# Placements repeat (most services of a large system share a few zone lists), and the
# certain-load and timeout walks ask once per call: hundreds of thousands of times.
@lru_cache(maxsize=4096)
def _round_trip(caller_zones: tuple[str, ...], callee_zones: tuple[str, ...],
                same_zone: Distribution, cross_zone: Distribution) -> Fraction:
    here, there = set(caller_zones), set(callee_zones)
    hop = Fraction(0)
    if here & there:
        hop = max(hop, service_bound(same_zone))
    if any(a != b for a in here for b in there):
        hop = max(hop, service_bound(cross_zone))
    return 2 * hop


def site_network(system: System, site: CallSite) -> Fraction:
    return round_trip(system, site.caller_service, site.call.service)


def awaited(call: Call) -> bool:
    """Does the caller wait for this call? (synchronous and made with probability > 0)"""
    return not call.asynchronous and call.probability > 0


def call_worst(call: Call) -> Fraction:
    """How long the caller can wait on this call: every attempt times out, full backoff."""
    if not awaited(call):
        return Fraction(0)
    return _attempts_worst(call.timeout, call.retries, call.repeat, call.backoff)


# Calls repeat a few timeout and retry settings (a template's) hundreds of thousands of times.
@lru_cache(maxsize=4096)
def _attempts_worst(timeout: float, retries: int, repeat: int, backoff: Backoff) -> Fraction:
    waits = sum((decimal(backoff.max_delay(r)) for r in range(1, retries + 1)), Fraction(0))
    return repeat * ((retries + 1) * decimal(timeout) + waits)


def worst_cases(system: System) -> Mapping[str, Fraction]:
    """worst(e) for every endpoint, exactly (in the decimals the spec was written in).

    Found once per services map (it depends on nothing else): staleness asks for one call's
    callee at a time, and the checks of one ``verify`` ask again and again."""
    key = id(system.services)
    hit = _WORST.get(key)
    if hit is not None and hit[0]() is system.services:
        return hit[1]
    if len(_WORST) > 8:
        _WORST.clear()
    found = MappingProxyType(_worst_cases(system))
    _WORST[key] = (weakref.ref(system.services), found)
    return found


# The worst cases of the last few services maps (held weakly, told apart by reference).
_WORST: dict[int, tuple[weakref.ref[FrozenMap], Mapping[str, Fraction]]] = {}


def _worst_cases(system: System) -> dict[str, Fraction]:
    worst: dict[str, Fraction] = {}
    for name in endpoints(system):
        endpoint = system.endpoint(name)
        total = service_bound(endpoint.service_time)
        for step in endpoint.steps:
            total += combine(step, [call_worst(c) for c in step_calls(step)])
        worst[name] = total
    return worst


def in_order(step: Step) -> bool:
    """Are the step's calls waited for one after another (their worst cases add up)?

    A fallback is made after its primary failed, a group's ``calls`` run in order; parallel
    members overlap and a ``one_of`` makes one branch, so the worst member bounds those.
    """
    return isinstance(step, Fallback) or (isinstance(step, Group) and not step.parallel)


def combine(step: Step, costs: list[Fraction]) -> Fraction:
    """The worst case of a step from its members' (``step_calls`` order)."""
    if in_order(step):
        return sum(costs, Fraction(0))
    return max(costs, default=Fraction(0))


@dataclass(frozen=True)
class Offence:
    """A timeout below the worst case of what it waits for."""

    key: str  # spec key path of the timeout
    caller: str  # ``service.endpoint``, or ``workload`` for a workload item
    callee: str
    timeout: Fraction
    callee_worst: Fraction
    site: CallSite | None  # None for a workload item
    network: Fraction = Fraction(0)  # the round trip the timeout must also cover

    @property
    def need(self) -> Fraction:
        return self.callee_worst + self.network


def offences(system: System, worst: Mapping[str, Fraction]) -> list[Offence]:
    """Every timeout below the worst case of what it waits for, in spec order."""
    found = []
    for site in call_sites(system):
        call = site.call
        if not awaited(call):
            continue
        network = site_network(system, site)
        if decimal(call.timeout) <= worst[call.target] + network:
            found.append(Offence(site.key("timeout"), site.caller, call.target,
                                 decimal(call.timeout), worst[call.target], site, network))
    for i, w in enumerate(system.workload):
        if w.timeout is not None and decimal(w.timeout) <= worst[w.entry]:
            found.append(Offence(f"workload[{i}].timeout", w.source, w.entry,
                                 decimal(w.timeout), worst[w.entry], None))
    return found


def repair_timeouts(system: System, found: list[Offence],
                    deadline: Deadline) -> dict[str, float] | None:
    """The smallest whole-millisecond timeout raises that make all timeouts nest (z3 Optimize).

    The instance is pure integer arithmetic: every quantity is scaled by one common
    denominator ``scale`` (the spec's decimals make it a power of ten), so the solver works in
    linear integer arithmetic, where its optimisation is robust (mixing integer timeouts with
    real-valued worst cases made it stall now and then). Returns key path -> new timeout
    (seconds), or None if the solver ran out of time.
    """
    sites = [s for s in call_sites(system) if awaited(s.call)]
    callers: dict[str, set[str]] = {}
    for s in sites:
        callers.setdefault(s.callee, set()).add(s.caller)
    # Endpoints whose worst case can grow: callers of offending calls and all their ancestors.
    grows: set[str] = set()
    frontier = [o.caller for o in found if o.site is not None]
    while frontier:
        node = frontier.pop()
        if node not in grows:
            grows.add(node)
            frontier.extend(callers.get(node, ()))
    offending = {o.key for o in found}
    involved = [s for s in sites if s.callee in grows or s.key("timeout") in offending]
    if len(involved) > OPTIMIZE_LIMIT:
        return least_timeouts(system)
    workload_items = [(i, w) for i, w in enumerate(system.workload) if w.timeout is not None
                      and (w.entry in grows or f"workload[{i}].timeout" in offending)]
    const = worst_cases(system)
    olds = {s.key("timeout"): decimal(s.call.timeout) for s in involved}
    olds.update({f"workload[{i}].timeout": decimal(w.timeout) for i, w in workload_items
                 if w.timeout is not None})
    network = {s: site_network(system, s) for s in involved}
    numbers = [*olds.values(), *const.values(), *(call_worst(s.call) for s in sites),
               *(decimal(s.call.timeout) for s in sites), *network.values(),
               *(service_bound(system.endpoint(e).service_time) for e in grows)]
    scale = GRANULARITY
    for q in numbers:
        scale = math.lcm(scale, q.denominator)
    unit = scale // GRANULARITY

    def scaled(q: Fraction) -> int:
        value = q * scale
        assert value.denominator == 1
        return value.numerator

    opt = z3.Optimize()
    opt.set("timeout", deadline.z3_ms())
    timeout: dict[str, z3.ArithRef] = {}
    for key, old in olds.items():
        # On the millisecond grid a timeout is one integer variable; off it (sub-millisecond
        # digits) it either keeps its value or moves onto the grid above it.
        ms = z3.Int(f"ms[{key}]")
        grid = old * GRANULARITY
        opt.add(ms >= math.ceil(grid))  # never lowered
        if grid.denominator == 1:
            timeout[key] = ms * unit
        else:
            timeout[key] = z3.If(z3.Bool(f"raise[{key}]"), ms * unit, scaled(old))
    worst: dict[str, z3.ArithRef] = {}

    def callee_worst(target: str) -> z3.ArithRef:
        return worst[target] if target in grows else z3.IntVal(scaled(const[target]))

    def site_worst(site: CallSite) -> z3.ArithRef:
        call = site.call
        key = site.key("timeout")
        if key not in timeout:
            return z3.IntVal(scaled(call_worst(call)))
        fixed = call_worst(call) - call.repeat * call.attempts * decimal(call.timeout)
        return call.repeat * call.attempts * timeout[key] + scaled(fixed)

    by_step: dict[tuple[str, int], list[CallSite]] = {}
    for s in sites:
        by_step.setdefault((s.caller, s.step), []).append(s)
    for name in sorted(grows):
        if deadline.expired():
            return None
        endpoint = system.endpoint(name)
        terms: list[z3.ArithRef] = [z3.IntVal(scaled(service_bound(endpoint.service_time)))]
        for index in range(len(endpoint.steps)):
            members = [site_worst(s) for s in by_step.get((name, index), [])]
            if not members:
                continue
            if len(members) == 1 or in_order(endpoint.steps[index]):
                terms.extend(members)
                continue
            # The max of a parallel group: any upper bound will do, since a larger worst case
            # only tightens the constraints of a minimisation; the optimum takes the max.
            group = z3.Int(f"group[{name}#{index}]")
            for m in members:
                opt.add(group >= m)
            terms.append(group)
        w = z3.Int(f"worst[{name}]")
        opt.add(w == z3.Sum(terms))
        worst[name] = w
    for s in involved:
        opt.add(timeout[s.key("timeout")] > callee_worst(s.callee) + scaled(network[s]))
    for i, w_item in workload_items:
        opt.add(timeout[f"workload[{i}].timeout"] > callee_worst(w_item.entry))
    opt.minimize(z3.Sum([*timeout.values()]) if timeout else z3.IntVal(0))
    if opt.check() != z3.sat:
        return None
    model = opt.model()
    changes: dict[str, float] = {}
    for key, old in olds.items():
        new = Fraction(model.eval(timeout[key], model_completion=True).as_long(), scale)
        if new > LONGEST:
            return None
        if new != old:
            changes[key] = float(new)
    return changes


def _above_ms(need: Fraction) -> Fraction:
    """The least whole millisecond strictly above ``need``."""
    return Fraction(math.floor(need * GRANULARITY) + 1, GRANULARITY)


def least_timeouts(system: System) -> dict[str, float] | None:
    """The pointwise least whole-millisecond raises, bottom-up (None around a call cycle, or
    when some timeout would have to exceed ``LONGEST``).

    What the Optimize objective attains, computed directly: callees first, each offending
    timeout is raised to the least whole millisecond above its callee's (final) worst case
    plus the round trip.
    """
    sites = [s for s in call_sites(system) if awaited(s.call)]
    by_caller: dict[str, list[CallSite]] = {}
    for site in sites:
        by_caller.setdefault(site.caller, []).append(site)
    order = topological_order(endpoints(system), by_caller)
    if order is None:
        return None
    timeout = {site: decimal(site.call.timeout) for site in sites}
    worst: dict[str, Fraction] = {}
    changes: dict[str, float] = {}
    for name in reversed(order):  # callees first
        for site in by_caller.get(name, ()):
            need = worst[site.callee] + site_network(system, site)
            if timeout[site] <= need:
                if need >= LONGEST:
                    return None
                timeout[site] = _above_ms(need)
                changes[site.key("timeout")] = float(timeout[site])
        endpoint = system.endpoint(name)
        total = service_bound(endpoint.service_time)
        mine = {(s.step, s.member): s for s in by_caller.get(name, ())}
        for index, step in enumerate(endpoint.steps):
            costs = []
            for j, call in enumerate(step_calls(step)):
                found = mine.get((index, None if isinstance(step, Call) else j))
                if found is None:
                    continue
                fixed = call_worst(call) - call.repeat * call.attempts * decimal(call.timeout)
                costs.append(fixed + call.repeat * call.attempts * timeout[found])
            total += combine(step, costs)
        worst[name] = total
    for i, w in enumerate(system.workload):
        if w.timeout is not None and decimal(w.timeout) <= worst[w.entry]:
            if worst[w.entry] >= LONGEST:
                return None
            changes[f"workload[{i}].timeout"] = float(_above_ms(worst[w.entry]))
    return changes


@checker("timeouts_nest")
def check_timeouts_nest(system: System, prop: P.Property, deadline: Deadline) -> Verdict:
    if deadline.expired():
        return out_of_time(prop, deadline)
    worst = worst_cases(system)
    found = offences(system, worst)
    calls = sum(1 for s in call_sites(system) if awaited(s.call))
    if not found:
        return Verdict(prop.name, prop.kind, "holds",
                       f"every timeout covers its callee's worst case plus the network "
                       f"round trip ({calls} synchronous calls checked; unbounded "
                       f"distributions at p99.9)")
    _, top = max(enumerate(found), key=lambda io: (io[1].need - io[1].timeout, -io[0]))
    timeout_s, worst_s, network_s = float(top.timeout), float(top.callee_worst), float(top.network)
    succ = successors_of(call_sites(system), lambda s: awaited(s.call))
    if top.site is not None:
        prefix = path_from_entries(succ, system.entries, top.caller) or [top.caller]
        chain = (*prefix, top.callee)
        what = f"{top.caller} -> {top.callee}"
    else:
        chain = (top.caller, top.callee)
        what = f"the {top.caller} workload on {top.callee}"
    more = len(found) - 1
    tail = f" (and {more} more timeout{'s' if more > 1 else ''} too short)" if more else ""
    relation = "<" if top.timeout < top.need else "="  # equal is too short: see the docstring
    if top.network:
        shown_timeout, shown_need = format_durations(timeout_s, float(top.need))
        explanation = (f"{what}: timeout {shown_timeout} {relation} {shown_need}, the worst "
                       f"case of {top.callee} ({format_duration(worst_s)}) plus "
                       f"{format_duration(network_s)} of network there and back (latencies at "
                       f"their bound or p99.9), so {top.callee} keeps working for a caller "
                       f"that gave up{tail}")
    else:
        shown_timeout, shown_worst = format_durations(timeout_s, worst_s)
        explanation = (f"{what}: timeout {shown_timeout} {relation} {shown_worst}, the worst "
                       f"case of {top.callee}, which keeps working for a caller that gave up{tail}")
    cex = Counterexample(chain=chain, numbers={"timeout": timeout_s, "callee_worst": worst_s,
                                               "network": network_s})
    repair = None
    if not deadline.expired():
        changes = repair_timeouts(system, found, deadline)
        if changes:
            lead = changes.get(top.key)
            # Seven digits show every whole millisecond (the repair grid) up to hours.
            first = (f"raise the {what} timeout to {format_duration(lead, digits=7)}"
                     if lead is not None else "raise timeouts")
            others = len(changes) - (lead is not None)
            if others:
                first += f" (and {others} more timeout{'s' if others > 1 else ''})"
            repair = Repair(first, dict(changes))
    if repair is None:
        explanation += f"; {no_timeout_repair(deadline)}"
    return Verdict(prop.name, prop.kind, "violated", explanation, cex, repair)


def no_timeout_repair(deadline: Deadline) -> str:
    """Why raising timeouts gave no repair (``repair_timeouts`` / ``least_timeouts``: None)."""
    if deadline.expired():
        return REPAIR_OUT_OF_TIME
    years = float(LONGEST) / (365.25 * 24 * 3600)
    return (f"no repair by raising timeouts: nested, they would pass {float(LONGEST):.0e} s "
            f"(about {years:.0f} years), or a call cycle has no finite worst case")


__all__ = ["QUANTILE", "bound", "check_timeouts_nest", "no_timeout_repair", "round_trip",
           "worst_cases"]
