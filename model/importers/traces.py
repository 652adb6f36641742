"""Distributed traces (Jaeger JSON, OTLP JSON) -> a spec draft with endpoints, calls, timings.

Formats: the Jaeger query API's ``{"data": [trace, ...]}`` (a single trace object is read too)
and OTLP JSON (``{"resourceSpans": [...]}``), as ``otelcol``'s file exporter and faultmesh's
``simulate --otlp`` write them.

What is read how:
- An endpoint is ``service.operation`` of a span whose parent is in another service, or that
  has no parent (an entry). A span in the same service as its parent (a client span, an
  internal span) is folded into that nearest ancestor endpoint; its cross-service children are
  that endpoint's calls. Names are made spec-safe (other characters become ``_``).
- A Jaeger ``FOLLOWS_FROM`` reference is an asynchronous call (``async: true``): the parent
  did not wait for it, so it does not count against the parent's self time.
- Calls per endpoint: over the endpoint's observed spans, a callee called in k of n of them has
  ``probability`` k/n; called r > 1 times in most spans that call it: ``repeat: r``
  (retries look like repeats in a trace). Calls are ordered by which starts first in the spans
  that make both (by mean start offset for calls never made together); two
  calls whose spans overlap in at least half of the spans that make both are a ``parallel``
  group.
- Service time: each endpoint span's self time (its duration minus the union of its calls'
  spans), fitted as exponential when the coefficient of variation is within 0.2 of 1,
  lognormal (matching the mean and the observed 99th percentile) otherwise, a constant when
  every value is equal; the fit is named in the key's comment.
- Workload: root spans per entry over the observed time window (first to last root start);
  with a single root span the rate is assumed.
- A span whose parent is not in the input (an orphan: sampled away, or a trace cut short) is
  reported with its location and taken as a root of its own.
"""

from __future__ import annotations

import functools
import json
import math
import os
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from faultmesh.model.importers.common import (
    ASSUMED,
    Draft,
    ImportFailed,
    expand_paths,
    read_text,
    spec_name,
)
from faultmesh.model.spec.errors import SpecError


@dataclass
class Span:
    trace: str
    ident: str
    parent: str | None
    service: str
    operation: str
    start: float  # seconds
    end: float
    where: tuple[str, int, int]
    follows: bool = False  # Jaeger FOLLOWS_FROM: the parent did not wait (an async call)
    children: list[Span] = field(default_factory=list)


def _position(text: str, needle: str, start: int = 0) -> tuple[int, int, int]:
    """(line, column, index) of ``needle`` in ``text`` (1-based), or (0, 0, start)."""
    index = text.find(needle, start)
    if index < 0:
        return 0, 0, start
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1, index


def _attr(attributes: Any, key: str) -> Any:
    for item in attributes or []:
        if isinstance(item, dict) and item.get("key") == key:
            value = item.get("value")
            if isinstance(value, dict):
                return next(iter(value.values()), None)
            return value
    return None


def _otlp(data: dict[str, Any], text: str, file: str) -> list[Span]:
    spans: list[Span] = []
    cursor = 0
    for resource_spans in data.get("resourceSpans") or []:
        resource = resource_spans.get("resource") or {}
        service = str(_attr(resource.get("attributes"), "service.name") or "unknown")
        for scope in resource_spans.get("scopeSpans") or resource_spans.get(
                "instrumentationLibrarySpans") or []:
            for raw in scope.get("spans") or []:
                line, column, cursor = _position(text, f'"{raw.get("spanId")}"', cursor)
                where = (file, line, column)
                try:
                    start = int(raw["startTimeUnixNano"]) / 1e9
                    end = int(raw["endTimeUnixNano"]) / 1e9
                    ident, trace = str(raw["spanId"]), str(raw["traceId"])
                except (KeyError, TypeError, ValueError):
                    raise ImportFailed([SpecError(file, line, column, "", "an OTLP span needs "
                                                  "traceId, spanId, startTimeUnixNano and "
                                                  "endTimeUnixNano")]) from None
                cursor += 1
                spans.append(Span(trace, ident, raw.get("parentSpanId") or None, service,
                                  str(raw.get("name") or "unnamed"), start, end, where))
    return spans


def _jaeger(traces: list[Any], text: str, file: str) -> list[Span]:
    spans: list[Span] = []
    cursor = 0
    for trace in traces:
        processes = trace.get("processes") or {} if isinstance(trace, dict) else {}
        for raw in (trace.get("spans") or []) if isinstance(trace, dict) else []:
            line, column, cursor = _position(text, f'"{raw.get("spanID")}"', cursor)
            try:
                start = float(raw["startTime"]) / 1e6
                end = start + float(raw["duration"]) / 1e6
                ident, trace_id = str(raw["spanID"]), str(raw["traceID"])
            except (KeyError, TypeError, ValueError):
                raise ImportFailed([SpecError(file, line, column, "", "a Jaeger span needs "
                                              "traceID, spanID, startTime and duration")]
                                   ) from None
            cursor += 1
            references = [r for r in raw.get("references") or [] if isinstance(r, dict)]
            parents = [r.get("spanID") for r in references
                       if r.get("refType", "CHILD_OF") == "CHILD_OF"]
            follows = not parents and bool(references)
            parents = parents or [r.get("spanID") for r in references]
            process = processes.get(raw.get("processID")) or raw.get("process") or {}
            service = str(process.get("serviceName") or "unknown")
            spans.append(Span(trace_id, ident, parents[0] if parents else None, service,
                              str(raw.get("operationName") or "unnamed"), start, end,
                              (file, line, column), follows))
    return spans


def read_spans(file: str, text: str) -> list[Span]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFailed([SpecError(file, exc.lineno, exc.colno, "",
                                      f"invalid JSON: {exc.msg}")]) from None
    if isinstance(data, dict) and "resourceSpans" in data:
        return _otlp(data, text, file)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return _jaeger(data["data"], text, file)
    if isinstance(data, dict) and "spans" in data:
        return _jaeger([data], text, file)
    raise ImportFailed([SpecError(file, 1, 1, "", "neither Jaeger JSON ({\"data\": [...]}) nor "
                                  "OTLP JSON ({\"resourceSpans\": [...]})")])


# --- analysis ---------------------------------------------------------------------------------


def _union(intervals: list[tuple[float, float]]) -> float:
    total, reach = 0.0, -math.inf
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


def _calls_of(span: Span) -> list[Span]:
    """The cross-service spans below ``span``, looking through same-service spans."""
    out: list[Span] = []
    for child in span.children:
        if child.service != span.service:
            out.append(child)
        else:
            out.extend(_calls_of(child))
    return out


def fit(values: list[float]) -> tuple[Any, str]:
    """A distribution for ``values`` (seconds) in spec form, and which fit it is."""
    values = [max(v, 0.0) for v in values]
    mean = statistics.fmean(values)
    if mean <= 0 or len(values) < 2 or max(values) == min(values):
        return _ms(mean), f"constant (mean of {len(values)})"
    cv = statistics.stdev(values) / mean
    if abs(cv - 1) <= 0.2:
        return {"exponential": _ms(mean)}, f"exponential fit (n={len(values)}, cv={cv:.2f})"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    if p99 <= mean:
        return _ms(mean), f"constant (mean of {len(values)}; p99 below the mean)"
    return ({"lognormal": {"mean": _ms(mean), "p99": _ms(p99)}},
            f"lognormal fit to mean and p99 (n={len(values)}, cv={cv:.2f})")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.4g}ms"


@dataclass
class _Endpoint:
    spans: int = 0
    self_times: list[float] = field(default_factory=list)
    called: Counter[str] = field(default_factory=Counter)  # spans that call target
    counts: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    offsets: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    overlaps: Counter[tuple[str, str]] = field(default_factory=Counter)
    together: Counter[tuple[str, str]] = field(default_factory=Counter)
    asynchronous: set[str] = field(default_factory=set)
    before: Counter[tuple[str, str]] = field(default_factory=Counter)  # (a, b): a started first

    def precedes(self, a: str, b: str) -> int:
        """-1 when a comes before b, 1 after: by which started first in the spans that make
        both (majority), else by mean start offset."""
        pair = (a, b) if a <= b else (b, a)
        together = self.together[pair]
        if together:
            first = self.before[pair] * 2
            if first != together:
                earlier = pair[0] if first > together else pair[1]
                return -1 if earlier == a else 1
        offsets = statistics.fmean(self.offsets[a]), statistics.fmean(self.offsets[b])
        return -1 if (offsets[0], a) < (offsets[1], b) else 1


def import_traces(paths: Iterable[str | os.PathLike[str]], system: str = "imported") -> Draft:
    """Read trace files into a draft (see the module docstring)."""
    draft = Draft(system)
    spans: list[Span] = []
    for file in expand_paths(paths, (".json",), draft):
        found = read_spans(str(file), read_text(file))
        draft.sources.append(f"{file}: {len(found)} span(s), "
                             f"{len({s.trace for s in found})} trace(s)")
        spans.extend(found)
    if not spans:
        raise ImportFailed([SpecError(str(p), 0, 0, "", "no spans found") for p in paths])
    by_id: dict[tuple[str, str], Span] = {}
    for span in spans:
        key = (span.trace, span.ident)
        if key in by_id:
            draft.warn(*span.where, f"span {span.ident} appears twice in trace {span.trace}; "
                       "the second copy is ignored")
            continue
        by_id[key] = span
    roots: list[Span] = []
    for span in by_id.values():
        parent = by_id.get((span.trace, span.parent)) if span.parent else None
        if parent is None:
            if span.parent:
                draft.warn(*span.where, f"orphan span {span.ident} ({span.service} "
                           f"{span.operation}): its parent {span.parent} is not in the input; "
                           "taken as a root")
            roots.append(span)
        else:
            parent.children.append(span)
    endpoints: dict[str, _Endpoint] = defaultdict(_Endpoint)
    names: dict[str, str] = {}

    def name_of(span: Span) -> str:
        ref = f"{spec_name(span.service)}.{spec_name(span.operation)}"
        names.setdefault(ref, f"{span.service} {span.operation}")
        return ref

    def visit(span: Span) -> None:
        ref = name_of(span)
        stats = endpoints[ref]
        stats.spans += 1
        calls = _calls_of(span)
        stats.self_times.append(max(0.0, (span.end - span.start)
                                    - _union([(c.start, c.end) for c in calls
                                              if not c.follows])))
        per_target: dict[str, list[Span]] = defaultdict(list)
        for call in calls:
            per_target[name_of(call)].append(call)
        for target, made in per_target.items():
            if all(c.follows for c in made):
                stats.asynchronous.add(target)
            stats.called[target] += 1
            stats.counts[target][len(made)] += 1
            stats.offsets[target].append(min(c.start for c in made) - span.start)
        targets = sorted(per_target)
        first = {target: min(c.start for c in made) for target, made in per_target.items()}
        for i, a in enumerate(targets):
            for b in targets[i + 1:]:
                stats.together[(a, b)] += 1
                if first[a] < first[b]:
                    stats.before[(a, b)] += 1
                if any(x.start < y.end and y.start < x.end
                       for x in per_target[a] for y in per_target[b]):
                    stats.overlaps[(a, b)] += 1
        for call in calls:
            visit(call)

    for root in roots:
        visit(root)
    _write(draft, endpoints, names, roots)
    return draft


def _write(draft: Draft, endpoints: dict[str, _Endpoint], names: dict[str, str],
           roots: list[Span]) -> None:
    for ref, stats in endpoints.items():
        service, endpoint = ref.split(".")
        base = ("services", service, "endpoints", endpoint)
        distribution, how = fit(stats.self_times)
        draft.put((*base, "service_time"), distribution, f"self time: {how}")
        if names[ref] != f"{service} {endpoint}":
            draft.comments[base] = f"traced as {names[ref]!r}"
        order = sorted(stats.called, key=functools.cmp_to_key(stats.precedes))
        steps: list[Any] = []
        comments: list[str | None] = []
        for target in order:
            item = _call(stats, target)
            previous = steps[-1] if steps else None
            last = (previous["parallel"][-1] if isinstance(previous, dict)
                    and "parallel" in previous else previous)
            last_target = (last if isinstance(last, str) else
                           last.get("call") if isinstance(last, dict) else None)
            other = last_target or ""
            pair = (other, target) if other <= target else (target, other)
            if (last_target and stats.together[pair] and target not in stats.asynchronous
                    and last_target not in stats.asynchronous
                    and stats.overlaps[pair] * 2 >= stats.together[pair]):
                group = previous["parallel"] if isinstance(previous, dict) and \
                    "parallel" in previous else [previous]
                steps[-1] = {"parallel": [*group, item]}
                comments[-1] = "parallel: their spans overlap"
            else:
                steps.append(item)
                comments.append(f"called in {stats.called[target]} of {stats.spans} span(s)")
        if steps:
            draft.put((*base, "calls"), steps)
            for i, note in enumerate(comments):
                if note:
                    draft.comments[(*base, "calls", i)] = note
    for service in draft.document.get("services", {}):
        draft.assume(("services", service, "replicas"), 1, "traces do not show replicas")
    draft.assume(("defaults", "call", "timeout"), "1s", "traces do not show timeouts")
    _workload(draft, roots)
    draft.assumptions.append("replicas, timeouts and retries are not in traces: defaults")
    draft.assumptions.append("asynchronous calls: Jaeger FOLLOWS_FROM references only (OTLP "
                             "JSON does not mark them)")


def _call(stats: _Endpoint, target: str) -> Any:
    item: dict[str, Any] = {"call": target}
    probability = stats.called[target] / stats.spans
    if probability < 1:
        item["probability"] = round(probability, 4)
    repeat, _ = stats.counts[target].most_common(1)[0]
    if repeat > 1:
        item["repeat"] = repeat
    if target in stats.asynchronous:
        item["async"] = True
    return target if len(item) == 1 else item


def _workload(draft: Draft, roots: list[Span]) -> None:
    per_entry: dict[str, list[float]] = defaultdict(list)
    for root in roots:
        per_entry[f"{spec_name(root.service)}.{spec_name(root.operation)}"].append(root.start)
    workload = []
    comments: dict[int, str] = {}
    for i, (entry, starts) in enumerate(sorted(per_entry.items())):
        window = max(starts) - min(starts)
        if len(starts) > 1 and window > 0:
            # n arrivals span n - 1 gaps: (n - 1) / window estimates the rate without bias.
            rate = (len(starts) - 1) / window
            comments[i] = f"{len(starts)} root spans over {window:.6g} s"
        else:
            rate = 1.0
            comments[i] = f"{ASSUMED}: one root span gives no rate"
        workload.append({"entry": entry, "rate": f"{rate:.6g}/s"})
    draft.put(("workload",), workload)
    for i, note in comments.items():
        draft.comments[("workload", i, "rate")] = note
