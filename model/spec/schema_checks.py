"""The spec's properties and scenarios as pydantic models: what to check and what to break.

``properties`` items are single-key mappings (``survives: {...}``), ``scenarios`` hold timed
faults; both are part of the ``Spec`` document of ``schema``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from faultmesh.model.spec.fields import (
    Dist,
    Duration,
    Failures,
    Period,
    PropertyName,
    Rate,
    Ratio,
    Ref,
    SpecModel,
)

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


class RecoversSpec(SpecModel):
    name: PropertyName | None = None
    entry: Ref
    within: Duration = 30.0
    to: Ratio = 0.99


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
    "recovers": RecoversSpec,
    "overload_recovery": NamedSpec,
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


class SurgeSpec(SpecModel):
    """A load spike at a workload entry: its rate times ``factor``, or set to ``rate``."""

    entry: Ref
    factor: Annotated[float, Field(gt=0)] | None = None
    rate: Rate | None = None

    @model_validator(mode="after")
    def _one_size(self) -> SurgeSpec:
        if (self.factor is None) == (self.rate is None):
            raise ValueError("a surge takes exactly one of factor and rate")
        return self


FAULT_KINDS = ("crash", "latency", "errors", "partition", "loss", "slowdown", "registry_outage",
               "rolling_restart", "surge")


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
    surge: SurgeSpec | None = None

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
