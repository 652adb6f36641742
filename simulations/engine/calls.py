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

Overload mitigations of the client side (issue 11; the pure counters are in
``simulations.retry_limits``, hedged calls in ``simulations.engine.hedges``):

* a callee's ``retry_budget`` (Envoy) replaces its ``max_retries``: a retry is made only while
  the caller instance's retries outstanding to it stay below ``max(min_concurrency, percent %
  of its attempts in flight to it)``; a refused retry counts in ``retry_overflow`` too;
* a callee's ``retry_throttling`` (gRPC A6) keeps a token count per caller instance: every
  failed attempt takes a token, every success gives back ``token_ratio``; a retry is made only
  above half the maximum (a refused one counts in ``throttled``);
* a call's ``deadline`` bounds all its attempts and backoffs: an attempt's timer is
  ``min(per-try timeout, what is left)``, a retry that cannot start before the deadline is not
  made, and the call ends ``deadline exceeded`` when it passes. When the caller's service
  propagates deadlines, the job's own deadline caps its calls' as well (gRPC: a server's
  outgoing calls inherit the incoming deadline);
* every attempt carries its deadline (the time its caller stops waiting) and its kind (first,
  retry, hedge) to the callee's job, where a propagating callee drops expired queued work and
  the run counts work done for nobody (``orphaned``).

Breakers and least-request counts live in the caller's instance, as in the client processes
the engine models (a Resilience4j breaker in each client, an Envoy proxy beside each caller):
``simulations.engine.breaker_groups`` holds them, one per caller instance and policy; a site
picks its caller instance's breaker by the instance's index. A least-request balancer is one
per caller instance too, and compares that instance's own requests still out to each callee
instance (``ActiveRequests``): an attempt counts from when it is sent until it settles.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

import simpy
from simpy.events import Timeout

from faultmesh.model.system import Backoff, Call
from faultmesh.simulations.engine.edge_stats import EdgeStats
from faultmesh.simulations.engine.jobs import FIRST, RETRY
from faultmesh.simulations.engine.outliers import classify
from faultmesh.simulations.outcomes import (
    CIRCUIT_OPEN,
    DEADLINE_EXCEEDED,
    NO_INSTANCE,
    RETRIES_EXHAUSTED,
    TIMED_OUT,
)
from faultmesh.simulations.retry_limits import (
    OutstandingRetries,
    RetryBudgetState,
    RetryThrottle,
)

if TYPE_CHECKING:
    from faultmesh.simulations.balancers import Balancer
    from faultmesh.simulations.breakers import CircuitBreaker
    from faultmesh.simulations.engine.hedges import HedgeRun
    from faultmesh.simulations.engine.instances import Instance, ServiceRuntime, Waiter
    from faultmesh.simulations.engine.jobs import EndpointRuntime, Job
    from faultmesh.simulations.engine.network import Network
    from faultmesh.simulations.engine.timeouts import Deadlines
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


class CallRun:
    """One call in progress: its current attempt (``token``) and how many it has made."""

    __slots__ = ("attempt", "awaiting", "caller", "capped", "expires", "generation", "key",
                 "lost", "parent", "repeats", "reserved", "sent_at", "site", "target", "token",
                 "tried")

    def __init__(self, site: CallSite, caller: Instance, parent: Job | None, key: int,
                 expires: float | None = None) -> None:
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
        self.expires = expires  # the call's overall deadline, absolute (None: none)
        self.capped = False  # the current attempt's timer is that deadline, not its timeout

    def respond(self, token: int, ok: bool, cause: str | None, root: str | None) -> None:
        if self.awaiting == token:
            self.awaiting = 0
            self.site.settle(self, ok, cause, root)

    def expire(self, token: int) -> None:
        self.awaiting = 0
        if self.capped:
            self.site.settle(self, False, DEADLINE_EXCEEDED, DEADLINE_EXCEEDED)
        else:
            self.site.settle(self, False, TIMED_OUT, self.lost or TIMED_OUT)

    def expire_capped(self, token: int) -> None:
        """The timer of an attempt capped by the deadline fired (a timer of its own)."""
        if self.awaiting == token:
            self.expire(token)

    def lose(self, token: int, cause: str) -> None:
        if token == self.token:
            self.lost = cause

    def retry(self, _event: object) -> None:
        self.site.send(self)

    def overdue(self, _event: object) -> None:
        """The deadline passed while the call waited to retry: it ends."""
        self.site.complete(self, False, DEADLINE_EXCEEDED, DEADLINE_EXCEEDED)


class CallSite:
    """One call of one endpoint, with its policies resolved and its edge's shared parts."""

    __slots__ = ("active", "asynchronous", "attempts", "backoff", "balancers", "breakers",
                 "budget", "callee", "callee_service", "deadline", "deadlines", "direct",
                 "edge", "endpoint", "env", "hedge", "network", "optional", "other_instance",
                 "outliers", "plain", "probability", "propagates", "repeat", "retry_limit",
                 "rng", "send", "sometimes", "throttle", "timed", "timeout")

    def __init__(self, call: Call, *, env: simpy.Environment, network: Network,
                 endpoint: EndpointRuntime, callee_service: ServiceRuntime,
                 deadlines: Deadlines, balancers: tuple[Balancer, ...],
                 active: tuple[ActiveRequests, ...] | None,
                 breakers: tuple[CircuitBreaker, ...] | None,
                 edge: EdgeStats, rng: random.Random,
                 outliers: tuple[OutlierDetector, ...] | None = None,
                 retry_limit: OutstandingRetries | RetryBudgetState | None = None,
                 throttle: RetryThrottle | None = None,
                 propagates: bool = False) -> None:
        self.env = env
        self.network = network
        self.endpoint = endpoint
        self.callee = endpoint.service
        self.callee_service = callee_service
        self.deadlines = deadlines
        self.timeout = call.timeout  # per try (``deadlines`` holds the timers of this length)
        # Indexed by the caller instance's index: its balancer, its requests out (kept only
        # for least request), its breaker for this site's policy (None: no breaker).
        self.balancers = balancers
        self.active = active
        self.breakers = breakers
        # The caller instance's outlier detector for the callee (None: no outlier detection).
        self.outliers = outliers
        # The edge's retries outstanding per caller instance: the callee's max_retries, or its
        # retry budget, which replaces it (None: neither is set).
        self.retry_limit = retry_limit
        # The budget also counts each caller instance's attempts in flight (its base).
        self.budget = retry_limit if isinstance(retry_limit, RetryBudgetState) else None
        self.throttle = throttle  # the callee's retry throttling on this edge (None: none)
        self.deadline = call.deadline  # the call's overall deadline, relative (None: none)
        # The caller's service propagates deadlines: its job's deadline caps its calls.
        self.propagates = propagates
        self.timed = call.deadline is not None or propagates
        self.hedge = call.hedge
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
        # Decided once here, not per attempt: a site with none of the per-attempt mechanisms
        # (breaker, outlier detection, retry limit or budget, throttling, least-request counts,
        # retry_other_instance, a deadline) sends and settles its attempts on a lean path;
        # a site without a deadline or hedging starts its calls directly.
        self.plain = (breakers is None and outliers is None and retry_limit is None
                      and throttle is None and active is None and not self.other_instance
                      and not self.timed)
        self.direct = not self.timed and self.hedge is None
        self.send: Callable[[CallRun], None] = self._send_plain if self.plain else self._send

    def __repr__(self) -> str:
        return f"<CallSite -> {self.endpoint.target}>"

    def chosen(self) -> bool:
        """Whether this call happens this time (calls with a probability below 1)."""
        return self.rng.random() < self.probability

    def expiry(self, parent: Job | None) -> float | None:
        """The absolute deadline of a call starting now for ``parent`` (None: none)."""
        expires = None if self.deadline is None else self.env.now + self.deadline
        if (self.propagates and parent is not None and parent.deadline is not None
                and (expires is None or parent.deadline < expires)):
            expires = parent.deadline
        return expires

    def call(self, caller: Instance, parent: Job | None, key: int) -> None:
        """Start the call from ``caller`` on behalf of ``parent`` (None: asynchronous)."""
        if self.direct:
            self.send(CallRun(self, caller, parent, key))
            return
        expires = self.expiry(parent) if self.timed else None
        if self.hedge is not None:
            from faultmesh.simulations.engine.hedges import HedgeRun

            HedgeRun(self, caller, parent, key, expires).start()
            return
        self.send(CallRun(self, caller, parent, key, expires))

    def pick(self, run: CallRun | HedgeRun, index: int, view: tuple[Instance, ...],
             first: bool) -> Instance:
        """The instance of ``view`` (not empty) this attempt goes to."""
        n = len(view)
        if self.other_instance:
            # Envoy's previous_hosts retry predicate: a retry avoids the instances this
            # repetition already tried, while an untried one remains in the view.
            if first:
                run.tried.clear()
            untried = tuple(i for i in view if i not in run.tried) if run.tried else view
            if untried:
                view, n = untried, len(untried)
        target = view[0] if n == 1 else self.balancers[index].choose(view, run.key)
        if self.other_instance:
            run.tried.append(target)
        return target

    def view(self, caller: Instance) -> tuple[Instance, ...]:
        """The callee's instances ``caller`` may route to (its view, less ejected hosts)."""
        view = caller.view[self.callee]
        outliers = self.outliers
        if outliers is not None and outliers[caller.index].ejected:
            # Ejected hosts leave this caller's load-balancing set; with none left the call
            # fails as Envoy's "no healthy upstream" (Istio sets no panic threshold by default).
            ejected = outliers[caller.index].ejected
            view = tuple(i for i in view if i.name not in ejected)
        return view

    def transmit(self, waiter: Waiter, token: int, key: int, caller: Instance, target: Instance,
                 deadline: float, kind: int) -> None:
        """Send an attempt's request from ``caller`` to ``target`` over the network."""
        network = self.network
        if network.active:
            delay = network.delay(caller, target)
            if delay:
                if delay == math.inf:
                    waiter.lose(token, network.drop_cause(caller, target))
                    return
                endpoint = self.endpoint
                Timeout(self.env, delay).callbacks.append(
                    lambda _event: target.receive(endpoint, waiter, token, key, caller,
                                                  deadline, kind))
                return
        target.receive(self.endpoint, waiter, token, key, caller, deadline, kind)

    def _count_attempt(self, run: CallRun) -> int:
        """One more attempt of ``run`` on the edge's counters: its kind (FIRST or RETRY)."""
        run.attempt += 1
        edge = self.edge
        edge.attempts += 1
        if run.attempt > 1:
            self.callee_service.retries += 1
            edge.retries += 1
            return RETRY
        edge.first_attempts += 1
        return FIRST

    def _send_plain(self, run: CallRun) -> None:
        """``send`` for a plain site: ``_send`` less the mechanisms the site does not use."""
        kind = self._count_attempt(run)
        caller = run.caller
        view = caller.view[self.callee]
        n = len(view)
        if n == 0:
            self.failed(run, NO_INSTANCE, NO_INSTANCE)
            return
        target = view[0] if n == 1 else self.balancers[caller.index].choose(view, run.key)
        token = run.token = run.awaiting = run.token + 1
        now = self.env.now
        run.sent_at = now
        run.target = target
        run.lost = None
        self.deadlines.add(run, token, now)
        if self.network.active:
            self.transmit(run, token, run.key, caller, target, now + self.timeout, kind)
        else:
            target.receive(self.endpoint, run, token, run.key, caller, now + self.timeout, kind)

    def _send(self, run: CallRun) -> None:
        """Make the next attempt of ``run`` (``send`` of a site that is not plain)."""
        now = self.env.now
        index = run.caller.index
        breakers = self.breakers
        breaker = breakers[index] if breakers is not None else None
        if breaker is not None and not breaker.allow(now):
            if run.reserved:
                self.release(run)
            self.complete(run, False, CIRCUIT_OPEN, CIRCUIT_OPEN)
            return
        expires = run.expires
        if expires is not None and now >= expires:  # the caller's own deadline has passed
            if run.reserved:
                self.release(run)
            self.complete(run, False, DEADLINE_EXCEEDED, DEADLINE_EXCEEDED)
            return
        kind = self._count_attempt(run)
        caller = run.caller
        view = caller.view[self.callee]
        if self.outliers is not None:
            view = self.view(caller)
        n = len(view)
        if n == 0:
            if breaker is not None:
                breaker.record(now, False, 0.0)
            if self.throttle is not None:
                self.throttle.record(index, False)
            if run.reserved:
                self.release(run)
            self.failed(run, NO_INSTANCE, NO_INSTANCE)
            return
        # The plain case inline (this is the engine's hottest path): one instance, or the
        # balancer's choice; ``pick`` handles retry_other_instance.
        if self.other_instance:
            target = self.pick(run, index, view, run.attempt == 1)
        else:
            target = view[0] if n == 1 else self.balancers[index].choose(view, run.key)
        token = run.token = run.awaiting = run.token + 1
        run.sent_at = now
        run.target = target
        if self.active is not None:
            # Counted before sending: the callee may answer at once, settling the attempt.
            self.active[index][target] += 1
        if self.budget is not None:
            self.budget.active[index] += 1
        run.lost = None
        deadline = now + self.timeout
        if expires is not None and expires < deadline:
            # What is left of the call's deadline is shorter than a try: a timer of its own.
            deadline = expires
            run.capped = True
            Timeout(self.env, expires - now).callbacks.append(
                lambda _event: run.expire_capped(token))
        else:
            run.capped = False
            self.deadlines.add(run, token, now)
        if self.network.active:
            self.transmit(run, token, run.key, caller, target, deadline, kind)
        else:
            target.receive(self.endpoint, run, token, run.key, caller, deadline, kind)

    def settle(self, run: CallRun, ok: bool, cause: str | None, root: str | None) -> None:
        """The current attempt of ``run`` got its response, or timed out."""
        if not self.plain:
            self._account(run, ok, cause)
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

    def _account(self, run: CallRun, ok: bool, cause: str | None) -> None:
        """A settled attempt's bookkeeping in the mechanisms its site uses."""
        if run.reserved:
            self.release(run)
        index = run.caller.index
        if self.active is not None:
            self.active[index][run.target] -= 1  # type: ignore[index]
        if self.budget is not None:
            self.budget.active[index] -= 1
        if self.throttle is not None:
            self.throttle.record(index, ok)
        breakers = self.breakers
        if breakers is not None:
            now = self.env.now
            breakers[index].record(now, ok, now - run.sent_at)
        if self.outliers is not None:
            self.outliers[index].record(
                run.target.name, self.env.now, classify(ok, cause))  # type: ignore[union-attr]

    def failed(self, run: CallRun, cause: str, root: str) -> None:
        """An attempt failed: retry after the backoff, or fail the call."""
        if cause == DEADLINE_EXCEEDED:  # the call's deadline passed: nothing more to try
            self.complete(run, False, cause, root)
            return
        if run.attempt < self.attempts and run.caller.generation == run.generation:
            index = run.caller.index
            throttle = self.throttle
            if throttle is not None and not throttle.allows(index):
                # gRPC retry throttling: too many recent failures, no retry.
                self.edge.throttled += 1
                self.complete(run, False, cause, root)
                return
            delay = backoff_delay(self.backoff, run.attempt, self.rng)
            expires = run.expires
            if expires is not None and self.env.now + delay >= expires:
                # The retry could not start before the deadline: the call waits it out.
                Timeout(self.env, expires - self.env.now).callbacks.append(run.overdue)
                return
            limit = self.retry_limit
            if limit is not None:
                if not limit.reserve(index):
                    # Envoy's retry overflow: no retry; the call ends with this attempt's failure.
                    self.edge.retry_overflow += 1
                    self.complete(run, False, cause, root)
                    return
                run.reserved = True
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

    def complete(self, run: CallRun | HedgeRun, ok: bool, cause: str | None,
                 root: str | None) -> None:
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
