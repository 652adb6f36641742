"""Probability distributions of the spec: service times, network latency, injected delays.

A distribution is a frozen value object. It knows its mean and its worst case (``upper``, which
is ``inf`` for unbounded ones) for the verifier, its quantiles for reports, and hands the
simulator a fast zero-argument sampler bound to a ``random.Random`` (the per-request hot path
cannot afford numpy's per-call overhead).

Spec forms: a number or duration (constant), ``{exponential: MEAN}``, ``{uniform: [LO, HI]}``,
``{lognormal: {mean: M, p99: P}}``, ``{normal: {mean: M, sd: S}}`` (truncated at 0),
``{empirical: [v1, v2, ...]}``. Values are durations, so ``{exponential: 2ms}`` works.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from faultmesh.model.units import parse_duration, spec_duration

Sampler = Callable[[], float]

_Z99 = NormalDist().inv_cdf(0.99)


@dataclass(frozen=True, slots=True)
class Constant:
    value: float

    @property
    def mean(self) -> float:
        return self.value

    @property
    def upper(self) -> float:
        return self.value

    def quantile(self, q: float) -> float:
        return self.value

    def sampler(self, rng: random.Random) -> Sampler:
        value = self.value
        return lambda: value

    def to_spec(self) -> Any:
        return spec_duration(self.value)


@dataclass(frozen=True, slots=True)
class Exponential:
    mean_value: float

    @property
    def mean(self) -> float:
        return self.mean_value

    @property
    def upper(self) -> float:
        return math.inf if self.mean_value > 0 else 0.0

    def quantile(self, q: float) -> float:
        return -self.mean_value * math.log1p(-q) if q < 1 else self.upper

    def sampler(self, rng: random.Random) -> Sampler:
        if self.mean_value == 0:
            return lambda: 0.0
        rate = 1.0 / self.mean_value
        expovariate = rng.expovariate
        return lambda: expovariate(rate)

    def to_spec(self) -> Any:
        return {"exponential": spec_duration(self.mean_value)}


@dataclass(frozen=True, slots=True)
class Uniform:
    low: float
    high: float

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    @property
    def upper(self) -> float:
        return self.high

    def quantile(self, q: float) -> float:
        return self.low + q * (self.high - self.low)

    def sampler(self, rng: random.Random) -> Sampler:
        uniform, low, high = rng.uniform, self.low, self.high
        return lambda: uniform(low, high)

    def to_spec(self) -> Any:
        return {"uniform": [spec_duration(self.low), spec_duration(self.high)]}


def lognormal_parameters(mean: float, p99: float) -> tuple[float, float]:
    """(mu, sigma) of the log-normal with this mean and 99th percentile.

    mean = exp(mu + s^2/2) and p99 = exp(mu + z s) give s^2/2 - z s + ln(p99/mean) = 0; the
    smaller root is the one with p99 above the mean. It exists when ln(p99/mean) <= z^2/2.
    """
    if mean <= 0 or p99 <= mean:
        raise ValueError(f"lognormal needs 0 < mean < p99, got mean={mean}, p99={p99}")
    gap = math.log(p99 / mean)
    discriminant = _Z99 * _Z99 - 2 * gap
    if discriminant < 0:
        limit = math.exp(_Z99 * _Z99 / 2)
        raise ValueError(
            f"no lognormal has p99/mean = {p99 / mean:.1f}; the ratio can be at most {limit:.1f}"
        )
    sigma = _Z99 - math.sqrt(discriminant)
    return math.log(mean) - sigma * sigma / 2, sigma


@dataclass(frozen=True, slots=True)
class LogNormal:
    mean_value: float
    p99: float

    def __post_init__(self) -> None:
        lognormal_parameters(self.mean_value, self.p99)

    @property
    def mean(self) -> float:
        return self.mean_value

    @property
    def upper(self) -> float:
        return math.inf

    def quantile(self, q: float) -> float:
        if q <= 0:
            return 0.0  # was inf: the 0-quantile of a positive distribution is 0
        mu, sigma = lognormal_parameters(self.mean_value, self.p99)
        return math.exp(mu + sigma * NormalDist().inv_cdf(q)) if q < 1 else math.inf

    def sampler(self, rng: random.Random) -> Sampler:
        mu, sigma = lognormal_parameters(self.mean_value, self.p99)
        lognormvariate = rng.lognormvariate
        return lambda: lognormvariate(mu, sigma)

    def to_spec(self) -> Any:
        return {
            "lognormal": {
                "mean": spec_duration(self.mean_value),
                "p99": spec_duration(self.p99),
            }
        }


@dataclass(frozen=True, slots=True)
class Normal:
    """A normal distribution truncated at 0 (negative draws are redrawn)."""

    mean_value: float
    sd: float

    @property
    def mean(self) -> float:
        if self.sd == 0:
            return self.mean_value
        # Mean of a normal truncated below at zero.
        alpha = -self.mean_value / self.sd
        std = NormalDist()
        return self.mean_value + self.sd * std.pdf(alpha) / (1 - std.cdf(alpha))

    @property
    def upper(self) -> float:
        return math.inf if self.sd > 0 else self.mean_value

    def quantile(self, q: float) -> float:
        if self.sd == 0:
            return self.mean_value
        dist = NormalDist(self.mean_value, self.sd)
        below = dist.cdf(0.0)
        p = below + q * (1 - below)
        # inv_cdf refuses p = 0 and p = 1 (StatisticsError), which rounding produces when the
        # mean is many sd above 0 (q = 0) or q is within an ulp of 1; and at q = 0 it returned
        # a slightly negative time. Both ends are clamped to the support [0, inf).
        if p <= 0.0:
            return 0.0
        if p >= 1.0:
            return math.inf
        return max(0.0, dist.inv_cdf(p))

    def sampler(self, rng: random.Random) -> Sampler:
        gauss, mean, sd = rng.gauss, self.mean_value, self.sd

        def draw() -> float:
            while True:
                x = gauss(mean, sd)
                if x >= 0:
                    return x

        return draw

    def to_spec(self) -> Any:
        mean, sd = spec_duration(self.mean_value), spec_duration(self.sd)
        return {"normal": {"mean": mean, "sd": sd}}


@dataclass(frozen=True, slots=True)
class Empirical:
    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def upper(self) -> float:
        return max(self.values)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.values)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    def sampler(self, rng: random.Random) -> Sampler:
        choice, values = rng.choice, self.values
        return lambda: choice(values)

    def to_spec(self) -> Any:
        return {"empirical": [spec_duration(v) for v in self.values]}


Distribution = Constant | Exponential | Uniform | LogNormal | Normal | Empirical

DISTRIBUTION_FORMS = ("exponential", "uniform", "lognormal", "normal", "empirical")


def parse_distribution(value: object) -> Distribution:
    """Read any spec form of a distribution; raises ValueError naming what is wrong."""
    if isinstance(value, Constant | Exponential | Uniform | LogNormal | Normal | Empirical):
        return value
    if not isinstance(value, dict):
        return Constant(parse_duration(value))
    if len(value) != 1:
        raise ValueError(
            f"a distribution is one of {', '.join(DISTRIBUTION_FORMS)} or a constant; "
            f"got keys {sorted(map(str, value))}"
        )
    (form, args), = value.items()
    if form == "exponential":
        return Exponential(parse_duration(args))
    if form == "uniform":
        if not isinstance(args, list) or len(args) != 2:
            raise ValueError("uniform takes [LO, HI]")
        low, high = parse_duration(args[0]), parse_duration(args[1])
        if low > high:
            raise ValueError(f"uniform needs LO <= HI, got [{args[0]}, {args[1]}]")
        return Uniform(low, high)
    if form == "lognormal":
        if not isinstance(args, dict) or set(args) != {"mean", "p99"}:
            raise ValueError("lognormal takes {mean: M, p99: P}")
        return LogNormal(parse_duration(args["mean"]), parse_duration(args["p99"]))
    if form == "normal":
        if not isinstance(args, dict) or set(args) != {"mean", "sd"}:
            raise ValueError("normal takes {mean: M, sd: S}")
        return Normal(parse_duration(args["mean"]), parse_duration(args["sd"]))
    if form == "empirical":
        if not isinstance(args, list) or not args:
            raise ValueError("empirical takes a non-empty list of values")
        return Empirical(tuple(parse_duration(v) for v in args))
    import difflib

    close = difflib.get_close_matches(str(form), DISTRIBUTION_FORMS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; use one of {DISTRIBUTION_FORMS}"
    raise ValueError(f"unknown distribution {form!r}{hint}")


def distribution_json_schema() -> dict[str, Any]:
    """JSON Schema of the distribution forms, for editors."""
    duration = {"$ref": "#/$defs/Duration"}
    return {
        "anyOf": [
            duration,
            {"type": "object", "properties": {"exponential": duration},
             "required": ["exponential"], "additionalProperties": False},
            {"type": "object", "properties": {"uniform": {"type": "array", "items": duration,
                                                          "minItems": 2, "maxItems": 2}},
             "required": ["uniform"], "additionalProperties": False},
            {"type": "object", "properties": {"lognormal": {
                "type": "object", "properties": {"mean": duration, "p99": duration},
                "required": ["mean", "p99"], "additionalProperties": False}},
             "required": ["lognormal"], "additionalProperties": False},
            {"type": "object", "properties": {"normal": {
                "type": "object", "properties": {"mean": duration, "sd": duration},
                "required": ["mean", "sd"], "additionalProperties": False}},
             "required": ["normal"], "additionalProperties": False},
            {"type": "object", "properties": {"empirical": {"type": "array", "items": duration,
                                                            "minItems": 1}},
             "required": ["empirical"], "additionalProperties": False},
        ]
    }
