"""A traced run's spans as OTLP JSON, the format OpenTelemetry collectors and Jaeger read.

One ``resourceSpans`` entry per service (``service.name``), one span per job: server kind,
named after the endpoint, with the instance in ``faultmesh.instance`` and an error status
when the job failed. Trace ids are the workload request's id, span ids the job's; times are
simulated seconds after a fixed epoch (``EPOCH_NS``), so the same run gives the same file.
Only traces whose root span ended are written: a request still open at the end of the run
would show as a trace cut short. ``faultmesh import traces`` reads the file back.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from faultmesh.simulations.observation.spans import SpanLog

EPOCH_NS = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z: any fixed instant will do
SERVER = 2  # OTLP SpanKind
STATUS_OK, STATUS_ERROR = 1, 2


def _string(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def otlp_document(spans: SpanLog, system: str = "faultmesh") -> dict[str, Any]:
    """The spans of ``spans`` whose trace root finished, as an OTLP JSON document."""
    complete = {row[0] for row in spans.rows if row[2] is None}
    by_service: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for trace, span, parent, service, instance, endpoint, start, end, ok in spans.rows:
        if trace not in complete:
            continue
        by_service[service].append({
            "traceId": f"{trace:032x}",
            "spanId": f"{span:016x}",
            "parentSpanId": f"{parent:016x}" if parent is not None else "",
            "name": endpoint,
            "kind": SERVER,
            "startTimeUnixNano": str(EPOCH_NS + round(start * 1e9)),
            "endTimeUnixNano": str(EPOCH_NS + round(end * 1e9)),
            "attributes": [_string("faultmesh.instance", instance)],
            "status": {"code": STATUS_OK if ok else STATUS_ERROR},
        })
    return {"resourceSpans": [
        {"resource": {"attributes": [_string("service.name", service),
                                     _string("faultmesh.system", system)]},
         "scopeSpans": [{"scope": {"name": "faultmesh"}, "spans": rows}]}
        for service, rows in sorted(by_service.items())]}


def otlp_json(spans: SpanLog, system: str = "faultmesh") -> str:
    return json.dumps(otlp_document(spans, system), indent=1) + "\n"
