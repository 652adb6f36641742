"""No lost requests: on every shipped spec and scenario, every request ends exactly once.

Scenarios are compressed to 40 simulated seconds (fault times scaled) so every fault kind in
the shipped specs runs, and the books are checked: requests started = ended by outcome + in
flight, every failure has a cause, and every request in flight is held by an instance.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from faultmesh import model
from faultmesh.model.faults import Scenario
from faultmesh.simulations import simulate

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.yaml"))
LENGTH = 40.0


def compressed(scenario: Scenario) -> Scenario:
    """The scenario squeezed into ``LENGTH`` seconds, faults keeping their relative times."""
    scale = LENGTH / (scenario.duration or LENGTH)
    faults = tuple(replace(f, at=f.at * scale,
                           duration=None if f.duration is None else f.duration * scale)
                   for f in scenario.faults)
    return replace(scenario, faults=faults, duration=LENGTH, warmup=scenario.warmup * scale)


def cases() -> list[object]:
    found = []
    for path in SPECS:
        system = model.load(path)
        found.append(pytest.param(path, None, id=f"{path.stem}"))
        found.extend(pytest.param(path, name, id=f"{path.stem}:{name}")
                     for name in system.scenarios)
    return found


@pytest.mark.parametrize(("path", "scenario"), cases())
def test_every_request_ends_once_with_a_cause(path: Path, scenario: str | None) -> None:
    system = model.load(path)
    chosen = compressed(system.scenarios[scenario]) if scenario else None
    run = simulate(system, chosen, duration=LENGTH, seed=3)
    ledger = run.summary["requests"]
    verdict = next(p for p in run.properties if p["name"] == "no_lost_requests")
    assert verdict["status"] == "holds", verdict["violations"]
    ended = ledger["ok"] + ledger["error"] + ledger["timeout"] + ledger["rejected"]
    assert ledger["started"] == ended + ledger["in_flight"]
    assert ledger["started"] > 0
    for name, entry in run.summary["entries"].items():
        assert sum(entry["outcomes"].values()) == entry["requests"], name
        assert sum(entry["causes"].values()) == entry["failed"], name
        assert sum(entry["root_causes"].values()) == entry["failed"], name


def test_the_monitor_catches_a_lost_response(monkeypatch: pytest.MonkeyPatch) -> None:
    from faultmesh.simulations.engine.instances import Instance

    original = Instance.reply
    dropped = []

    def leaky(self, caller, waiter, token, ok, cause, root):  # type: ignore[no-untyped-def]
        if caller is None and len(dropped) < 3:  # forget three responses to the ingress
            dropped.append(waiter)
            return
        original(self, caller, waiter, token, ok, cause, root)

    monkeypatch.setattr(Instance, "reply", leaky)
    run = simulate(SPECS[0].parent / "chain.yaml", duration=200, seed=1)
    verdict = next(p for p in run.properties if p["name"] == "no_lost_requests")
    assert verdict["status"] == "violated"
    assert "3 requests are open but no instance holds them" in verdict["violations"][0]["detail"]
    assert not run.ok
