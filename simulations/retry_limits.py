"""What caps a caller's retries and hedges: Envoy's retry budget and gRPC's retry throttling.

Both live beside each caller instance (an Envoy proxy, a gRPC channel) and count per callee
service; one object here holds the state of every caller instance on one (caller service,
callee service) edge, indexed by the caller instance's index. Pure state machines: no SimPy,
no time; the engine (``simulations.engine.calls``) tells them what happens.

``OutstandingRetries`` is Envoy's ``max_retries`` circuit breaker: at most that many retries
outstanding at once. ``RetryBudgetState`` is Envoy's ``retry_budget`` (cluster circuit breaker
thresholds), which replaces ``max_retries`` when set: a retry may start only while the
caller's active retries to the service are below ``max(min_concurrency, percent / 100 *
active requests)``, active requests being the attempts sent and not yet settled (retries
among them). A retry holds its place from the moment it is
decided (its backoff included) until its attempt settles, as Envoy's retry resource does.

``RetryThrottle`` is gRPC's retry throttling (gRFC A6): a token count starts at
``max_tokens``; every failed attempt takes one token (not below 0), every successful one gives
back ``token_ratio`` (not above ``max_tokens``); retries and hedges are sent only while the
count is strictly above ``max_tokens / 2``.
"""

from __future__ import annotations

from faultmesh.model.policies import RetryBudget, RetryThrottling


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


class RetryBudgetState:
    """Envoy's retry budget on one edge: active requests and retries per caller instance.

    ``active[i]`` counts caller instance ``i``'s attempts in flight to the service,
    ``outstanding[i]`` its retries holding a place, ``peak[i]`` the most it ever had.
    """

    __slots__ = ("active", "min_concurrency", "outstanding", "peak", "share")

    def __init__(self, policy: RetryBudget, callers: int) -> None:
        self.share = policy.percent / 100.0
        self.min_concurrency = policy.min_concurrency
        self.active = [0] * callers
        self.outstanding = [0] * callers
        self.peak = [0] * callers

    def bound(self, index: int) -> float:
        """How many retries caller instance ``index`` may have at once, as things stand."""
        return max(float(self.min_concurrency), self.share * self.active[index])

    def reserve(self, index: int) -> bool:
        """Take a place for one retry of caller instance ``index``; False: over budget."""
        count = self.outstanding[index]
        if count >= self.min_concurrency and count >= self.share * self.active[index]:
            return False
        self.outstanding[index] = count = count + 1
        if count > self.peak[index]:
            self.peak[index] = count
        return True


class RetryThrottle:
    """gRPC's retry throttling on one edge: one token count per caller instance.

    Counts are kept in thousandths of a token, as integers: gRPC reads ``token_ratio`` to three
    decimals and its implementations count this way, so ten successes at 0.1 give back exactly
    one token (floats would leave 0.9999999999999999 and refuse a retry at the threshold).
    """

    __slots__ = ("max_milli", "ratio_milli", "threshold_milli", "tokens")

    def __init__(self, policy: RetryThrottling, callers: int) -> None:
        self.max_milli = round(policy.max_tokens * 1000)
        self.ratio_milli = max(1, round(policy.token_ratio * 1000))
        self.threshold_milli = self.max_milli / 2.0
        self.tokens = [self.max_milli] * callers

    def record(self, index: int, ok: bool) -> None:
        """An attempt of caller instance ``index`` settled: ``ok`` or failed."""
        tokens = self.tokens[index]
        if ok:
            if tokens < self.max_milli:
                self.tokens[index] = min(self.max_milli, tokens + self.ratio_milli)
        elif tokens > 0:
            self.tokens[index] = max(0, tokens - 1000)

    def allows(self, index: int) -> bool:
        """May caller instance ``index`` send a retry or a hedge now?"""
        return self.tokens[index] > self.threshold_milli

    def count(self, index: int) -> float:
        """Caller instance ``index``'s token count, in tokens."""
        return self.tokens[index] / 1000.0
