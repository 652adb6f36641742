"""Valid-but-extreme specs: refused where a value is past a sane bound, run where it is not.

Every case crashed, hung or grew without bound before (issue 15): a breaker window of 1e12
calls (MemoryError), a zero heartbeat (ZeroDivisionError) or refresh (time never advanced),
1025 retries (OverflowError in the backoff), a chain of 200 zero-latency services
(RecursionError), failure cycles of a microsecond.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from faultmesh.cli import main
from faultmesh.model.spec import SpecErrors, loads
from faultmesh.model.system import Backoff
from faultmesh.simulations.engine.simulation import simulate

SPECS = Path(__file__).resolve().parent.parent / "specs"
MM1 = SPECS / "mm1.yaml"

BASE = """system: s
discovery: {mode: client}
services:
  a:
    endpoints:
      op: {service_time: 1ms, calls: [b.op]}
  b:
    endpoints:
      op: {service_time: 1ms}
workload:
  - {entry: a.op, rate: 5/s}
"""


def refusal(text: str) -> str:
    with pytest.raises(SpecErrors) as caught:
        loads(text, "s.yaml")
    return str(caught.value)


@pytest.mark.parametrize(("replace", "path", "located"), [
    (("discovery: {mode: client}", "discovery: {mode: client, heartbeat: 0}"),
     "discovery.heartbeat", "s.yaml:2:"),
    (("discovery: {mode: client}", "discovery: {mode: client, refresh: 0}"),
     "discovery.refresh", "s.yaml:2:"),
    (("calls: [b.op]", "calls: [{call: b.op, retries: 1025}]"),
     "retries", "s.yaml:6:"),
    (("calls: [b.op]", "calls: [{call: b.op, circuit_breaker: {window: 1000000000000}}]"),
     "window", "s.yaml:6:"),
    (("calls: [b.op]", "calls: [{call: b.op, repeat: 1000000}]"), "repeat", "s.yaml:6:"),
    (("  b:\n", "  b:\n    workers: 100000000\n"), "workers", "s.yaml:8:"),
    (("  b:\n", "  b:\n    queue: 10000000000\n"), "queue", "s.yaml:8:"),
    (("rate: 5/s}", "rate: 5/s}\nscenarios:\n  x:\n    faults:\n"
      "      - {crash: 'service:b', mttf: 1us, mttr: 1us}"), "mttf", "s.yaml:15:36:"),
])
def test_out_of_bound_values_are_refused_and_located(
        replace: tuple[str, str], path: str, located: str) -> None:
    text = BASE.replace(*replace)
    assert text != BASE
    message = refusal(text)
    assert message.startswith(located) and path in message


def test_survives_failures_are_bounded() -> None:
    message = refusal(BASE + "properties:\n  - survives: {failures: 10000}\n")
    assert "less than or equal to 1000" in message


def test_verify_failures_option_is_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(MM1), "--failures", "10000"]) == 2
    assert "--failures must be at most" in capsys.readouterr().err


@pytest.mark.parametrize("retry", [1, 10, 1025, 10**6])
def test_backoff_never_overflows(retry: int) -> None:
    delay = Backoff(base=0.025, cap=0.25).max_delay(retry)
    assert 0 < delay <= 0.25


def test_verify_with_many_retries_does_not_overflow(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(BASE.replace("calls: [b.op]", "calls: [{call: b.op, retries: 100}]"))
    code = main(["verify", str(spec), "--timeout", "20"])
    assert code in (0, 1, 3), capsys.readouterr().err  # a verdict, never an internal error


def chain(length: int, service_time: str) -> str:
    lines = ["system: chain", "network: {latency: {same_zone: 0, cross_zone: 0}}", "services:"]
    for i in range(length):
        lines.append(f"  s{i}:\n    endpoints:\n      op:\n        service_time: {service_time}")
        if i + 1 < length:
            lines.append(f"        calls: [{{parallel: [s{i + 1}.op]}}]" if i % 2 else
                         f"        calls: [s{i + 1}.op]")
    lines.append("workload:\n  - {entry: s0.op, rate: 5/s}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("service_time", ["0", "1ms"])
def test_a_long_zero_latency_chain_runs_in_constant_stack(service_time: str) -> None:
    # 200 services overflowed the stack; run 400 under a low recursion limit to be sure.
    system = loads(chain(400, service_time))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(400)
    try:
        run = simulate(system, duration=2, seed=1)
    finally:
        sys.setrecursionlimit(limit)
    ledger = run.summary["requests"]
    assert ledger["started"] > 0 and ledger["error"] == 0 and ledger["ok"] > 0


def test_the_most_retries_with_a_failing_callee_run() -> None:
    text = BASE.replace("calls: [b.op]",
                        "calls: [{call: b.op, retries: 100, backoff: none}]") + (
        "scenarios:\n  bad:\n    faults:\n      - {errors: {target: b.op, rate: 100%}}\n")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(400)
    try:
        run = simulate(loads(text), "bad", duration=3, seed=1)
    finally:
        sys.setrecursionlimit(limit)
    ledger = run.summary["requests"]
    assert ledger["ok"] == 0 and ledger["error"] == ledger["started"] > 0
    assert run.summary["services"]["a"]["retries"] >= 100 * ledger["error"] or \
        run.summary["services"]["b"]["requests"] >= 101 * ledger["error"]


def test_zero_refresh_and_heartbeat_limits_hold_at_the_bound() -> None:
    text = BASE.replace("discovery: {mode: client}",
                        "discovery: {mode: client, heartbeat: 1ms, refresh: 1ms, ttl: 3ms}") + (
        "scenarios:\n  crash:\n    faults:\n      - {at: 1s, for: 1s, crash: 'service:b'}\n")
    run = simulate(loads(text), "crash", duration=3, seed=1)
    assert run.summary["requests"]["started"] > 0
