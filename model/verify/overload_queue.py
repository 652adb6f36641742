"""Per-service pieces of ``overload_recovery``: shedding of orphaned work and the queueing
fixed point.

``sheds`` says whether a service drops the work of callers that already gave up before it
costs a worker (then the work it executes in a storm is work a caller still waits for, which
cannot sustain a storm by itself); ``orphan_free`` whether those callers themselves still
have someone waiting, all the way up to the entry. ``timeout_share`` is the chance that an
attempt's reply takes longer than ``x`` at an instance of an M/M/c (Erlang C) queue, the
per-instance model ``fixed_points`` iterates: the attempts a service receives grow with the
share of them that time out, and that share grows with the load. Two fixed points far apart
(one reached from the nominal state, one from the storm) are a storm that sustains itself by
queueing delay alone even though its fluid load is below capacity.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from faultmesh.model.distributions import Exponential
from faultmesh.model.system import Call, Service, System
from faultmesh.model.verify.blocking import erlang_b, second_moment
from faultmesh.model.verify.overload_fluid import INF, Flow, servers

FIXED_POINT_ROUNDS = 300
# The two fixed points differ materially when the share of attempts timing out at the storm
# one exceeds the nominal one's by this much.
BISTABLE_GAP = 0.05
# A storm whose own stationary queue times out at least this share of the attempts drains only
# by a fluctuation, after a time that grows without bound as its load nears capacity.
STORM_SHARE = 0.5


def network_round_trip(system: System) -> float:
    """The longest mean network delay there and back (what a reply adds to a wait)."""
    c = system.communication
    return 2 * max(c.same_zone_latency.mean, c.cross_zone_latency.mean)


def mix(system: System, name: str, rates: dict[str, float]) -> tuple[float, float, bool]:
    """(mean service time, squared coefficient of variation, all exponential?) of a service's
    requests, weighted by ``rates`` (endpoint -> requests/s; equal weights if all zero)."""
    service = system.services[name]
    items = [(f"{name}.{e}", ep.service_time) for e, ep in service.endpoints.items()]
    weights = [rates.get(target, 0.0) for target, _ in items]
    if not any(weights):
        weights = [1.0] * len(items)
    total = sum(weights)
    mean = sum(w * d.mean for w, (_, d) in zip(weights, items, strict=True)) / total
    second = sum(w * second_moment(d) for w, (_, d) in zip(weights, items, strict=True)) / total
    scv = second / (mean * mean) - 1 if mean > 0 else 0.0
    exponential = all(isinstance(d, Exponential) for w, (_, d) in
                      zip(weights, items, strict=True) if w) and \
        len({d.mean for w, (_, d) in zip(weights, items, strict=True) if w}) == 1
    return mean, max(0.0, scv), exponential


def sheds(system: System, service: Service, timeout: float | None,
          rates: dict[str, float]) -> str | None:
    """Why the service drops orphaned work before serving it (None: it serves it).

    ``timeout`` is the shortest per-try timeout of the calls into it: work that waited less
    than ``timeout - service time - round trip`` still has a caller waiting for its reply.
    Only a service whose loaded endpoints make no calls is credited: one that waits on calls
    of its own can start live work too late for its calls to finish in the time its caller
    has left (with deadline propagation it starts work just before it expires and hands its
    calls the few milliseconds that remain), so its executed work can be orphaned all the same.
    Deadline propagation alone is not credited either: a FIFO queue fed faster than it serves
    holds live work until its deadline and serves it just before it expires, too late for the
    reply to count, so what it drops bounds nothing.
    """
    if timeout is None:
        return None
    loaded = [ep for e, ep in service.endpoints.items() if rates.get(f"{service.name}.{e}")]
    if any(ep.steps for ep in loaded):
        return None
    longest = max((ep.service_time.mean for ep in loaded), default=0.0)
    room = timeout - longest - network_round_trip(system)
    discipline = service.queue_discipline
    if discipline.timeout is not None and discipline.timeout < room:
        return (f"sheds work queued longer than its queue_timeout {discipline.timeout:g}s, "
                f"below the {timeout:g}s per-try timeout")
    if discipline.kind == "adaptive_lifo" and discipline.target < room:
        return (f"adaptive LIFO sheds work queued longer than {discipline.target:g}s in a "
                f"standing queue")
    mean, _, _ = mix(system, service.name, rates)
    room_in_queue = INF if service.queue is None else service.queue
    if service.concurrency is not None:
        room_in_queue = min(room_in_queue, max(0, service.concurrency - service.workers))
    if room_in_queue < INF and room_in_queue * mean / servers(service) < room:
        return (f"its bounded queue ({room_in_queue:g} requests) is served within the "
                f"{timeout:g}s per-try timeout")
    if service.rate_limit is not None and service.rate_limit.rate * longest < servers(service):
        return "its rate limit admits less than one instance's capacity"
    limited = [ep for ep in loaded if ep.rate_limit is not None]
    if loaded and len(limited) == len(loaded) and sum(
            ep.rate_limit.rate * ep.service_time.mean for ep in limited
    ) < servers(service):
        return "its endpoints' rate limits admit less than one instance's capacity"
    return None


def call_time(call: Call) -> float:
    """The longest a caller waits on one call: every attempt to its timeout, with the longest
    backoffs (hedged attempts overlap: the last starts ``(max_attempts - 1) x delay`` in),
    cut at the call's overall deadline."""
    if call.hedge is not None:
        worst = (call.hedge.max_attempts - 1) * call.hedge.delay + call.timeout
    else:
        worst = call.attempts * call.timeout + sum(call.backoff.max_delay(i)
                                                   for i in range(1, call.attempts))
    return worst if call.deadline is None else min(worst, call.deadline)


def orphan_free(system: System, flows: list[Flow], endpoint: str,
                seen: frozenset[str] = frozenset()) -> bool:
    """Does every request that calls ``endpoint`` have a caller still waiting for it?

    True for a workload entry; otherwise every caller must be orphan-free itself and finish
    its calls within the per-try timeout of each call into it (or propagate deadlines, which
    cuts its calls at the time its caller has left). A caller that outlives its caller keeps
    calling for nobody, and the callee's shedding, which only sees its own caller waiting,
    cannot tell."""
    for f in flows:
        if f.site.callee != endpoint or f.first <= 0:
            continue
        caller = f.site.caller
        if caller in seen:
            return False  # a cycle: no caller first in line to vouch for it
        if not orphan_free(system, flows, caller, seen | {endpoint}):
            return False
        service = system.services[caller.partition(".")[0]]
        if service.propagate_deadline:
            continue
        ep = system.endpoint(caller)
        busy = ep.service_time.mean + sum(call_time(c) for c in ep.calls())
        for g in flows:
            if g.site.callee == caller and g.first > 0 and busy > g.site.call.timeout:
                return False
    return True


def erlang_c(c: int, a: float) -> float:
    """The chance an arrival waits at M/M/c with offered load ``a`` (1 when saturated)."""
    if a >= c:
        return 1.0
    b = erlang_b(c, a)
    return b / (1 - (a / c) * (1 - b))


def timeout_share(service: Service, rate: float, mean: float, scv: float, exponential: bool,
                  x: float) -> float:
    """P(wait + service > x) for one instance of ``service`` at ``rate`` requests/s in total."""
    if mean <= 0:
        return 0.0
    c = servers(service)
    a = rate * mean / service.replicas
    if a >= c:
        return 1.0
    waits = erlang_c(c, a)
    theta = (c - a) / mean
    if exponential:
        mu = 1 / mean
        if abs(mu - theta) < 1e-12 * mu:
            tail = math.exp(-mu * x) * (1 + mu * x)
        else:
            tail = (mu * math.exp(-theta * x) - theta * math.exp(-mu * x)) / (mu - theta)
        return min(1.0, (1 - waits) * math.exp(-x / mean) + waits * tail)
    if x <= mean:
        return 1.0
    # More variable service than exponential lengthens the wait's tail ((1 + SCV) / 2).
    return min(1.0, waits * math.exp(-theta * (x - mean) * 2 / (1 + scv)))


def fixed_points(load_at: Callable[[Callable[[float], float]], float],
                 share: Callable[[float, float], float], storm: float, nominal: float,
                 shortest: float) -> tuple[float, float]:
    """(low, high) loads of the two fixed points of ``L = load_at(x -> share(L, x))``.

    ``load_at(g)`` is the load when an attempt with per-try timeout ``x`` times out with
    chance ``g(x)``; iterated from the nominal load it rises to the least fixed point, from
    the storm load it falls to the greatest (the map is monotone)."""
    def step(load: float) -> float:
        return load_at(lambda x: share(load, x))

    low, high = nominal, storm
    for _ in range(FIXED_POINT_ROUNDS):
        low, high = step(low), step(high)
    return low, high


__all__ = ["BISTABLE_GAP", "STORM_SHARE", "call_time", "erlang_c", "fixed_points", "mix",
           "network_round_trip", "orphan_free", "sheds", "timeout_share"]
