"""The spec language as pydantic models: shape, types and units of every key.

The field types (units, names, bounded counts) are in ``fields``; properties and scenarios in
``schema_checks``; the workload in ``schema_workload``; this module holds the system
M = (S, C, D, O), the document ``Spec`` and its JSON Schema, and re-exports the rest so
``schema`` is the one name to import.

These models mirror the YAML one to one (``extra="forbid"``: an unknown key is an error) and
give the JSON Schema for editors. They check what can be checked locally (types, units, ranges);
cross-references (does ``cart.GetCart`` exist?) are ``model.spec.build``'s job. Values that
carry units are parsed here, once, into seconds, per-second rates and fractions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    create_model,
    model_validator,
)

from faultmesh.model.spec.fields import (
    DEFINITIONS,
    MAX_REPLICAS,
    REF_PATTERN,
    Choices,
    Dist,
    Duration,
    Failures,
    InFlight,
    Name,
    Period,
    ProbeFailures,
    QueueLength,
    Ratio,
    Ref,
    Repeat,
    ReplicaCount,
    Replicas,
    Retries,
    RetryLimit,
    SpecModel,
    WindowCalls,
    Workers,
)
from faultmesh.model.spec.mitigations import (
    HedgeKey,
    PositiveDuration,
    RetryBudgetSpec,
    RetryThrottlingSpec,
)
from faultmesh.model.spec.schema_checks import (
    FAULT_KINDS,
    PROPERTY_MODELS,
    FaultSpec,
    PropertyItem,
    ScenarioSpec,
)
from faultmesh.model.spec.schema_workload import (
    RatePointSpec,
    SessionsSpec,
    Weight,
    WorkloadRate,
    WorkloadSpec,
)
from faultmesh.model.units import (
    parse_rate,
    parse_ratio,
)

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


def _word_or_value(value: Any) -> str:
    """A value or a keyword (``never``, ``none``, ``unlimited``), told apart by type first, so
    a bad value gets only its own error, not also "should be 'none'". The loader drops the
    ``~`` tags from error paths."""
    return "~word" if isinstance(value, str) else "~value"



Restart = Annotated[Annotated[Literal["never"], Tag("~word")]
                    | Annotated[RestartSpec, Tag("~value")], Discriminator(_word_or_value)]


class OrchestrationSpec(SpecModel):
    restart: Restart = RestartSpec()
    readiness: ReadinessSpec = ReadinessSpec()


# --- resilience policies ----------------------------------------------------------------------


class BackoffSpec(SpecModel):
    strategy: Literal["none", "constant", "exponential"] = "exponential"
    base: Duration = 0.025
    cap: Duration = 0.25
    jitter: Literal["none", "full", "equal"] = "full"


Backoff = Annotated[Annotated[Literal["none"], Tag("~word")]
                    | Annotated[BackoffSpec, Tag("~value")], Discriminator(_word_or_value)]


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


Outlier = Annotated[Annotated[Literal["none"], Tag("~word")]
                    | Annotated[OutlierDetectionSpec, Tag("~value")], Discriminator(_word_or_value)]
# Envoy's max_retries circuit breaker, per caller instance; "unlimited" is Istio's default.
MaxRetries = Annotated[Annotated[Literal["unlimited"], Tag("~word")]
                       | Annotated[RetryLimit, Tag("~value")], Discriminator(_word_or_value)]


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


# Client-side overload mitigations (hedging, deadlines, retry budget and throttling) are in
# ``mitigations``: ``PositiveDuration``, ``HedgeKey``, ``RetryBudgetSpec``, ``RetryThrottlingSpec``.


# Server-side load shedding (issue 11): a token bucket per instance (Envoy's local rate limit)
# and the queue's discipline (FIFO, LIFO, Facebook's adaptive LIFO with CoDel).
PositiveRate = Annotated[float, BeforeValidator(parse_rate), Field(gt=0),
                         WithJsonSchema({"x-unit": "Rate"})]


class RateLimitSpec(SpecModel):
    """A token bucket: ``burst`` tokens, refilled at ``rate``; no token: ``rate limited``."""

    rate: PositiveRate
    burst: InFlight = 1


class AdaptiveLifoParams(SpecModel):
    """CoDel's parameters as Facebook's adaptive LIFO uses them (defaults 100 ms and 5 ms)."""

    interval: PositiveDuration = 0.1
    target: Duration = 0.005


class AdaptiveLifoSpec(SpecModel):
    adaptive_lifo: AdaptiveLifoParams


QueueDisciplineSpec = Annotated[
    Annotated[Literal["fifo", "lifo", "adaptive_lifo"], Tag("~word")]
    | Annotated[AdaptiveLifoSpec, Tag("~value")], Discriminator(_word_or_value)]


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
    deadline: PositiveDuration | None = None  # None: the defaults'
    hedge: HedgeKey | None = None  # None: the defaults' ("none": off)
    # Made when this call fails (after its retries); the step fails only if both fail.
    fallback: SimpleCall | None = None


_FORMS = ("parallel", "one_of", "group")


def _call_kind(value: Any) -> str:
    if isinstance(value, dict):
        return next((f"~{form}" for form in _FORMS if form in value), "~call")
    return "~ref"


SimpleCall = Annotated[
    Annotated[Ref, Tag("~ref")] | Annotated[CallSpec, Tag("~call")],
    Discriminator(lambda v: "~call" if isinstance(v, dict) else "~ref"),
]


class ParallelSpec(SpecModel):
    parallel: Annotated[list[SimpleCall], Field(min_length=1)]


class BranchSpec(CallSpec):
    """A ``one_of`` branch: a call and its weight (its share is weight / total)."""

    weight: Weight = 1.0


Branch = Annotated[
    Annotated[Ref, Tag("~ref")] | Annotated[BranchSpec, Tag("~call")],
    Discriminator(lambda v: "~call" if isinstance(v, dict) else "~ref"),
]


class OneOfSpec(SpecModel):
    """Exactly one of the calls per request, chosen by weight."""

    one_of: Annotated[list[Branch], Field(min_length=1)]


class GroupBodySpec(SpecModel):
    """Calls made together with one probability: ``parallel`` fans them out, ``calls`` makes
    them in order."""

    probability: Ratio
    parallel: Annotated[list[SimpleCall], Field(min_length=1)] | None = None
    calls: Annotated[list[SimpleCall], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _one_list(self) -> GroupBodySpec:
        if (self.parallel is None) == (self.calls is None):
            raise ValueError("a group takes exactly one of 'parallel' (fanned out) or 'calls' "
                             "(in order)")
        return self


class GroupSpec(SpecModel):
    group: GroupBodySpec


CallItem = Annotated[
    Annotated[Ref, Tag("~ref")]
    | Annotated[CallSpec, Tag("~call")]
    | Annotated[ParallelSpec, Tag("~parallel")]
    | Annotated[OneOfSpec, Tag("~one_of")]
    | Annotated[GroupSpec, Tag("~group")],
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
    rate_limit: RateLimitSpec | None = None
    # The operation as its users name it (``GET /api/v1/orders/{id}``), shown in output.
    label: Annotated[str, Field(min_length=1, max_length=500)] | None = None


class EndpointDefaultsSpec(SpecModel):
    """Settings merged under every endpoint of a service (``model.spec.templates``)."""

    signature: SignatureSpec | None = None
    service_time: Dist | None = None
    calls: list[CallItem] | None = None
    rate_limit: RateLimitSpec | None = None


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
    max_retries: MaxRetries | None = None  # None: the defaults'
    retry_budget: RetryBudgetSpec | None = None
    retry_throttling: RetryThrottlingSpec | None = None
    propagate_deadline: bool = False
    queue_timeout: PositiveDuration | None = None
    queue_discipline: QueueDisciplineSpec = "fifo"
    rate_limit: RateLimitSpec | None = None
    endpoints: Annotated[dict[Name, EndpointSpec], Field(min_length=1)]
    # Expanded by ``model.spec.templates`` before the build, kept for the schema and editors.
    extends: Name | Annotated[list[Name], Field(min_length=1)] | None = None
    endpoint_defaults: EndpointDefaultsSpec | None = None


# A template: any service keys, none required (a template need not declare endpoints).
ServiceTemplateSpec = create_model(  # type: ignore[call-overload]
    "ServiceTemplateSpec", __base__=SpecModel,
    __doc__="Service keys shared by the services that extend it (deep-merged under theirs).",
    **{name: (info.annotation | None, Field(None, alias=info.alias))  # type: ignore[operator]
       for name, info in ServiceSpec.model_fields.items()})


# --- defaults, workload -----------------------------------------------------------------------


class CallDefaultsSpec(SpecModel):
    timeout: Duration = 1.0
    retries: Retries = 0
    backoff: Backoff = BackoffSpec()
    deadline: PositiveDuration | None = None
    hedge: HedgeKey = "none"


class DefaultsSpec(SpecModel):
    call: CallDefaultsSpec = CallDefaultsSpec()
    load_balancer: LoadBalancer = "round_robin"
    circuit_breaker: Breaker = "none"
    outlier_detection: Outlier = "none"
    max_retries: MaxRetries = "unlimited"
    # Service keys every service starts from (below its templates and its own keys).
    service: ServiceTemplateSpec | None = None  # type: ignore[valid-type]


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
    properties: list[PropertyItem] = []
    templates: dict[Name, ServiceTemplateSpec] = {}  # type: ignore[valid-type]
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
    # A service may take its endpoints from its templates or ``defaults.service``: the file
    # need not write them (the loader requires them of the merged service, with a location).
    service = schema["$defs"].get("ServiceSpec", {})
    if "endpoints" in service.get("required", ()):
        service["required"] = [k for k in service["required"] if k != "endpoints"]
        if not service["required"]:
            del service["required"]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://faultmesh.dev/schema/spec.json"
    return schema


# ``schema`` is the one name the loader imports (``schema as S``): the names it uses from the
# other two modules are re-exported here.
__all__ = ["MAX_REPLICAS", "PROPERTY_MODELS", "REF_PATTERN", "FaultSpec", "RatePointSpec",
           "SessionsSpec", "Spec", "WorkloadRate", "WorkloadSpec", "all_keys", "json_schema"]
