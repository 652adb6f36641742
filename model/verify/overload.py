"""`overload_recovery {}`: no overloaded state sustains itself at the nominal workload.

A metastable failure (Bronson et al., HotOS 2021; Huang et al., OSDI 2022) is an overload that
outlives its trigger: timeouts cause retries, the callee serves work for callers that already
gave up, and the extra load keeps the waits above the timeouts. The property is decided over
the fluid model (``overload_fluid``: rates, not requests).

**Storm load.** For each service s, ``L_s`` is its load when every attempt along every path
times out: the entry rates at their peak times the attempts each call on the way makes, capped
by deadlines, throttling, retry budgets, ``max_retries`` and each caller's own throughput. In
*any* state of the system a service receives at most that many attempts per second (fewer
attempts time out, fewer retries are sent; a hedged call sends all its hedges whenever its
attempts are slower than the delay, throttled or not), and each costs it at most its service
time.

**Verdict.** ``holds`` iff for every service either

1. its storm demand ``L_s x mean service time`` is below its capacity (replicas x servers), or
2. it sheds orphaned work (``overload_queue.sheds``: a queue timeout or adaptive LIFO target
   below the per-try timeout, a queue short enough to be served within it, a rate limit under
   its capacity; only at a service that makes no calls, and only when every caller above it
   still has someone waiting, ``orphan_free``) and its nominal demand is below its capacity:
   what it executes then is work a caller still waits for, each call ends with at most one
   such attempt, so its executed load is the nominal one. Deadline propagation alone is not
   credited: a FIFO queue fed faster than it serves keeps live work until just before its
   deadline and serves it too late;

and, for services under (1) that receive retries, the storm's own queue does not time out
half of its attempts (``STORM_SHARE``: near capacity a queue drains only by a fluctuation, in a
time that grows without bound) and the queueing fixed point from the storm coincides with the
one from the nominal state (``overload_queue.fixed_points``): a load below capacity whose
*waits* still exceed the timeouts would sustain itself stochastically.

Why ``holds`` means every trigger's backlog drains: whatever a trigger leaves behind (a queue
of any length, every attempt timing out), once it ends each service under (1) receives at most
``L_s`` work per second and serves ``capacity > L_s``: its backlog falls at a rate of at least
``capacity - L_s``, whatever the state. A service under (2) serves only work whose caller
waits, at the nominal rate below its capacity. By induction from the callees up (the sinks
drain first, then their callers' attempts succeed), every backlog reaches zero and the system
is back in its nominal regime. Soundness rests on every approximation over-estimating
``L_s``; the storm assumes attempts end by timing out (a rejected attempt fails at once, but
costs the callee nothing).

**Violated or unknown.** ``L_s`` is an upper bound, so a service it puts over capacity is a
candidate only. ``violated`` is claimed when the storm's *lower* bound certainly saturates a
service on the loop and nothing there drops or reorders queued work
(``overload_doubt.undecided``, ``overload_fluid.storm_floor``); otherwise the verdict is
``unknown``, saying what could not be decided, with the repair that would make it hold.

**Counterexample.** The loop (entry, the calls with their attempt factors, the saturated
service), its figures (``back: 200/s nominal, 800/s when every attempt times out, capacity
400/s``) and the smallest trigger: waits exceed the per-try timeout ``t`` once the backlog is
``B = capacity x (t - S)``; slowing s by ``d`` (capacity ``workers / (S + d)``) builds it in
``T = B / (rate - reduced capacity)``, a surge by factor f in ``T = B / (f x rate -
capacity)``. The trigger ``--replay`` simulates is a ``Slowdown`` of s comfortably past the
smallest (``trigger_faults``), then the surge (``surge_trigger``) and the repaired system under
the slowdown (judged after ``drain_bound``). With the nominal load already above capacity no
trigger is needed. Repairs: ``overload_repair``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from faultmesh.model import properties as P
from faultmesh.model.faults import Slowdown, Surge, Target
from faultmesh.model.system import Service, System
from faultmesh.model.verify import checker
from faultmesh.model.verify.deadline import Deadline, out_of_time
from faultmesh.model.verify.overload_doubt import undecided
from faultmesh.model.verify.overload_fluid import (
    Flow,
    State,
    nominal_state,
    retry_caps,
    servers,
    service_sums,
    storm_floor,
    storm_state,
)
from faultmesh.model.verify.overload_queue import (
    BISTABLE_GAP,
    STORM_SHARE,
    fixed_points,
    mix,
    orphan_free,
    sheds,
    timeout_share,
)
from faultmesh.model.verify.verdict import Counterexample, Verdict
from faultmesh.model.verify.wording import number

ROUND_DURATION = 10.0  # the trigger duration the smallest added service time is given for


@dataclass(frozen=True)
class ServiceOverload:
    """One service's figures in the nominal state and in the storm."""

    name: str
    nominal_rate: float
    nominal_demand: float
    storm_rate: float
    storm_demand: float
    capacity: float  # busy workers it has (replicas x servers)
    mean: float  # mean service time of its nominal mix
    timeout: float | None  # shortest per-try timeout of the calls into it
    shed: str | None
    sustains: str | None  # None | "nominal" | "storm" | "queueing" | "unbounded"
    queueing: tuple[float, float] | None = None  # (low, high) fixed-point loads
    floor_rate: float = 0.0  # the storm's lower bound (``storm_floor``): requests/s
    floor_demand: float = 0.0  # and busy workers

    @property
    def capacity_rate(self) -> float:
        return math.inf if self.mean <= 0 else self.capacity / self.mean

    @property
    def amplification(self) -> float:
        return self.storm_rate / self.nominal_rate if self.nominal_rate else 1.0


@dataclass(frozen=True)
class Analysis:
    nominal: State
    storm: State
    services: dict[str, ServiceOverload]
    floor: State | None = None  # the storm's lower bound (``storm_floor``)

    @property
    def failing(self) -> list[ServiceOverload]:
        return [s for s in self.services.values() if s.sustains is not None]


def analyse(system: System) -> Analysis:
    """Every service's nominal and storm figures and whether an overload sustains itself."""
    nominal = nominal_state(system)
    storm = storm_state(system)
    caps = retry_caps(system, storm.flows)
    nominal_sums = service_sums(system, nominal)
    storm_sums = service_sums(system, storm)
    floor = storm_floor(system)
    floor_sums = service_sums(system, floor)
    results: dict[str, ServiceOverload] = {}
    for name, service in system.services.items():
        n_rate, n_demand = nominal_sums[name]
        s_rate, s_demand = storm_sums[name]
        if not n_rate and not s_rate:
            continue
        into = [f for f in storm.flows if f.site.call.service == name and f.first > 0]
        timeout = min((f.site.call.timeout for f in into), default=None)
        mean, scv, exponential = mix(system, name, nominal.arrivals)
        capacity = float(service.replicas * servers(service))
        shed = sheds(system, service, timeout, storm.arrivals)
        if shed is not None and not all(orphan_free(system, storm.flows, e)
                                        for e in (f"{name}.{x}" for x in service.endpoints)
                                        if storm.arrivals.get(e)):
            shed = None  # it sheds for callers that themselves work for nobody
        if shed is not None and any(f.site.call.hedge is not None for f in into):
            # Every hedge of a call is live until one succeeds: shedding only orphaned work,
            # it still executes up to max_attempts per hedged call, not the nominal load.
            shed = None
        sustains: str | None = None
        queueing = None
        endpoints = {f"{name}.{e}" for e in service.endpoints}
        if endpoints & storm.unbounded:
            sustains = "unbounded"
        elif n_demand >= capacity:
            sustains = "nominal"
        elif shed is None and s_demand >= capacity:
            sustains = "storm"
        elif shed is None and any(f.factor > 1 for f in into):
            base = sum(nominal.arrivals.get(e, 0.0) for e in endpoints) - sum(
                f.first for f in nominal.flows if f.site.call.service == name)
            low, high = fixed_points(_loads(into, caps, base),
                                     _shares(service, mean, scv, exponential),
                                     s_rate, n_rate, timeout or math.inf)
            t = timeout or math.inf
            if timeout_share(service, s_rate, mean, scv, exponential, t) >= STORM_SHARE:
                low, high = n_rate, s_rate  # the storm's own queue keeps it timing out
            queueing = (low, high)
            gap = (timeout_share(service, high, mean, scv, exponential, t)
                   - timeout_share(service, low, mean, scv, exponential, t))
            if gap > BISTABLE_GAP or low * mean >= capacity:
                # Two equilibria, or even the nominal one's waits overload it.
                sustains = "queueing"
        results[name] = ServiceOverload(name, n_rate, n_demand, s_rate, s_demand, capacity,
                                        mean, timeout, shed, sustains, queueing,
                                        *floor_sums[name])
    return Analysis(nominal, storm, results, floor)


def _loads(into: list[Flow], caps: dict[tuple[str, str], float],
           base: float) -> Callable[[Callable[[float], float]], float]:
    """Attempts/s into a service when an attempt with per-try timeout x times out with chance
    ``share(x)``: first attempts, the retries the chain of time-outs sends (capped as in the
    storm) and the hedges sent while no reply has come."""

    def load_at(share: Callable[[float], float]) -> float:
        total = base
        wanted: dict[tuple[str, str], float] = {}
        for f in into:
            total += f.first
            call = f.site.call
            if call.hedge is not None:
                hedges = sum(share(i * call.hedge.delay) for i in range(1, math.ceil(f.factor)))
                total += f.first * min(f.factor - 1, hedges)
                continue
            p = share(call.timeout)
            extra = sum(p ** j for j in range(1, math.ceil(f.factor)))
            key = (f.site.caller_service, call.service)
            wanted[key] = wanted.get(key, 0.0) + f.first * min(f.factor - 1, extra)
        return total + sum(min(w, caps.get(k, math.inf)) for k, w in wanted.items())

    return load_at


def _shares(service: Service, mean: float, scv: float,
            exponential: bool) -> Callable[[float, float], float]:
    def share(load: float, x: float) -> float:
        return timeout_share(service, load, mean, scv, exponential, x)

    return share


# --- the loop and the trigger ------------------------------------------------------------


def loop(analysis: Analysis, service: str) -> list[Flow]:
    """The calls that bring ``service`` most of its storm load, entry first."""
    storm = analysis.storm
    targets = [e for e in storm.arrivals if e.partition(".")[0] == service]
    node = max(targets, key=lambda e: storm.arrivals[e])
    path: list[Flow] = []
    seen = {node}
    while True:
        flows = [f for f in storm.into(node) if f.total > 0]
        if not flows:
            break
        best = max(flows, key=lambda f: f.total)
        if best.site.caller in seen:
            break
        path.append(best)
        seen.add(best.site.caller)
        node = best.site.caller
    return path[::-1]


@dataclass(frozen=True)
class Trigger:
    """The smallest trigger that tips a service into the storm."""

    backlog: float  # requests queued at which waits pass the per-try timeout
    timeout: float
    added: float | None  # smallest added service time for ``duration`` (None: none needed)
    duration: float
    surge: float | None  # the surge factor of the loop's entry that does it in ``duration``
    entry: str | None


def nice_up(x: float) -> float:
    """``x`` rounded up to two significant digits (10.2ms -> 11ms, 43s -> 43s)."""
    if x <= 0:
        return x
    step = 10 ** (math.floor(math.log10(x)) - 1)
    return math.ceil(x / step - 1e-9) * step


def trigger(system: System, s: ServiceOverload, path: list[Flow]) -> Trigger:
    timeout = min([f.site.call.timeout for f in path] or [s.timeout or math.inf])
    entry = path[0].site.caller if path else None
    if s.sustains in ("nominal", "unbounded") or not math.isfinite(timeout):
        return Trigger(0.0, timeout, None, 0.0, None, entry)
    backlog = s.capacity_rate * max(0.0, timeout - s.mean)
    rate = s.nominal_rate
    duration = ROUND_DURATION
    if rate * duration <= 1.25 * backlog:
        duration = nice_up(2.5 * backlog / rate)
    added = max(0.0, s.capacity / (rate - backlog / duration) - s.mean)
    surge = None
    if entry is not None:
        # The entry's share of the service's nominal rate is what a surge of it multiplies.
        alone = replace(system, workload=tuple(w for w in system.workload if w.entry == entry))
        from_entry = service_sums(alone, nominal_state(alone)).get(s.name, (0.0, 0.0))[0]
        if from_entry > 0:
            surge = 1 + (s.capacity_rate + backlog / duration - rate) / from_entry
    return Trigger(backlog, timeout, nice_up(added) if added else 0.0, duration,
                   None if surge is None else nice_up(surge), entry)


def trigger_faults(s: ServiceOverload, t: Trigger, *, at: float = 0.0) -> tuple[Slowdown, ...]:
    """The replayed trigger, comfortably past the smallest: ``s`` slowed so that it serves at
    most half its nominal rate (at least twice the smallest added time), for long enough to
    queue four times the tipping backlog (at least twice the smallest duration)."""
    if t.added is None or s.mean <= 0 or s.nominal_rate <= 0:
        return ()
    utilization = s.nominal_demand / s.capacity
    factor = max((s.mean + 2 * max(t.added, 0.1 * s.mean)) / s.mean, 2 / utilization)
    duration = max(2 * t.duration, nice_up(8 * t.backlog / s.nominal_rate))
    return (Slowdown(at=at, duration=duration, target=Target("service", s.name),
                     factor=nice_up(factor)),)


def drain_bound(system: System, trigger: tuple[Slowdown, ...]) -> float | None:
    """How long after ``trigger`` ends every backlog of a system that ``holds`` has drained,
    at most (None: the system does not hold).

    Each service receives at most its storm load ``r`` (its nominal load when it sheds
    orphaned work) and serves ``capacity > r``: a backlog left by the trigger, at most ``r``
    per second of it (``r - capacity / factor`` for the slowed service), falls at ``capacity
    - r`` at least. Callees drain before their callers' attempts succeed, so the bound is the
    sum over the services."""
    analysis = analyse(system)
    if analysis.failing:
        return None
    slowed = {f.target.name: f for f in trigger if f.target.kind == "service"}
    total = 0.0
    for s in analysis.services.values():
        rate = s.nominal_rate if s.shed is not None else s.storm_rate
        cap = s.capacity_rate
        if not math.isfinite(cap) or rate <= 0:
            continue
        fault = slowed.get(s.name)
        longest = max((f.duration or 0.0) for f in trigger) if trigger else 0.0
        left = (max(0.0, rate - cap / fault.factor) * (fault.duration or 0.0) if fault
                else rate * longest)
        total += left / (cap - rate)
    return total


def surge_trigger(ce: Counterexample) -> tuple[Surge, ...]:
    """The counterexample's other trigger, a surge of the loop's entry (``--replay`` runs it
    beside the slowdown): none when the verdict computed no surge."""
    n = ce.numbers
    if "surge_replay_factor" not in n or not ce.chain:
        return ()
    return (Surge(at=0.0, duration=n["surge_replay_for"], entry=ce.chain[0],
                  factor=n["surge_replay_factor"]),)


# --- the checker -------------------------------------------------------------------------


@checker("overload_recovery")
def check(system: System, prop: P.Property, deadline: Deadline) -> Verdict:
    assert isinstance(prop, P.OverloadRecovery)
    if deadline.expired():
        return out_of_time(prop, deadline)
    analysis = analyse(system)
    failing = analysis.failing
    if not failing:
        return Verdict(prop.name, prop.kind, "holds", _holds_text(analysis))
    ranked = sorted(failing, key=lambda s: (s.sustains != "queueing", s.storm_demand
                                            / s.capacity if s.capacity else math.inf),
                    reverse=True)
    doubts = [(s, loop(analysis, s.name)) for s in ranked]
    floor = analysis.floor or storm_floor(system)
    decided = [(s, path) for s, path in doubts if undecided(system, floor, s, path) is None]
    worst, path = decided[0] if decided else doubts[0]
    t = trigger(system, worst, path)
    entries = tuple(e for e in system.entries
                    if _reaches(analysis, e, worst.name))
    numbers = {"nominal": worst.nominal_rate, "storm": worst.storm_rate,
               "capacity_rate": worst.capacity_rate, "amplification": worst.amplification}
    if t.added is not None:
        numbers.update(timeout=t.timeout, backlog=t.backlog, added=t.added,
                       trigger_for=t.duration)
        if t.surge is not None:
            numbers["surge_factor"] = t.surge
    chain = tuple([path[0].site.caller, *(f.site.callee for f in path)] if path else
                  [max((e for e in analysis.storm.arrivals if e.startswith(worst.name + ".")),
                       key=lambda e: analysis.storm.arrivals[e])])
    text = _violation_text(worst, path, t)
    doubt = None if decided else undecided(system, floor, worst, path)
    if doubt is not None:
        repair = None
        if not deadline.expired():
            from faultmesh.model.verify.overload_repair import repair as find_repair

            repair, _ = find_repair(system, analysis, deadline)
        return Verdict(prop.name, prop.kind, "unknown",
                       f"cannot decide whether an overload of {worst.name} sustains itself: "
                       f"{doubt} ({_figures(worst, path)})", None, repair)
    faults = trigger_faults(worst, t)
    if faults and worst.capacity_rate > worst.nominal_rate:
        # Without a storm, the backlog the replayed trigger leaves drains at the spare
        # capacity within this long: the replay judges the entries well after it.
        f = faults[0]
        left = max(0.0, worst.nominal_rate - worst.capacity_rate / f.factor) * (f.duration or 0.0)
        numbers["drain"] = left / (worst.capacity_rate - worst.nominal_rate)
    if t.surge is not None and t.entry is not None and \
            worst.capacity_rate > worst.nominal_rate:
        # The surge replayed: twice the smallest extra load for twice as long.
        factor = nice_up(1 + 2 * (t.surge - 1))
        numbers.update(surge_replay_factor=factor, surge_replay_for=2 * t.duration,
                       surge_drain=max(0.0, worst.nominal_rate * factor - worst.capacity_rate)
                       * 2 * t.duration / (worst.capacity_rate - worst.nominal_rate))
    counterexample = Counterexample(down=entries, chain=chain, numbers=numbers,
                                    trigger=faults)
    if len(failing) > 1:
        text += f" (and {len(failing) - 1} more service{'s' if len(failing) > 2 else ''})"
    repair = None
    note = ""
    if not deadline.expired():
        from faultmesh.model.verify.overload_repair import repair as find_repair

        repair, note = find_repair(system, analysis, deadline)
    return Verdict(prop.name, prop.kind, "violated", text + (f"; {note}" if note else ""),
                   counterexample, repair)


def _reaches(analysis: Analysis, entry: str, service: str) -> bool:
    seen, stack = {entry}, [entry]
    while stack:
        node = stack.pop()
        if node.partition(".")[0] == service:
            return True
        for f in analysis.storm.flows:
            if f.site.caller == node and f.site.callee not in seen:
                seen.add(f.site.callee)
                stack.append(f.site.callee)
    return False


def _rate(x: float) -> str:
    return "∞/s" if math.isinf(x) else f"{number(x)}/s"


def _path_text(path: list[Flow]) -> str:
    parts = [path[0].site.caller] if path else []
    for f in path:
        parts.append(f.site.callee + (f" (x{number(f.factor)})" if f.factor > 1 else ""))
    return " -> ".join(parts)


def _figures(s: ServiceOverload, path: list[Flow]) -> str:
    return (f"{s.name}: {_rate(s.nominal_rate)} nominal, up to {_rate(s.storm_rate)} when "
            f"every attempt times out ({_path_text(path) or 'its workload'}), capacity "
            f"{_rate(s.capacity_rate)}")


def _violation_text(s: ServiceOverload, path: list[Flow], t: Trigger) -> str:
    name = s.name
    if s.sustains == "unbounded":
        return f"{name} receives an unbounded storm load: a call cycle multiplies its attempts"
    figures = _figures(s, path)
    if s.sustains == "nominal":
        return f"{figures}: overloaded at the nominal workload already; no trigger needed"
    if s.sustains == "queueing":
        assert s.queueing is not None
        why = (f"{figures}: below capacity, but at {_rate(s.queueing[1])} its waits keep "
               f"attempts timing out, a second equilibrium beside the nominal one")
    else:
        why = figures
    sur = (f" (or a {number(t.surge)}x surge of {t.entry})" if t.surge is not None and t.entry
           else "")
    return (f"{why}; smallest trigger: +{_seconds(t.added or 0.0)} per request on {name} for "
            f"{_seconds(t.duration)}{sur}, a backlog of {number(t.backlog)} requests")


def _seconds(x: float) -> str:
    from faultmesh.model.units import format_duration

    return format_duration(x)


def _holds_text(analysis: Analysis) -> str:
    if not analysis.services:
        return "no service receives any load"
    def load(s: ServiceOverload) -> float:
        # What a service carries in the worst case the proof allows: its storm, or, when it
        # sheds orphaned work, its nominal load.
        demand = s.nominal_demand if s.shed is not None else s.storm_demand
        return demand / s.capacity if s.capacity else 0.0

    busiest = max(analysis.services.values(), key=load)
    shed = [s.name for s in analysis.services.values()
            if s.shed is not None and s is not busiest]
    tail = f"; {', '.join(shed[:3])} shed orphaned work too" if shed else ""
    share = load(busiest)
    if busiest.shed is not None:
        return (f"no overload sustains itself: the busiest, {busiest.name}, sheds orphaned "
                f"work and carries {_rate(busiest.nominal_rate)} ({share:.0%} of capacity "
                f"{_rate(busiest.capacity_rate)}) when every caller still waits{tail}")
    return (f"even with every attempt timing out every service stays below capacity: the "
            f"busiest, {busiest.name}, gets {_rate(busiest.storm_rate)} "
            f"({share:.0%} of capacity {_rate(busiest.capacity_rate)}){tail}")


__all__ = ["Analysis", "ServiceOverload", "Trigger", "analyse", "check", "drain_bound", "loop",
           "nice_up", "surge_trigger", "trigger", "trigger_faults"]
