"""The shape of a run's summary: typed here, JSON only at the edges.

``Run.summary`` is a ``RunSummary``: the ``simulate --json`` object of the design (``system``,
``scenario``, ``seed``, ``duration_s``, ``entries``, ``services``, ``breakers``,
``properties``) plus the keys the terminal view, the report and the sweep tables read
(``verdict``, ``warmup_s``, ``requests``, ``calls``, ``faults``, ``phases``). The engine
builds it, the observation layer fills its parts, and presentation and sweeps read it through
these types, so a renamed or missing key is a type error rather than a silent ``.get(...) or {}``.
Being ``TypedDict``\\ s, the values are plain dicts: ``json.dumps(run.summary)`` is the wire
format, and notebooks index them as before.

Times are seconds; ratios are fractions in [0, 1]; ``None`` stands for "not measured" (no
requests, or a value that was not finite).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

Status = Literal["holds", "violated"]


class LatencySummary(TypedDict):
    """Latency of the successful requests, in seconds (None when there were none)."""

    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None


class EntrySummary(TypedDict):
    """One workload entry (``service.endpoint``) over the measured part of the run."""

    requests: int
    ok: int
    failed: int
    availability: float | None
    latency_s: LatencySummary
    outcomes: dict[str, int]  # ok / error / timeout / rejected
    causes: dict[str, int]  # why requests failed, by cause
    root_causes: dict[str, int]  # where the failures started, by service


class InstanceSummary(TypedDict):
    zone: str
    utilization: float
    requests: int
    up_s: float


class ServiceSummary(TypedDict):
    utilization: float
    requests: int
    rejected: int
    retries: int
    refused: int
    injected_errors: int
    rate_limited: int  # refused by a token bucket (in ``rejected`` too)
    shed: int  # dropped from the queue past its wait bound (in ``rejected`` too)
    deadline_exceeded: int  # dropped past a propagated deadline (a timeout, not a rejection)
    orphaned: int  # jobs served after their caller gave up
    queued: float | None
    wait_s: float | None
    instances: dict[str, InstanceSummary]


class BreakerInstance(TypedDict):
    """One breaker: it lives in a caller instance, one per call-site policy."""

    instance: str
    kind: str
    state: str
    sites: list[str]


class BreakerSummary(TypedDict):
    """The circuit breakers of one ``caller->callee`` edge."""

    kind: str  # "rate" (Resilience4j), "consecutive" (pybreaker), or both joined by "+"
    state: str  # the worst final state among the edge's breakers
    transitions: list[list[float | str]]  # [[t, state, breaker label], ...] in time order
    instances: dict[str, BreakerInstance]  # breaker label -> where it lives


class CallSummary(TypedDict):
    """The calls made along one ``caller->callee`` edge."""

    calls: int
    attempts: int
    failed: int
    degraded: int
    retry_overflow: int  # retries not made: the callee's max_retries or retry budget was reached
    throttled: int  # retries and hedges not made: the callee's gRPC retry throttling
    # ``attempts`` by kind, and the callee's jobs for this caller started after their
    # deadline: the shares of the callee's load that retries, hedges and work for callers
    # that already gave up make (``orphaned``).
    first_attempts: int
    retries: int
    hedges: int
    orphaned: int
    causes: dict[str, int]


class Violation(TypedDict):
    at: float | None
    until: float | None
    value: float | None
    detail: str


class PropertySummary(TypedDict):
    """A monitor's verdict, with the keys its kind adds."""

    name: str
    kind: str
    status: Status
    violations: list[Violation]
    violation_count: int
    entry: NotRequired[str]  # availability, latency
    value: NotRequired[float | None]  # availability, latency: the run-long value
    threshold: NotRequired[float]
    faults_checked: NotRequired[int]  # breaker_reaction
    failed_requests: NotRequired[int]  # staleness
    window_bound_s: NotRequired[float]
    requests: NotRequired[dict[str, int]]  # no_lost_requests: the ledger
    # recovers: the trigger's end, the window, when the entry came back and what held it down
    applicable: NotRequired[bool]
    note: NotRequired[str | None]
    window_s: NotRequired[float]
    trigger_end_s: NotRequired[float | None]
    recovered_s: NotRequired[float | None]
    sustained_by: NotRequired[list[dict[str, Any]]]


class OutlierSummary(TypedDict):
    """Outlier detection on one (caller service, callee service) edge."""

    # [t, callee instance, "eject" | "return", caller instance], in time order
    ejections: list[list[Any]]
    ejected: int  # ejections made
    overflows: int  # detections the max-ejection-percent rule refused
    still_ejected: list[str]  # "caller:callee" pairs ejected at the end of the run


class FaultSummary(TypedDict):
    kind: str
    fault: str
    at: float
    until: float | None
    edges: list[str]


class UnfiredFault(TypedDict):
    """A scenario fault that never started: the run ended (``duration_s``) before its ``at``."""

    kind: str
    fault: str
    at: float


class PhaseEntry(TypedDict):
    requests: int
    ok: int
    errors: int
    timeouts: int
    rejected: int
    availability: float | None
    p50: float | None
    p99: float | None


# A stretch of the run between fault boundaries; "from" is a keyword, hence this syntax.
PhaseSpan = TypedDict("PhaseSpan", {"from": float, "to": float, "label": str, "faults": list[str]})
PhaseSummary = TypedDict("PhaseSummary", {
    "from": float,
    "to": float,
    "label": str,
    "faults": list[str],
    "entries": dict[str, PhaseEntry],
    "breakers": dict[str, dict[str, int]],  # edge -> {state: transitions into it}
})


class WarmupSummary(TypedDict):
    """What the run discarded at its start, and why."""

    seconds: float
    detected: bool  # True: found by the rule below; False: the scenario's own ``warmup``
    rule: str  # "MSER-5" or "scenario"
    settled: NotRequired[bool]  # MSER-5 found a truncation point inside the searched half
    searched_s: NotRequired[float]


class RunSummary(TypedDict):
    """The whole summary of one run (the ``simulate --json`` object)."""

    system: str
    scenario: str | None
    seed: int
    duration_s: float
    warmup_s: float
    warmup: WarmupSummary
    verdict: Status
    entries: dict[str, EntrySummary]
    services: dict[str, ServiceSummary]
    breakers: dict[str, BreakerSummary]
    calls: dict[str, CallSummary]
    properties: list[PropertySummary]
    requests: dict[str, int]  # the ledger: started, each outcome, in flight
    faults: list[FaultSummary]
    faults_not_fired: list[UnfiredFault]
    phases: NotRequired[list[PhaseSummary]]
    outliers: NotRequired[dict[str, OutlierSummary]]  # edges with outlier detection
