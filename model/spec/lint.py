"""Warnings on specs that load but almost certainly do not say what their author meant.

The spec language keeps two risky defaults because they are documented: a bare number is a
number of seconds (``p99: 250`` is 250 s), and an endpoint without ``service_time`` takes no
time at all. ``lint(source)`` reads the YAML data of a spec that validated and returns located
``SpecWarning``\\ s for the values that are nearly always a unit mistake: a bare number of ten or
more seconds where requests are timed (timeouts, latency bounds, service times, network
latencies, added latency, backoff), and endpoints without a service time. Warnings change
nothing about the loaded System; the command line prints them on stderr.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from faultmesh.model.spec.errors import SpecError
from faultmesh.model.spec.yaml_source import Path, Source
from faultmesh.model.units import format_duration

# A bare number of seconds from here on, where a single request is timed, reads like a number
# of milliseconds written without its unit (a 10 s timeout is rare and is written '10s').
SUSPICIOUS_SECONDS = 10.0
LATENCY_KEYS = ("p50", "p90", "p95", "p99", "p999")


@dataclass(frozen=True, slots=True)
class SpecWarning:
    """A located warning: the same shape and spelling as a ``SpecError``."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        return str(SpecError(self.file, self.line, self.column, self.path, self.message))


def _bare(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _distribution_numbers(value: Any, path: Path) -> Iterator[tuple[Path, float]]:
    """Every bare number in a distribution spelling (a constant, or a form's parameters)."""
    if _bare(value):
        yield path, float(value)
    elif isinstance(value, dict):
        for form, args in value.items():
            if isinstance(args, dict):
                for key, item in args.items():
                    yield from _distribution_numbers(item, (*path, form, key))
            elif isinstance(args, list):
                for index, item in enumerate(args):
                    yield from _distribution_numbers(item, (*path, form, index))
            else:
                yield from _distribution_numbers(args, (*path, form))


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _calls(items: Any, path: Path) -> Iterator[tuple[dict[Any, Any], Path]]:
    """Each call written as a mapping, parallel groups included."""
    for index, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, dict) and isinstance(item.get("parallel"), list):
            for inner, call in enumerate(item["parallel"]):
                if isinstance(call, dict):
                    yield call, (*path, index, "parallel", inner)
        elif isinstance(item, dict):
            yield item, (*path, index)


def _backoff_and_timeout(call: dict[Any, Any], path: Path) -> Iterator[tuple[Path, Any]]:
    yield (*path, "timeout"), call.get("timeout")
    backoff = _mapping(call.get("backoff"))
    for key in ("base", "cap"):
        yield (*path, "backoff", key), backoff.get(key)


def _timed_values(data: dict[Any, Any]) -> Iterator[tuple[Path, Any]]:
    """(path, raw value) of every duration that times a single request or call."""
    latency = _mapping(_mapping(data.get("network")).get("latency"))
    for key in ("same_zone", "cross_zone"):
        yield ("network", "latency", key), latency.get(key)
    yield from _backoff_and_timeout(_mapping(_mapping(data.get("defaults")).get("call")),
                                    ("defaults", "call"))
    for name, service in _mapping(data.get("services")).items():
        for ep_name, endpoint in _mapping(_mapping(service).get("endpoints")).items():
            path: Path = ("services", name, "endpoints", ep_name)
            endpoint = _mapping(endpoint)
            yield (*path, "service_time"), endpoint.get("service_time")
            for call, call_path in _calls(endpoint.get("calls"), (*path, "calls")):
                yield from _backoff_and_timeout(call, call_path)
                breaker = _mapping(call.get("circuit_breaker"))
                yield (*call_path, "circuit_breaker", "slow_call", "duration"), \
                    _mapping(breaker.get("slow_call")).get("duration")
    for index, item in enumerate(data.get("workload") or []):
        yield ("workload", index, "timeout"), _mapping(item).get("timeout")
    for index, item in enumerate(data.get("properties") or []):
        latency_property = _mapping(_mapping(item).get("latency"))
        for key in LATENCY_KEYS:
            yield ("properties", index, "latency", key), latency_property.get(key)
    for name, scenario in _mapping(data.get("scenarios")).items():
        for index, fault in enumerate(_mapping(scenario).get("faults") or []):
            added = _mapping(_mapping(fault).get("latency")).get("add")
            yield ("scenarios", name, "faults", index, "latency", "add"), added


def _unit_mistakes(source: Source) -> Iterator[SpecWarning]:
    for path, value in _timed_values(_mapping(source.data)):
        for where, seconds in _distribution_numbers(value, path):
            if seconds >= SUSPICIOUS_SECONDS:
                number = f"{seconds:g}"
                yield _warning(source, where, (
                    f"a bare number is seconds: {number} here is {format_duration(seconds)}; "
                    f"write '{number}ms' if milliseconds were meant, or '{number}s' to keep "
                    "seconds"))


def _missing_service_times(source: Source) -> Iterator[SpecWarning]:
    for name, service in _mapping(_mapping(source.data).get("services")).items():
        for ep_name, endpoint in _mapping(_mapping(service).get("endpoints")).items():
            if "service_time" not in _mapping(endpoint):
                yield _warning(source, ("services", name, "endpoints", ep_name), (
                    f"{name}.{ep_name} has no service_time, so it takes no time at all; "
                    "write e.g. 'service_time: {exponential: 2ms}', or 'service_time: 0s' "
                    "to say so"), key=True)


def _warning(source: Source, path: Path, message: str, *, key: bool = False) -> SpecWarning:
    error = source.error(path, message, key=key)
    return SpecWarning(error.file, error.line, error.column, error.path, error.message)


def lint(source: Source) -> list[SpecWarning]:
    """The warnings of a spec that validated, sorted by position."""
    found = [*_unit_mistakes(source), *_missing_service_times(source)]
    return sorted(found, key=lambda w: (w.line, w.column, w.path))


__all__ = ["SUSPICIOUS_SECONDS", "SpecWarning", "lint"]
