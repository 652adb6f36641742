"""Specs load into resolved Systems, dump back equal, and agree with the JSON Schema.

Covers the DESIGN.md example (completed), every shipped spec, the schema command, default
resolution (timeouts, breakers, orchestration), placement, immutability and pickling, and
hypothesis property tests over generated Systems (``model.strategies``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from shop_example import SHOP_YAML

from faultmesh.model import faults as F
from faultmesh.model import properties as P
from faultmesh.model import strategies
from faultmesh.model.distributions import Constant, Exponential, LogNormal, Uniform
from faultmesh.model.spec import (
    SpecErrors,
    dump,
    from_document,
    json_schema,
    load,
    loads,
    to_document,
)
from faultmesh.model.system import (
    Backoff,
    ConsecutiveBreakerPolicy,
    FrozenMap,
    Hedge,
    ParallelCalls,
    RateBreakerPolicy,
    RetryBudget,
    RetryThrottling,
    System,
)

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


def faultmesh(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("faultmesh")
    command = [exe] if exe else [sys.executable, "-m", "faultmesh.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    return Draft202012Validator(json_schema())


@pytest.fixture
def shop_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop.yaml"
    path.write_text(SHOP_YAML, encoding="utf-8")
    return path


@pytest.fixture
def shop(shop_file: Path) -> System:
    return load(shop_file)


def schema_errors(validator: Draft202012Validator, document: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(document)]


# --- the DESIGN.md example --------------------------------------------------------------------


def test_shop_example_loads_as_written(shop: System) -> None:
    assert shop.name == "shop"
    assert shop.zones == ("a", "b", "c")
    assert list(shop.services) == ["frontend", "cart", "redis", "pricing", "a", "b", "audit"]
    cart = shop.services["cart"]
    assert (cart.replicas, cart.workers, cart.concurrency, cart.queue) == (2, 4, 64, 128)
    assert cart.depends_on == ("redis",)
    get_cart = cart.endpoints["GetCart"]
    assert get_cart.signature.errors == ("Unavailable",)
    assert get_cart.service_time == Exponential(0.002)
    redis, pricing, parallel, audit = get_cart.steps
    assert redis.target == "redis.HGET" and redis.timeout == 1.0
    assert (pricing.timeout, pricing.retries, pricing.optional) == (0.2, 2, True)
    assert pricing.circuit_breaker == RateBreakerPolicy(
        failure_rate=0.5, window=20, min_calls=10, open_for=30.0, half_open_calls=3)
    assert isinstance(parallel, ParallelCalls)
    assert [c.target for c in parallel.calls] == ["a.X", "b.Y"]
    assert audit.asynchronous and audit.probability == 0.1
    assert shop.communication.same_zone_latency == Constant(0.0005)
    assert shop.services["frontend"].endpoints["home"].service_time == LogNormal(0.005, 0.04)
    assert shop.discovery.mode == "client"
    assert shop.workload[0].rate == 200.0 and shop.workload[0].entry == "frontend.home"
    kinds = [p.kind for p in shop.properties]
    assert kinds == ["survives", "capacity", "timeouts_nest", "retry_amplification",
                     "availability", "latency"]
    latency = shop.properties[-1]
    assert isinstance(latency, P.Latency)
    assert (latency.quantile, latency.threshold) == (0.99, 0.25)
    scenario = shop.scenarios["zone-a-outage"]
    assert (scenario.duration, scenario.warmup) == (600.0, 60.0)
    crash, slow, errors, partition = scenario.faults
    assert crash == F.Crash(at=120.0, duration=180.0, target=F.Target("zone", "a"))
    assert slow.add == Constant(0.2) and slow.target == F.Target("service", "cart")
    assert errors.rate == 0.5 and errors.target == F.Target("endpoint", "pricing.Quote")
    assert partition.between == (F.Target("service", "cart"), F.Target("service", "redis"))


def test_shop_example_round_trips(shop: System, validator: Draft202012Validator) -> None:
    text = dump(shop)
    assert loads(text) == shop
    assert dump(loads(text)) == text  # dumping is a fixed point
    assert schema_errors(validator, yaml.safe_load(text)) == []


def test_shop_example_matches_schema(validator: Draft202012Validator) -> None:
    assert schema_errors(validator, yaml.safe_load(SHOP_YAML)) == []


# --- shipped specs ----------------------------------------------------------------------------


def test_specs_are_shipped() -> None:
    assert SPECS, "specs/*.yaml is empty"


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_shipped_spec_round_trips(spec: Path, validator: Draft202012Validator) -> None:
    system = load(spec)
    text = dump(system)
    assert loads(text) == system
    assert schema_errors(validator, yaml.safe_load(text)) == []


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_shipped_spec_validates_against_schema(spec: Path,
                                               validator: Draft202012Validator) -> None:
    document = yaml.safe_load(spec.read_text(encoding="utf-8"))
    assert schema_errors(validator, document) == []


# --- the schema -------------------------------------------------------------------------------


def test_schema_command_prints_a_valid_draft_2020_12_schema(tmp_path: Path) -> None:
    result = faultmesh("schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema == json_schema()
    out = tmp_path / "sub" / "spec.schema.json"
    result = faultmesh("schema", "-o", str(out))
    assert result.returncode == 0 and result.stdout == ""
    assert json.loads(out.read_text()) == schema


def test_schema_command_to_an_unwritable_place_is_bad_input(tmp_path: Path) -> None:
    # Found by this suite: an unwritable -o path ended in a traceback with exit 1.
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = faultmesh("schema", "-o", str(blocker / "schema.json"))
    assert result.returncode == 2
    assert "cannot write" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_schema_from_the_cli_validates_shipped_specs(spec: Path) -> None:
    # The same check as above but with the schema exactly as an editor would get it.
    schema = json.loads(faultmesh("schema").stdout) if spec == SPECS[0] else json_schema()
    document = yaml.safe_load(spec.read_text(encoding="utf-8"))
    assert list(Draft202012Validator(schema).iter_errors(document)) == []


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda d: d.update(sytem="x"), ""),
        (lambda d: d["services"]["cart"].update(replicas=0), "services/cart/replicas"),
        (lambda d: d["services"]["cart"].update(replicas="2"), "services/cart/replicas"),
        (lambda d: d["network"].update(loss=1.5), "network/loss"),
        (lambda d: d["defaults"]["call"].update(timeout="-5ms"), "defaults/call/timeout"),
        (lambda d: d["defaults"]["call"].update(timeout="5 days"), "defaults/call/timeout"),
        (lambda d: d["workload"][0].update(rate="100/sec"), "workload/0/rate"),
        (lambda d: d["services"]["cart"]["endpoints"]["GetCart"].update(
            service_time={"gamma": 1}), "services/cart/endpoints/GetCart/service_time"),
    ],
)
def test_schema_is_not_vacuous(edit, where: str, validator: Draft202012Validator) -> None:
    document = yaml.safe_load(SHOP_YAML)
    edit(document)
    errors = schema_errors(validator, document)
    assert errors, "the schema accepted a spec the loader refuses"
    assert any(e.startswith(where) for e in errors), errors
    with pytest.raises(SpecErrors):
        from_document(document)


# --- defaults ---------------------------------------------------------------------------------

DEFAULTS_SPEC = """\
system: defaults
defaults:
  call: {timeout: 750ms, retries: 2, backoff: {strategy: constant, base: 10ms, cap: 1s}}
  load_balancer: {least_request: {choices: 3}}
  circuit_breaker: {failure_rate: 25%, window: 50, open_for: 20s}
orchestration:
  restart: {delay: 7s}
  readiness: {period: 3s, failures: 2}
services:
  front:
    endpoints:
      go:
        calls:
          - back.plain
          - {call: back.plain, timeout: 100ms, retries: 0}
          - {call: back.plain, circuit_breaker: none}
          - {call: back.plain, circuit_breaker: {consecutive_failures: 4, open_for: 2s}}
          - {call: back.plain, backoff: none}
  back:
    restart: never
    load_balancer: random
    endpoints:
      plain: {}
"""


def test_defaults_are_resolved_into_every_call() -> None:
    system = loads(DEFAULTS_SPEC)
    plain, explicit, no_breaker, consecutive, no_backoff = system.endpoint("front.go").steps
    default_breaker = RateBreakerPolicy(failure_rate=0.25, window=50, min_calls=50,
                                        open_for=20.0, half_open_calls=10)
    constant = Backoff(strategy="constant", base=0.01, cap=1.0, jitter="full")
    # a call without timeout/retries/backoff/breaker gets the defaults section's
    assert (plain.timeout, plain.retries, plain.backoff) == (0.75, 2, constant)
    assert plain.circuit_breaker == default_breaker  # min_calls defaults to the window
    assert (explicit.timeout, explicit.retries) == (0.1, 0)
    assert explicit.circuit_breaker == default_breaker
    assert no_breaker.circuit_breaker is None  # `circuit_breaker: none` disables the default
    assert consecutive.circuit_breaker == ConsecutiveBreakerPolicy(4, 2.0)  # chosen by keys
    assert no_backoff.backoff.strategy == "none" and no_backoff.backoff.max_delay(3) == 0.0
    assert not plain.optional and not plain.asynchronous and plain.probability == 1.0


def test_defaults_are_resolved_into_every_service() -> None:
    system = loads(DEFAULTS_SPEC)
    front, back = system.services["front"], system.services["back"]
    assert (front.load_balancer.kind, front.load_balancer.choices) == ("least_request", 3)
    assert back.load_balancer.kind == "random"
    assert front.restart.delay == 7.0 and back.restart.delay is None
    assert (front.readiness.period, front.readiness.failures) == (3.0, 2)
    assert (front.replicas, front.workers, front.concurrency, front.queue) == (1, 1, None, None)
    assert front.zones == ("default",) and system.zones == ("default",)
    assert system.endpoint("back.plain").service_time == Constant(0.0)


def test_design_defaults_without_a_defaults_section() -> None:
    system = loads("system: bare\nservices:\n  a: {endpoints: {x: {calls: [b.y]}}}\n"
                   "  b: {endpoints: {y: {}}}\n")
    (call,) = system.endpoint("a.x").steps
    assert (call.timeout, call.retries, call.circuit_breaker) == (1.0, 0, None)
    assert call.backoff == Backoff()
    assert system.discovery.mode == "server"
    assert system.communication.same_zone_latency == Constant(0.0)
    assert system.workload == () and system.properties == () and dict(system.scenarios) == {}


def test_breaker_defaults_round_trip() -> None:
    system = loads(DEFAULTS_SPEC)
    assert loads(dump(system)) == system


# --- placement --------------------------------------------------------------------------------

PLACEMENT_SPEC = """\
system: placed
zones: [a, b, c]
services:
  even: {replicas: 5, endpoints: {x: {}}}
  explicit: {placement: {a: 2, c: 1}, endpoints: {x: {}}}
  lopsided: {placement: {b: 3, a: 1}, replicas: 4, endpoints: {x: {}}}
  single: {endpoints: {x: {}}}
"""


def test_placement_round_robin() -> None:
    system = loads(PLACEMENT_SPEC)
    services = system.services
    assert services["even"].zones == ("a", "b", "c", "a", "b")
    assert services["explicit"].zones == ("a", "c", "a")  # interleaved in zone order
    assert services["lopsided"].zones == ("a", "b", "b", "b")
    assert services["single"].zones == ("a",)
    assert [i.name for i in services["even"].instances] == [f"even-{i}" for i in range(5)]
    assert [i.zone for i in services["explicit"].instances] == ["a", "c", "a"]
    assert len(system.instances) == 5 + 3 + 4 + 1
    assert loads(dump(system)) == system


# --- immutability, equality, pickling ---------------------------------------------------------


def test_frozen_map_refuses_mutation(shop: System) -> None:
    services = shop.services
    assert isinstance(services, FrozenMap)
    mutations = [
        lambda m: m.__setitem__("x", 1),
        lambda m: m.__delitem__("cart"),
        lambda m: m.update(x=1),
        lambda m: m.pop("cart"),
        lambda m: m.popitem(),
        lambda m: m.clear(),
        lambda m: m.setdefault("x", 1),
        lambda m: m.__ior__({"x": 1}),
    ]
    for mutate in mutations:
        with pytest.raises(TypeError, match="frozen"):
            mutate(services)
    with pytest.raises(TypeError):
        shop.services["cart"].endpoints["GetCart"] = None  # type: ignore[index]
    assert list(services) == ["frontend", "cart", "redis", "pricing", "a", "b", "audit"]


def test_system_is_frozen_and_hashable(shop: System) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        shop.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        shop.services["cart"].workers = 9  # type: ignore[misc]
    assert hash(shop) == hash(loads(SHOP_YAML))
    assert {shop: 1}[loads(SHOP_YAML)] == 1


def test_system_pickles(shop: System) -> None:
    again = pickle.loads(pickle.dumps(shop))
    assert again == shop
    assert isinstance(again.services, FrozenMap)
    with pytest.raises(TypeError):
        again.services["x"] = 1  # type: ignore[index]
    assert copy.deepcopy(shop) == shop


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_shipped_system_pickles(spec: Path) -> None:
    system = load(spec)
    assert pickle.loads(pickle.dumps(system)) == system


def test_to_document_is_plain_data(shop: System) -> None:
    document = to_document(shop)
    assert json.loads(json.dumps(document)) == document  # nothing but JSON types
    assert from_document(document) == shop


def test_different_systems_differ(shop: System) -> None:
    other = loads(SHOP_YAML.replace("replicas: 3", "replicas: 4"))
    assert other != shop
    assert other.services["frontend"].zones == ("a", "b", "c", "a")


def test_distributions_round_trip_through_dump() -> None:
    text = SHOP_YAML.replace("{uniform: [0.1ms, 0.5ms]}", "{uniform: [0.1ms, 2s]}")
    system = loads(text)
    assert system.endpoint("redis.HGET").service_time == Uniform(0.0001, 2.0)
    assert loads(dump(system)) == system


# Keys whose values are durations (or distributions of durations) wherever they appear in a
# dumped document; 'window' is one only in availability and latency properties (a breaker's
# window counts calls).
_DURATION_KEYS = {"timeout", "base", "cap", "open_for", "duration", "mean", "p99", "sd",
                  "exponential", "uniform", "empirical", "same_zone", "cross_zone",
                  "service_time", "heartbeat", "ttl", "refresh", "zone_detection", "delay",
                  "period", "initial_delay", "at", "for", "mttf", "mttr", "interval", "within",
                  "warmup", "p50", "p90", "p95", "p999", "add"}


def bare_durations(node: Any, path: str = "", parent: str = "") -> list[str]:
    """Paths in a dumped document where a duration is written as a bare number."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            timed = key in _DURATION_KEYS or (key == "window"
                                              and parent in ("availability", "latency"))
            values = value if isinstance(value, list) and timed else [value]
            for item in values:
                if timed and isinstance(item, int | float) and not isinstance(item, bool):
                    found.append(f"{path}.{key}: {item!r}")
            found += bare_durations(value, f"{path}.{key}", str(key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found += bare_durations(item, f"{path}[{index}]", parent)
    return found


def test_dump_writes_every_duration_with_its_unit() -> None:
    # Found by a new user: 'same_zone: 0.0005' beside 'cross_zone: 2ms' (0.8 x 0.001 is not the
    # float 0.0008, so no unit spelled it exactly and the bare number of seconds was written).
    text = SHOP_YAML.replace("{uniform: [0.1ms, 0.5ms]}",
                             "{lognormal: {mean: 0.8ms, p99: 0.0030000000000000005s}}")
    system = loads(text)
    document = yaml.safe_load(dump(system))
    assert bare_durations(document) == []
    assert document["services"]["redis"]["endpoints"]["HGET"]["service_time"] == {
        "lognormal": {"mean": "0.0008s", "p99": "0.0030000000000000005s"}}
    assert loads(dump(system)) == system
    for spec in SPECS:
        assert bare_durations(yaml.safe_load(dump(load(spec)))) == [], spec.name


# --- property tests over generated Systems ----------------------------------------------------

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow,
                                                    HealthCheck.data_too_large])


@PROPERTY_SETTINGS
@given(strategies.systems())
def test_generated_systems_round_trip(system: System) -> None:
    assert loads(dump(system)) == system
    assert bare_durations(yaml.safe_load(dump(system))) == []


@PROPERTY_SETTINGS
@given(strategies.systems(cyclic_services=True, max_services=5, max_endpoints=3))
def test_generated_cyclic_systems_round_trip(system: System) -> None:
    assert loads(dump(system)) == system


@PROPERTY_SETTINGS
@given(strategies.systems())
def test_generated_dumps_validate_against_schema(system: System) -> None:
    validator = Draft202012Validator(_SCHEMA)
    assert schema_errors(validator, yaml.safe_load(dump(system))) == []


@PROPERTY_SETTINGS
@given(strategies.spec_documents())
def test_generated_documents_validate_against_schema(document: dict[str, Any]) -> None:
    assert schema_errors(Draft202012Validator(_SCHEMA), document) == []


_SCHEMA = json_schema()


# --- client-side overload mitigations (retry budget, throttling, hedging, deadlines) ---------

MITIGATED = """\
system: mitigated
services:
  front:
    propagate_deadline: true
    endpoints:
      home:
        calls:
          - {call: back.get, timeout: 100ms, hedge: {delay: 20ms, max_attempts: 3}}
          - {call: back.get, timeout: 50ms, retries: 2, deadline: 130ms}
  back:
    retry_budget: {percent: 20%, min_concurrency: 3}
    retry_throttling: {max_tokens: 10, token_ratio: 0.1}
    endpoints:
      get: {service_time: 1ms}
"""


def test_client_mitigations_round_trip(validator: Draft202012Validator) -> None:
    system = loads(MITIGATED)
    document = yaml.safe_load(dump(system))
    assert schema_errors(validator, document) == []
    assert loads(dump(system)) == system
    back = document["services"]["back"]
    assert back["retry_budget"] == {"percent": "20.0%", "min_concurrency": 3}
    assert back["retry_throttling"] == {"max_tokens": 10.0, "token_ratio": 0.1}
    assert document["services"]["front"]["propagate_deadline"] is True
    hedged, limited = document["services"]["front"]["endpoints"]["home"]["calls"]
    assert hedged["hedge"] == {"delay": "20ms", "max_attempts": 3}
    assert limited["deadline"] == "130ms" and "hedge" not in limited


@settings(max_examples=25, deadline=None)
@given(percent=st.floats(0, 100), floor=st.integers(0, 1000),
       tokens=st.floats(0.001, 1000), ratio=st.floats(0.001, 1000),
       delay_ms=st.integers(0, 99), attempts=st.integers(1, 5),
       deadline_ms=st.integers(1, 10_000))
def test_generated_mitigations_round_trip(percent: float, floor: int, tokens: float,
                                          ratio: float, delay_ms: int, attempts: int,
                                          deadline_ms: int) -> None:
    base = loads(MITIGATED)
    back = dataclasses.replace(base.services["back"],
                               retry_budget=RetryBudget(percent, floor),
                               retry_throttling=RetryThrottling(tokens, ratio))
    front = base.services["front"]
    home = front.endpoints["home"]
    hedged, limited = home.steps
    steps = (dataclasses.replace(hedged, hedge=Hedge(delay_ms / 1000, attempts)),
             dataclasses.replace(limited, deadline=deadline_ms / 1000))
    front = dataclasses.replace(front, endpoints=FrozenMap(
        {"home": dataclasses.replace(home, steps=steps)}))
    system = dataclasses.replace(base, services=FrozenMap({"front": front, "back": back}))
    assert loads(dump(system)) == system
