"""Units of the spec language: durations, rates and ratios, parsed once into plain floats.

Durations become seconds, rates become events per second, ratios become fractions in [0, 1].
Every parser raises ``ValueError`` with a message a person can act on; the spec loader turns
that into a located error. Formatting functions give the shortest exact spelling back, so a
dumped spec reads like a hand-written one and still round-trips.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

_DURATION_UNITS: dict[str, float] = {
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}
_RATE_UNITS: dict[str, float] = {"s": 1.0, "m": 1 / 60.0, "min": 1 / 60.0, "h": 1 / 3600.0}

_NUMBER = r"[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?"
_DURATION_RE = re.compile(rf"^\s*(?P<num>-?(?:{_NUMBER}))\s*(?P<unit>[a-zµ]*)\s*$")
_RATE_RE = re.compile(rf"^\s*(?P<num>-?(?:{_NUMBER}))\s*(?:/\s*(?P<unit>[a-z]+))?\s*$")
_RATIO_RE = re.compile(rf"^\s*(?P<num>-?(?:{_NUMBER}))\s*(?P<pct>%?)\s*$")

# JSON Schema patterns: the same numbers the parsers read (a negative exponent as in '1e-3s' is
# fine, a leading minus is not), so editors accept exactly what the loader accepts.
_SCHEMA_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
DURATION_PATTERN = rf"^\s*{_SCHEMA_NUMBER}\s*(us|µs|ms|s|m|min|h)?\s*$"
RATE_PATTERN = rf"^\s*{_SCHEMA_NUMBER}\s*(/\s*(s|m|min|h))?\s*$"
RATIO_PATTERN = rf"^\s*{_SCHEMA_NUMBER}\s*%?\s*$"


def _number(value: object, what: str) -> float | None:
    """A YAML number as float, or None when the value is not a number (booleans are not)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a {what}, got a boolean")
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:
            # A YAML integer with hundreds of digits: float() raises OverflowError, which
            # pydantic would not turn into a located error (it only catches ValueError).
            raise ValueError(f"a {what} of {len(str(abs(value)))} digits is too large") from None
    return None


def _finite_non_negative(x: float, what: str, text: object) -> float:
    if math.isnan(x) or math.isinf(x):
        raise ValueError(f"{what} must be finite, got {text!r}")
    if x < 0:
        raise ValueError(f"{what} must not be negative, got {text!r}")
    return x + 0.0  # -0.0 becomes 0.0, so '-0s' does not dump back as -0.0


def parse_duration(value: object) -> float:
    """``250ms``, ``30s``, ``2m``, ``1h`` or a number of seconds -> seconds."""
    number = _number(value, "duration")
    if number is not None:
        return _finite_non_negative(number, "a duration", value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as '250ms' or '30s', got {value!r}")
    match = _DURATION_RE.match(value)
    if not match:
        raise ValueError(f"cannot read {value!r} as a duration; write e.g. '250ms', '30s', '2m'")
    unit = match["unit"] or "s"
    if unit not in _DURATION_UNITS:
        known = ", ".join(k for k in _DURATION_UNITS if k != "µs")
        raise ValueError(f"unknown duration unit {unit!r} in {value!r}; use one of {known}")
    return _finite_non_negative(float(match["num"]) * _DURATION_UNITS[unit], "a duration", value)


def parse_rate(value: object) -> float:
    """``100/s``, ``6000/m`` or a number per second -> events per second."""
    number = _number(value, "rate")
    if number is not None:
        return _finite_non_negative(number, "a rate", value)
    if not isinstance(value, str):
        raise ValueError(f"expected a rate such as '100/s', got {value!r}")
    match = _RATE_RE.match(value)
    if not match:
        raise ValueError(f"cannot read {value!r} as a rate; write e.g. '100/s' or '6000/m'")
    unit = match["unit"] or "s"
    if unit not in _RATE_UNITS:
        raise ValueError(f"unknown rate unit {unit!r} in {value!r}; use /s, /m or /h")
    return _finite_non_negative(float(match["num"]) * _RATE_UNITS[unit], "a rate", value)


def parse_ratio(value: object) -> float:
    """``99.9%`` or ``0.999`` -> 0.999; must lie in [0, 1]."""
    number = _number(value, "ratio")
    if number is None:
        if not isinstance(value, str):
            raise ValueError(f"expected a ratio such as '99.9%' or 0.999, got {value!r}")
        match = _RATIO_RE.match(value)
        if not match:
            raise ValueError(f"cannot read {value!r} as a ratio; write e.g. '50%' or 0.5")
        # Decimal keeps '99.9%' exactly 0.999 rather than 0.9990000000000001.
        try:
            number = float(Decimal(match["num"]) / (100 if match["pct"] else 1))
        except ArithmeticError:  # decimal.InvalidOperation on exponents like '1e99999999999%'
            raise ValueError(f"cannot read {value!r} as a ratio: out of range") from None
    if math.isnan(number) or not 0.0 <= number <= 1.0:
        raise ValueError(f"a ratio must lie between 0 and 1 (0% and 100%), got {value!r}")
    return number


def format_duration(seconds: float) -> str | float:
    """The shortest exact unit spelling of a duration (``0.25`` -> ``'250ms'``)."""
    for unit, factor in (("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        scaled = seconds / factor
        # Below 1e15 only: beyond that the integer spelling runs to hundreds of digits.
        if 1 <= scaled < 1e15 and scaled == round(scaled) and round(scaled) * factor == seconds:
            return f"{round(scaled)}{unit}"
    return seconds
