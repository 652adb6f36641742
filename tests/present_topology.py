"""A TrainTicket-sized spec for the presentation tests: 64 services, 84 workload entries.

TrainTicket (FudanSELab/train-ticket) has about 40 business services behind one gateway
(``ts-ui-dashboard``) and a datastore per service; its call graph is not among
specs/topologies, so this generator builds one of the same shape: a gateway with 84 endpoints
(the entries, their traffic skewed as a Zipf law), 40 business services that call 1-3 others
and their own datastore, and 23 datastores. Every service runs one replica (the upstream
docker-compose), every call waits 1 s: ``survives`` fails at K=1 and ``timeouts_nest`` on
many edges, so the output has long lists to summarize.
"""

from __future__ import annotations

import random
from pathlib import Path

import yaml

BUSINESS, STORES, ENTRIES = 40, 23, 84


def trainticket_like(seed: int = 13, *, total_rate: float = 120.0, breakers: bool = True,
                     zones: bool = False) -> dict[str, object]:
    """The spec as a YAML document (a dict)."""
    rng = random.Random(seed)
    business = [f"ts-svc{i:02d}" for i in range(BUSINESS)]
    stores = [f"ts-db{i:02d}" for i in range(STORES)]
    services: dict[str, object] = {}
    for name in stores:
        services[name] = {"workers": 8, "endpoints": {"Query": {
            "signature": {"input": "Q", "output": "R", "errors": ["Unavailable"]},
            "service_time": {"exponential": "0.4ms"}}}}
    for index, name in enumerate(business):
        later = business[index + 1:]
        calls: list[object] = [f"{stores[index % STORES]}.Query"]
        for callee in rng.sample(later, min(len(later), rng.randint(0, 2))):
            call: dict[str, object] = {"call": f"{callee}.Handle"}
            if breakers and rng.random() < 0.3:
                call["circuit_breaker"] = {"consecutive_failures": 5, "open_for": "10s"}
            calls.append(call)
        services[name] = {"workers": 4, "endpoints": {"Handle": {
            "signature": {"input": "Q", "output": "R",
                          "errors": ["Unavailable", "DeadlineExceeded", "CircuitOpen"]},
            "service_time": {"exponential": "1ms"}, "calls": calls}}}
    endpoints: dict[str, object] = {}
    workload = []
    weights = [1 / (k + 1) for k in range(ENTRIES)]
    scale = total_rate / sum(weights)
    for k in range(ENTRIES):
        targets = rng.sample(business[:20], rng.randint(1, 2))
        endpoints[f"api{k:02d}"] = {
            "signature": {"input": "HttpRequest", "output": "Page",
                          "errors": ["Unavailable", "DeadlineExceeded", "CircuitOpen"]},
            "service_time": {"exponential": "0.2ms"},
            "calls": [f"{t}.Handle" for t in targets]}
        workload.append({"entry": f"ts-ui-dashboard.api{k:02d}",
                         "rate": f"{max(0.05, weights[k] * scale):.3f}/s"})
    services["ts-ui-dashboard"] = {"workers": 8, "endpoints": endpoints}
    document: dict[str, object] = {
        "system": "trainticket_like",
        "defaults": {"call": {"timeout": "1s", "retries": 0}},
        "services": services,
        "workload": workload,
        "properties": [{"survives": {"failures": 1}}, {"timeouts_nest": {}},
                       {"availability": {"entry": "ts-ui-dashboard.api00",
                                         "at_least": "99%"}}],
        "scenarios": {"svc-outage": {"duration": "60s", "warmup": "5s", "faults": [
            {"at": "15s", "for": "20s", "crash": "service:ts-svc03"},
            {"at": "40s", "for": "10s", "latency": {"target": "ts-svc07", "add": "50ms"}}]}},
    }
    if zones:
        document["zones"] = ["a", "b", "c"]
    return document


def write_trainticket_like(path: Path, **options: object) -> Path:
    path.write_text(yaml.safe_dump(trainticket_like(**options), sort_keys=False),  # type: ignore[arg-type]
                    encoding="utf-8")
    return path


if __name__ == "__main__":
    import sys

    print(write_trainticket_like(Path(sys.argv[1])))
