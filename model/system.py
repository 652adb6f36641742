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
from faultmesh.model.policies import (
    Backoff,
    BackoffStrategy,
    BreakerPolicy,
    ConsecutiveBreakerPolicy,
    Hedge,
    Jitter,
    LoadBalancer,
    LoadBalancerKind,
    OutlierDetection,
    QueueDiscipline,
    QueueDisciplineKind,
    RateBreakerPolicy,
    RateLimit,
    RetryBudget,
    RetryThrottling,
)
from faultmesh.model.properties import Property

# The one zone of a spec that names none (zone failures then mean nothing).
DEFAULT_ZONE = "default"


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


@dataclass(frozen=True, slots=True)
class OneOf:
    """Exactly one of the calls per request, call ``i`` chosen with ``weights[i] / total``."""

    calls: tuple[Call, ...]
    weights: tuple[float, ...]

    def shares(self) -> tuple[float, ...]:
        total = sum(self.weights)
        return tuple(w / total for w in self.weights)


@dataclass(frozen=True, slots=True)
class Group:
    """Calls made together with one ``probability`` per request (one draw for all of them):
    ``parallel`` fans them out as a ``ParallelCalls``; otherwise they run one after another."""

    probability: float
    calls: tuple[Call, ...]
    parallel: bool = False


@dataclass(frozen=True, slots=True)
class Fallback:
    """A call with a fallback: ``fallback`` is made when ``primary`` fails (after its retries);
    the step fails only when both do."""

    primary: Call
    fallback: Call

    @property
    def calls(self) -> tuple[Call, Call]:
        return (self.primary, self.fallback)


Step = Call | ParallelCalls | OneOf | Group | Fallback


def step_calls(step: Step) -> tuple[Call, ...]:
    """The calls of one step, in spec order (a plain call is its own only member)."""
    return (step,) if isinstance(step, Call) else step.calls


def step_shares(step: Step) -> tuple[float, ...]:
    """For each of ``step_calls(step)``, the share of the endpoint's requests on which the
    step reaches it (before the call's own ``probability``): a ``one_of`` branch its weight's
    share, a group's calls the group's probability, a fallback's callee all of them (an upper
    bound: it is made only when the primary fails)."""
    if isinstance(step, OneOf):
        return step.shares()
    if isinstance(step, Group):
        return (step.probability,) * len(step.calls)
    return (1.0,) * len(step_calls(step))


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    service_time: Distribution = field(default_factory=lambda: Constant(0.0))
    signature: Signature = field(default_factory=Signature)
    steps: tuple[Step, ...] = ()
    # A token bucket per instance for this endpoint's requests (beside the service's own).
    rate_limit: RateLimit | None = None
    # The operation as its users name it (``GET /api/v1/orders/{id}``); None: the name.
    label: str | None = None

    def calls(self) -> Iterator[Call]:
        """Every call of the endpoint, every step form flattened, in order."""
        for step in self.steps:
            yield from step_calls(step)


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
class Sessions:
    """A closed workload: ``users`` each send ``steps`` (``service.endpoint``) in order, one at
    a time, waiting a ``think`` time before each request, then start again.

    A user has at most one request out, so the sessions send at most ``users / think`` requests
    per second in all (the response time only lowers it): the rate ``rate`` bounds.
    """

    users: int
    think: Distribution
    steps: tuple[str, ...]
    source: str = "sessions"
    timeout: float | None = None

    @property
    def rate(self) -> float:
        """The throughput bound users / think (infinite with no think time)."""
        mean = self.think.mean
        return self.users / mean if mean > 0 else float("inf")

    def step_rates(self) -> dict[str, float]:
        """Each step entry's share of ``rate`` (an entry listed twice gets two shares)."""
        out: dict[str, float] = {}
        for step in self.steps:
            out[step] = out.get(step, 0.0) + self.rate / len(self.steps)
        return out


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
    sessions: tuple[Sessions, ...] = ()  # closed workloads, beside the open ``workload``

    def endpoint(self, target: str) -> Endpoint:
        """The endpoint named ``service.endpoint``."""
        service, _, endpoint = target.partition(".")
        return self.services[service].endpoints[endpoint]

    @property
    def instances(self) -> tuple[Instance, ...]:
        return tuple(i for s in self.services.values() for i in s.instances)

    @property
    def entries(self) -> tuple[str, ...]:
        """Workload entry points (session steps included), each once, in spec order."""
        return tuple(dict.fromkeys([*(w.entry for w in self.workload),
                                    *(step for s in self.sessions for step in s.steps)]))


__all__ = [
    "DEFAULT_ZONE",
    "Backoff",
    "BackoffStrategy",
    "BreakerPolicy",
    "Call",
    "Communication",
    "ConsecutiveBreakerPolicy",
    "Discovery",
    "Endpoint",
    "Fallback",
    "Fault",
    "FrozenMap",
    "Group",
    "Hedge",
    "Instance",
    "Jitter",
    "LoadBalancer",
    "LoadBalancerKind",
    "OneOf",
    "Orchestration",
    "OutlierDetection",
    "ParallelCalls",
    "QueueDiscipline",
    "QueueDisciplineKind",
    "RateBreakerPolicy",
    "RateLimit",
    "RatePoint",
    "Readiness",
    "RestartPolicy",
    "RetryBudget",
    "RetryThrottling",
    "Scenario",
    "Service",
    "Sessions",
    "Signature",
    "Step",
    "System",
    "Workload",
    "step_calls",
    "step_shares",
]
