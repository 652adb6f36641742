"""What `verify` says to people: units on every number, no implicit zone, one line per change.

Found by a new user: ``numbers: timeout=10, callee_worst=130.007`` without units; "(zone
default)" and ``placement: {"default": 2}`` for a spec that declares no zones; and each repair
printed ``replicas`` and ``placement`` as two changes for the same thing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from faultmesh.model.spec import loads
from faultmesh.model.verify import verify
from faultmesh.model.verify.wording import change_lines, numbers_text

NO_ZONES = """\
system: nozone
services:
  web:
    replicas: 2
    endpoints:
      home:
        service_time: 1ms
        calls: [{call: db.get, timeout: 1s}]
  db:
    endpoints:
      get: {service_time: 2s}
workload:
  - {entry: web.home, rate: 10/s}
properties:
  - survives: {failures: 1}
  - timeouts_nest: {}
"""


def faultmesh(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("faultmesh")
    command = [exe] if exe else [sys.executable, "-m", "faultmesh"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300,
                          check=False)


def test_counterexample_numbers_carry_units() -> None:
    assert numbers_text({"timeout": 10.0, "callee_worst": 130.007, "network": 0.002}) == \
        "timeout=10s, callee_worst=2m 10s, network=2ms"
    # Unequal durations never read alike: more digits until they differ.
    assert numbers_text({"timeout": 1.0004, "callee_worst": 1.0002}) == \
        "timeout=1.0004s, callee_worst=1.0002s"
    assert numbers_text({"load": 120.0, "demand": 1.5, "utilization": 0.75}) == \
        "load=120/s, demand=1.5, utilization=75%"
    assert numbers_text({"window_s": 40.0, "replicas": 2, "failure_probability": 0.5}) == \
        "window=40s, replicas=2, failure_probability=50%"


def test_replicas_and_placement_are_one_change() -> None:
    lines = change_lines({"zones": ["a", "b"], "services.x.replicas": 2,
                          "services.x.placement": {"a": 1, "b": 1}, "services.x.workers": 3,
                          "services.y.endpoints.home.calls[0].timeout": 0.021})
    assert lines == ['zones: ["a", "b"]', 'services.x.placement: {"a": 1, "b": 1} (replicas: 2)',
                     "services.x.workers: 3", "services.y.endpoints.home.calls[0].timeout: 21ms"]


def test_a_spec_without_zones_never_hears_of_the_implicit_zone() -> None:
    system = loads(NO_ZONES)
    report = verify(system, kinds=["survives"])
    (verdict,) = [v for v in report.verdicts if v.kind == "survives"]
    assert verdict.status == "violated"
    assert verdict.explanation.startswith("db has its only replica db-0: instance:db-0 down")
    assert "zone" not in verdict.explanation and "default" not in verdict.explanation
    assert verdict.repair is not None
    assert verdict.repair.description == "add one replica of db"
    assert verdict.repair.changes == {"services.db.replicas": 2}
    repaired = verdict.repair.apply(system)
    assert repaired.services["db"].replicas == 2
    assert verify(repaired, kinds=["survives"]).verdict == "holds"


def test_verify_prints_units_and_no_implicit_zone(tmp_path: Path) -> None:
    spec = tmp_path / "nozone.yaml"
    spec.write_text(NO_ZONES)
    done = faultmesh("verify", str(spec))
    assert done.returncode == 1, done.stderr
    text = done.stdout
    assert "default" not in text and "(zone" not in text
    assert "services.db.replicas: 2" in text and "placement" not in text
    numbers = next(line for line in text.splitlines() if line.strip().startswith("numbers:"))
    assert "timeout=1s" in numbers and "callee_worst=2s" in numbers and "network=0s" in numbers
    assert "services.web.endpoints.home.calls[0].timeout: 2.001s" in text
