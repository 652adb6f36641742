"""``verify`` says which of the spec's properties a simulation checks, and how.

Availability, latency and breaker-reaction properties are watched by a simulation's monitors,
not proved: ``verify`` used to skip them without a word (``holds``) and ``--property
availability`` answered "not a property of this spec".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faultmesh.cli import main

SPECS = Path(__file__).resolve().parent.parent / "specs"
HARDENED = str(SPECS / "online_boutique_hardened.yaml")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_table_is_followed_by_the_properties_simulation_checks(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", HARDENED, "--property", "timeouts_nest",
                       "--property", "availability")
    assert code == 0
    note = [line for line in out.splitlines() if line.startswith("checked by simulation")]
    assert len(note) == 1, out
    assert "availability:frontend.home" in note[0] and "latency:" not in note[0]
    assert f"faultmesh simulate {HARDENED} --scenario zone-a-outage" in note[0]
    assert "timeouts_nest" in out  # the static property is still proved


def test_json_lists_them_beside_the_contract_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", HARDENED, "--json", "--property", "retry_amplification")
    report = json.loads(out)
    assert {"system", "verdict", "properties"} <= set(report)
    assert [p["kind"] for p in report["properties"]] == ["retry_amplification"]
    # --property names a static kind: no dynamic property was asked for
    assert "checked_by_simulation" not in report
    code, out, _ = run(capsys, "verify", HARDENED, "--json")
    listed = json.loads(out)["checked_by_simulation"]
    assert {p["kind"] for p in listed} == {"availability", "latency"}
    assert all(p["check"].startswith("faultmesh simulate ") for p in listed)
    assert code == 0


def test_property_availability_explains_instead_of_erroring(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "verify", HARDENED, "--property", "availability")
    assert code == 0
    assert "not a property" not in err
    assert "checked by simulation" in out and "faultmesh simulate" in out
    code, _, err = run(capsys, "verify", str(SPECS / "mm1.yaml"), "--property", "latency")
    assert code == 2
    assert "checked by simulation" in err and "declares none" in err and "p99" in err
