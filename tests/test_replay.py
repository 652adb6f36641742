"""Counterexamples replayed as simulations: what the proof predicts is what the run shows.

Survives: entries predicted down are down, the others up, and degraded entries (reached only
through calls made with probability below 1) serve the predicted share within a binomial
confidence interval. Capacity: the overloaded service's measured utilisation is the predicted
one, and a wrong claim is reported as a disagreement. The CLI says when there is nothing to
replay and never truncates names when its output is not a terminal.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from faultmesh import model
from faultmesh.cli import main
from faultmesh.model.properties import Capacity, Survives
from faultmesh.model.spec import from_document
from faultmesh.model.verify.cones import availability
from faultmesh.model.verify.verdict import Counterexample, Verdict
from faultmesh.simulations.replay import DOWN_AT_MOST, UP_AT_LEAST, replay

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
    # The default settle waits out the detection delay of the crash (model.detection).
    result = replay(system, verdict, at=20, after=10, seed=3)
    assert result.entries, "a spec with a violated survives has workload entries"
    predicted = {e.entry for e in result.entries if e.predicted_down}
    assert predicted == set(verdict.counterexample.down)
    for entry in result.entries:
        assert entry.agrees, (entry, result.to_json())
    # The window really was measured: some entry had requests in it.
    assert any(e.availability is not None for e in result.entries)


def _service_crash(system: model.System, service: str) -> Verdict:
    """A hand-made verdict: every instance of ``service`` fails; down and degraded = what
    ``availability`` says."""
    shares = availability(system, [service])
    entries = tuple(e for e in system.entries if shares[e] == 0)
    degraded = {e: shares[e] for e in system.entries if 0 < shares[e] < 1}
    failures = tuple(f"instance:{i.name}" for i in system.services[service].instances)
    return Verdict("crash-" + service, "survives", "violated", "",
                   Counterexample(failures=failures, down=entries, degraded=degraded))


@pytest.mark.parametrize("spec", ["online_boutique", "zone_outage_shop", "sock_shop"])
def test_each_service_crash_downs_exactly_the_predicted_entries(spec: str) -> None:
    """Stronger than the minimal counterexample (which often downs everything): crash each
    service alone; entries whose required cone holds it go down, all others stay up."""
    system = model.load(Path(__file__).resolve().parent.parent / "specs" / f"{spec}.yaml")
    partial = 0
    # Instance crashes only: discovery notices them within the readiness detection delay.
    settle = max(s.readiness.detection for s in system.services.values()) + 3.0
    for service in system.services:
        verdict = _service_crash(system, service)
        result = replay(system, verdict, at=10, duration=settle + 15, settle=settle, after=5,
                        seed=11)
        for entry in result.entries:
            assert entry.agrees, (service, entry, DOWN_AT_MOST, UP_AT_LEAST)
        down = sum(e.predicted_down for e in result.entries)
        partial += 0 < down < len(result.entries)
    assert partial > 0, "some crash should take some entries down and leave others up"


# ---------------------------------------------------------------------------------------------
# Degraded entries: the measured share is the predicted one
# ---------------------------------------------------------------------------------------------

DEGRADED = {
    "system": "degraded",
    "services": {
        "front": {"replicas": 2, "endpoints": {
            "home": {"service_time": "1ms",
                     "calls": [{"call": "rec.list", "probability": 0.5, "repeat": 2,
                                "retries": 1}]},
            "buy": {"service_time": "1ms", "calls": ["pay.go"]}}},
        "rec": {"replicas": 2, "endpoints": {"list": {
            "service_time": "1ms", "calls": [{"call": "pay.go", "probability": 0.4}]}}},
        "pay": {"endpoints": {"go": {"service_time": "1ms"}}},
    },
    "workload": [{"entry": "front.home", "rate": "150/s"}, {"entry": "front.buy", "rate": "5/s"}],
}


def test_degraded_entry_serves_the_predicted_share_within_a_confidence_interval() -> None:
    """pay-0 down: front.buy is down; front.home is degraded, not down (the checker used to
    call it down). Its measured share lies in the 99 % binomial CI of the predicted one."""
    system = from_document(DEGRADED)
    verdict = model.verify(system, [Survives(failures=1, of=("instance",))]).verdicts[0]
    cx = verdict.counterexample
    assert cx.down == ("front.buy",)
    predicted = cx.degraded["front.home"]
    assert predicted == pytest.approx(0.5 + 0.5 * (1 - 0.4 ** 2) ** 2)
    result = replay(system, verdict, at=10, duration=40, settle=5, after=5, seed=2)
    home = next(e for e in result.entries if e.entry == "front.home")
    assert home.predicted == "degraded" and home.expected == predicted
    assert home.requests > 4000
    half = 2.576 * math.sqrt(predicted * (1 - predicted) / home.requests)
    assert abs(home.availability - predicted) <= half, (home, half)
    assert home.agrees and result.agrees, result.to_json()
    assert result.to_json()["entries"][0]["predicted"] == "degraded"


def test_degraded_agreement_rejects_a_share_off_the_prediction() -> None:
    """The comparison can fail: the same run judged against a wrong share disagrees."""
    system = from_document(DEGRADED)
    wrong = Verdict("wrong", "survives", "violated", "", Counterexample(
        failures=("instance:pay-0",), down=("front.buy",), degraded={"front.home": 0.6}))
    result = replay(system, wrong, at=10, duration=30, settle=5, after=5, seed=2)
    home = next(e for e in result.entries if e.entry == "front.home")
    assert not home.agrees and not result.agrees


# ---------------------------------------------------------------------------------------------
# Capacity: the overloaded service, not the entries
# ---------------------------------------------------------------------------------------------

OVERLOAD = {
    "system": "overload",
    "services": {
        "web": {"replicas": 2, "workers": 4, "endpoints": {"home": {
            "service_time": "1ms", "calls": [{"call": "db.get", "timeout": "5s"}]}}},
        "db": {"replicas": 2, "workers": 1, "endpoints": {"get": {
            "service_time": {"exponential": "6ms"}}}},
    },
    "workload": [{"entry": "web.home", "rate": "150/s"}],
}


def test_capacity_replay_compares_the_overloaded_service_and_agrees() -> None:
    """db: 150/s x 6 ms = 0.9 workers; one replica left -> utilisation 90 % >= 80 %. The
    simulation measures the surviving replica about 90 % busy. (Replay used to compare the
    entries against the service name and said DISAGREES.)"""
    system = from_document(OVERLOAD)
    verdict = model.verify(system, [Capacity(failures=1, of=("instance",),
                                             utilization=0.8)]).verdicts[0]
    assert verdict.status == "violated" and verdict.counterexample.down == ("db",)
    result = replay(system, verdict, at=10, seed=4)  # settles past the detection delay
    assert result.entries == ()
    (db,) = result.services
    assert db.service == "db" and db.surviving == 1
    assert db.predicted == pytest.approx(0.9)
    assert db.utilization == pytest.approx(0.9, abs=0.05)
    assert db.agrees and result.agrees, result.to_json()
    assert result.to_json()["services"][0]["predicted_utilization"] == pytest.approx(0.9)


def test_capacity_replay_disagrees_with_a_wrong_claim() -> None:
    """A claim of 200 % on db-1 alone is not what the run shows (about 90 %)."""
    system = from_document(OVERLOAD)
    wrong = Verdict("capacity", "capacity", "violated", "", Counterexample(
        failures=("instance:db-0",), down=("db",), numbers={"utilization": 0.3}))
    result = replay(system, wrong, at=10, seed=4)
    assert not result.agrees


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------


def _write(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def test_cli_says_when_there_is_nothing_to_replay(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    doc = {"system": "fine", "services": {"web": {"replicas": 3, "endpoints": {"home": {}}}},
           "workload": [{"entry": "web.home", "rate": 1}],
           "properties": [{"survives": {"failures": 1}}]}
    code = main(["verify", _write(tmp_path, doc), "--replay"])
    assert code == 0
    assert "nothing to replay" in capsys.readouterr().out


LONG = "a_service_with_a_name_long_enough_to_be_cut_in_an_eighty_column_table"


def test_cli_replay_never_truncates_names_when_piped(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = "an_endpoint_whose_name_is_long_too"
    doc = {"system": "long", "services": {
        "front": {"replicas": 2, "endpoints": {"home": {"calls": [f"{LONG}.{endpoint}"]}}},
        LONG: {"endpoints": {endpoint: {}}}},
        "workload": [{"entry": "front.home", "rate": 2}],
        "properties": [{"survives": {"failures": 1}}]}
    code = main(["verify", _write(tmp_path, doc), "--replay"])
    assert code == 1
    text = capsys.readouterr().out
    assert f"instance:{LONG}-0" in text
    assert "…" not in text.split("replay of", 1)[1], text
    assert "the simulation agrees with the proof" in text


def test_a_capacity_overload_with_nothing_failed_replays_as_the_plain_workload() -> None:
    """Capacity violated with no failure at all: the nominal run is the counterexample, and
    replay simulates it (it used to refuse: "no failure set to replay")."""
    system = model.loads("""
system: overload
services:
  front:
    endpoints:
      home: {service_time: 1ms, calls: [back.get]}
  back:
    endpoints:
      get: {service_time: {exponential: 30ms}}
workload:
  - {entry: front.home, rate: 40/s}
properties:
  - capacity: {failures: 0, utilization: 80%}
""")
    verdict = model.verify(system, kinds=["capacity"])["capacity"]
    assert verdict.status == "violated" and verdict.counterexample is not None
    assert verdict.counterexample.failures == ()
    assert verdict.to_scenario().faults == ()
    result = replay(system, verdict, at=20, duration=60, seed=1)
    assert result.agrees, result.to_json()


def test_a_capacity_violation_by_rejections_is_compared_on_rejections() -> None:
    """Below the utilization target but over the rejection bound: replay compares the share
    rejected, not the utilization (it used to disagree with every such proof)."""
    from faultmesh.simulations.replay import ServiceReplay

    def replayed(rejected: int) -> ServiceReplay:
        return ServiceReplay("back", 0.22, 0.8, 1, 0.10, 200, rejected,
                             predicted_rejected=0.3, rejected_bound=0.001)

    assert replayed(60).rejections_claimed
    assert replayed(60).agrees and replayed(45).agrees  # 22.5 %: within the margin of 30 %
    assert not replayed(0).agrees  # the proof claimed rejections; none were measured
    assert "rejects" in replayed(60).claim()
