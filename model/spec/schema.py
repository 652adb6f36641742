"""The spec language as pydantic models: shape, types and units of every key.

The field types (units, names, bounded counts) are in ``fields``; properties and scenarios in
``schema_checks``; this module holds the system M = (S, C, D, O), the document ``Spec`` and
its JSON Schema, and re-exports the rest so ``schema`` is the one name to import.

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
    Rate,
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
from faultmesh.model.spec.schema_checks import (
    FAULT_KINDS,
    PROPERTY_MODELS,
    FaultSpec,
    PropertyItem,
    ScenarioSpec,
)
from faultmesh.model.units import (
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
    max_retries: MaxRetries | None = None  # None: the defaults'
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
    max_retries: MaxRetries = "unlimited"


class WorkloadSpec(SpecModel):
    entry: Ref
    rate: Rate
    arrivals: Literal["poisson", "constant"] = "poisson"
    timeout: Duration | None = None
    source: Name = "client"


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


# ``schema`` is the one name the loader imports (``schema as S``): the names it uses from the
# other two modules are re-exported here.
__all__ = ["MAX_REPLICAS", "PROPERTY_MODELS", "REF_PATTERN", "FaultSpec", "Spec", "all_keys",
           "json_schema"]
