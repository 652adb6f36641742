"""The verifier and the simulator agree on one_of, group and fallback steps.

Generated systems with the call forms (``model.strategies``' ``call_forms``) go through the
agreement harness (tests/agreement.py): every ``survives`` / ``capacity`` verdict that holds
must survive its adversarial scenarios in simulation, every violated one must replay, and the
degraded share the verifier predicts for an entry (a one_of branch down, a group's callee down)
must match the simulated share. A forged verdict shows the harness fails on these forms too.
"""

from __future__ import annotations

import collections
import textwrap
from typing import Any

import agreement as A
from hypothesis import HealthCheck, Phase, given, settings
from simhelp import spec

from faultmesh.model import properties as P
from faultmesh.model.spec import dump
from faultmesh.model.spec.load import from_document
from faultmesh.model.strategies import spec_documents
from faultmesh.model.system import Fallback, Group, OneOf
from faultmesh.model.verify.verdict import Verdict

SYSTEMS = 30
CI = A.Settings(measure=15.0, max_failure_sets=3)
FEATURES: dict[str, Any] = dict(
    min_services=3, max_services=4, max_replicas=2, max_zones=2, max_calls=3,
    call_forms=True, probabilities=True, scenarios=False, discovery=True)
FORMS = (OneOf, Group, Fallback)


def with_capacity(document: dict[str, Any]) -> dict[str, Any]:
    """The document checking capacity too, next to the drawn survives, with per-try timeouts
    no service time reaches: the predicted shares assume no try times out (a timed-out try
    followed by a failed one would be counted against the call forms)."""
    document["properties"] = [*document.get("properties", []),
                              {"capacity": {"failures": 0, "utilization": "95%"}}]
    _long_timeouts(document["services"])
    return document


def _long_timeouts(node: Any) -> None:
    if isinstance(node, dict):
        if "timeout" in node and "call" in node:
            node["timeout"] = "10s"
        for value in node.values():
            _long_timeouts(value)
    elif isinstance(node, list):
        for item in node:
            _long_timeouts(item)


def test_generated_call_forms_agree() -> None:
    seen: collections.Counter[tuple[str, str]] = collections.Counter()
    forms: collections.Counter[str] = collections.Counter()
    wrong: list[str] = []

    @settings(max_examples=SYSTEMS, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(spec_documents(**FEATURES))
    def one(document: dict[str, Any]) -> None:
        system = from_document(with_capacity(document))
        for service in system.services.values():
            for endpoint in service.endpoints.values():
                forms.update(type(s).__name__ for s in endpoint.steps if isinstance(s, FORMS))
        for finding in A.check(system, CI):
            seen[(finding.kind, finding.status)] += 1
            if not finding.agrees:
                wrong.append(f"{finding.kind} {finding.status} [{finding.scenario}]: "
                             f"{finding.detail}\n{textwrap.indent(dump(system), '    ')}")

    one()
    assert not wrong, f"{len(wrong)} disagreements; the first:\n" + "\n".join(wrong[:3])
    assert all(forms[f.__name__] >= 2 for f in FORMS), dict(forms)
    # Both directions of survives, and capacity, were exercised (else the test proves little).
    # (survives holds with failures >= 1 is rare among drawn systems: the next test has them.)
    for key in (("survives", "violated"), ("capacity", "holds")):
        assert seen[key] >= 2, (key, dict(seen))


ONE_OF = """
system: forged
services:
  front:
    replicas: 2
    workers: 8
    endpoints:
      home:
        service_time: 1ms
        calls: [{one_of: [{call: a.x, weight: 1}, {call: b.y, weight: 1}]}]
  a: {workers: 8, endpoints: {x: {service_time: 1ms}}}
  b: {workers: 8, endpoints: {y: {service_time: 1ms}}}
workload: [{entry: front.home, rate: 50/s}]
"""


FIXED = """
system: fixed
zones: [a, b]
services:
  front:
    replicas: 2
    workers: 8
    endpoints:
      home:
        service_time: 1ms
        calls:
          - {one_of: [{call: a.x, weight: 3}, {call: b.y, weight: 1}]}
          - {call: a.x, fallback: c.z}
          - {group: {probability: 0.3, parallel: [c.z, b.y]}}
  a: {workers: 8, placement: {a: 1}, endpoints: {x: {service_time: 1ms}}}
  b: {workers: 8, placement: {b: 1}, endpoints: {y: {service_time: 1ms}}}
  c: {workers: 8, placement: {b: 1}, endpoints: {z: {service_time: 1ms}}}
workload: [{entry: front.home, rate: 50/s}]
properties:
  - survives: {failures: 1, of: [instance]}
  - survives: {failures: 1, of: [zone], name: zones}
  - capacity: {failures: 0}
"""


def test_fixed_call_forms_agree_both_ways() -> None:
    """One failure of an instance: every callee is in a one_of, a fallback or a group, so the
    entry is degraded (by the shares the harness checks), not down. One zone: zone a takes
    a.x, whose fallback c.z is in zone b, and the one_of keeps b.y: degraded again; zone b
    takes b.y and c.z: the fallback pair still has a.x. So both survive; with capacity."""
    system = spec(FIXED)
    findings = A.check(system, CI)
    assert findings and all(f.agrees for f in findings), findings
    statuses = {(f.kind, f.status) for f in findings}
    assert ("survives", "holds") in statuses and ("capacity", "holds") in statuses
    # The same system with c.z taken out of the fallback: zone a now takes the entry down.
    broken = spec(FIXED.replace("{call: a.x, fallback: c.z}", "a.x"))
    findings = A.check(broken, CI)
    assert all(f.agrees for f in findings), findings
    assert ("survives", "violated") in {(f.kind, f.status) for f in findings}


def test_harness_catches_a_one_of_share_the_engine_does_not_show() -> None:
    """The verifier's degraded share is what the harness compares: forging the weights (the
    verifier sees 1:1, the engine runs 9:1) makes the b-down scenario disagree."""
    honest = spec(ONE_OF)
    prop = P.Survives(name="survives", failures=1, of=("instance",))
    verdict = Verdict("survives", "survives", "holds", "forged")
    assert all(f.agrees for f in A.check_survives(honest, prop, verdict, CI))
    engine = spec(ONE_OF.replace("weight: 1}, {call: b.y, weight: 1}",
                                 "weight: 9}, {call: b.y, weight: 1}"))
    # Simulate the 9:1 system while predicting with the 1:1 one's shares.
    original = A.shares
    try:
        A.shares = lambda system, units: original(honest, units)  # type: ignore[assignment]
        findings = A.check_survives(engine, prop, verdict, CI)
    finally:
        A.shares = original  # type: ignore[assignment]
    assert not all(f.agrees for f in findings), findings
