"""The field types of the spec language: units, names, bounded counts, and the model base.

Values that carry units are parsed here, once, into seconds, per-second rates and fractions;
every count has an upper bound (a value past it is a typo, and unbounded ones crashed valid
specs). ``schema`` and ``schema_checks`` build the spec's models from these.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
)

from faultmesh.model.distributions import parse_distribution
from faultmesh.model.spec.limits import MAX_REPLICAS, MAX_WORKERS
from faultmesh.model.units import (
    DURATION_PATTERN,
    RATE_PATTERN,
    RATIO_PATTERN,
    parse_duration,
    parse_rate,
    parse_ratio,
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
Replicas = Annotated[int, Field(ge=1, le=MAX_REPLICAS, strict=True)]
ReplicaCount = Annotated[int, Field(ge=0, le=MAX_REPLICAS, strict=True)]

# Every other count has a bound too: a value past it is a typo, and unbounded ones crashed
# valid specs (a breaker window of 1e12 calls allocated its whole window; retries: 150 with a
# failing callee recursed 150 deep; 10,000 failures ran the solver for minutes).
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
# Retries outstanding at once from one caller instance to a service (Envoy's max_retries).
RetryLimit = Annotated[int, Field(ge=0, le=MAX_IN_FLIGHT, strict=True)]

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
