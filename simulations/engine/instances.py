"""Instances at run time: a replica of a service as a queueing station that can go down.

An instance has ``workers`` service-time slots and a queue for requests waiting for one.
A request arriving at an instance is refused when the instance is down (``instance down``),
refused by the instance's or the endpoint's token bucket (``rate limited``, Envoy's local rate
limit in front of the process), fails at once under an injected error, and is rejected beyond
``concurrency`` requests in flight (``concurrency limit``) or ``queue`` requests waiting
(``queue full``). With ``propagate_deadline`` a request whose deadline has already passed is
refused too (``deadline exceeded``). Otherwise it becomes a ``Job`` (``simulations.jobs``)
that holds one worker for its service time and then, worker released, makes the endpoint's
calls; it counts toward ``concurrency`` until it ends.

A free worker takes the oldest waiting job (FIFO, the default and the cheap path) or, under
``lifo`` or a standing ``adaptive_lifo`` queue, the newest (``simulations.shedding`` decides).
Expired work is dropped lazily when a worker looks at the queue: the oldest jobs first while
they waited past the wait bound (queue timeout, or CoDel's target while the queue stands),
then any job it would take that is past the bound (``shed``) or, with ``propagate_deadline``,
past its deadline (``deadline exceeded``). A job that gets a worker after its deadline is
counted ``orphaned``: its caller has already given up, the work is wasted.

When an instance is killed, every job it holds fails with ``instance died`` (the callers'
connections are reset) and its queue is emptied. Faults set the instance's injected error
rates, added latency and slowdown factor. The instance keeps the counters of its service's
summary (requests, rejected, busy time, up time); ``ServiceRuntime`` groups the instances,
endpoints and retry count of one service.
"""

from __future__ import annotations

import math
import random
import sys
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import simpy
from simpy.events import Timeout

from faultmesh.model.policies import QueueDiscipline, RateLimit
from faultmesh.simulations.engine.jobs import FIRST, EndpointRuntime, Job
from faultmesh.simulations.outcomes import (
    CONCURRENCY_LIMIT,
    DEADLINE_EXCEEDED,
    INJECTED_ERROR,
    INSTANCE_DIED,
    INSTANCE_DOWN,
    QUEUE_FULL,
    RATE_LIMITED,
    SHED,
)
from faultmesh.simulations.shedding import TokenBucket, serves_newest, standing, wait_limit

if TYPE_CHECKING:
    from faultmesh.simulations.engine.network import Network
    from faultmesh.simulations.observation.summary import ServiceSummary

UNLIMITED = sys.maxsize


class Waiter(Protocol):
    """Who waits for a job's response: a call's attempt or a workload request."""

    def respond(self, token: int, ok: bool, cause: str | None, root: str | None) -> None: ...

    def lose(self, token: int, cause: str) -> None: ...


class Instance:
    """One replica of a service (``cart-0``): workers, queue, limits and state."""

    __slots__ = (
        "accepted", "active", "arrivals", "bucket", "busy_area", "busy_since", "by_attempt",
        "concurrency", "delays", "discipline", "endpoint_buckets", "env", "error_rates",
        "errors", "expired", "fault_rng", "finished", "free", "generation", "holds",
        "in_flight", "in_transit", "index", "injected", "last_empty", "limited", "limits",
        "name", "network", "orphaned", "orphaned_by", "propagate", "queue", "queue_limit",
        "queued", "rate_limited", "ready", "refused", "registered", "rejected", "screens",
        "served", "service", "shed", "shedding", "slowdown", "slowdowns", "uid", "up", "up_since",
        "up_time", "view", "waited", "workers", "zone",
    )

    def __init__(self, env: simpy.Environment, network: Network, service: str, index: int,
                 zone: str, uid: int, *, workers: int, concurrency: int | None,
                 queue: int | None, fault_rng: random.Random,
                 discipline: QueueDiscipline | None = None,
                 rate_limit: RateLimit | None = None,
                 endpoint_limits: dict[str, RateLimit] | None = None,
                 propagate_deadline: bool = False) -> None:
        self.env = env
        self.network = network
        self.service = service
        self.index = index
        self.name = f"{service}-{index}"
        self.zone = zone
        self.uid = uid
        self.workers = workers
        self.free = workers
        self.concurrency = UNLIMITED if concurrency is None else concurrency
        self.queue_limit = UNLIMITED if queue is None else queue
        self.queue: deque[Job] = deque()
        # Load shedding: the queue's order and wait bounds, and deadline dropping. ``shedding``
        # is False for a plain FIFO queue, whose worker hand-off stays a bare popleft.
        self.discipline = discipline or QueueDiscipline()
        self.propagate = propagate_deadline
        self.shedding = (self.discipline.kind != "fifo" or self.discipline.timeout is not None
                         or propagate_deadline)
        self.last_empty = 0.0  # the last time the queue was empty (adaptive LIFO)
        # Token buckets: the instance's own, and one per rate-limited endpoint.
        self.limits = (rate_limit, dict(endpoint_limits or {}))
        self.bucket: TokenBucket | None = None
        self.endpoint_buckets: dict[str, TokenBucket] = {}
        self._fill_buckets()
        self.limited = self.bucket is not None or bool(self.endpoint_buckets)
        # Whether an arriving request is screened (token buckets, expired deadline) at all:
        # decided once here, so an instance with neither pays one test per request.
        self.screens = self.limited or propagate_deadline
        self.in_flight = 0
        # Jobs in flight, in arrival order (a dict, not a set: iteration order is reproducible).
        self.active: dict[Job, None] = {}
        self.up = True
        self.ready = True
        self.registered = True
        self.holds = 0  # faults holding the instance down
        self.generation = 0  # incremented at every kill: stale timers compare it
        # The discovery view this instance routes its calls with: service -> instances.
        self.view: dict[str, tuple[Instance, ...]] = {}
        # Faults.
        self.fault_rng = fault_rng
        self.error_rates: dict[int, tuple[str | None, float]] = {}
        self.errors: dict[str | None, float] = {}  # endpoint (None: any) -> probability
        self.delays: dict[int, tuple[str | None, Callable[[], float]]] = {}
        self.slowdowns: dict[int, float] = {}
        self.slowdown = 1.0
        self.in_transit = 0  # requests delayed by a latency fault on their way in
        # Counters (reset at the end of the warm-up, except accepted/finished).
        self.arrivals = 0
        self.rejected = 0
        self.refused = 0
        self.injected = 0
        self.rate_limited = 0  # refused by a token bucket (also counted in ``rejected``)
        self.shed = 0  # dropped from the queue past its wait bound (also in ``rejected``)
        self.expired = 0  # dropped past its propagated deadline (``deadline exceeded``)
        self.orphaned = 0  # jobs that got a worker after their deadline: wasted work
        self.orphaned_by: dict[str | None, int] = {}  # the same by caller service (None: ingress)
        self.by_attempt = [0, 0, 0]  # jobs accepted by attempt kind: first, retry, hedge
        self.served = 0  # jobs that got a worker
        self.queued = 0  # jobs that had to wait for one
        self.waited = 0.0  # seconds jobs waited for a worker, in all
        self.accepted = 0
        self.finished = 0
        self.busy_area = 0.0
        self.busy_since = 0.0
        self.up_time = 0.0
        self.up_since = 0.0

    def __repr__(self) -> str:
        state = "up" if self.up else "down"
        return f"<Instance {self.name} {self.zone} {state} in_flight={self.in_flight}>"

    # --- requests -----------------------------------------------------------------------------

    def receive(self, endpoint: EndpointRuntime, waiter: Waiter, token: int, key: int,
                caller: Instance | None, deadline: float | None = None,
                attempt: int = FIRST) -> None:
        """A request for ``endpoint`` reaches this instance (after any injected latency)."""
        if self.delays:
            extra = 0.0
            for target, sample in self.delays.values():
                if target is None or target == endpoint.name:
                    extra += sample()
            if extra > 0:
                self.in_transit += 1

                def arrive(_event: object) -> None:
                    self.in_transit -= 1
                    self.accept(endpoint, waiter, token, key, caller, deadline, attempt)

                Timeout(self.env, extra).callbacks.append(arrive)
                return
        self.accept(endpoint, waiter, token, key, caller, deadline, attempt)

    def accept(self, endpoint: EndpointRuntime, waiter: Waiter, token: int, key: int,
               caller: Instance | None, deadline: float | None = None,
               attempt: int = FIRST) -> None:
        self.arrivals += 1
        if not self.up:
            self.refused += 1
            self.reply(caller, waiter, token, False, INSTANCE_DOWN, INSTANCE_DOWN)
            return
        if self.screens:
            if self.limited and not self._admit(endpoint.name):
                self.rate_limited += 1
                self.rejected += 1
                self.reply(caller, waiter, token, False, RATE_LIMITED, RATE_LIMITED)
                return
            if self.propagate and deadline is not None and self.env.now > deadline:
                self.expired += 1
                self.reply(caller, waiter, token, False, DEADLINE_EXCEEDED, DEADLINE_EXCEEDED)
                return
        if self.errors:
            rate = self.errors.get(endpoint.name, 0.0) or self.errors.get(None, 0.0)
            if rate and self.fault_rng.random() < rate:
                self.injected += 1
                self.reply(caller, waiter, token, False, INJECTED_ERROR, INJECTED_ERROR)
                return
        if self.in_flight >= self.concurrency:
            self.rejected += 1
            self.reply(caller, waiter, token, False, CONCURRENCY_LIMIT, CONCURRENCY_LIMIT)
            return
        if not self.free and len(self.queue) >= self.queue_limit:
            self.rejected += 1
            self.reply(caller, waiter, token, False, QUEUE_FULL, QUEUE_FULL)
            return
        job = Job(self, endpoint, waiter, token, key, caller, deadline, attempt)
        self.accepted += 1
        self.by_attempt[attempt] += 1
        self.in_flight += 1
        self.active[job] = None
        if self.free:
            now = self.env.now
            self.busy_area += (self.workers - self.free) * (now - self.busy_since)
            self.busy_since = now
            self.free -= 1
            self.serve(job, now)
        else:
            job.queued_at = now = self.env.now
            self.queued += 1
            queue = self.queue
            if not queue:
                self.last_empty = now  # it was empty until this job came
            queue.append(job)

    def serve(self, job: Job, now: float) -> None:
        """Give ``job`` a worker for its service time (the worker is already taken); ``now``
        is the simulated time, which every caller has at hand."""
        self.served += 1
        deadline = job.deadline
        if deadline is not None and now > deadline:
            # Its caller gave up already: the work is done for nobody (orphaned).
            self.orphaned += 1
            caller = job.caller.service if job.caller is not None else None
            self.orphaned_by[caller] = self.orphaned_by.get(caller, 0) + 1
        duration = job.endpoint.service_time()
        if self.slowdown != 1.0:
            duration *= self.slowdown
        Timeout(self.env, duration).callbacks.append(job.served)

    def release(self) -> None:
        """A job's service time is over: its worker goes to the next waiting job, or idles."""
        now = self.env.now
        if self.queue:
            job = self._next_job(now) if self.shedding else self.queue.popleft()
            if job is not None:
                self.waited += now - job.queued_at
                self.serve(job, now)
                return
        self.busy_area += (self.workers - self.free) * (now - self.busy_since)
        self.busy_since = now
        self.free += 1

    def _next_job(self, now: float) -> Job | None:
        """The job a free worker takes under the queue's discipline; drops expired work."""
        queue = self.queue
        discipline = self.discipline
        is_standing = standing(discipline, now, self.last_empty, len(queue))
        limit = wait_limit(discipline, is_standing)
        newest = serves_newest(discipline, is_standing)
        # The oldest jobs expire first: drop them from the head (amortised O(1) per job), so
        # under LIFO they do not lie at the bottom of the queue holding its places.
        while queue:
            head = queue[0]
            if limit is not None and now - head.queued_at > limit:
                queue.popleft()
                self._drop(head, SHED)
            elif self.propagate and head.deadline is not None and now > head.deadline:
                queue.popleft()
                self._drop(head, DEADLINE_EXCEEDED)
            else:
                break
        while queue:
            job = queue.pop() if newest else queue.popleft()
            if limit is not None and now - job.queued_at > limit:
                self._drop(job, SHED)
            elif self.propagate and job.deadline is not None and now > job.deadline:
                self._drop(job, DEADLINE_EXCEEDED)
            else:
                if not queue:
                    self.last_empty = now
                return job
        self.last_empty = now
        return None

    def _drop(self, job: Job, cause: str) -> None:
        """A queued job is dropped without service (shed, or past its deadline)."""
        self.waited += self.env.now - job.queued_at
        if cause == SHED:
            self.shed += 1
            self.rejected += 1
        else:
            self.expired += 1
        self.finish(job, False, cause, cause)

    def _admit(self, endpoint: str) -> bool:
        """Take a token from the endpoint's bucket, then the instance's; False: none left."""
        now = self.env.now
        bucket = self.endpoint_buckets.get(endpoint)
        if bucket is not None and not bucket.take(now):
            return False
        bucket = self.bucket
        return bucket is None or bucket.take(now)

    def _fill_buckets(self) -> None:
        """Full token buckets, as a (re)started proxy has."""
        service, endpoints = self.limits
        self.bucket = TokenBucket(service) if service is not None else None
        self.endpoint_buckets = {name: TokenBucket(limit) for name, limit in endpoints.items()}

    def finish(self, job: Job, ok: bool, cause: str | None, root: str | None) -> None:
        """``job`` ended: it leaves the instance and its response goes back to the caller."""
        job.alive = False
        self.in_flight -= 1
        self.finished += 1
        del self.active[job]
        self.reply(job.caller, job.waiter, job.token, ok, cause, root)

    def _respond_now(self, waiter: Waiter, token: int, ok: bool, cause: str | None,
                     root: str | None) -> None:
        """Deliver a response at once, in constant stack: a response that a delivery causes
        (the caller's job finishing, its own caller answered...) is queued and delivered
        when the current one returns. A reply is the last thing its callers do, so the
        order of deliveries is the order the recursion had."""
        network = self.network
        if network.delivering:
            network.immediate.append((waiter, token, ok, cause, root))
            return
        network.delivering = True
        try:
            waiter.respond(token, ok, cause, root)
            queue = network.immediate
            while queue:
                later, token, ok, cause, root = queue.popleft()
                later.respond(token, ok, cause, root)
        finally:
            network.delivering = False
            network.immediate.clear()

    def reply(self, caller: Instance | None, waiter: Waiter, token: int, ok: bool,
              cause: str | None, root: str | None) -> None:
        """Send a response to ``caller`` (None: from outside, no network)."""
        network = self.network
        if caller is None or not network.active:
            self._respond_now(waiter, token, ok, cause, root)
            return
        delay = network.delay(self, caller)
        if delay == 0:
            self._respond_now(waiter, token, ok, cause, root)
        elif delay == math.inf:
            waiter.lose(token, network.drop_cause(self, caller))
        else:
            Timeout(self.env, delay).callbacks.append(
                lambda _event: waiter.respond(token, ok, cause, root))

    # --- life cycle ---------------------------------------------------------------------------

    def kill(self) -> None:
        """The instance goes down: every job it holds fails with ``instance died``."""
        if not self.up:
            return
        now = self.env.now
        self.busy_area += (self.workers - self.free) * (now - self.busy_since)
        self.busy_since = now
        self.up_time += now - self.up_since
        self.up = False
        self.ready = False
        self.generation += 1
        jobs = list(self.active)
        self.active = {}
        self.queue.clear()
        self.in_flight = 0
        self.free = self.workers
        for job in jobs:
            job.alive = False
            self.finished += 1
            self.reply(job.caller, job.waiter, job.token, False, INSTANCE_DIED, INSTANCE_DIED)

    def boot(self) -> None:
        """The instance starts (not ready until its readiness probe passes)."""
        if self.up:
            return
        self.up = True
        self.up_since = self.env.now
        self.busy_since = self.env.now
        self.last_empty = self.env.now
        if self.limited:
            self._fill_buckets()

    # --- faults -------------------------------------------------------------------------------

    def add_errors(self, fault: int, endpoint: str | None, rate: float) -> None:
        self.error_rates[fault] = (endpoint, rate)
        self._update_errors()

    def add_delay(self, fault: int, endpoint: str | None, sample: Callable[[], float]) -> None:
        self.delays[fault] = (endpoint, sample)

    def add_slowdown(self, fault: int, factor: float) -> None:
        self.slowdowns[fault] = factor
        self.slowdown = math.prod(self.slowdowns.values())

    def remove_fault(self, fault: int) -> None:
        self.error_rates.pop(fault, None)
        self.delays.pop(fault, None)
        self.slowdowns.pop(fault, None)
        self.slowdown = math.prod(self.slowdowns.values())
        self._update_errors()

    def _update_errors(self) -> None:
        keep: dict[str | None, float] = {}
        for endpoint, rate in self.error_rates.values():
            keep[endpoint] = keep.get(endpoint, 1.0) * (1.0 - rate)
        everywhere = keep.get(None, 1.0)
        self.errors = {endpoint: 1.0 - k * (everywhere if endpoint is not None else 1.0)
                       for endpoint, k in keep.items()}

    # --- statistics ---------------------------------------------------------------------------

    def reset_counters(self) -> None:
        """Start measuring now (end of the warm-up)."""
        now = self.env.now
        self.arrivals = self.rejected = self.refused = self.injected = 0
        self.rate_limited = self.shed = self.expired = self.orphaned = 0
        self.orphaned_by.clear()
        self.by_attempt = [0, 0, 0]
        self.served = self.queued = 0
        self.waited = 0.0
        self.busy_area = 0.0
        self.busy_since = now
        self.up_time = 0.0
        self.up_since = now

    def close_counters(self) -> None:
        """Account busy and up time up to now (end of the run)."""
        now = self.env.now
        self.busy_area += (self.workers - self.free) * (now - self.busy_since)
        self.busy_since = now
        if self.up:
            self.up_time += now - self.up_since
            self.up_since = now


class ServiceRuntime:
    """A service at run time: its instances, its endpoints, and the retries it received."""

    __slots__ = ("endpoints", "instances", "name", "retries", "workers")

    def __init__(self, name: str, workers: int) -> None:
        self.name = name
        self.workers = workers
        self.instances: list[Instance] = []
        self.endpoints: dict[str, EndpointRuntime] = {}
        self.retries = 0

    def summary(self, measured: float) -> ServiceSummary:
        instances = self.instances
        capacity = self.workers * len(instances) * measured
        busy = sum(i.busy_area for i in instances)
        served = sum(i.served for i in instances)
        return {
            "utilization": busy / capacity if capacity > 0 else 0.0,
            "requests": sum(i.arrivals for i in instances),
            "rejected": sum(i.rejected for i in instances),
            "retries": self.retries,
            "refused": sum(i.refused for i in instances),
            "injected_errors": sum(i.injected for i in instances),
            "rate_limited": sum(i.rate_limited for i in instances),
            "shed": sum(i.shed for i in instances),
            "deadline_exceeded": sum(i.expired for i in instances),
            "orphaned": sum(i.orphaned for i in instances),
            "queued": sum(i.queued for i in instances) / served if served else None,
            "wait_s": sum(i.waited for i in instances) / served if served else None,
            "instances": {
                i.name: {
                    "zone": i.zone,
                    "utilization": i.busy_area / (self.workers * measured) if measured else 0.0,
                    "requests": i.arrivals,
                    "up_s": i.up_time,
                }
                for i in instances
            },
        }
