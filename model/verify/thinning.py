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
simplification lowers the bound: call cycles are walked a bounded number of times (each pass
of ``x = b + M x`` from 0 is a lower bound of the solution), so the result stays a lower
bound.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from fractions import Fraction

from faultmesh.model.system import (
    Call,
    Fallback,
    Group,
    ParallelCalls,
    Service,
    Step,
    System,
    step_calls,
)
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

    def __init__(self, system: System, broken: Iterable[str] = ()) -> None:
        self.system = system
        self.broken = frozenset(broken)
        self.lossy = system.communication.loss > 0
        self.hang = worst_cases(system)  # the charge around a call cycle
        self.healthy: dict[str, Fraction] = {}
        self.fails: dict[str, bool] = {}
        self.busy: set[str] = set()

    def healthy_worst(self, target: str) -> Fraction:
        if target in self.healthy:
            return self.healthy[target]
        if target in self.busy:
            return self.hang[target]  # a call cycle: every attempt charged its timeout
        self.busy.add(target)
        service = target.partition(".")[0]
        endpoint = self.system.endpoint(target)
        total = service_bound(endpoint.service_time)
        for step in endpoint.steps:
            costs = [self.call_healthy(service, c) for c in step_calls(step)]
            # In parallel or not, the sum bounds the step (a coarse bound errs long, which
            # only makes a caller's timeout look likelier to fire: a lower certain load).
            total += sum(costs, Fraction(0))
        self.busy.discard(target)
        self.healthy[target] = total
        return total

    def call_healthy(self, caller: str, call: Call) -> Fraction:
        if not awaited(call):
            return Fraction(0)
        once = self.healthy_worst(call.target) + round_trip(self.system, caller, call.service)
        return min(call_worst(call), call.repeat * once)

    def call_can_fail(self, caller: str, call: Call, *, refusals: bool = True) -> bool:
        """Can this call fail its caller's request (required, awaited, and some way to fail)?
        Without ``refusals`` the callee's own queue and concurrency limits are left out (the
        caller counts them by their share)."""
        if not awaited(call) or not call.required:
            return False
        return self.attempt_can_fail(caller, call, refusals=refusals)

    def attempt_can_fail(self, caller: str, call: Call, *, refusals: bool = True) -> bool:
        """Can an attempt of this call fail (whether or not its caller waits for it)?"""
        callee = self.system.services[call.service]
        if self.lossy or call.service in self.broken or sheds(callee):
            return True
        if refusals and refuses(callee):
            return True
        trip = round_trip(self.system, caller, call.service)
        if decimal(call.timeout) <= self.healthy_worst(call.target) + trip:
            return True
        return self.endpoint_can_fail(call.target)

    def endpoint_can_fail(self, target: str) -> bool:
        if target in self.fails:
            return self.fails[target]
        self.fails[target] = True  # around a cycle: assume it can (the bound only drops)
        service = target.partition(".")[0]
        result = any(self.call_can_fail(service, c)
                     for step in self.system.endpoint(target).steps for c in step_calls(step))
        self.fails[target] = result
        return result


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


def certain_load(system: System, nominal: OfferedLoad, broken: Iterable[str] = (),
                 accepts: dict[str, Fraction] | None = None) -> OfferedLoad:
    """Requests/s sure to reach each endpoint when every call that can fail does (a lower
    bound), with ``broken`` services failing every call into them and each service accepting
    at least the share ``accepts`` gives of its requests (absent: all; ``capacity`` passes
    one minus its upper loss bound)."""
    failing = Failing(system, broken)
    accepts = accepts or {}
    weights: dict[str, dict[str, Fraction]] = {}
    for service_name, service in system.services.items():
        for ep_name, endpoint in service.endpoints.items():
            source = f"{service_name}.{ep_name}"
            out: dict[str, Fraction] = {}
            shares = iter(endpoint_shares(endpoint))
            reach = accepts.get(service_name, Fraction(1))  # the requests it serves
            for step in endpoint.steps:
                members = step_calls(step)
                for call, share in (next(shares) for _ in members):
                    fallback = isinstance(step, Fallback) and call is step.fallback
                    weight = exact(call.probability) * call.repeat * share * reach
                    if weight > 0 and not fallback and not cut_off(failing, service_name, call):
                        out[call.target] = out.get(call.target, Fraction(0)) + weight
                # Later steps are reached only by the requests this one lets through.
                if any(failing.call_can_fail(service_name, c, refusals=False)
                       for c in members):
                    break
                for c in members:
                    if failing.call_can_fail(service_name, c):  # by its callee's limits
                        reach *= accepts.get(c.service, Fraction(1))
            weights[source] = out
    inflow: dict[str, Fraction] = {}
    for w in system.workload:
        inflow[w.entry] = inflow.get(w.entry, Fraction(0)) + exact(w.rate)
    for sessions in system.sessions:
        for entry, rate in sessions.step_rates().items():
            if rate != float("inf"):
                inflow[entry] = inflow.get(entry, Fraction(0)) + exact(rate)
    # Jacobi passes from 0: each is a lower bound; as many as endpoints make a DAG exact.
    load = dict.fromkeys(weights, Fraction(0))
    for _ in range(len(weights)):
        nxt = {name: inflow.get(name, Fraction(0)) for name in weights}
        for source, out in weights.items():
            if load[source]:
                for target, weight in out.items():
                    nxt[target] += load[source] * weight
        if nxt == load:
            break
        load = nxt
    # Everything else (attempts, which services are called) is the nominal load's.
    return replace(nominal, endpoints={k: v for k, v in load.items() if v},
                   unbounded=frozenset())


def _parallel(step: Step) -> bool:
    return isinstance(step, ParallelCalls) or (isinstance(step, Group) and step.parallel)


def simultaneous(system: System) -> frozenset[str]:
    """Services one request can have two calls in flight to at once, so that their arrivals
    come in bursts (burstier than Poisson, whose loss figure is then no upper bound): members
    of a parallel step reaching the same service, an asynchronous call's subtree meeting
    anything the endpoint does after it, hedged attempts, and a retry sent while the
    timed-out attempt it replaces still occupies the callee (a timeout within the callee's
    healthy worst case)."""
    failing = Failing(system)
    reach: dict[str, frozenset[str]] = {}

    def reached(target: str) -> frozenset[str]:
        if target not in reach:
            reach[target] = frozenset()  # around a cycle: what is found without going round
            found: set[str] = set()
            for step in system.endpoint(target).steps:
                for c in step_calls(step):
                    if c.probability > 0:
                        found |= {c.service} | reached(c.target)
            reach[target] = frozenset(found)
        return reach[target]

    out: set[str] = set()
    for service in system.services.values():
        for endpoint in service.endpoints.values():
            steps = [[c for c in step_calls(step) if c.probability > 0]
                     for step in endpoint.steps]
            cones = [[frozenset({c.service}) | reached(c.target) for c in members]
                     for members in steps]
            for i, (step, members) in enumerate(zip(endpoint.steps, steps, strict=True)):
                if _parallel(step):
                    seen: set[str] = set()
                    for cone in cones[i]:
                        out |= seen & cone
                        seen |= cone
                later = frozenset().union(*(c for cs in cones[i + 1:] for c in cs))
                for k, c in enumerate(members):
                    if c.hedge is not None:
                        out.add(c.service)
                    trip = round_trip(system, service.name, c.service)
                    if c.retries > 0 and not c.asynchronous and decimal(
                            c.timeout) <= failing.healthy_worst(c.target) + trip:
                        out.add(c.service)
                    if c.asynchronous:
                        others = frozenset().union(
                            *(cone for j, cone in enumerate(cones[i]) if j != k))
                        out |= cones[i][k] & (later | others)
    return frozenset(out)


__all__ = ["Failing", "certain_load", "cut_off", "refuses", "sheds", "simultaneous"]
