"""Specs that load but almost certainly say something else: located warnings, same System.

A bare number is seconds and an endpoint without ``service_time`` takes no time: both stay
as documented, but loading warns where they are nearly always a mistake (``p99: 250``), with
the file, line and column, on stderr for every command, without changing an exit code.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faultmesh.model.spec import SpecWarning, load, load_with_warnings, loads, loads_with_warnings

ROOT = Path(__file__).resolve().parents[1]

RISKY = """\
system: w
services:
  web:
    endpoints:
      home:
        service_time: {lognormal: {mean: 20, p99: 80}}
        calls:
          - {call: db.get, timeout: 250}
          - parallel: [{call: db.get, backoff: {base: 15, cap: 0.5}}]
  db:
    endpoints:
      get: {}
workload:
  - {entry: web.home, rate: 10/s, timeout: 9}
properties:
  - latency: {entry: web.home, p99: 250}
scenarios:
  slow:
    duration: 600
    faults:
      - {at: 60, latency: {target: "service:db", add: 12}}
"""


def faultmesh(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("faultmesh")
    command = [exe] if exe else [sys.executable, "-m", "faultmesh"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def test_likely_unit_mistakes_and_missing_service_times_are_located() -> None:
    system, warnings = loads_with_warnings(RISKY, "risky.yaml")
    assert all(isinstance(w, SpecWarning) for w in warnings)
    assert [(w.line, w.column, w.path) for w in warnings] == [
        (6, 42, "services.web.endpoints.home.service_time.lognormal.mean"),
        (6, 51, "services.web.endpoints.home.service_time.lognormal.p99"),
        (8, 37, "services.web.endpoints.home.calls[0].timeout"),
        (9, 55, "services.web.endpoints.home.calls[1].parallel[0].backoff.base"),
        (12, 7, "services.db.endpoints.get"),
        (16, 37, "properties[0].latency.p99"),
        (21, 55, "scenarios.slow.faults[0].latency.add"),
    ]
    p99 = warnings[5]
    assert str(p99) == ("risky.yaml:16:37: properties[0].latency.p99: a bare number is seconds: "
                        "250 here is 4m 10s; write '250ms' if milliseconds were meant, or '250s' "
                        "to keep seconds")
    assert "db.get has no service_time" in warnings[4].message
    # The documented meaning is kept: 250 is 250 seconds, the missing service time is 0.
    assert system.properties[0].threshold == 250.0  # type: ignore[attr-defined]
    assert system.endpoint("db.get").service_time.mean == 0.0


def test_warnings_do_not_change_the_system() -> None:
    system, _ = loads_with_warnings(RISKY)
    assert system == loads(RISKY)
    # Units written out, service time given, small bare numbers and long scenario durations
    # (not a request's time) do not warn.
    fixed = (RISKY.replace("mean: 20, p99: 80", "mean: 20ms, p99: 80ms")
             .replace("timeout: 250}", "timeout: 250ms}").replace("base: 15", "base: 15ms")
             .replace("get: {}", "get: {service_time: 0s}").replace("p99: 250}", "p99: 250s}")
             .replace("add: 12}", "add: 12ms}"))
    assert loads_with_warnings(fixed)[1] == []


@pytest.mark.parametrize("spec", sorted((ROOT / "specs").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_specs_have_no_warnings(spec: Path) -> None:
    system, warnings = load_with_warnings(spec)
    assert warnings == []
    assert system == load(spec)


def test_commands_print_warnings_on_stderr_without_changing_exit_codes(tmp_path: Path) -> None:
    spec = tmp_path / "risky.yaml"
    spec.write_text(RISKY)
    done = faultmesh("validate", str(spec))
    assert done.returncode == 0, done.stderr
    assert f"ok  {spec}" in done.stdout and "warning:" not in done.stdout
    assert f"warning: {spec}:16:37: properties[0].latency.p99: a bare number is seconds" \
        in done.stderr
    assert f"warning: {spec}:12:7: services.db.endpoints.get:" in done.stderr
    assert "Traceback" not in done.stderr
    graph = faultmesh("graph", str(spec))
    assert graph.returncode == 0 and graph.stdout.startswith("digraph")
    assert graph.stderr.count("warning: ") == 7
