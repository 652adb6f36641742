"""``faultmesh simulate``: exit codes, the JSON contract, output files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from faultmesh.cli import main

SPECS = Path(__file__).resolve().parent.parent / "specs"
SHOP = str(SPECS / "zone_outage_shop.yaml")
MM1 = str(SPECS / "mm1.yaml")


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(["simulate", *args, "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out)


def test_json_shape_follows_the_design(capsys: pytest.CaptureFixture[str]) -> None:
    code, summary = run_json(capsys, SHOP, "--scenario", "zone-a-outage", "--seed", "2")
    assert code == 1  # checkout's availability is violated by the zone outage
    for key in ("system", "scenario", "seed", "duration_s", "entries", "services", "breakers",
                "properties"):
        assert key in summary
    assert (summary["system"], summary["scenario"], summary["seed"]) == \
        ("zone_outage_shop", "zone-a-outage", 2)
    assert summary["duration_s"] == 600
    entry = summary["entries"]["frontend.checkout"]
    assert {"requests", "ok", "failed", "availability", "latency_s"} <= set(entry)
    assert set(entry["latency_s"]) == {"mean", "p50", "p90", "p99", "max"}
    service = summary["services"]["payment"]
    assert {"utilization", "requests", "rejected", "retries"} <= set(service)
    transitions = summary["breakers"]["checkout->payment"]["transitions"]
    # [t, state, caller instance] (breakers live in the caller's instances)
    assert transitions and all(isinstance(t, float) and state in ("open", "half_open", "closed")
                               and instance.startswith("checkout-")
                               for t, state, instance in transitions)
    for prop in summary["properties"]:
        assert {"name", "status", "violations"} <= set(prop)
        assert prop["status"] in ("holds", "violated")


def test_exit_zero_when_everything_holds(capsys: pytest.CaptureFixture[str]) -> None:
    code, summary = run_json(capsys, MM1, "--duration", "30s")
    assert code == 0
    assert summary["scenario"] is None and summary["duration_s"] == 30


def test_duration_overrides_the_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    _, summary = run_json(capsys, SHOP, "--scenario", "zone-a-outage", "--duration", "3m")
    assert summary["duration_s"] == 180


def test_unknown_scenario_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", SHOP, "--scenario", "zone-a-outgae"])
    captured = capsys.readouterr()
    assert code == 2
    assert "did you mean 'zone-a-outage'" in captured.err
    assert "degraded-dependencies" in captured.err  # the list of scenarios
    assert captured.out == ""


@pytest.mark.parametrize("duration", ["ten minutes", "0", "-5s"])
def test_bad_duration_is_bad_input(capsys: pytest.CaptureFixture[str], duration: str) -> None:
    assert main(["simulate", MM1, "--duration", duration]) == 2
    assert "duration" in capsys.readouterr().err


def test_duration_shorter_than_the_warmup(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", SHOP, "--scenario", "zone-a-outage", "--duration", "30s"]) == 2
    assert "warm-up" in capsys.readouterr().err


def test_bad_spec_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("system: x\nservices: {a: {endpoints: {e: {calls: [b.e]}}}}\n")
    assert main(["simulate", str(bad)]) == 2
    assert "bad.yaml" in capsys.readouterr().err


def test_out_writes_results_atomically_and_refuses_to_overwrite(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    code = main(["simulate", SHOP, "--scenario", "zone-a-outage", "--duration", "4m",
                 "--out", str(out), "--json", "--trace"])
    captured = capsys.readouterr()
    assert code == 1
    summary = json.loads(captured.out)
    assert "wrote" in captured.err
    assert sorted(p.name for p in out.iterdir()) == [
        "breakers.parquet", "breakers.png", "latency.png", "manifest.json", "report.html",
        "requests.parquet", "summary.json", "timeline.parquet", "timeline.png", "topology.png"]
    assert json.loads((out / "summary.json").read_text()) == summary
    timeline = pd.read_parquet(out / "timeline.parquet")
    assert {"time_s", "entry", "requests", "ok", "p99"} <= set(timeline.columns)
    assert len(timeline) == 240 * 2  # per second, per entry
    requests = pd.read_parquet(out / "requests.parquet")
    assert len(requests) == summary["requests"]["started"] - summary["requests"]["in_flight"]
    breakers = pd.read_parquet(out / "breakers.parquet")
    assert set(breakers["state"]) <= {"open", "half_open", "closed"} and len(breakers) > 0

    before = (out / "summary.json").read_text()
    assert main(["simulate", SHOP, "--out", str(out), "--duration", "10s"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == before
    assert main(["simulate", SHOP, "--out", str(out), "--duration", "10s", "--force"]) == 0
    capsys.readouterr()
    assert json.loads((out / "summary.json").read_text())["duration_s"] == 10
    assert not (out / "requests.parquet").exists()  # no stale traces of the earlier run
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files


def test_terminal_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", SHOP, "--scenario", "zone-a-outage", "--seed", "1"])
    text = capsys.readouterr().out
    assert code == 1
    for expected in ("Entries", "frontend.checkout", "Services", "Circuit breakers",
                     "checkout->payment", "Phases", "crash zone:a", "Properties", "violated",
                     "verdict: violated"):
        assert expected in text, expected
