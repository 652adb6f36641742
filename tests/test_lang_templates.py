"""Specs that scale: templates, endpoint defaults, labels, traffic mixes and sessions.

The merge rule (``defaults.service`` < templates in ``extends`` order < the service's own keys,
mappings merged deeply, anything else replaced), labels turned into names with references by
label, a rate split by weight, sessions in the engine and the verifier, and the size promise:
a 64-service, 84-entry system written with templates is at most a third of the same system
written out service by service, and both give the same System.
"""

from __future__ import annotations

import textwrap

import pytest
from simhelp import spec

from faultmesh.model.faults import Scenario
from faultmesh.model.spec import dump, json_schema, loads
from faultmesh.model.verify.load import offered_load

TEMPLATED = """
system: tmpl
zones: [a, b]
defaults:
  service:
    replicas: 2
    workers: 2
    endpoint_defaults:
      service_time: 2ms
      signature: {errors: [Unavailable]}
templates:
  store:
    workers: 8
    endpoints: {Get: {}}
  replicated-store:
    extends: store
    replicas: 3
    endpoint_defaults: {signature: {output: Row}}
services:
  front:
    replicas: 4
    endpoints:
      Home:
        signature: {errors: [Unavailable, Timeout]}
        calls: [db.Get]
  db:
    extends: [replicated-store]
    workers: 16
    endpoints:
      Put: {service_time: 5ms}
workload: [{entry: front.Home, rate: 10/s}]
"""

EXPANDED = """
system: tmpl
zones: [a, b]
services:
  front:
    replicas: 4
    workers: 2
    endpoints:
      Home:
        service_time: 2ms
        signature: {errors: [Unavailable, Timeout]}
        calls: [db.Get]
  db:
    replicas: 3
    workers: 16
    endpoints:
      Get: {service_time: 2ms, signature: {output: Row, errors: [Unavailable]}}
      Put: {service_time: 5ms, signature: {output: Row, errors: [Unavailable]}}
workload: [{entry: front.Home, rate: 10/s}]
"""


def test_merge_rule_defaults_then_templates_then_own_keys() -> None:
    templated, expanded = spec(TEMPLATED), spec(EXPANDED)
    assert templated == expanded
    db = templated.services["db"]
    assert (db.replicas, db.workers) == (3, 16)  # template chain, then the service's own
    assert list(db.endpoints) == ["Get", "Put"]  # endpoints merged, template's first
    # A list replaces: front's own errors win whole over the defaults' list.
    assert templated.endpoint("front.Home").signature.errors == ("Unavailable", "Timeout")
    assert loads(dump(templated)) == templated  # the expanded form loads to the same System


def test_template_values_are_located_at_the_template() -> None:
    bad = TEMPLATED.replace("    replicas: 3\n", "    replicas: three\n")
    with pytest.raises(Exception) as caught:
        loads(bad, "t.yaml")
    lines = str(caught.value).splitlines()
    # At the template's line, under the template's path and under the service it reaches.
    assert any("t.yaml:17:15: templates.replicated-store.replicas" in line for line in lines)
    assert any("t.yaml:17:15: services.db.replicas" in line for line in lines), lines


LABELS = """
system: labels
services:
  orders:
    endpoints:
      "GET /api/v1/orders/{id}": {service_time: 1ms}
      UserService.RegisterUser: {service_time: 1ms, calls: ["orders.GET /api/v1/orders/{id}"]}
      Plain: {label: "POST /plain", service_time: 1ms}
workload:
  - {entry: orders.UserService.RegisterUser, rate: 5/s}
"""


def test_labels_become_names_and_references_by_label_resolve() -> None:
    system = loads(LABELS)
    endpoints = system.services["orders"].endpoints
    assert list(endpoints) == ["GET_api_v1_orders_id", "UserService_RegisterUser", "Plain"]
    assert endpoints["GET_api_v1_orders_id"].label == "GET /api/v1/orders/{id}"
    assert endpoints["Plain"].label == "POST /plain"
    assert [c.target for c in endpoints["UserService_RegisterUser"].calls()] == \
        ["orders.GET_api_v1_orders_id"]
    assert system.entries == ("orders.UserService_RegisterUser",)
    text = dump(system)
    assert "label: GET /api/v1/orders/{id}" in text
    assert loads(text) == system


def test_mix_splits_one_rate_over_entries_by_weight() -> None:
    system = spec("""
        system: mix
        services:
          front: {endpoints: {Home: {}, Cart: {}, Buy: {}}}
        workload:
          rate: 600/s
          mix: {front.Home: 4, front.Cart: 1, front.Buy: 1}
        """)
    assert {w.entry: w.rate for w in system.workload} == {
        "front.Home": 400.0, "front.Cart": 100.0, "front.Buy": 100.0}


SESSIONS = """
system: sessions
services:
  front: {workers: 100, endpoints: {Home: {service_time: 10ms}, Cart: {service_time: 10ms}}}
workload:
  - sessions: {users: 20, think: {exponential: 1s}, steps: [front.Home, front.Cart, front.Home]}
"""


def test_sessions_run_closed_loop_and_capacity_bounds_them() -> None:
    from faultmesh.simulations import simulate

    system = spec(SESSIONS)
    (sessions,) = system.sessions
    assert system.entries == ("front.Home", "front.Cart")
    assert loads(dump(system)) == system
    # The verifier's rate: users / think, split over the steps (Home twice, Cart once).
    load = offered_load(system).endpoints
    assert float(load["front.Home"]) == pytest.approx(20 / 1.0 * 2 / 3)
    assert float(load["front.Cart"]) == pytest.approx(20 / 1.0 / 3)
    run = simulate(system, Scenario("closed", (), 210.0, 10.0), seed=3).summary["entries"]
    measured = (run["front.Home"]["requests"] + run["front.Cart"]["requests"]) / 200.0
    # Closed loop: users / (think + response), response about 10 ms; never above the bound.
    assert measured == pytest.approx(20 / 1.01, rel=0.06)
    assert measured <= sessions.rate
    assert run["front.Home"]["requests"] == pytest.approx(2 * run["front.Cart"]["requests"],
                                                          rel=0.02)


def test_sessions_need_a_think_time() -> None:
    with pytest.raises(Exception, match="think time above 0"):
        loads(SESSIONS.replace("{exponential: 1s}", "0s"))


def test_schema_has_every_new_key() -> None:
    text = str(json_schema())
    for key in ("templates", "extends", "endpoint_defaults", "one_of", "group", "fallback",
                "weight", "label", "mix", "sessions", "think", "users"):
        assert f"'{key}'" in text, key
    assert "'service'" in str(json_schema()["$defs"]["DefaultsSpec"])


# --- size: a TrainTicket-sized system (64 services, 84 entries), written both ways ---------

ERRORS = "[Unavailable, DeadlineExceeded, InvalidArgument]"


def _shape(n: int = 64, entries: int = 84) -> list[tuple[str, list[str], list[str]]]:
    """(service, endpoints, callees of each endpoint): a gateway with ``entries`` entries fanning
    into 63 services of 1-3 endpoints each (synthetic, TrainTicket's size)."""
    services = [f"ts-svc{i:02d}" for i in range(1, n)]
    shape: list[tuple[str, list[str], list[str]]] = []
    gateway = [f"op{j}" for j in range(entries)]
    shape.append(("ts-gateway", gateway,
                  [f"{services[j % len(services)]}.Get" for j in range(entries)]))
    for i, name in enumerate(services):
        eps = ["Get", "Put", "List"][: 1 + i % 3]
        callees = [f"{services[i + 1]}.Get" if i + 1 < len(services) and k == 0 else ""
                   for k in range(len(eps))]
        shape.append((name, eps, callees))
    return shape


def _expanded() -> str:
    out = ["system: trainticket-sized", "zones: [a, b, c]", "services:"]
    for name, eps, callees in _shape():
        out += [f"  {name}:", "    replicas: 3", "    placement: {a: 1, b: 1, c: 1}",
                "    workers: 8", "    concurrency: 256", "    endpoints:"]
        for ep, callee in zip(eps, callees, strict=True):
            out += [f"      {ep}:", "        service_time: {exponential: 2ms}",
                    f"        signature: {{input: Request, output: Response, errors: {ERRORS}}}"]
            out += [f"        calls: [{{call: {callee}, timeout: 500ms, retries: 1}}]"] \
                if callee else []
    out += ["workload:"] + [f"  - {{entry: ts-gateway.op{j}, rate: 2/s}}" for j in range(84)]
    return "\n".join(out) + "\n"


def _templated() -> str:
    out = ["system: trainticket-sized", "zones: [a, b, c]", "defaults:",
           "  call: {timeout: 500ms, retries: 1}", "  service:",
           "    replicas: 3", "    workers: 8", "    concurrency: 256",
           "    endpoint_defaults:", "      service_time: {exponential: 2ms}",
           f"      signature: {{input: Request, output: Response, errors: {ERRORS}}}",
           "templates:", "  crud1: {endpoints: {Get: {}}}",
           "  crud2: {extends: crud1, endpoints: {Put: {}}}",
           "  crud3: {extends: crud2, endpoints: {List: {}}}", "services:"]
    for name, eps, callees in _shape():
        if name == "ts-gateway":
            out += [f"  {name}:", "    endpoints:"]
            out += [f"      {ep}: {{calls: [{c}]}}" for ep, c in zip(eps, callees, strict=True)]
            continue
        own = f", endpoints: {{Get: {{calls: [{callees[0]}]}}}}" if callees[0] else ""
        out.append(f"  {name}: {{extends: crud{len(eps)}{own}}}")
    mix = ", ".join(f"ts-gateway.op{j}: 1" for j in range(84))
    out += ["workload:", "  rate: 168/s", f"  mix: {{{mix}}}"]
    return "\n".join(out) + "\n"


def test_templated_trainticket_sized_spec_is_a_third_and_the_same_system() -> None:
    expanded, templated = _expanded(), _templated()
    a, b = loads(expanded), loads(templated)
    assert len(a.services) == 64 and len(a.entries) == 84
    assert a == b
    assert loads(dump(b)) == a
    lines = len(textwrap.dedent(templated).splitlines())
    assert lines * 3 <= len(expanded.splitlines()), (lines, len(expanded.splitlines()))
