"""Counterexamples replayed as simulations: what the proof predicts is what the run shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from faultmesh.model.verify.cones import RequiredGraph
from faultmesh.model.verify.verdict import Counterexample, Verdict
from faultmesh.simulations.replay import DOWN_AT_MOST, UP_AT_LEAST, replay

from faultmesh import model

SPECS = sorted(Path(__file__).resolve().parent.parent.glob("specs/*.yaml"))


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_minimal_counterexample_replays_as_predicted(spec: Path) -> None:
    system = model.load(spec)
    verdict = model.verify(system, kinds=["survives"], failures=1).verdicts[0]
    if verdict.status != "violated":
        assert verdict.status == "holds"
        with pytest.raises(ValueError):
            verdict.to_scenario()
        return
    result = replay(system, verdict, at=20, duration=40, settle=10, after=10, seed=3)
    assert result.entries, "a spec with a violated survives has workload entries"
    predicted = {e.entry for e in result.entries if e.predicted_down}
    assert predicted == set(verdict.counterexample.down)
    for entry in result.entries:
        assert entry.agrees, (entry, result.to_json())
    # The window really was measured: some entry had requests in it.
    assert any(e.availability is not None for e in result.entries)


def _service_crash(system: model.System, service: str) -> Verdict:
    """A hand-made verdict: every instance of ``service`` fails; down = what the cones say."""
    graph = RequiredGraph(system)
    down = {graph.names[i] for i in graph.unavailable([service])}
    entries = tuple(e for e in system.entries if e in down)
    failures = tuple(f"instance:{i.name}" for i in system.services[service].instances)
    return Verdict("crash-" + service, "survives", "violated", "",
                   Counterexample(failures=failures, down=entries))


@pytest.mark.parametrize("spec", ["online_boutique", "zone_outage_shop", "sock_shop"])
def test_each_service_crash_downs_exactly_the_predicted_entries(spec: str) -> None:
    """Stronger than the minimal counterexample (which often downs everything): crash each
    service alone; entries whose required cone holds it go down, all others stay up."""
    system = model.load(Path(__file__).resolve().parent.parent / "specs" / f"{spec}.yaml")
    partial = 0
    for service in system.services:
        verdict = _service_crash(system, service)
        result = replay(system, verdict, at=10, duration=30, settle=8, after=5, seed=11)
        for entry in result.entries:
            assert entry.agrees, (service, entry, DOWN_AT_MOST, UP_AT_LEAST)
        down = sum(e.predicted_down for e in result.entries)
        partial += 0 < down < len(result.entries)
    assert partial > 0, "some crash should take some entries down and leave others up"
