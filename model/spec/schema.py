"""The spec language as pydantic models: shape, types and units of every key.

These models mirror the YAML one to one (``extra="forbid"``: an unknown key is an error) and
give the JSON Schema for editors. They check what can be checked locally (types, units, ranges);
cross-references (does ``cart.GetCart`` exist?) are ``model.spec.build``'s job. Values that
carry units are parsed here, once, into seconds, per-second rates and fractions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from faultmesh.model.distributions import parse_distribution
from faultmesh.model.units import (
    DURATION_PATTERN,
    RATE_PATTERN,
    RATIO_PATTERN,
    parse_duration,
    parse_rate,
    parse_ratio,
)
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    WithJsonSchema,
    model_validator,
)

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]*$"
REF_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]*\.[A-Za-z0-9_][A-Za-z0-9_-]*$"

Duration = Annotated[float, BeforeValidator(parse_duration),
                     WithJsonSchema({"x-unit": "Duration"})]
Rate = Annotated[float, BeforeValidator(parse_rate), WithJsonSchema({"x-unit": "Rate"})]
Ratio = Annotated[float, BeforeValidator(parse_ratio), WithJsonSchema({"x-unit": "Ratio"})]
Dist = Annotated[Any, PlainValidator(parse_distribution),
                 WithJsonSchema({"x-unit": "Distribution"})]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
PropertyName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:>#-]*$")]
Ref = Annotated[str, Field(pattern=REF_PATTERN, description="service.endpoint")]
PositiveInt = Annotated[int, Field(ge=1, strict=True)]
NonNegativeInt = Annotated[int, Field(ge=0, strict=True)]
# Instances are materialised at load time (one zone entry each): without a bound, a typo such as
# 'replicas: 10000000000' made the loader allocate until the machine ran out of memory.
MAX_REPLICAS = 10_000
Replicas = Annotated[int, Field(ge=1, le=MAX_REPLICAS, strict=True)]
ReplicaCount = Annotated[int, Field(ge=0, le=MAX_REPLICAS, strict=True)]

# Every other count has a bound too: a value past it is a typo, and unbounded ones crashed
# valid specs (a breaker window of 1e12 calls allocated its whole window; retries: 150 with a
# failing callee recursed 150 deep; 10,000 failures ran the solver for minutes).
MAX_WORKERS = 10_000
MAX_IN_FLIGHT = 1_000_000  # concurrency and queue
MAX_WINDOW = 100_000  # breaker window and min_calls (Resilience4j's default window is 100)
MAX_RETRIES = 100
MAX_REPEAT = 1_000
MAX_FAILURES = 1_000  # survives/capacity failures, readiness failures
MAX_CHOICES = 1_000
Workers = Annotated[int, Field(ge=1, le=MAX_WORKERS, strict=True)]
InFlight = Annotated[int, Field(ge=1, le=MAX_IN_FLIGHT, strict=True)]
QueueLength = Annotated[int, Field(ge=0, le=MAX_IN_FLIGHT, strict=True)]
WindowCalls = Annotated[int, Field(ge=1, le=MAX_WINDOW, strict=True)]
Retries = Annotated[int, Field(ge=0, le=MAX_RETRIES, strict=True)]
Repeat = Annotated[int, Field(ge=1, le=MAX_REPEAT, strict=True)]
Failures = Annotated[int, Field(ge=0, le=MAX_FAILURES, strict=True)]
ProbeFailures = Annotated[int, Field(ge=1, le=MAX_FAILURES, strict=True)]
Choices = Annotated[int, Field(ge=1, le=MAX_CHOICES, strict=True)]

# Periodic work (heartbeats, cache refreshes, probes, restarts in turn) and failure cycles
# shorter than this would flood a run with events (a 0 period never advanced time at all).
MIN_PERIOD = 0.001


def _at_least_min_period(value: float) -> float:
    if value < MIN_PERIOD:
        raise ValueError(f"must be at least 1ms, got {value:g}s (a shorter period floods the "
                         "simulation with events; 0 would never let time advance)")
    return value


Period = Annotated[Duration, AfterValidator(_at_least_min_period)]

DEFINITIONS: dict[str, Any] = {
    "Duration": {"anyOf": [{"type": "number", "minimum": 0},
                           {"type": "string", "pattern": DURATION_PATTERN}],
                 "description": "seconds, or a string with a unit: 250ms, 30s, 2m, 1h"},
    "Rate": {"anyOf": [{"type": "number", "minimum": 0},
                       {"type": "string", "pattern": RATE_PATTERN}],
             "description": "per second, or 100/s, 6000/m"},
    "Ratio": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1},
                        {"type": "string", "pattern": RATIO_PATTERN}],
              "description": "0.999 or 99.9%"},
}


class SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              validate_default=True)


# --- C ----------------------------------------------------------------------------------------


class LatencySpec(SpecModel):
    same_zone: Dist = 0.0
    cross_zone: Dist = 0.0


class NetworkSpec(SpecModel):
    latency: LatencySpec = LatencySpec()
    loss: Ratio = 0.0


# --- D, O -------------------------------------------------------------------------------------


class DiscoverySpec(SpecModel):
    mode: Literal["client", "server"] = "server"
    heartbeat: Period = 10.0
    ttl: Duration = 30.0
    refresh: Period = 30.0
    zone_detection: Duration = 50.0


class RestartSpec(SpecModel):
    delay: Duration = 5.0


class ReadinessSpec(SpecModel):
    period: Period = 10.0
    failures: ProbeFailures = 3
    initial_delay: Duration = 0.0


Restart = RestartSpec | Literal["never"]


class OrchestrationSpec(SpecModel):
    restart: Restart = RestartSpec()
    readiness: ReadinessSpec = ReadinessSpec()


# --- resilience policies ----------------------------------------------------------------------


class BackoffSpec(SpecModel):
    strategy: Literal["none", "constant", "exponential"] = "exponential"
    base: Duration = 0.025
    cap: Duration = 0.25
    jitter: Literal["none", "full", "equal"] = "full"


Backoff = BackoffSpec | Literal["none"]


# A breaker threshold of 0% would open on the first call; Resilience4j rejects it too.
Threshold = Annotated[float, BeforeValidator(parse_ratio), Field(gt=0),
                      WithJsonSchema({"x-unit": "Ratio"})]


class SlowCallSpec(SpecModel):
    duration: Duration
    rate: Threshold = 1.0


class RateBreakerSpec(SpecModel):
    """Resilience4j semantics, count-based window."""

    failure_rate: Threshold = 0.5
    window: WindowCalls = 100
    min_calls: WindowCalls | None = None  # default: the window size
    open_for: Duration = 60.0
    half_open_calls: WindowCalls = 10
    slow_call: SlowCallSpec | None = None


class ConsecutiveBreakerSpec(SpecModel):
    """pybreaker semantics."""

    consecutive_failures: WindowCalls
    open_for: Duration = 60.0


class OutlierDetectionSpec(SpecModel):
    """Envoy outlier detection as Istio's DestinationRule sets it (Istio's defaults)."""

    consecutive_5xx: Failures = 5  # 0: off
    consecutive_gateway_errors: Failures = 0  # 0: off (Istio's default)
    interval: Period = 10.0
    base_ejection_time: Period = 30.0
    max_ejection_time: Duration = 300.0
    max_ejection_percent: Annotated[float, Field(ge=0, le=100)] = 10.0
    always_eject_one_host: bool = False


Outlier = OutlierDetectionSpec | Literal["none"]


def _breaker_kind(value: Any) -> str:
    if isinstance(value, str):
        return "~none"
    if isinstance(value, dict) and "consecutive_failures" in value:
        return "~consecutive"
    return "~rate"


Breaker = Annotated[
    Annotated[Literal["none"], Tag("~none")]
    | Annotated[RateBreakerSpec, Tag("~rate")]
    | Annotated[ConsecutiveBreakerSpec, Tag("~consecutive")],
    Discriminator(_breaker_kind),
]


class LeastRequestSpec(SpecModel):
    choices: Choices = 2


class LeastRequestChoice(SpecModel):
    least_request: LeastRequestSpec


LoadBalancer = (
    Literal["round_robin", "random", "least_request", "consistent_hash"] | LeastRequestChoice
)


# --- S: calls, endpoints, services ------------------------------------------------------------


class CallSpec(SpecModel):
    call: Ref
    timeout: Duration | None = None
    retries: Retries | None = None
    backoff: Backoff | None = None
    optional: bool = False
    async_: bool = Field(False, alias="async")
    probability: Ratio = 1.0
    repeat: Repeat = 1
    circuit_breaker: Breaker | None = None
    retry_other_instance: bool = False


def _call_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "~parallel" if "parallel" in value else "~call"
    return "~ref"


SimpleCall = Annotated[
    Annotated[Ref, Tag("~ref")] | Annotated[CallSpec, Tag("~call")],
    Discriminator(lambda v: "~call" if isinstance(v, dict) else "~ref"),
]


class ParallelSpec(SpecModel):
    parallel: Annotated[list[SimpleCall], Field(min_length=1)]


CallItem = Annotated[
    Annotated[Ref, Tag("~ref")]
    | Annotated[CallSpec, Tag("~call")]
    | Annotated[ParallelSpec, Tag("~parallel")],
    Discriminator(_call_kind),
]


class SignatureSpec(SpecModel):
    input: str = "Any"
    output: str = "Any"
    errors: list[Name] = []


class EndpointSpec(SpecModel):
    signature: SignatureSpec = SignatureSpec()
    service_time: Dist = 0.0
    calls: list[CallItem] = []


class ServiceSpec(SpecModel):
    replicas: Replicas = 1
    placement: dict[Name, ReplicaCount] | None = None
    workers: Workers = 1
    concurrency: InFlight | None = None
    queue: QueueLength | None = None
    depends_on: list[Name] = []
    load_balancer: LoadBalancer | None = None
    restart: Restart | None = None
    readiness: ReadinessSpec | None = None
    outlier_detection: Outlier | None = None  # None: the defaults' ("none": off)
    endpoints: Annotated[dict[Name, EndpointSpec], Field(min_length=1)]


# --- defaults, workload -----------------------------------------------------------------------


class CallDefaultsSpec(SpecModel):
    timeout: Duration = 1.0
    retries: Retries = 0
    backoff: Backoff = BackoffSpec()


class DefaultsSpec(SpecModel):
    call: CallDefaultsSpec = CallDefaultsSpec()
    load_balancer: LoadBalancer = "round_robin"
    circuit_breaker: Breaker = "none"
    outlier_detection: Outlier = "none"


class WorkloadSpec(SpecModel):
    entry: Ref
    rate: Rate
    arrivals: Literal["poisson", "constant"] = "poisson"
    timeout: Duration | None = None
    source: Name = "client"


# --- properties -------------------------------------------------------------------------------

FailureKind = Literal["instance", "zone"]


class SurvivesSpec(SpecModel):
    name: PropertyName | None = None
    failures: Failures = 1
    of: Annotated[list[FailureKind], Field(min_length=1)] = ["instance", "zone"]


class CapacitySpec(SpecModel):
    name: PropertyName | None = None
    failures: Failures = 1
    of: Annotated[list[FailureKind], Field(min_length=1)] = ["instance", "zone"]
    utilization: Ratio = 1.0
    rejected: Ratio = 0.001


class NamedSpec(SpecModel):
    name: PropertyName | None = None


class RetryAmplificationSpec(SpecModel):
    name: PropertyName | None = None
    max: Annotated[float, Field(gt=0)]


class AvailabilitySpec(SpecModel):
    name: PropertyName | None = None
    entry: Ref
    at_least: Ratio
    window: Duration = 60.0


class LatencyPropertySpec(SpecModel):
    name: PropertyName | None = None
    entry: Ref
    p50: Duration | None = None
    p90: Duration | None = None
    p95: Duration | None = None
    p99: Duration | None = None
    p999: Duration | None = None
    window: Duration = 60.0

    @model_validator(mode="after")
    def _one_quantile(self) -> LatencyPropertySpec:
        given = [q for q in ("p50", "p90", "p95", "p99", "p999") if getattr(self, q) is not None]
        if len(given) != 1:
            raise ValueError("a latency property takes exactly one of p50, p90, p95, p99, p999")
        return self


class BreakerReactionSpec(SpecModel):
    name: PropertyName | None = None
    within: Duration = 10.0
    edge: str | None = None


def _single_key_item(models: dict[str, type[SpecModel]], what: str) -> Any:
    """A one-key mapping ``{kind: {...}}`` whose key picks the model, e.g. ``{survives: {..}}``."""
    items = {
        kind: Annotated[
            type(f"{model.__name__}Item", (SpecModel,), {
                "__annotations__": {kind: model},
                "__module__": __name__,
                "__doc__": f"{{{kind}: ...}}",
            }),
            Tag(f"~{kind}"),
        ]
        for kind, model in models.items()
    }

    def pick(value: Any) -> str | None:
        if isinstance(value, dict) and len(value) == 1:
            key = next(iter(value))
            if key in models:
                return f"~{key}"
        return None

    union: Any = None
    for item in items.values():
        union = item if union is None else union | item
    return Annotated[union, Discriminator(pick, custom_error_type=f"unknown_{what}",
                                          custom_error_message=f"unknown {what}")]


PROPERTY_MODELS: dict[str, type[SpecModel]] = {
    "survives": SurvivesSpec,
    "capacity": CapacitySpec,
    "timeouts_nest": NamedSpec,
    "retry_amplification": RetryAmplificationSpec,
    "staleness": NamedSpec,
    "breaker": NamedSpec,
    "availability": AvailabilitySpec,
    "latency": LatencyPropertySpec,
    "breaker_reaction": BreakerReactionSpec,
}
PropertyItem = _single_key_item(PROPERTY_MODELS, "property")


# --- scenarios and faults ---------------------------------------------------------------------


class LatencyFaultSpec(SpecModel):
    target: str
    add: Dist


class ErrorFaultSpec(SpecModel):
    target: str
    rate: Ratio


class PartitionSpec(SpecModel):
    between: Annotated[list[str], Field(min_length=2, max_length=2)]
    oneway: bool = False


class LossFaultSpec(SpecModel):
    rate: Ratio
    between: Annotated[list[str], Field(min_length=2, max_length=2)] | None = None


class SlowdownSpec(SpecModel):
    target: str
    factor: Annotated[float, Field(gt=0)]


class RollingRestartSpec(SpecModel):
    target: str
    interval: Period = 30.0


class RegistryOutageSpec(SpecModel):
    pass


FAULT_KINDS = ("crash", "latency", "errors", "partition", "loss", "slowdown", "registry_outage",
               "rolling_restart")


class FaultSpec(SpecModel):
    at: Duration = 0.0
    for_: Duration | None = Field(None, alias="for")
    crash: str | None = None
    mttf: Period | None = None
    mttr: Duration | None = None
    latency: LatencyFaultSpec | None = None
    errors: ErrorFaultSpec | None = None
    partition: PartitionSpec | None = None
    loss: LossFaultSpec | None = None
    slowdown: SlowdownSpec | None = None
    registry_outage: RegistryOutageSpec | None = None
    rolling_restart: RollingRestartSpec | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> FaultSpec:
        given = [k for k in FAULT_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a fault takes exactly one of {', '.join(FAULT_KINDS)}"
                + (f"; got {', '.join(given)}" if given else "")
            )
        if (self.mttf is None) != (self.mttr is None):
            raise ValueError("mttf and mttr go together")
        if self.mttf is not None and self.crash is None:
            raise ValueError("mttf/mttr apply to crash faults only")
        return self


class ScenarioSpec(SpecModel):
    duration: Duration | None = None
    warmup: Duration | None = None  # omitted: detected after the run (MSER-5)
    faults: list[FaultSpec] = []


# --- the document -----------------------------------------------------------------------------


class Spec(SpecModel):
    """A topology spec: one system M = (S, C, D, O) with its workload, properties, scenarios."""

    model_config = ConfigDict(title="faultmesh topology spec")

    system: Name
    zones: Annotated[list[Name], Field(min_length=1)] | None = None
    network: NetworkSpec = NetworkSpec()
    discovery: DiscoverySpec = DiscoverySpec()
    orchestration: OrchestrationSpec = OrchestrationSpec()
    defaults: DefaultsSpec = DefaultsSpec()
    services: Annotated[dict[Name, ServiceSpec], Field(min_length=1)]
    workload: list[WorkloadSpec] = []
    properties: list[PropertyItem] = []  # type: ignore[valid-type]
    scenarios: dict[Name, ScenarioSpec] = {}


def all_keys() -> set[str]:
    """Every key the spec language knows, for "did you mean" hints."""
    keys: set[str] = set(PROPERTY_MODELS) | set(FAULT_KINDS)
    seen: set[type] = set()

    def visit(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, info in model.model_fields.items():
            keys.add(info.alias or name)
        for sub in SpecModel.__subclasses__():
            visit(sub)

    visit(Spec)
    return keys


def _link_units(node: Any) -> Any:
    """Replace our ``x-unit`` placeholders by references to the shared unit definitions."""
    if isinstance(node, list):
        return [_link_units(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _link_units(value) for key, value in node.items()}
    unit = out.pop("x-unit", None)
    if unit is not None:
        out["$ref"] = f"#/$defs/{unit}"
    return out


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the spec, for editors' YAML language servers."""
    from faultmesh.model.distributions import distribution_json_schema

    schema = _link_units(Spec.model_json_schema(by_alias=True))
    schema.setdefault("$defs", {}).update(DEFINITIONS)
    schema["$defs"]["Distribution"] = distribution_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://faultmesh.dev/schema/spec.json"
    return schema
