"""Calls between services: attempts, timeouts, retries with backoff, breakers, repeats.

A ``CallSite`` is one call of an endpoint, compiled for the run with everything it needs: the
callee endpoint, the load balancer and circuit breaker of the (caller service, callee service)
edge, the timeout queue for its length, its retry and backoff policy. Each time a job reaches
that step, the site starts a ``CallRun``; the run makes attempts until one succeeds or the
retries are spent:

1. the edge's circuit breaker, if any, is asked first; an open circuit fails the call at once
   (``circuit open``; not retried: the breaker would refuse the retry too);
2. an instance is picked from the caller's discovery view with the edge's balancer (no view:
   ``no instance``); each attempt is load-balanced anew;
3. the request crosses the network to it (and may be dropped), and the attempt's timeout starts;
4. the first of response and timeout settles the attempt and is reported to the breaker; a late
   response is ignored (the callee did the work for nothing, as it would).

A failed attempt is retried after the backoff delay while attempts remain and the caller is
still alive; the call then fails with the attempt's cause, or ``retries exhausted`` when it
had retries. ``repeat: n`` makes the call n times in a row, each with its own retries. An
optional call's failure is reported to the job as a success (degraded); an asynchronous call
has no job waiting for it.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any

import simpy
from faultmesh.model.system import Backoff, Call
from faultmesh.simulations.outcomes import (
    CIRCUIT_OPEN,
    NO_INSTANCE,
    RETRIES_EXHAUSTED,
    TIMED_OUT,
)
from simpy.events import Timeout

if TYPE_CHECKING:
    from faultmesh.simulations.balancers import Balancer
    from faultmesh.simulations.breakers import CircuitBreaker
    from faultmesh.simulations.engine.instances import Instance, ServiceRuntime
    from faultmesh.simulations.engine.jobs import EndpointRuntime, Job
    from faultmesh.simulations.engine.network import Network
    from faultmesh.simulations.engine.timeouts import Deadlines


def backoff_delay(policy: Backoff, retry: int, rng: random.Random) -> float:
    """Seconds to wait before retry number ``retry`` (1-based) under ``policy``."""
    if policy.strategy == "none":
        return 0.0
    delay = policy.max_delay(retry)
    if policy.jitter == "full":
        return rng.uniform(0.0, delay)
    if policy.jitter == "equal":
        return delay / 2 + rng.uniform(0.0, delay / 2)
    return delay


class EdgeStats:
    """Counters of the calls made along one (caller service, callee service) edge."""

    __slots__ = ("attempts", "calls", "causes", "degraded", "failed")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls = 0
        self.attempts = 0
        self.failed = 0
        self.degraded = 0
        self.causes: dict[str, int] = {}

    def summary(self) -> dict[str, Any]:
        return {"calls": self.calls, "attempts": self.attempts, "failed": self.failed,
                "degraded": self.degraded, "causes": dict(sorted(self.causes.items()))}


class CallRun:
    """One call in progress: its current attempt (``token``) and how many it has made."""

    __slots__ = ("attempt", "awaiting", "caller", "generation", "key", "lost", "parent",
                 "repeats", "sent_at", "site", "token")

    def __init__(self, site: CallSite, caller: Instance, parent: Job | None, key: int) -> None:
        self.site = site
        self.caller = caller
        self.generation = caller.generation  # the caller's life this call belongs to
        self.parent = parent
        self.key = key
        self.attempt = 0
        self.token = 0  # the latest attempt's token
        self.awaiting = 0  # the token of the attempt waiting for its response (0: none)
        self.sent_at = 0.0
        self.lost: str | None = None  # why the current attempt's request or response vanished
        self.repeats = site.repeat

    def respond(self, token: int, ok: bool, cause: str | None, root: str | None) -> None:
        if self.awaiting == token:
            self.awaiting = 0
            self.site.settle(self, ok, cause, root)

    def expire(self, token: int) -> None:
        self.awaiting = 0
        self.site.settle(self, False, TIMED_OUT, self.lost or TIMED_OUT)

    def lose(self, token: int, cause: str) -> None:
        if token == self.token:
            self.lost = cause

    def retry(self, _event: object) -> None:
        self.site.send(self)


class CallSite:
    """One call of one endpoint, with its policies resolved and its edge's shared parts."""

    __slots__ = ("asynchronous", "attempts", "backoff", "balancer", "breaker",
                 "callee", "callee_service", "deadlines", "edge", "endpoint", "env", "network",
                 "optional", "probability", "repeat", "rng", "sometimes")

    def __init__(self, call: Call, *, env: simpy.Environment, network: Network,
                 endpoint: EndpointRuntime, callee_service: ServiceRuntime,
                 deadlines: Deadlines, balancer: Balancer, breaker: CircuitBreaker | None,
                 edge: EdgeStats, rng: random.Random) -> None:
        self.env = env
        self.network = network
        self.endpoint = endpoint
        self.callee = endpoint.service
        self.callee_service = callee_service
        self.deadlines = deadlines
        self.balancer = balancer
        self.breaker = breaker
        self.edge = edge
        self.attempts = call.attempts
        self.backoff = call.backoff
        self.optional = call.optional
        self.asynchronous = call.asynchronous
        self.probability = call.probability
        self.sometimes = call.probability < 1.0
        self.rng = rng  # draws the probability and the backoff jitter
        self.repeat = call.repeat

    def __repr__(self) -> str:
        return f"<CallSite -> {self.endpoint.target}>"

    def chosen(self) -> bool:
        """Whether this call happens this time (calls with a probability below 1)."""
        return self.rng.random() < self.probability

    def call(self, caller: Instance, parent: Job | None, key: int) -> None:
        """Start the call from ``caller`` on behalf of ``parent`` (None: asynchronous)."""
        self.send(CallRun(self, caller, parent, key))

    def send(self, run: CallRun) -> None:
        """Make the next attempt of ``run``."""
        now = self.env.now
        breaker = self.breaker
        if breaker is not None and not breaker.allow(now):
            self.complete(run, False, CIRCUIT_OPEN, CIRCUIT_OPEN)
            return
        run.attempt += 1
        self.edge.attempts += 1
        if run.attempt > 1:
            self.callee_service.retries += 1
        view = run.caller.view[self.callee]
        n = len(view)
        if n == 0:
            if breaker is not None:
                breaker.record(now, False, 0.0)
            self.failed(run, NO_INSTANCE, NO_INSTANCE)
            return
        target = view[0] if n == 1 else self.balancer.choose(view, run.key)
        token = run.token = run.awaiting = run.token + 1
        run.sent_at = now
        run.lost = None
        self.deadlines.add(run, token)
        network = self.network
        if network.active:
            delay = network.delay(run.caller, target)
            if delay:
                if delay == math.inf:
                    run.lost = network.drop_cause(run.caller, target)
                    return
                endpoint, key, caller = self.endpoint, run.key, run.caller
                Timeout(self.env, delay).callbacks.append(
                    lambda _event: target.receive(endpoint, run, token, key, caller))
                return
        target.receive(self.endpoint, run, token, run.key, run.caller)

    def settle(self, run: CallRun, ok: bool, cause: str | None, root: str | None) -> None:
        """The current attempt of ``run`` got its response, or timed out."""
        breaker = self.breaker
        if breaker is not None:
            now = self.env.now
            breaker.record(now, ok, now - run.sent_at)
        if not ok:
            self.failed(run, cause, root)  # type: ignore[arg-type]
        elif run.repeats > 1:
            run.repeats -= 1
            run.attempt = 0
            self.send(run)
        else:
            self.edge.calls += 1
            if run.parent is not None:
                run.parent.call_done(True, None)

    def failed(self, run: CallRun, cause: str, root: str) -> None:
        """An attempt failed: retry after the backoff, or fail the call."""
        if run.attempt < self.attempts and run.caller.generation == run.generation:
            delay = backoff_delay(self.backoff, run.attempt, self.rng)
            if delay > 0:
                Timeout(self.env, delay).callbacks.append(run.retry)
            else:
                self.send(run)
            return
        self.complete(run, False, RETRIES_EXHAUSTED if self.attempts > 1 else cause, root)

    def complete(self, run: CallRun, ok: bool, cause: str | None, root: str | None) -> None:
        edge = self.edge
        edge.calls += 1
        if not ok:
            edge.failed += 1
            edge.causes[cause] = edge.causes.get(cause, 0) + 1  # type: ignore[index]
        parent = run.parent
        if parent is None:
            return
        if not ok and self.optional:
            edge.degraded += 1
            parent.call_done(True, None)
            return
        parent.call_done(ok, root)
