"""A brute-force oracle for ``capacity``, sharing no code with ``model.verify``.

Offered load by enumerating every call path from each entry (exact fractions, each call made
once: ``probability x repeat``, no retries); every failure set of at most K units; surviving
instances counted directly; each survivor's share from the balancer (1/m, or the arcs it owns
on the engine's consistent-hash ring, recomputed here from the ring's definition); utilization
compared exactly; and, for services with limits, the rejected share solved from the
birth-death chain's balance equations as a linear system (numpy), with rejected attempts
retried to a fixed point. The oracle decides only what has an exact answer: limits with
exponential service times of one mean (or no waiting room), and no concurrency limit on a
service that waits on calls; ``exact_limits`` says whether a System is such.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from fractions import Fraction

import numpy as np
from failure_units import oracle_units

from faultmesh.model.distributions import Exponential
from faultmesh.model.system import Call, ParallelCalls, System


def dec(x: float) -> Fraction:
    """Spec numbers as the decimals they were written as."""
    return Fraction(str(x))


def oracle_calls(system: System, target: str) -> list[Call]:
    service, _, endpoint = target.partition(".")
    calls: list[Call] = []
    for step in system.services[service].endpoints[endpoint].steps:
        calls.extend(step.calls if isinstance(step, ParallelCalls) else [step])
    return calls


def oracle_endpoint_load(system: System) -> dict[str, Fraction]:
    per_endpoint: dict[str, Fraction] = {}

    def walk(target: str, rate: Fraction, depth: int) -> None:
        assert depth < 50, "call cycle: the path oracle needs an acyclic system"
        per_endpoint[target] = per_endpoint.get(target, Fraction(0)) + rate
        for call in oracle_calls(system, target):
            walk(f"{call.service}.{call.endpoint}", rate * dec(call.probability) * call.repeat,
                 depth + 1)

    for w in system.workload:
        walk(f"{w.service}.{w.endpoint}", dec(w.rate), 0)
    return per_endpoint


def oracle_demand(system: System) -> tuple[dict[str, Fraction], dict[str, Fraction]]:
    """(requests/s, busy workers) per service, by walking every call path (acyclic only)."""
    load: dict[str, Fraction] = {}
    demand: dict[str, Fraction] = {}
    for target, rate in oracle_endpoint_load(system).items():
        service, _, endpoint = target.partition(".")
        mean = dec(system.services[service].endpoints[endpoint].service_time.mean)
        load[service] = load.get(service, Fraction(0)) + rate
        demand[service] = demand.get(service, Fraction(0)) + rate * mean
    return load, demand


def ring_shares(names: list[str]) -> dict[str, Fraction]:
    """Arc lengths on the engine's ring: 64 BLAKE2b-64 points per name, a key going to the
    first point at or after it, wrapping round."""
    points = []
    for name in names:
        for r in range(64):
            digest = hashlib.blake2b(f"{name}#{r}".encode(), digest_size=8).digest()
            points.append((int.from_bytes(digest, "big"), name))
    points.sort()
    owned = dict.fromkeys(names, 0)
    for k, (point, name) in enumerate(points):
        before = points[k - 1][0]  # k = 0: the last point, one turn back
        owned[name] += (point - before) % (1 << 64)
    return {n: Fraction(v, 1 << 64) for n, v in owned.items()}


def survivors(system: System, name: str, failed: set[str]) -> list[str]:
    service = system.services[name]
    return [f"{name}-{i}" for i, z in enumerate(service.zones)
            if f"instance:{name}-{i}" not in failed and f"zone:{z}" not in failed]


def busiest_share(system: System, name: str, alive: list[str]) -> Fraction:
    if system.services[name].load_balancer.kind == "consistent_hash":
        return max(ring_shares(alive).values())
    return Fraction(1, len(alive))


def chain_loss(servers: int, room: int, rate: float, mean: float) -> float:
    """P(full) of the M/M/s/L chain, from its generator's balance equations (numpy)."""
    n = room + 1
    q = np.zeros((n, n))
    for k in range(room):
        q[k, k + 1] = rate
        q[k + 1, k] = min(k + 1, servers) / mean
    np.fill_diagonal(q, -q.sum(axis=1))
    a = np.vstack([q.T, np.ones(n)])
    b = np.zeros(n + 1)
    b[-1] = 1.0
    pi = np.linalg.lstsq(a, b, rcond=None)[0]
    return float(pi[-1])


def exact_limits(system: System) -> bool:
    """Does every service with limits have an exact loss (see the module docstring)?"""
    for service in system.services.values():
        if service.queue is None and service.concurrency is None:
            continue
        if service.concurrency is not None and any(
                not c.asynchronous and c.probability > 0
                for e in service.endpoints.values() for c in e.calls()):
            return False
        means = {e.service_time.mean for e in service.endpoints.values()}
        exponential = all(isinstance(e.service_time, Exponential)
                          for e in service.endpoints.values())
        servers = min(service.workers, service.concurrency or service.workers)
        room = min(service.workers + (math.inf if service.queue is None else service.queue),
                   service.concurrency or math.inf)
        if room != servers and not (exponential and len(means) == 1):
            return False
    return True


def oracle_rejected(system: System, name: str, rate: float) -> float:
    """The busiest instance's rejected share at ``rate`` (its own share), retries included."""
    service = system.services[name]
    if service.queue is None and service.concurrency is None:
        return 0.0
    servers = min(service.workers, service.concurrency or service.workers)
    room = min(service.workers + (10**6 if service.queue is None else service.queue),
               service.concurrency or 10**6)
    if room >= 10**6:
        return 0.0
    mean = next(iter(service.endpoints.values())).service_time.mean
    attempts = max([c.attempts for s in system.services.values() for e in s.endpoints.values()
                    for c in e.calls() if c.service == name and c.probability > 0] or [1])
    p = chain_loss(servers, room, rate, mean)
    for _ in range(500):
        nxt = chain_loss(servers, room, rate * sum(p ** k for k in range(attempts)), mean)
        if abs(nxt - p) < 1e-13:
            break
        p = nxt
    return p


def oracle_broken(system: System, failed: set[str], limit: float, rejected: float,
                  load: dict[str, Fraction], demand: dict[str, Fraction]) -> set[str]:
    """Services whose busiest survivor is overloaded or rejects too much after ``failed``."""
    out = set()
    for name, service in system.services.items():
        if load.get(name, 0) <= 0:
            continue
        alive = survivors(system, name, failed)
        if not alive:
            out.add(name)
            continue
        share = busiest_share(system, name, alive)
        overloaded = demand[name] * share / service.workers >= dec(limit)
        if overloaded or oracle_rejected(system, name, float(load[name] * share)) > rejected:
            out.add(name)
    return out


def oracle_minimum(system: System, of: tuple[str, ...], budget: int, limit: float,
                   rejected: float = 0.001) -> int | None:
    load, demand = oracle_demand(system)
    units = oracle_units(system, of)
    for size in range(budget + 1):
        for combo in itertools.combinations(units, size):
            if oracle_broken(system, set(combo), limit, rejected, load, demand):
                return size
    return None
