"""The workload: requests arriving from outside, and how each one ends.

Each workload item sends requests to its entry endpoint, Poisson (exponential gaps) or at a
constant rate. An implicit ingress routes each request to one of the entry service's live
instances with that service's load balancer; no network is crossed, and the request has no
timeout unless the workload item sets one. A request ends exactly once, when the entry job
responds or its timeout fires, whichever is first; the entry's statistics and the opt-in trace
record it then. ``Arrivals`` also keeps the ledger the no-lost-requests monitor checks: requests
started, ended by outcome, and still open.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING

import simpy
from simpy.events import Timeout

from faultmesh.model.system import Workload
from faultmesh.simulations.observation.metrics import EntryStats, RequestTrace
from faultmesh.simulations.outcomes import NO_INSTANCE, OK, TIMED_OUT, outcome_of

if TYPE_CHECKING:
    from faultmesh.simulations.balancers import Balancer
    from faultmesh.simulations.engine.instances import Instance
    from faultmesh.simulations.engine.jobs import EndpointRuntime
    from faultmesh.simulations.engine.timeouts import Deadlines

FailureHook = Callable[[float, str, str, str], None]
"""Called as ``hook(time, entry, cause, root_cause)`` when a workload request fails."""


class EntryRequest:
    """A request from outside, waiting for the entry job's response."""

    __slots__ = ("arrived", "awaiting", "done", "ident", "instance", "source")

    def __init__(self, source: Arrivals, ident: int, arrived: float) -> None:
        self.source = source
        self.ident = ident
        self.arrived = arrived
        self.done = False
        self.awaiting = 1  # token 1 until the request ends (see simulations.timeouts)
        self.instance: Instance | None = None

    def expire(self, token: int) -> None:
        self.source.end(self, False, TIMED_OUT, TIMED_OUT)

    def respond(self, token: int, ok: bool, cause: str | None, root: str | None) -> None:
        if not self.done:
            self.source.end(self, ok, cause, root)

    def lose(self, token: int, cause: str) -> None:  # the ingress crosses no network
        pass


class Arrivals:
    """One workload item: its arrival process, its ingress routing, its ledger."""

    def __init__(self, env: simpy.Environment, workload: Workload, endpoint: EndpointRuntime,
                 live: dict[str, tuple[Instance, ...]], balancer: Balancer, stats: EntryStats,
                 rng: random.Random, ids: Iterator[int], deadlines: Deadlines | None,
                 trace: RequestTrace | None,
                 active: Counter[Instance] | None = None) -> None:
        self.env = env
        # Requests out per instance, kept when the balancer is least request (its load).
        self.active = active
        self.workload = workload
        self.endpoint = endpoint
        self.service = workload.service
        self.live = live
        self.balancer = balancer
        self.stats = stats
        self.ids = ids
        self.deadlines = deadlines
        self.trace = trace
        rate = workload.rate
        if workload.arrivals == "poisson":
            self.gap: Callable[[], float] = partial(rng.expovariate, rate)
        else:
            self.gap = partial(float, 1.0 / rate if rate > 0 else math.inf)
        self.started = 0
        self.ended = [0, 0, 0, 0]  # by outcome, warm-up included
        self.open: dict[int, EntryRequest] = {}
        self.causeless = 0  # failures that came without a cause
        self.on_failure: list[FailureHook] = []

    def start(self) -> None:
        if self.workload.rate > 0:
            Timeout(self.env, self.gap()).callbacks.append(self._arrive)

    def _arrive(self, _event: object) -> None:
        env = self.env
        Timeout(env, self.gap()).callbacks.append(self._arrive)
        ident = next(self.ids)
        request = EntryRequest(self, ident, env.now)
        self.open[ident] = request
        self.started += 1
        if self.deadlines is not None:
            self.deadlines.add(request, 1)
        view = self.live[self.service]
        n = len(view)
        if n == 0:
            self.end(request, False, NO_INSTANCE, NO_INSTANCE)
            return
        instance = view[0] if n == 1 else self.balancer.choose(view, ident)
        request.instance = instance
        if self.active is not None:
            self.active[instance] += 1
        instance.receive(self.endpoint, request, 1, ident, None)

    def end(self, request: EntryRequest, ok: bool, cause: str | None, root: str | None) -> None:
        """``request`` ends: ok, or failed for ``cause`` (``root`` below it)."""
        request.done = True
        request.awaiting = 0
        now = self.env.now
        del self.open[request.ident]
        if self.active is not None and request.instance is not None:
            self.active[request.instance] -= 1
        if ok:
            outcome = OK
            self.stats.record_ok(request.arrived, now)
        else:
            if not cause or not root:  # a bug: the no-lost-requests monitor reports it
                self.causeless += 1
                cause, root = cause or "unknown", root or "unknown"
            outcome = outcome_of(cause)
            self.stats.record_failure(request.arrived, now, outcome, cause, root)
            for hook in self.on_failure:
                hook(now, self.stats.name, cause, root)
        self.ended[outcome] += 1
        if self.trace is not None:
            instance = request.instance
            self.trace.add(request.ident, self.stats.name,
                           instance.name if instance is not None else None,
                           request.arrived, now, outcome, cause, root)
