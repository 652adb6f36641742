"""Wording shared by the failure checkers' one-line explanations (plurals, lists, chains)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from faultmesh.model.system import DEFAULT_ZONE
from faultmesh.model.units import format_durations, spec_duration

# Long lists in one-line explanations are cut to this many items ("and 12 more").
LIST_LIMIT = 5


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def listing(items: Sequence[str]) -> str:
    if len(items) <= LIST_LIMIT:
        return ", ".join(items)
    return f"{', '.join(items[:LIST_LIMIT])} and {len(items) - LIST_LIMIT} more"


def arrow(chain: Sequence[str]) -> str:
    """``a → b → c``, eliding the middle of a long chain."""
    if len(chain) > 6:
        chain = [*chain[:3], "…", *chain[-2:]]
    return " → ".join(chain)


def number(x: Fraction | float) -> str:
    try:
        return f"{float(x):.4g}"
    except OverflowError:  # a Fraction past a float (loads compound down a fan-out)
        whole = int(x)
        # Its decimal exponent from its bit length, without writing it out (Python refuses
        # to print an integer of more than 4,300 digits).
        digits = int(whole.bit_length() * math.log10(2))
        while 10 ** (digits + 1) <= whole:
            digits += 1
        while 10 ** digits > whole:
            digits -= 1
        return f"{float(Fraction(x) / 10 ** digits):.4g}e+{digits}"


def percent(x: Fraction | float | None) -> str:
    if x is None:
        return "∞%"
    try:
        return f"{float(x) * 100:.4g}%"
    except OverflowError:  # a Fraction past a float
        return f"{number(Fraction(x) * 100)}%"


# The one zone of a spec that declares none: an artefact of the model, never named to people.
IMPLICIT_ZONE = DEFAULT_ZONE


def in_zone(zone: str) -> str:
    """`` in zone a``, or nothing for the implicit zone of a spec without zones."""
    return "" if zone == IMPLICIT_ZONE else f" in zone {zone}"


# Counterexample numbers by what they measure (their JSON keys stay plain numbers: seconds,
# fractions, requests per second); people read them with units.
DURATION_NUMBERS = frozenset({"timeout", "callee_worst", "network", "window_s", "added",
                              "trigger_for"})
RATIO_NUMBERS = frozenset({"utilization", "rejected", "rejected_low", "failure_probability",
                           "share"})
RATE_NUMBERS = frozenset({"load", "nominal", "storm", "capacity_rate"})


def numbers_text(numbers: Mapping[str, float]) -> str:
    """A counterexample's numbers for people: ``timeout=10s, callee_worst=2m 10s``.

    Durations shown together get enough digits to tell unequal ones apart."""
    durations = [key for key in numbers if key in DURATION_NUMBERS]
    spelled = dict(zip(durations, format_durations(*(numbers[k] for k in durations)),
                       strict=True))
    parts = []
    for key, value in numbers.items():
        if key in spelled:
            text = spelled[key]
        elif key in RATIO_NUMBERS:
            text = percent(value)
        elif key in RATE_NUMBERS:
            text = f"{number(value)}/s"
        else:
            text = number(value)
        parts.append(f"{key.removesuffix('_s')}={text}")
    return ", ".join(parts)


# Repair changes whose values are durations (spec key leaves), written with units.
DURATION_KEYS = frozenset({"timeout", "open_for", "base", "cap", "ttl", "refresh", "heartbeat",
                           "zone_detection"})


def change_lines(changes: Mapping[str, Any]) -> list[str]:
    """A repair's changes, one line each, a service's ``replicas`` said with its ``placement``
    (the two keys agree: they are one change)."""
    lines = []
    for key, value in changes.items():
        service, _, leaf = key.rpartition(".")
        leaf = leaf.partition("[")[0]
        if leaf == "replicas" and f"{service}.placement" in changes:
            continue
        shown = json.dumps(value)
        if leaf in DURATION_KEYS and isinstance(value, int | float):
            shown = str(spec_duration(value))  # as a spec writes it: 21ms, not 0.021
        text = f"{key}: {shown}"
        if leaf == "placement" and f"{service}.replicas" in changes:
            text += f" (replicas: {json.dumps(changes[f'{service}.replicas'])})"
        lines.append(text)
    return lines


# A detail list longer than this many items is summarized (grouped and counted) for people;
# ``--full`` and ``--json`` give every item.
SUMMARY_LIMIT = 6


def grouped_names(names: Sequence[str]) -> str:
    """Many ``service.endpoint`` names grouped by service and counted:
    ``84 entries on 1 service: ts-ui.{api00, api01, api02, api03, api04 and 79 more}``;
    a short list is written out whole."""
    if len(names) <= SUMMARY_LIMIT:
        return ", ".join(names)
    by_service: dict[str, list[str]] = {}
    for name in names:
        service, dot, rest = name.partition(".")
        by_service.setdefault(service, []).append(rest if dot else name)
    head = f"{len(names)} entries on {plural(len(by_service), 'service')}: "
    if len(by_service) == 1:
        service, rests = next(iter(by_service.items()))
        return head + f"{service}.{{{listing(rests)}}}"
    ranked = sorted(by_service.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    shown = ", ".join(f"{service} ({len(rests)})" for service, rests in ranked[:LIST_LIMIT])
    if len(ranked) > LIST_LIMIT:
        shown += f" and {len(ranked) - LIST_LIMIT} more"
    return head + shown


def _shown(leaf: str, value: Any) -> str:
    if leaf in DURATION_KEYS and isinstance(value, int | float):
        return str(spec_duration(value))
    return json.dumps(value)


def change_summary(changes: Mapping[str, Any]) -> list[str]:
    """A repair's changes for people: every line when there are few; else one line per kind
    of key, counted, with the services it touches (named when few) and the range of new
    values: ``180 timeout changes on 41 services: set to 1.007s … 30.21s``."""
    lines = change_lines(changes)
    if len(lines) <= SUMMARY_LIMIT:
        return lines
    groups: dict[str, list[tuple[str, Any]]] = {}
    for key, value in changes.items():
        owner, _, leaf = key.rpartition(".")
        leaf = leaf.partition("[")[0]
        if leaf == "placement" and f"{owner}.replicas" in changes:
            continue  # said with its replicas
        parts = key.split(".")
        where = parts[1] if parts[0] == "services" and len(parts) > 1 else parts[0]
        groups.setdefault(leaf, []).append((where, value))
    out = []
    for leaf, items in groups.items():
        owners = list(dict.fromkeys(w for w, _ in items))
        values = [v for _, v in items]
        numeric = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if numeric and len(numeric) == len(values):
            low, high = min(numeric), max(numeric)
            to = (f"set to {_shown(leaf, low)}" if low == high
                  else f"set to {_shown(leaf, low)} … {_shown(leaf, high)}")
        else:
            distinct = list(dict.fromkeys(json.dumps(v) for v in values))
            to = "set to " + listing(distinct)
        text = plural(len(items), f"{leaf} change")
        if owners[0] != leaf:  # a service's key, not a top-level one (zones)
            text += f" on {plural(len(owners), 'service')}"
            if len(owners) <= LIST_LIMIT:
                text += f" ({', '.join(owners)})"
        out.append(f"{text}: {to}")
    return out


__all__ = ["IMPLICIT_ZONE", "LIST_LIMIT", "SUMMARY_LIMIT", "arrow", "change_lines",
           "change_summary", "grouped_names", "in_zone", "listing", "number", "numbers_text",
           "percent", "plural"]
