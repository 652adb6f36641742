"""`faultmesh import traces`: Jaeger and OTLP JSON, and the round trip through the simulator.

The round trip: a generated spec is simulated with traces, its spans written as OTLP JSON
(`simulate --otlp`), read back by the importer, and the call graph compared with the spec:
the same callees per endpoint in the same order, the same parallel groups and repeats, and
each observed call probability inside the 99.9% Wilson score interval around the spec's.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from import_fixtures import FIXTURES, REPO, needs_fixtures, run

from faultmesh import model
from faultmesh.model.importers.traces import import_traces
from faultmesh.model.spec import from_document
from faultmesh.model.strategies import spec_documents
from faultmesh.simulations.engine.simulation import simulate
from faultmesh.simulations.observation.otlp import otlp_json

TRACES = FIXTURES / "traces"
Z = 3.29  # 99.9% two-sided


@needs_fixtures
def test_jaeger_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "import", "traces", str(TRACES / "jaeger-example.json"))
    assert code == 0, err
    doc = yaml.safe_load(out)
    data = json.loads((TRACES / "jaeger-example.json").read_text())
    services = {p["serviceName"] for p in data["processes"].values()}
    assert set(doc["services"]) == services
    calls = doc["services"]["service1"]["endpoints"]["op1"]["calls"]
    # span-4 (service2 op1) is a CHILD_OF a service1 span; span-7 (service2 op3) FOLLOWS_FROM.
    assert calls == ["service2.op1", {"call": "service2.op3", "async": True}]
    # op1's self time: its 390 ms minus the 20 ms of its synchronous call
    assert doc["services"]["service1"]["endpoints"]["op1"]["service_time"] == "370ms"
    assert [w["entry"] for w in doc["workload"]] == ["service1.op1"]
    model.loads(out)


@needs_fixtures
def test_otlp_example_orphan_and_duplicate_are_located(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    path = TRACES / "otlp-example.json"
    code, out, err = run(capsys, "import", "traces", str(path))
    assert code == 0
    text = path.read_text()
    span = json.loads(text)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    first = text[:text.index(f'"{span["spanId"]}"')].count("\n") + 1
    assert f"{path}:{first}:" in err and "orphan span" in err
    assert "appears twice" in err
    assert set(yaml.safe_load(out)["services"]) == {"telemetrygen"}


def test_broken_json_is_located(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text('{"data": [\n  {"traceID": "a",\n   "spans": [}\n]}\n')
    code, _, err = run(capsys, "import", "traces", str(path))
    assert code == 2 and f"{path}:3:" in err and "invalid JSON" in err


def test_not_a_trace(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text('{"hello": 1}')
    code, _, err = run(capsys, "import", "traces", str(path))
    assert code == 2 and "OTLP" in err


def test_cli_round_trip_on_a_spec(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spans = tmp_path / "spans.json"
    code, _, err = run(capsys, "simulate", str(REPO / "specs" / "online_boutique.yaml"),
                       "-d", "2s", "--otlp", str(spans), "--json")
    assert code in (0, 1) and spans.exists(), err
    code, out, err = run(capsys, "import", "traces", str(spans))
    assert code == 0, err
    system, back = model.load(REPO / "specs" / "online_boutique.yaml"), yaml.safe_load(out)
    for name, service in system.services.items():
        for endpoint in back["services"].get(name, {}).get("endpoints", {}):
            assert endpoint in service.endpoints


def _steps(calls: list[Any]) -> list[Any]:
    """Each step as a target, or a frozenset of targets for a parallel group."""
    out: list[Any] = []
    for step in calls:
        if isinstance(step, dict) and "parallel" in step:
            out.append(frozenset(_target(c) for c in step["parallel"]))
        else:
            out.append(_target(step))
    return out


def _target(call: Any) -> str:
    return call if isinstance(call, str) else call["call"]


def _items(calls: list[Any]) -> dict[str, dict[str, Any]]:
    flat: dict[str, dict[str, Any]] = {}
    for step in calls:
        for call in step["parallel"] if isinstance(step, dict) and "parallel" in step else [step]:
            flat[_target(call)] = {"call": call} if isinstance(call, str) else call
    return flat


def _wilson_contains(p: float, k: int, n: int) -> bool:
    centre = (k + Z * Z / 2) / (n + Z * Z)
    half = Z / (n + Z * Z) * math.sqrt(k * (n - k) / n + Z * Z / 4)
    return centre - half - 1e-9 <= p <= centre + half + 1e-9


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec_documents(min_services=2, max_services=5, max_replicas=2, async_calls=False,
                      retries=False, breakers=False, probabilities=True, properties=False,
                      scenarios=False))
def test_round_trip_through_otlp(tmp_path_factory: pytest.TempPathFactory,
                                 document: dict[str, Any]) -> None:
    # No failures, so that every call the spec makes is seen: ample workers and timeouts.
    document["defaults"] = {"call": {"timeout": "60s"}}
    for service in document["services"].values():
        service["workers"] = 64
    for item in document["workload"]:
        item["rate"] = "15/s"
    system = from_document(document)
    run_ = simulate(system, None, duration=30, seed=3, trace=True)
    assert run_.spans is not None
    path = tmp_path_factory.mktemp("otlp") / "spans.json"
    path.write_text(otlp_json(run_.spans, system.name))
    draft = import_traces([path])
    back = draft.document
    model.loads(draft.text())
    observed = {f"{s}.{e}": body for s, svc in back["services"].items()
                for e, body in svc["endpoints"].items()}
    counts = {ref: int(c.split(" of ")[1].split()[0]) for ref, c in _span_counts(path).items()}
    for ref, body in observed.items():
        service, endpoint = ref.split(".")
        spec_calls = document["services"][service]["endpoints"][endpoint]["calls"]
        wanted = {t: i for t, i in _items(spec_calls).items() if i.get("probability", 1) > 0}
        got = _items(body.get("calls", []))
        n = counts[ref]
        if n >= 200:
            assert set(got) == set(wanted), ref
        for target, item in got.items():
            assert target in wanted, (ref, target)
            p = float(wanted[target].get("probability", 1))
            k = round(float(item.get("probability", 1)) * n)
            assert _wilson_contains(p, k, n), (ref, target, p, k, n)
            assert item.get("repeat", 1) == wanted[target].get("repeat", 1), (ref, target)
        # Order: the imported steps follow the spec's steps; parallel groups stay groups.
        position = {target: i for i, step in enumerate(_steps(spec_calls))
                    for target in (step if isinstance(step, frozenset) else [step])}
        imported = _steps(body.get("calls", []))
        places = [min(position[t] for t in (s if isinstance(s, frozenset) else [s]))
                  for s in imported]
        assert places == sorted(places), (ref, imported)
        for step in _steps(spec_calls):
            if isinstance(step, frozenset) and step <= set(got) and all(
                    float(wanted[t].get("probability", 1)) == 1 for t in step):
                assert step in imported, (ref, step, imported)


def _span_counts(path: Path) -> dict[str, str]:
    """Endpoint -> the span count the importer saw (from its comments' source: the spans)."""
    data = json.loads(path.read_text())
    counts: dict[str, int] = {}
    for resource in data["resourceSpans"]:
        service = resource["resource"]["attributes"][0]["value"]["stringValue"]
        for span in resource["scopeSpans"][0]["spans"]:
            ref = f"{service}.{span['name']}"
            counts[ref] = counts.get(ref, 0) + 1
    return {ref: f"x of {n} spans" for ref, n in counts.items()}
