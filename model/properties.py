"""Properties a user asks of a System: what `verify` proves and what monitors watch.

Each property is a small frozen value with a ``kind`` (its spec key) and a ``name`` (unique in
the spec; defaults to the kind, qualified by the entry for per-entry properties). Static
properties are decided by ``model.verify``; dynamic ones are checked by the simulator's
monitors; some are both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

FAILURE_KINDS = ("instance", "zone")


@dataclass(frozen=True, slots=True, kw_only=True)
class Survives:
    """No set of at most ``failures`` failed instances/zones takes any workload entry down."""

    kind: ClassVar[str] = "survives"
    name: str = "survives"
    failures: int = 1
    of: tuple[str, ...] = FAILURE_KINDS


@dataclass(frozen=True, slots=True, kw_only=True)
class Capacity:
    """Under any ``failures`` failures, every surviving instance stays below ``utilization`` and
    rejects at most ``rejected`` of its requests (``queue``/``concurrency`` limits)."""

    kind: ClassVar[str] = "capacity"
    name: str = "capacity"
    failures: int = 1
    of: tuple[str, ...] = FAILURE_KINDS
    utilization: float = 1.0  # the largest utilization accepted (strictly below)
    rejected: float = 0.001  # the largest share of requests an instance may reject (limits)


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutsNest:
    """Every caller's timeout covers its callee's worst-case time including retries."""

    kind: ClassVar[str] = "timeouts_nest"
    name: str = "timeouts_nest"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryAmplification:
    """Worst-case attempts reaching any service per entry request stay within ``max``."""

    kind: ClassVar[str] = "retry_amplification"
    name: str = "retry_amplification"
    max: float = 8.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Staleness:
    """With client-side discovery, callers cover the window in which they route to the dead."""

    kind: ClassVar[str] = "staleness"
    name: str = "staleness"


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerSafety:
    """Every configured breaker's state machine is safe and live (proved by k-induction)."""

    kind: ClassVar[str] = "breaker"
    name: str = "breaker"


@dataclass(frozen=True, slots=True, kw_only=True)
class Availability:
    """Share of the entry's requests that succeed, over the run and per sliding window."""

    kind: ClassVar[str] = "availability"
    name: str
    entry: str
    at_least: float
    window: float = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Latency:
    """The entry's latency quantile stays within ``threshold`` seconds."""

    kind: ClassVar[str] = "latency"
    name: str
    entry: str
    quantile: float  # 0.99 for p99
    threshold: float
    window: float = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerReaction:
    """After a fault starts, a breaker on an affected edge opens within ``within`` seconds."""

    kind: ClassVar[str] = "breaker_reaction"
    name: str = "breaker_reaction"
    within: float = 10.0
    edge: str | None = None  # "caller->callee"; None: any edge into a faulted service


@dataclass(frozen=True, slots=True, kw_only=True)
class Recovers:
    """After the scenario's last fault or surge ends, the entry's availability returns to
    ``to`` within ``within`` seconds and stays there (simulation)."""

    kind: ClassVar[str] = "recovers"
    name: str
    entry: str
    within: float = 30.0
    to: float = 0.99


@dataclass(frozen=True, slots=True, kw_only=True)
class OverloadRecovery:
    """No overloaded state sustains itself at the nominal workload: even when every attempt
    times out (retries, hedges and work for callers that gave up all counted, budgets,
    throttling, deadlines and shedding capping them), every service's load stays below its
    capacity, so any trigger's backlog drains once the trigger ends (the fluid model)."""

    kind: ClassVar[str] = "overload_recovery"
    name: str = "overload_recovery"


@dataclass(frozen=True, slots=True, kw_only=True)
class StartupOrder:
    """Always on: the depends_on relation has an order (no cycle); counterexample: the cycle."""

    kind: ClassVar[str] = "startup_order"
    name: str = "startup_order"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallCycles:
    """Always on: no synchronous call cycle between (service, endpoint) pairs."""

    kind: ClassVar[str] = "call_cycles"
    name: str = "call_cycles"


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorsCovered:
    """Always on: each endpoint declares every error its non-optional calls can surface."""

    kind: ClassVar[str] = "errors_covered"
    name: str = "errors_covered"


ALWAYS_ON = (StartupOrder(), CallCycles(), ErrorsCovered())

Property = (
    Survives
    | Capacity
    | TimeoutsNest
    | RetryAmplification
    | Staleness
    | BreakerSafety
    | Availability
    | Latency
    | BreakerReaction
    | Recovers
    | OverloadRecovery
    | StartupOrder
    | CallCycles
    | ErrorsCovered
)

PROPERTY_TYPES: dict[str, type] = {
    cls.kind: cls
    for cls in (Survives, Capacity, TimeoutsNest, RetryAmplification, Staleness, BreakerSafety,
                Availability, Latency, BreakerReaction, Recovers, OverloadRecovery, StartupOrder,
                CallCycles, ErrorsCovered)
}

# Properties that `verify` decides statically; the rest are watched by simulation monitors.
STATIC_KINDS = ("survives", "capacity", "timeouts_nest", "retry_amplification", "staleness",
                "breaker", "overload_recovery", "startup_order", "call_cycles", "errors_covered")

# Latency quantile keys accepted in the spec, e.g. {latency: {entry: x.y, p99: 250ms}}.
LATENCY_QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999}
