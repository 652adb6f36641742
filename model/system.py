"""The typed model M = (S, C, D, O) that every other part of faultmesh reads.

A ``System`` is built once by the loader (``model.spec``) with every default resolved, so the
verifier and the simulator never re-derive a default: a call carries its own timeout, retries,
backoff and breaker; an instance carries its zone. All classes are frozen; mappings are
``FrozenMap``. Times are seconds, rates per second, ratios fractions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from faultmesh.model.distributions import Constant, Distribution
from faultmesh.model.faults import Fault, Scenario
from faultmesh.model.properties import Property


class FrozenMap(dict):
    """A dict that refuses mutation and pickles; keeps insertion order like the spec."""

    def _readonly(self, *args: object, **kwargs: object) -> None:
        raise TypeError("this mapping is part of a frozen System")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]
    __ior__ = _readonly  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self.items()))

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (dict(self),))


# ---------------------------------------------------------------------------------------------
# Resilience policies (pure data; the breaker state machine lives in simulations.breakers)
# ---------------------------------------------------------------------------------------------


def _check(condition: bool, message: str, value: object) -> None:
    if not condition:
        raise ValueError(f"{message}, got {value!r}")


@dataclass(frozen=True, slots=True)
class RateBreakerPolicy:
    """A rate-based breaker (Resilience4j, COUNT_BASED sliding window).

    Rates are fractions in ``(0, 1]``; times are seconds.
    """

    failure_rate: float = 0.5
    """Open when the failure rate of the window is at least this (Resilience4j: > 0, <= 100%)."""
    window: int = 100
    """Size of the count-based sliding window, in calls."""
    min_calls: int = 100
    """Calls needed in the window before rates are evaluated (capped at ``window``)."""
    open_for: float = 60.0
    """Seconds to stay open before the first probe is allowed."""
    half_open_calls: int = 10
    """Probe calls permitted while half-open."""
    slow_call_duration: float | None = None
    """A call lasting strictly longer than this is slow; None disables slow-call tracking."""
    slow_call_rate: float = 1.0
    """Open when the slow-call rate of the window is at least this."""

    def __post_init__(self) -> None:
        _check(0.0 < self.failure_rate <= 1.0, "failure_rate must be in (0, 1]", self.failure_rate)
        _check(self.window >= 1, "window must be at least 1 call", self.window)
        _check(self.min_calls >= 1, "min_calls must be at least 1", self.min_calls)
        _check(self.open_for >= 0.0, "open_for must not be negative", self.open_for)
        _check(self.half_open_calls >= 1, "half_open_calls must be at least 1",
               self.half_open_calls)
        if self.slow_call_duration is not None:
            _check(self.slow_call_duration >= 0.0, "slow_call_duration must not be negative",
                   self.slow_call_duration)
        _check(0.0 < self.slow_call_rate <= 1.0, "slow_call_rate must be in (0, 1]",
               self.slow_call_rate)


@dataclass(frozen=True, slots=True)
class ConsecutiveBreakerPolicy:
    """A consecutive-failures breaker (pybreaker's ``fail_max`` and ``reset_timeout``)."""

    consecutive_failures: int = 5
    """The consecutive failure that opens the breaker (pybreaker's ``fail_max``)."""
    open_for: float = 60.0
    """Seconds to stay open before the trial call is allowed (``reset_timeout``)."""

    def __post_init__(self) -> None:
        _check(self.consecutive_failures >= 1, "consecutive_failures must be at least 1",
               self.consecutive_failures)
        _check(self.open_for >= 0.0, "open_for must not be negative", self.open_for)


BreakerPolicy = RateBreakerPolicy | ConsecutiveBreakerPolicy

BackoffStrategy = Literal["none", "constant", "exponential"]
Jitter = Literal["none", "full", "equal"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry n (1-based): constant ``base`` or ``min(cap, base * 2**(n-1))``."""

    strategy: BackoffStrategy = "exponential"
    base: float = 0.025
    cap: float = 0.25
    jitter: Jitter = "full"

    def max_delay(self, retry: int) -> float:
        """Worst-case delay before the given retry (jitter only ever shortens it)."""
        if self.strategy == "none":
            return 0.0
        if self.strategy == "constant":
            return min(self.base, self.cap)
        # The exponent is capped (as real clients cap their backoff step) so a large retry
        # number cannot overflow a float; 2**60 times any base is past any cap already.
        return min(self.cap, self.base * 2.0 ** min(retry - 1, 60))


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    """Envoy's outlier detection of a callee's hosts, kept by each caller instance on its own.

    Istio's DestinationRule ``outlierDetection`` with its defaults; a threshold of 0 turns that
    detector off. Ejection time is ``min(base_ejection_time * n, max_ejection_time)``, ``n``
    growing with each ejection and shrinking by one at each ``interval`` tick the host spends
    back in service; a host returns at the first tick after its time has passed. A detection
    ejects only while ``(ejected + 1) / hosts`` stays within ``max_ejection_percent`` (or, with
    ``always_eject_one_host``, when no host is ejected yet).
    """

    consecutive_5xx: int = 5
    consecutive_gateway_errors: int = 0
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_time: float = 300.0
    max_ejection_percent: float = 10.0
    always_eject_one_host: bool = False

    def __post_init__(self) -> None:
        _check(self.consecutive_5xx >= 0, "consecutive_5xx must not be negative",
               self.consecutive_5xx)
        _check(self.consecutive_gateway_errors >= 0,
               "consecutive_gateway_errors must not be negative", self.consecutive_gateway_errors)
        _check(self.interval > 0.0, "interval must be positive", self.interval)
        _check(self.base_ejection_time > 0.0, "base_ejection_time must be positive",
               self.base_ejection_time)
        _check(self.max_ejection_time >= 0.0, "max_ejection_time must not be negative",
               self.max_ejection_time)
        _check(0.0 <= self.max_ejection_percent <= 100.0,
               "max_ejection_percent must be in [0, 100]", self.max_ejection_percent)

    def ejectable(self, hosts: int) -> int:
        """How many of ``hosts`` may be ejected at once (Envoy's max-ejection-percent rule)."""
        if hosts <= 0:
            return 0
        # Envoy ejects while 100 * (ejected + 1) / hosts <= max_ejection_percent.
        allowed = 0
        while allowed < hosts and 100.0 * (allowed + 1) / hosts <= self.max_ejection_percent:
            allowed += 1
        return max(allowed, 1) if self.always_eject_one_host else allowed

    def ejection_time(self, multiplier: int) -> float:
        """How long an ejection lasts with the given ejection-time multiplier."""
        return min(self.base_ejection_time * multiplier, self.max_ejection_time)


@dataclass(frozen=True, slots=True)
class RetryBudget:
    """Envoy's ``retry_budget`` for calls to a service, kept by each caller instance.

    A retry may start only while the caller instance's active retries to the service stay
    below ``max(min_concurrency, percent / 100 * active requests)`` (Envoy's
    ``budget_percent``, default 20 %, and ``min_retry_concurrency``, default 3); a denied retry
    ends the call with the last attempt's failure.
    """

    percent: float = 20.0
    min_concurrency: int = 3

    def __post_init__(self) -> None:
        _check(0.0 <= self.percent <= 100.0, "percent must be in [0, 100]", self.percent)
        _check(self.min_concurrency >= 0, "min_concurrency must not be negative",
               self.min_concurrency)


@dataclass(frozen=True, slots=True)
class RetryThrottling:
    """gRPC retry throttling for calls to a service, kept by each caller instance (channel).

    A token count starts at ``max_tokens``; every failed attempt takes one token, every
    success gives back ``token_ratio``, never above ``max_tokens``. Retries and hedges are sent
    only while the count is above ``max_tokens / 2`` (gRPC A6).
    """

    max_tokens: float = 10.0
    token_ratio: float = 0.1

    def __post_init__(self) -> None:
        _check(0.0 < self.max_tokens <= 1000.0, "max_tokens must be in (0, 1000]",
               self.max_tokens)
        _check(self.token_ratio > 0.0, "token_ratio must be positive", self.token_ratio)


@dataclass(frozen=True, slots=True)
class Hedge:
    """gRPC's hedging policy for one call: the first attempt goes at once, another every
    ``delay`` until ``max_attempts`` are in flight or one succeeds; the first success wins and
    the others are cancelled. A call hedges or retries, never both."""

    delay: float
    max_attempts: int = 2

    def __post_init__(self) -> None:
        _check(self.delay >= 0.0, "delay must not be negative", self.delay)
        _check(self.max_attempts >= 1, "max_attempts must be at least 1", self.max_attempts)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket in front of each instance (Envoy's local rate limit): ``burst`` tokens,
    refilled at ``rate`` per second; a request finding no token ends ``rate_limited``."""

    rate: float
    burst: int = 1

    def __post_init__(self) -> None:
        _check(self.rate > 0.0, "rate must be positive", self.rate)
        _check(self.burst >= 1, "burst must be at least 1", self.burst)


QueueDisciplineKind = Literal["fifo", "lifo", "adaptive_lifo"]


@dataclass(frozen=True, slots=True)
class QueueDiscipline:
    """Which queued request a free worker takes next, and how long a request may wait.

    ``fifo`` and ``lifo`` are what they say. ``adaptive_lifo`` is Facebook's adaptive LIFO with
    CoDel (Maurer, "Fail at Scale", 2015): FIFO while the queue empties now and then; once it
    has not been empty for ``interval`` it is standing, the newest request is served first and
    a request that waited more than ``target`` is shed. ``timeout`` bounds any request's wait
    (None: unbounded); a request shed by either rule ends ``shed``.
    """

    kind: QueueDisciplineKind = "fifo"
    timeout: float | None = None
    interval: float = 0.1
    target: float = 0.005

    def __post_init__(self) -> None:
        if self.timeout is not None:
            _check(self.timeout > 0.0, "queue timeout must be positive", self.timeout)
        _check(self.interval > 0.0, "interval must be positive", self.interval)
        _check(self.target >= 0.0, "target must not be negative", self.target)


LoadBalancerKind = Literal["round_robin", "random", "least_request", "consistent_hash"]


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    kind: LoadBalancerKind = "round_robin"
    choices: int = 2  # least_request: power-of-d choices


# ---------------------------------------------------------------------------------------------
# S: services, endpoints, calls, instances
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signature:
    """``handle(input): Result[output, errors]``; errors are the declared error names."""

    input: str = "Any"
    output: str = "Any"
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Call:
    """One call from an endpoint to ``service.endpoint``, with its resolved policies."""

    service: str
    endpoint: str
    timeout: float
    retries: int = 0
    backoff: Backoff = field(default_factory=Backoff)
    optional: bool = False
    asynchronous: bool = False
    probability: float = 1.0
    repeat: int = 1
    circuit_breaker: BreakerPolicy | None = None
    # Envoy's previous_hosts retry predicate: a retry avoids the instances already tried.
    retry_other_instance: bool = False
    # The overall deadline across all attempts and backoffs (Envoy's route timeout, a gRPC
    # deadline); ``timeout`` is the per-try timeout. None: attempts * timeout + backoffs.
    deadline: float | None = None
    # Hedged attempts instead of retries (gRPC hedging policy); None: no hedging.
    hedge: Hedge | None = None

    @property
    def target(self) -> str:
        return f"{self.service}.{self.endpoint}"

    @property
    def attempts(self) -> int:
        return self.retries + 1

    @property
    def required(self) -> bool:
        """Does the caller fail when this call, once made, fails?

        The one rule every checker uses: synchronous (the caller awaits it), not optional (its
        failure is not swallowed) and made at all (probability > 0). A required call with
        probability below 1 fails only the requests that make it (see ``certain``).
        """
        return not self.asynchronous and not self.optional and self.probability > 0

    @property
    def certain(self) -> bool:
        """A required call made on every request: its callee being down takes the caller down."""
        return self.required and self.probability >= 1


@dataclass(frozen=True, slots=True)
class ParallelCalls:
    """Calls fanned out together; the step finishes when all of them have."""

    calls: tuple[Call, ...]


Step = Call | ParallelCalls


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    service_time: Distribution = field(default_factory=lambda: Constant(0.0))
    signature: Signature = field(default_factory=Signature)
    steps: tuple[Step, ...] = ()
    # A token bucket per instance for this endpoint's requests (beside the service's own).
    rate_limit: RateLimit | None = None

    def calls(self) -> Iterator[Call]:
        """Every call of the endpoint, parallel groups flattened, in order."""
        for step in self.steps:
            if isinstance(step, ParallelCalls):
                yield from step.calls
            else:
                yield step


@dataclass(frozen=True, slots=True)
class Instance:
    service: str
    index: int
    zone: str

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    delay: float | None = 5.0  # None: a crashed instance never restarts


@dataclass(frozen=True, slots=True)
class Readiness:
    """Kubernetes readiness probing: the first probe ``initial_delay`` after a start, then one
    every ``period``; ``failures`` consecutive failed probes make a ready instance unready."""

    period: float = 10.0
    failures: int = 3
    initial_delay: float = 0.0

    @property
    def detection(self) -> float:
        """Longest time a crashed instance stays ready: until its ``failures``-th failed probe."""
        return self.period * self.failures


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    endpoints: FrozenMap  # str -> Endpoint
    zones: tuple[str, ...]  # zone of each replica, index = instance index
    workers: int = 1
    concurrency: int | None = None  # None: unlimited
    queue: int | None = None  # None: unlimited
    depends_on: tuple[str, ...] = ()
    load_balancer: LoadBalancer = field(default_factory=LoadBalancer)
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    readiness: Readiness = field(default_factory=Readiness)
    # How each caller's proxy ejects this service's failing hosts (None: it does not).
    outlier_detection: OutlierDetection | None = None
    # Envoy's max_retries circuit breaker for this service, kept by each caller instance: the
    # retries one caller instance may have outstanding to it at once (None: unlimited).
    max_retries: int | None = None
    # Envoy's retry budget / gRPC's retry throttling for calls to this service, kept by each
    # caller instance (None: no cap beyond each call's retries).
    retry_budget: RetryBudget | None = None
    retry_throttling: RetryThrottling | None = None
    # Server-side load shedding: queue order and wait bounds, and a token bucket per instance.
    queue_discipline: QueueDiscipline = field(default_factory=QueueDiscipline)
    rate_limit: RateLimit | None = None
    # gRPC deadline propagation: a request carries its caller's remaining time; this service
    # drops queued work whose deadline has passed (``deadline_exceeded``) and gives its own
    # calls at most the remainder.
    propagate_deadline: bool = False

    @property
    def replicas(self) -> int:
        return len(self.zones)

    @property
    def instances(self) -> tuple[Instance, ...]:
        return tuple(Instance(self.name, i, z) for i, z in enumerate(self.zones))


# ---------------------------------------------------------------------------------------------
# C, D, O and the workload
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Communication:
    """The network between instances."""

    same_zone_latency: Distribution = field(default_factory=lambda: Constant(0.0))
    cross_zone_latency: Distribution = field(default_factory=lambda: Constant(0.0))
    loss: float = 0.0


DiscoveryMode = Literal["client", "server"]


@dataclass(frozen=True, slots=True)
class Discovery:
    mode: DiscoveryMode = "server"
    heartbeat: float = 10.0
    ttl: float = 30.0
    refresh: float = 30.0
    # Server mode: a zone outage's instances leave the registry this long after it starts (the
    # node controller's grace period); an instance crash is noticed by readiness probes.
    zone_detection: float = 50.0


@dataclass(frozen=True, slots=True)
class Orchestration:
    """System-wide orchestration defaults (services carry their resolved copies)."""

    restart: RestartPolicy = field(default_factory=RestartPolicy)
    readiness: Readiness = field(default_factory=Readiness)


@dataclass(frozen=True, slots=True)
class RatePoint:
    """One point of a rate profile: from ``at`` seconds the rate is ``rate``; with ``ramp`` the
    rate rises or falls linearly from the previous point's rate to this one instead of
    stepping at ``at``."""

    at: float
    rate: float
    ramp: bool = False


def profile_rate(profile: tuple[RatePoint, ...], base: float, t: float) -> float:
    """The arrival rate at time ``t`` of a piecewise profile (``base`` before its first point)."""
    rate, previous_at, previous_rate = base, 0.0, base
    for point in profile:
        if t < point.at:
            if point.ramp and point.at > previous_at:
                share = (t - previous_at) / (point.at - previous_at)
                return previous_rate + share * (point.rate - previous_rate)
            return rate
        rate, previous_at, previous_rate = point.rate, point.at, point.rate
    return rate


@dataclass(frozen=True, slots=True)
class Workload:
    """Requests arriving from outside at ``service.endpoint``.

    ``rate`` is the rate at t = 0; a ``profile`` changes it over time (steps and linear ramps);
    ``timeout`` is the client's deadline for the whole request.
    """

    service: str
    endpoint: str
    rate: float
    arrivals: Literal["poisson", "constant"] = "poisson"
    timeout: float | None = None
    source: str = "client"
    profile: tuple[RatePoint, ...] = ()

    @property
    def entry(self) -> str:
        return f"{self.service}.{self.endpoint}"

    def rate_at(self, t: float) -> float:
        """The arrival rate at time ``t`` (without scenario surges)."""
        return profile_rate(self.profile, self.rate, t) if self.profile else self.rate

    @property
    def peak_rate(self) -> float:
        """The highest rate the workload ever reaches (what capacity must carry)."""
        return max([self.rate, *(p.rate for p in self.profile)])


@dataclass(frozen=True, slots=True)
class System:
    """M = (S, C, D, O), plus the zones, the workload, the properties and the scenarios."""

    services: FrozenMap  # str -> Service
    communication: Communication = field(default_factory=Communication)
    discovery: Discovery = field(default_factory=Discovery)
    orchestration: Orchestration = field(default_factory=Orchestration)
    name: str = "system"
    zones: tuple[str, ...] = ("default",)
    workload: tuple[Workload, ...] = ()
    properties: tuple[Property, ...] = ()
    scenarios: FrozenMap = field(default_factory=FrozenMap)  # str -> Scenario

    def endpoint(self, target: str) -> Endpoint:
        """The endpoint named ``service.endpoint``."""
        service, _, endpoint = target.partition(".")
        return self.services[service].endpoints[endpoint]

    @property
    def instances(self) -> tuple[Instance, ...]:
        return tuple(i for s in self.services.values() for i in s.instances)

    @property
    def entries(self) -> tuple[str, ...]:
        """Workload entry points, each once, in spec order."""
        return tuple(dict.fromkeys(w.entry for w in self.workload))


__all__ = [
    "Backoff",
    "BreakerPolicy",
    "Call",
    "Communication",
    "ConsecutiveBreakerPolicy",
    "Discovery",
    "Endpoint",
    "Fault",
    "FrozenMap",
    "Hedge",
    "Instance",
    "LoadBalancer",
    "Orchestration",
    "OutlierDetection",
    "ParallelCalls",
    "QueueDiscipline",
    "RateLimit",
    "RatePoint",
    "RateBreakerPolicy",
    "Readiness",
    "RestartPolicy",
    "RetryBudget",
    "RetryThrottling",
    "Scenario",
    "Service",
    "Signature",
    "Step",
    "System",
    "Workload",
]
