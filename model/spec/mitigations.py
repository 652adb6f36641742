"""The client-side overload mitigations in the spec: hedging and deadlines of a call, Envoy's
retry budget and gRPC's retry throttling of a callee service.

Their pydantic models (``schema`` uses them in ``CallSpec``, ``CallDefaultsSpec`` and
``ServiceSpec``), their reading into the model's policies (``model.policies``), and the checks
that relate a hedge to its call (``build`` reports them where they are written): a call hedges
or retries, never both (gRPC: a method has a retry policy or a hedging policy); a hedge's delay
must be below the call's per-try timeout, or no hedge is ever sent.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag, WithJsonSchema

from faultmesh.model.policies import Hedge, RetryBudget, RetryThrottling
from faultmesh.model.spec.fields import Duration, RetryLimit, SpecModel
from faultmesh.model.spec.yaml_source import Path
from faultmesh.model.units import format_durations, parse_duration, parse_ratio

PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0),
                             WithJsonSchema({"x-unit": "Duration"})]
# gRPC uses at most 5 attempts (a larger maxAttempts is read as 5): more is refused here.
HedgeAttempts = Annotated[int, Field(ge=1, le=5, strict=True)]


class HedgeSpec(SpecModel):
    """gRPC's hedging policy: another attempt every ``delay`` until ``max_attempts``."""

    delay: Duration
    max_attempts: HedgeAttempts = 2


def _word_or_value(value: Any) -> str:
    """``none`` or a mapping, told apart by type first (as ``schema`` does for its keys)."""
    return "~word" if isinstance(value, str) else "~value"


HedgeKey = Annotated[Annotated[Literal["none"], Tag("~word")]
                     | Annotated[HedgeSpec, Tag("~value")], Discriminator(_word_or_value)]


def _percent(value: Any) -> float:
    """A ratio (``20%`` or ``0.2``) as a percent, exactly: ``20%`` is 20.0, not 0.2 * 100."""
    ratio = parse_ratio(value)  # checks the value and its range
    if isinstance(value, str) and value.strip().endswith("%"):
        return float(Decimal(value.strip()[:-1].strip()))
    return float(Decimal(repr(ratio)) * 100)


Percent = Annotated[float, BeforeValidator(_percent), WithJsonSchema({"x-unit": "Ratio"})]


class RetryBudgetSpec(SpecModel):
    """Envoy's retry budget (budget_percent, min_retry_concurrency), with Envoy's defaults."""

    percent: Percent = 20.0  # in percent: ``20%`` or ``0.2`` both read as 20.0
    min_concurrency: RetryLimit = 3


class RetryThrottlingSpec(SpecModel):
    """gRPC's retry throttling (gRFC A6): max_tokens in (0, 1000], token_ratio > 0."""

    max_tokens: Annotated[float, Field(gt=0, le=1000)] = 10.0
    token_ratio: Annotated[float, Field(gt=0, le=1000)] = 0.1


# --- reading them into the model ---------------------------------------------------------------


def hedge_policy(spec: Any) -> Hedge | None:
    if spec is None or spec == "none":
        return None
    assert isinstance(spec, HedgeSpec)
    return Hedge(spec.delay, spec.max_attempts)


def retry_budget(spec: RetryBudgetSpec | None) -> RetryBudget | None:
    if spec is None:
        return None
    return RetryBudget(spec.percent, spec.min_concurrency)


def retry_throttling(spec: RetryThrottlingSpec | None) -> RetryThrottling | None:
    if spec is None:
        return None
    return RetryThrottling(spec.max_tokens, spec.token_ratio)


Problems = list[tuple[Path, str]]


def _delay_message(delay: float, timeout: float, whose: str) -> str:
    shown, limit = format_durations(delay, timeout)
    return (f"hedge delay above the timeout: the delay ({shown}) must be shorter than {whose} "
            f"per-try timeout ({limit}), or every attempt times out before a hedge is sent")


def hedge_problems(item: Any, path: Path, hedge: Hedge, timeout: float,
                   retries: int) -> Problems:
    """A hedged call (``item``, a ``CallSpec`` at ``path``) against its retries and timeout."""
    problems: Problems = []
    own = item.hedge is not None  # set on the call itself, else from defaults.call
    if retries > 0:
        problems.append(((*path, "retries"), f"a call hedges or retries, never both: retries "
                         f"is {retries} and the call has a hedge"
                         f"{'' if own else ' (from defaults.call; set hedge: none here)'}"))
    # Reported where the hedge or the timeout is written: a call that takes both from the
    # defaults is checked once, on the defaults; a call whose own timeout undercuts the
    # defaults' hedge is told at that timeout.
    if hedge.delay >= timeout and (own or item.timeout is not None):
        where: Path = (*path, "hedge", "delay") if own else (*path, "timeout")
        problems.append((where, _delay_message(hedge.delay, timeout, "the call's")))
    return problems


def defaults_hedge_problems(call: Any) -> Problems:
    """``defaults.call``'s hedge against its retries and timeout."""
    hedge = hedge_policy(call.hedge)
    if hedge is None:
        return []
    problems: Problems = []
    if call.retries > 0:
        problems.append((("defaults", "call", "retries"), f"a call hedges or retries, never "
                         f"both: defaults.call sets retries {call.retries} and a hedge"))
    if hedge.delay >= call.timeout:
        problems.append((("defaults", "call", "hedge", "delay"),
                         _delay_message(hedge.delay, call.timeout, "the")))
    return problems
