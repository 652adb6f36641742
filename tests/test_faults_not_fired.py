"""A fault that starts after the run ends never fires, and the run says so.

``--duration`` shorter than a fault's ``at`` used to drop the fault without a word and report
``holds``: now ``simulate`` warns on stderr, the terminal view names the fault, and the
summary lists it under ``faults_not_fired``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import faultmesh
from faultmesh.cli import main

SHOP = str(Path(__file__).resolve().parent.parent / "specs" / "zone_outage_shop.yaml")


def test_a_short_duration_names_the_faults_that_never_fired(
        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", SHOP, "--scenario", "zone-a-outage", "--duration", "90s",
                 "--json"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["faults_not_fired"] == [{"kind": "crash", "fault": "crash zone:a",
                                            "at": 120.0}]
    assert summary["faults"] == []
    assert code == 0  # the run that happened held
    assert "warning: 1 fault never fired" in captured.err and "crash zone:a" in captured.err

    code = main(["simulate", SHOP, "--scenario", "zone-a-outage", "--duration", "90s"])
    head = capsys.readouterr().out.splitlines()[:2]
    assert "never fired" in head[1] and "crash zone:a" in head[1]


def test_every_fault_fired_leaves_the_list_empty() -> None:
    run = faultmesh.simulate(SHOP, "zone-a-outage", duration="150s", seed=1)
    assert run.summary["faults_not_fired"] == []
    assert [f["fault"] for f in run.summary["faults"]] == ["crash zone:a"]
