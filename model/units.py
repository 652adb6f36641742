"""Units of the spec language: durations, rates and ratios, parsed once into plain floats.

Durations become seconds, rates become events per second, ratios become fractions in [0, 1].
Every parser raises ``ValueError`` with a message a person can act on; the spec loader turns
that into a located error.

Durations are spelled back in two forms that pick their unit by one rule (the largest unit not
above the value): ``spec_duration`` gives the shortest exact spelling, so a dumped spec reads
like a hand-written one and still round-trips; ``format_duration`` gives the rounded spelling
every report, table and message shows to people (``250ms``, ``2.5s``, ``2m 1.4s``, ``1h 3m``).
Shares (availability, utilization) are shown by ``format_percent`` (``99.691%``, ``65.3%``).
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


# The units a duration is spelled in, largest first. One rule picks among them for people and
# for spec files alike: the largest unit not above the value (microseconds below that).
_SPELLING_UNITS: tuple[tuple[str, float], ...] = (
    ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3), ("us", 1e-6))
_HOUR, _MINUTE, _SECOND = 0, 1, 2
_SPEC_DIGITS = 12  # beyond this many significant digits a spelling is no longer readable
_HUGE_HOURS = 1e6  # from a million hours on, hours are written in scientific notation


def _unit_index(seconds: float) -> int:
    """The index in ``_SPELLING_UNITS`` of the largest unit not above ``seconds``."""
    for index, (_, factor) in enumerate(_SPELLING_UNITS):
        if seconds >= factor:
            return index
    return len(_SPELLING_UNITS) - 1


def _fixed(value: float, places: int) -> str:
    """``value`` with at most ``places`` decimals, trailing zeros dropped (``2.50`` -> ``2.5``)."""
    text = f"{value:.{max(0, places)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_duration(seconds: float, digits: int = 3) -> str:
    """A duration for people: ``850µs``, ``250ms``, ``2.5s``, ``2m 1.4s``, ``1h 3m``.

    Below a minute, one unit with ``digits`` significant digits; from a minute on, minutes and
    seconds (to ``digits - 2`` decimals); from an hour on, hours and whole minutes (and seconds
    to ``digits - 4`` decimals when more than three digits are asked for). The unit is the
    largest not above the value after rounding, so 0.99996 s reads ``1s``, not ``1000ms``.
    """
    if math.isnan(seconds):
        return "n/a"
    if seconds < 0:
        return "-" + format_duration(-seconds, digits)
    if math.isinf(seconds):
        return "∞"
    if seconds == 0:
        return "0s"
    unit = _unit_index(seconds)
    if unit == _HOUR:
        return _hours(seconds, digits)
    if unit == _MINUTE:
        places = max(0, digits - 2)
        ticks = round(seconds * 10**places)
        minutes, rest = divmod(ticks, 60 * 10**places)
        if minutes >= 60:
            return _hours(seconds, digits)
        return f"{minutes}m" + (f" {_fixed(rest / 10**places, places)}s" if rest else "")
    name, factor = _SPELLING_UNITS[unit]
    scaled = seconds / factor
    places = digits - (math.floor(math.log10(scaled)) + 1)
    text = _fixed(scaled, places)
    rounded = float(text) * factor
    if _unit_index(rounded) < unit:  # rounding reached the next unit: 999.96ms is 1s
        return format_duration(rounded, digits)
    return f"{text}{'µs' if name == 'us' else name}"


def _hours(seconds: float, digits: int) -> str:
    if seconds >= _HUGE_HOURS * 3600:
        return f"{seconds / 3600:.{digits}g}h"
    if digits <= 3:
        hours, minutes = divmod(round(seconds / 60), 60)
        return f"{hours}h" + (f" {minutes}m" if minutes else "")
    places = digits - 4
    hours, rest = divmod(round(seconds * 10**places), 3600 * 10**places)
    minutes, rest = divmod(rest, 60 * 10**places)
    parts = [f"{hours}h"]
    if minutes or rest:
        parts.append(f"{minutes}m")
    if rest:
        parts.append(f"{_fixed(rest / 10**places, places)}s")
    return " ".join(parts)


def format_percent(fraction: float | None) -> str:
    """A share (availability, utilization) for people, by one rule everywhere.

    Exactly 0 and 1 read ``0%`` and ``100%``. Near the ends (from 99 % and below 1 %), three
    decimals (``99.691%``), more when three would round to an end (``99.9996%``): a value
    below 1 never reads ``100.000%``, nor a positive one ``0.000%``. Elsewhere one decimal
    (``65.3%``). Values above 1 (a utilization past capacity) follow the same rule.
    """
    if fraction is None or math.isnan(fraction):
        return "n/a"
    if math.isinf(fraction):
        return "∞%" if fraction > 0 else "-∞%"
    value = fraction * 100
    if value == 0 or value == 100:
        return f"{value:.0f}%"
    near_end = 99 <= value < 100 or 0 < value < 1
    places = 3 if near_end else 1
    # Add decimals until the rounded value is no longer an end it does not equal.
    while float(f"{value:.{places}f}") in (0.0, 100.0):
        if places == 15:  # a share too small for decimals: 3.27e-196%
            return f"{value:.3g}%"
        places += 1
    return f"{value:.{places}f}%"


def format_durations(*seconds: float) -> tuple[str, ...]:
    """Several durations for people, with enough digits that unequal values read differently
    (a timeout of 1.0004 s beside a worst case of 1.0002 s must not both read ``1s``)."""
    for digits in (3, 6, 9, 12, 17):
        texts = tuple(format_duration(s, digits) for s in seconds)
        if all(texts[i] != texts[j] or seconds[i] == seconds[j]
               for i in range(len(texts)) for j in range(i)):
            return texts
    return texts


def spec_duration(seconds: float) -> str | float:
    """A duration as a spec value: its shortest exact spelling (``0.25`` -> ``'250ms'``,
    ``1.5`` -> ``'1.5s'``, ``90`` -> ``'1.5m'``).

    The unit is picked as for people (the largest not above the value), moving to smaller
    units only when the value has no short exact spelling in it (100 s is ``'100s'``, not
    ``'1.6666666666666667m'``). Exact means it reads back as the very same float; when no unit
    spells it in at most 12 significant digits, the float's own shortest decimal is written in
    seconds (``'0.0008s'``: 0.8 x 0.001 is not the float 0.0008), so every duration keeps a unit.
    """
    if not math.isfinite(seconds) or seconds < 0:
        return seconds
    if seconds == 0:
        return "0s"
    for name, factor in _SPELLING_UNITS[_unit_index(seconds):]:
        scaled = seconds / factor
        # Below 1e15 only: beyond that the integer spelling runs to hundreds of digits.
        if scaled >= 1e15:
            continue
        for digits in range(1, _SPEC_DIGITS + 1):
            text = f"{Decimal(f'{scaled:.{digits}g}'):f}"
            if "." in text:
                text = text.rstrip("0").rstrip(".")
            if parse_duration(text + name) == seconds:
                return text + name
    # Seconds multiply by 1.0, so the float's repr always reads back exactly.
    return f"{seconds!r}s"
