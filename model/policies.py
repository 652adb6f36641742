"""Resilience policies as pure data: breakers, backoff, outlier detection, retry budgets and
throttling, hedging, rate limits, queue disciplines and load balancers.

The state machines that act on them live in the simulator (``simulations.breakers``,
``simulations.engine``) and their fluid or exact readings in ``model.verify``; the meaning of
each is written in the README with the system it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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
