"""Calls between services: attempts, timeouts, retries with backoff, breakers, repeats.

A ``CallSite`` is one call of an endpoint, compiled for the run with everything it needs: the
callee endpoint, the load balancers and circuit breakers it uses, the timeout queue for its
length, its retry and backoff policy. Each time a job reaches that step, the site starts a
``CallRun``; the run makes attempts until one succeeds or the retries are spent:

1. the caller instance's circuit breaker for the call's policy, if any, is asked first; an open
   circuit fails the call at once (``circuit open``; not retried: the breaker would refuse the
   retry too);
2. an instance is picked from the caller's discovery view with the caller's balancer (no view:
   ``no instance``); each attempt is load-balanced anew, among the instances not yet tried
   by this call when it sets ``retry_other_instance`` (Envoy's ``previous_hosts`` predicate),
   and never among the hosts the caller instance's outlier detector has ejected;
3. the request crosses the network to it (and may be dropped), and the attempt's timeout starts;
4. the first of response and timeout settles the attempt and is reported to the breaker; a late
   response is ignored (the callee did the work for nothing, as it would).

A failed attempt is retried after the backoff delay while attempts remain and the caller is
still alive; the call then fails with the attempt's cause, or ``retries exhausted`` when it
had retries. When the callee sets ``max_retries`` (Envoy's circuit breaker of that name), a
caller instance may have at most that many retries outstanding to it at once: a retry holds
its place from the moment it is decided (its backoff included) until its attempt settles, and
a retry past the limit is not made: the call fails with the failed attempt's cause, counted in
the edge's ``retry_overflow``. The first attempt is never limited. ``repeat: n`` makes the
call n times in a row, each with its own retries. An optional call's failure is reported to
the job as a success (degraded); an asynchronous call has no job waiting for it.

Breakers and least-request counts live in the caller's instance, as in the client processes
the engine models (a Resilience4j breaker in each client, an Envoy proxy beside each caller):
``BreakerGroup`` holds the breakers of one policy on one (caller service, callee service) edge,
one per caller instance, shared by the call sites of that edge with an equal policy; a site
picks its caller instance's breaker by the instance's index. A least-request balancer is one
per caller instance too, and compares that instance's own requests still out to each callee
instance (``ActiveRequests``): an attempt counts from when it is sent until it settles.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import TYPE_CHECKING, Any, TypeAlias

import simpy
from simpy.events import Timeout

from faultmesh.model.system import Backoff, BreakerPolicy, Call, RateBreakerPolicy
from faultmesh.simulations.engine.outliers import classify
from faultmesh.simulations.outcomes import (
    CIRCUIT_OPEN,
    NO_INSTANCE,
    RETRIES_EXHAUSTED,
    TIMED_OUT,
)

if TYPE_CHECKING:
    from faultmesh.simulations.balancers import Balancer
    from faultmesh.simulations.breakers import CircuitBreaker
    from faultmesh.simulations.engine.instances import Instance, ServiceRuntime
    from faultmesh.simulations.engine.jobs import EndpointRuntime, Job
    from faultmesh.simulations.engine.network import Network
    from faultmesh.simulations.engine.timeouts import Deadlines
    from faultmesh.simulations.observation.summary import (
        BreakerInstance,
        BreakerSummary,
        CallSummary,
    )
    from faultmesh.simulations.outliers import OutlierDetector

ActiveRequests: TypeAlias = "Counter[Instance]"
"""A caller's requests still out, per callee instance (its least-request balancer's load)."""


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

    __slots__ = ("attempts", "calls", "causes", "degraded", "failed", "retry_overflow")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls = 0
        self.attempts = 0
        self.failed = 0
        self.degraded = 0
        self.retry_overflow = 0  # retries not made: max_retries was reached (Envoy's overflow)
        self.causes: dict[str, int] = {}

    def summary(self) -> CallSummary:
        return {"calls": self.calls, "attempts": self.attempts, "failed": self.failed,
                "degraded": self.degraded, "retry_overflow": self.retry_overflow,
                "causes": dict(sorted(self.causes.items()))}


class OutstandingRetries:
    """Envoy's ``max_retries`` on one edge: the retries each caller instance has outstanding.

    One Envoy beside each caller instance keeps one count per upstream cluster (the callee
    service), shared by every call the caller makes to it; ``outstanding[i]`` is caller
    instance ``i``'s, ``peak[i]`` the most it ever had.
    """

    __slots__ = ("limit", "outstanding", "peak")

    def __init__(self, limit: int, callers: int) -> None:
        self.limit = limit
        self.outstanding = [0] * callers
        self.peak = [0] * callers

    def reserve(self, index: int) -> bool:
        """Take a place for one retry of caller instance ``index``; False: the limit is reached."""
        count = self.outstanding[index]
        if count >= self.limit:
            return False
        self.outstanding[index] = count = count + 1
        if count > self.peak[index]:
            self.peak[index] = count
        return True


class BreakerGroup:
    """The circuit breakers of one policy on one edge: one per caller instance.

    ``breakers[i]`` is caller instance ``i``'s breaker; ``sites`` names the call sites
    (``service.endpoint/step``) that share it. ``label(i)`` tags that breaker in the summary:
    the caller instance's name, with ``/k`` appended when the edge has ``k`` > 1 policies.
    """

    __slots__ = ("breakers", "callers", "number", "policy", "sites")

    def __init__(self, policy: BreakerPolicy, callers: list[str], number: int) -> None:
        from faultmesh.simulations.breakers import CircuitBreaker

        self.policy = policy
        self.callers = callers  # the caller instances' names, by index
        self.number = number  # 1-based, in the order the edge's policies first appear
        self.breakers = tuple(CircuitBreaker(policy) for _ in callers)
        self.sites: list[str] = []

    def label(self, index: int, policies: int) -> str:
        name = self.callers[index]
        return name if policies == 1 else f"{name}/{self.number}"


_SEVERITY = {"closed": 0, "half_open": 1, "open": 2}


def breakers_summary(groups: list[BreakerGroup]) -> BreakerSummary:
    """The ``breakers`` entry of one edge in the run's summary.

    ``transitions`` merges every breaker's moves in time order as ``[t, state, label]``;
    ``state`` is the worst final state (open, then half-open, then closed); ``instances``
    gives each breaker's caller instance, kind, final state and the call sites sharing it.
    """
    count = len(groups)
    moves: list[list[Any]] = []
    instances: dict[str, BreakerInstance] = {}
    kinds: list[str] = []
    for group in groups:
        kind = "rate" if isinstance(group.policy, RateBreakerPolicy) else "consecutive"
        if kind not in kinds:
            kinds.append(kind)
        for index, breaker in enumerate(group.breakers):
            label = group.label(index, count)
            moves.extend([t, state, label] for t, state in breaker.transitions)
            instances[label] = {"instance": group.callers[index], "kind": kind,
                                "state": breaker.state, "sites": list(group.sites)}
    moves.sort(key=lambda move: move[0])  # stable: simultaneous moves keep their order
    state = max((b["state"] for b in instances.values()), key=_SEVERITY.__getitem__,
                default="closed")
    return {"kind": "+".join(kinds), "state": state, "transitions": moves,
            "instances": instances}


class CallRun:
    """One call in progress: its current attempt (``token``) and how many it has made."""

    __slots__ = ("attempt", "awaiting", "caller", "generation", "key", "lost", "parent",
                 "repeats", "reserved", "sent_at", "site", "target", "token", "tried")

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
        self.target: Instance | None = None  # the current attempt's instance
        self.tried: list[Instance] = []  # instances this repetition tried (retry_other_instance)
        self.reserved = False  # the current retry holds a place under the callee's max_retries

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

    __slots__ = ("active", "asynchronous", "attempts", "backoff", "balancers", "breakers",
                 "callee", "callee_service", "deadlines", "edge", "endpoint", "env", "network",
                 "optional", "other_instance", "outliers", "probability", "repeat",
                 "retry_limit", "rng", "sometimes")

    def __init__(self, call: Call, *, env: simpy.Environment, network: Network,
                 endpoint: EndpointRuntime, callee_service: ServiceRuntime,
                 deadlines: Deadlines, balancers: tuple[Balancer, ...],
                 active: tuple[ActiveRequests, ...] | None,
                 breakers: tuple[CircuitBreaker, ...] | None,
                 edge: EdgeStats, rng: random.Random,
                 outliers: tuple[OutlierDetector, ...] | None = None,
                 retry_limit: OutstandingRetries | None = None) -> None:
        self.env = env
        self.network = network
        self.endpoint = endpoint
        self.callee = endpoint.service
        self.callee_service = callee_service
        self.deadlines = deadlines
        # Indexed by the caller instance's index: its balancer, its requests out (kept only
        # for least request), its breaker for this site's policy (None: no breaker).
        self.balancers = balancers
        self.active = active
        self.breakers = breakers
        # The caller instance's outlier detector for the callee (None: no outlier detection).
        self.outliers = outliers
        # The edge's retries outstanding per caller instance (None: the callee sets no limit).
        self.retry_limit = retry_limit
        self.edge = edge
        self.attempts = call.attempts
        self.backoff = call.backoff
        self.optional = call.optional
        self.asynchronous = call.asynchronous
        self.probability = call.probability
        self.sometimes = call.probability < 1.0
        self.rng = rng  # draws the probability and the backoff jitter
        self.repeat = call.repeat
        self.other_instance = call.retry_other_instance

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
        index = run.caller.index
        breakers = self.breakers
        breaker = breakers[index] if breakers is not None else None
        if breaker is not None and not breaker.allow(now):
            if run.reserved:
                self.release(run)
            self.complete(run, False, CIRCUIT_OPEN, CIRCUIT_OPEN)
            return
        run.attempt += 1
        self.edge.attempts += 1
        if run.attempt > 1:
            self.callee_service.retries += 1
        view = run.caller.view[self.callee]
        outliers = self.outliers
        if outliers is not None and outliers[index].ejected:
            # Ejected hosts leave this caller's load-balancing set; with none left the call
            # fails as Envoy's "no healthy upstream" (Istio sets no panic threshold by default).
            ejected = outliers[index].ejected
            view = tuple(i for i in view if i.name not in ejected)
        n = len(view)
        if n == 0:
            if breaker is not None:
                breaker.record(now, False, 0.0)
            if run.reserved:
                self.release(run)
            self.failed(run, NO_INSTANCE, NO_INSTANCE)
            return
        if self.other_instance:
            # Envoy's previous_hosts retry predicate: a retry avoids the instances this
            # repetition already tried, while an untried one remains in the view.
            if run.attempt == 1:
                run.tried.clear()
            untried = tuple(i for i in view if i not in run.tried) if run.tried else view
            if untried:
                view, n = untried, len(untried)
        target = view[0] if n == 1 else self.balancers[index].choose(view, run.key)
        if self.other_instance:
            run.tried.append(target)
        token = run.token = run.awaiting = run.token + 1
        run.sent_at = now
        run.target = target
        if self.active is not None:
            # Counted before sending: the callee may answer at once, settling the attempt.
            self.active[index][target] += 1
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
        if run.reserved:
            self.release(run)
        if self.active is not None:
            self.active[run.caller.index][run.target] -= 1  # type: ignore[index]
        breakers = self.breakers
        if breakers is not None:
            now = self.env.now
            breakers[run.caller.index].record(now, ok, now - run.sent_at)
        if self.outliers is not None:
            self.outliers[run.caller.index].record(
                run.target.name, self.env.now, classify(ok, cause))  # type: ignore[union-attr]
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
            limit = self.retry_limit
            if limit is not None:
                if not limit.reserve(run.caller.index):
                    # Envoy's retry overflow: no retry; the call ends with this attempt's failure.
                    self.edge.retry_overflow += 1
                    self.complete(run, False, cause, root)
                    return
                run.reserved = True
            delay = backoff_delay(self.backoff, run.attempt, self.rng)
            if delay > 0:
                Timeout(self.env, delay).callbacks.append(run.retry)
            else:
                self.send(run)
            return
        self.complete(run, False, RETRIES_EXHAUSTED if self.attempts > 1 else cause, root)

    def release(self, run: CallRun) -> None:
        """The retry of ``run`` is settled (or abandoned): it gives its place back."""
        run.reserved = False
        self.retry_limit.outstanding[run.caller.index] -= 1  # type: ignore[union-attr]

    def complete(self, run: CallRun, ok: bool, cause: str | None, root: str | None) -> None:
        edge = self.edge
        edge.calls += 1
        if not ok:
            edge.failed += 1
            if cause is not None:  # a failure always has one
                edge.causes[cause] = edge.causes.get(cause, 0) + 1
        parent = run.parent
        if parent is None:
            return
        if not ok and self.optional:
            edge.degraded += 1
            parent.call_done(True, None)
            return
        parent.call_done(ok, root)
