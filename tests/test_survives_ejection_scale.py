"""`survives`'s outlier-ejection check stays linear in the system, with the same answers.

The check names the first service (spec order) that some entry needs and whose callers'
outlier detection may eject every live host. It used to scan every call of the system for the
callers of each service and walk the whole endpoint graph backwards once per such service:
quadratic, 5 s at 1,000 services with outlier detection outside the entries' cone. These tests
pin the work (no walk for a service no entry reaches) and the answers (the same service and
reason as the direct definition, on the shipped specs with outlier detection everywhere).
"""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from faultmesh import model
from faultmesh.model.policies import OutlierDetection
from faultmesh.model.properties import Survives
from faultmesh.model.system import FrozenMap, System
from faultmesh.model.verify import Deadline, verify
from faultmesh.model.verify.cones import RequiredGraph
from faultmesh.model.verify.failures import FailureKinds
from faultmesh.model.verify.survives import _ejectable_needed, ejectable
from faultmesh.model.verify.thinning import Failing

SPECS = Path(__file__).resolve().parent.parent / "specs"
SIDE = 30  # services outside the entry's cone


def _side_services() -> str:
    """``SIDE`` services in a chain nobody's workload reaches, each with outlier detection
    that may eject both of its hosts; network loss makes every host able to fail a call."""
    lines = []
    for i in range(SIDE):
        calls = f"calls: [{{call: side{i + 1}.get, timeout: 1s}}]" if i + 1 < SIDE else ""
        lines.append(f"""
  side{i}:
    replicas: 2
    outlier_detection: {{max_ejection_percent: 100}}
    endpoints:
      get: {{service_time: 1ms, {calls}}}""")
    return "".join(lines)


SPEC = textwrap.dedent("""
    system: side-ejection
    network: {loss: 1%}
    services:
      front:
        replicas: 2
        endpoints:
          home: {service_time: 1ms, calls: [{call: back.get, timeout: 1s}]}
      back:
        replicas: 2
        endpoints:
          get: {service_time: 1ms}
    """) + _side_services() + "\nworkload:\n  - {entry: front.home, rate: 10/s}\n"


def test_services_no_entry_reaches_cost_no_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    system = model.loads(SPEC)
    kinds = FailureKinds.of(("instance",))
    # Every side service is ejectable: the check has something to look at for each.
    failing = Failing(system)
    assert all(ejectable(system, system.services[f"side{i}"], kinds, 0, failing)
               for i in range(SIDE))
    walks: list[set[str]] = []
    original = RequiredGraph.unavailable

    def counted(self: RequiredGraph, services_down: set[str], deadline: Deadline | None = None
                ) -> set[int]:
        walks.append(set(services_down))
        return original(self, services_down, deadline)

    monkeypatch.setattr(RequiredGraph, "unavailable", counted)
    verdict = verify(system, [Survives(failures=0, of=("instance",))]).verdicts[0]
    assert verdict.status == "holds", verdict.explanation
    assert walks == []  # not one walk per side service


def _direct(system: System, kinds: FailureKinds, budget: int) -> tuple[str, str] | None:
    """The definition, checked service by service over the whole graph."""
    graph = RequiredGraph(system, certain=True)
    entries = {graph.index[e] for e in system.entries}
    failing = Failing(system)
    for name, service in system.services.items():
        why = ejectable(system, service, kinds, budget, failing)
        if why and graph.unavailable({name}) & entries:
            return name, why
    return None


@pytest.mark.parametrize("loss", [0.0, 0.01])
@pytest.mark.parametrize("spec", sorted(p.name for p in SPECS.glob("*.yaml")))
def test_the_same_service_and_reason_as_the_definition(spec: str, loss: float) -> None:
    base = model.load(SPECS / spec)
    detection = OutlierDetection(consecutive_gateway_errors=1, max_ejection_percent=100)
    # Outlier detection on every other service: some in the entries' cones, some not; with
    # network loss every host can fail a call, so more of them are ejectable.
    services = {name: replace(s, outlier_detection=detection) if i % 2 else s
                for i, (name, s) in enumerate(base.services.items())}
    system = replace(base, services=FrozenMap(services),
                     communication=replace(base.communication, loss=loss))
    if not system.entries:
        pytest.skip("no workload entries")
    kinds = FailureKinds.of(("instance", "zone"))
    graph = RequiredGraph(system, certain=True)
    entry_nodes = [graph.index[e] for e in system.entries]
    for budget in (0, 1, 2):
        found = _ejectable_needed(system, graph, entry_nodes, kinds, budget, Deadline(60.0))
        assert found == _direct(system, kinds, budget)
