"""`simulate` estimates a run's events before running it (issue 15, ``model.cost``).

Before, ``rate: 1e6/s`` ran without a word and ``mttf: 1us, mttr: 1us`` took minutes and a
gigabyte for ten simulated seconds (the schema now asks ``mttf`` of at least 1ms; an hour of
``mttf: 1ms, mttr: 1ms`` over a thousand replicas is still billions of events). Now a run past
``MAX_EVENTS`` is refused (exit 2, located at the workload item or fault that costs most;
``RunTooLarge`` from the API), a long one is announced with about how long it may take, and a
workload rate of ``WARN_RATE`` or more warns.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import simpy

from faultmesh import model, simulate
from faultmesh.cli import main
from faultmesh.model import cost
from faultmesh.model.cost import LongRun, RunTooLarge, estimate, long_run, refusal
from faultmesh.model.spec import loads
from faultmesh.simulations.engine.simulation import resolve_scenario

SPECS = Path(__file__).resolve().parent.parent / "specs"

FAST = """system: fast
services:
  a:
    endpoints:
      op: {service_time: 1us, calls: [b.op, b.op]}
  b:
    endpoints:
      op: {service_time: 1us}
workload:
  - {entry: a.op, rate: 5/s}
  - {entry: a.op, rate: 1e6/s}
"""

FLAPPING = """system: flapping
services:
  a:
    replicas: 1000
    endpoints:
      op: {service_time: 1ms}
workload:
  - {entry: a.op, rate: 1/s}
scenarios:
  flap:
    faults:
      - {crash: "service:a", mttf: 1ms, mttr: 1ms}
"""


def test_requests_count_every_visit_down_the_calls() -> None:
    system = loads(FAST, "fast.yaml")
    est = estimate(system, None, 10.0)
    by_path = {p.path: p.events for p in est.parts}
    # a.op and two calls to b.op: three visits per request.
    assert by_path[("workload", 1, "rate")] == pytest.approx(1e6 * 3 * 10 * cost.EVENTS_PER_VISIT)
    assert est.largest is not None and est.largest.path == ("workload", 1, "rate")


def test_crash_cycles_count_per_instance() -> None:
    system = loads(FLAPPING, "flap.yaml")
    est = estimate(system, system.scenarios["flap"], 10.0)
    fault = next(p for p in est.parts if p.path == ("scenarios", "flap", "faults", 0))
    assert fault.events == pytest.approx(2 * 1000 * 10.0 / 2e-3)


def test_the_estimate_is_the_engines_order_of_magnitude(monkeypatch: pytest.MonkeyPatch) -> None:
    steps = [0]
    step = simpy.Environment.step

    def counted(env: simpy.Environment) -> None:
        steps[0] += 1
        step(env)

    monkeypatch.setattr(simpy.Environment, "step", counted)
    for name, scenario in (("mm1.yaml", None), ("zone_outage_shop.yaml", "zone-a-outage")):
        system = model.load(SPECS / name)
        chosen = resolve_scenario(system, scenario)
        steps[0] = 0
        simulate(system, chosen, duration=120.0)
        predicted = estimate(system, chosen, 120.0).events
        assert predicted / 3 <= steps[0] <= predicted * 3, (name, steps[0], predicted)


def test_a_run_that_cannot_finish_is_refused_from_the_api() -> None:
    system = loads(FAST, "fast.yaml")
    with pytest.raises(RunTooLarge) as caught:
        simulate(system, duration="1h")
    assert isinstance(caught.value, ValueError)
    assert caught.value.path == ("workload", 1, "rate")
    assert "workload a.op at 1e+06/s" in str(caught.value)


@pytest.mark.parametrize(("text", "args", "where"), [
    (FAST, ["--duration", "1h"], "s.yaml:11:25: workload[1].rate: this run would take about"),
    (FLAPPING, ["--scenario", "flap", "--duration", "1h"],
     "s.yaml:12:9: scenarios.flap.faults[0]: this run would take about"),
])
def test_the_cli_refuses_it_located_with_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, args: list[str],
        where: str) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(text)
    code = main(["simulate", str(spec), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{tmp_path}/{where}" in err
    assert "Traceback" not in err


def test_a_million_requests_per_second_warns_located(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(FAST)
    code = main(["simulate", str(spec), "--duration", "1ms"])
    err = capsys.readouterr().err
    assert code == 0
    assert (f"warning: {spec}:11:25: workload[1].rate: a.op receives 1,000,000 requests/s"
            in err)


def test_a_long_run_says_so_before_running(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    system = model.load(SPECS / "mm1.yaml")
    said = long_run(estimate(system, None, 3600 * 24 * 30.0))
    assert said is not None and said.startswith("about ") and "this may take" in said
    assert long_run(estimate(system, None, 60.0)) is None
    assert refusal(estimate(system, None, 60.0)) is None
    # From the API, a LongRun warning; on the command line, a note on stderr.
    monkeypatch.setattr(cost, "WARN_EVENTS", 10)
    with pytest.warns(LongRun, match=r"events; this may take"):
        simulate(system, duration=10.0)
    assert main(["simulate", str(SPECS / "mm1.yaml"), "--duration", "10s"]) == 0
    assert "note: about " in capsys.readouterr().err


def test_an_unbounded_call_cycle_is_refused() -> None:
    system = loads("""system: loop
services:
  a:
    endpoints:
      op: {service_time: 1ms, calls: [{call: a.op, repeat: 2}]}
workload:
  - {entry: a.op, rate: 1/s}
""", "loop.yaml")
    refused = refusal(estimate(system, None, 10.0))
    assert refused is not None and "unbounded load" in refused.message
