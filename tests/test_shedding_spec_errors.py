"""Bad shedding, rate-limit, profile, surge and recovers keys: one located error each, and
``faultmesh validate`` exits 2 naming file:line:col with no traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faultmesh.model import faults as F
from faultmesh.model import properties as P
from faultmesh.model.policies import QueueDiscipline, RateLimit
from faultmesh.model.spec import SpecErrors, dump, json_schema, loads

BASE = """\
system: shed
services:
  front:
    endpoints:
      get:
        calls: [back.work]
  back:
    workers: 4
    queue_timeout: 50ms
    queue_discipline: {adaptive_lifo: {interval: 200ms, target: 10ms}}
    rate_limit: {rate: 300/s, burst: 20}
    endpoints:
      work:
        service_time: {exponential: 10ms}
        rate_limit: {rate: 100/s}
workload:
  - entry: front.get
    rate: [{at: 0s, rate: 100/s}, {at: 60s, rate: 300/s, ramp: true}, {at: 90s, rate: 50/s}]
properties:
  - recovers: {entry: front.get, within: 20s, to: 98%}
scenarios:
  spike:
    faults:
      - {at: 10s, for: 5s, surge: {entry: front.get, factor: 3}}
      - {at: 20s, for: 5s, surge: {entry: front.get, rate: 500/s}}
"""


def edited(old: str, new: str) -> str:
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


CASES = [  # name, text, (line, column), path, fragment, the text at the position
    ("negative_rate_limit", edited("{rate: 300/s, burst: 20}", "{rate: -300/s, burst: 20}"),
     (11, 24), "services.back.rate_limit.rate", "must not be negative", "-300/s"),
    ("zero_rate_limit", edited("rate_limit: {rate: 100/s}", "rate_limit: {rate: 0/s}"),
     (15, 28), "services.back.endpoints.work.rate_limit.rate", "greater than 0", "0/s"),
    ("zero_burst", edited("burst: 20", "burst: 0"),
     (11, 38), "services.back.rate_limit.burst", "greater than or equal to 1", "0"),
    ("misspelt_codel_key", edited("target: 10ms}}", "targte: 10ms}}"),
     (10, 57), "services.back.queue_discipline.adaptive_lifo.targte", "did you mean 'target'?",
     "targte"),
    ("bad_discipline_word",
     edited("queue_discipline: {adaptive_lifo: {interval: 200ms, target: 10ms}}",
            "queue_discipline: lilo"),
     (10, 23), "services.back.queue_discipline", "'fifo', 'lifo' or 'adaptive_lifo'", "lilo"),
    ("negative_queue_timeout", edited("queue_timeout: 50ms", "queue_timeout: -50ms"),
     (9, 20), "services.back.queue_timeout", "must not be negative", "-50ms"),
    ("negative_profile_rate", edited("{at: 0s, rate: 100/s}", "{at: 0s, rate: -100/s}"),
     (18, 27), "workload[0].rate[0].rate", "must not be negative", "-100/s"),
    ("profile_back_in_time", edited("{at: 90s, rate: 50/s}", "{at: 30s, rate: 50/s}"),
     (18, 76), "workload[0].rate[2].at", "goes back in time", "30s"),
    ("surge_unknown_entry",
     edited("surge: {entry: front.get, factor", "surge: {entry: back.work, factor"),
     (24, 43), "scenarios.spike.faults[0].surge.entry", "not a workload entry", "back.work"),
    ("surge_both_sizes",
     edited("{entry: front.get, factor: 3}", "{entry: front.get, factor: 3, rate: 9/s}"),
     (24, 35), "scenarios.spike.faults[0].surge", "exactly one of factor and rate", "{entry"),
    ("recovers_unknown_entry",
     edited("recovers: {entry: front.get", "recovers: {entry: front.gte"),
     (20, 23), "properties[0].recovers.entry", "did you mean 'get'?", "front.gte"),
]


def test_the_base_spec_loads_and_round_trips() -> None:
    system = loads(BASE)
    back = system.services["back"]
    assert back.queue_discipline == QueueDiscipline("adaptive_lifo", 0.05, 0.2, 0.01)
    assert back.rate_limit == RateLimit(300.0, 20)
    assert back.endpoints["work"].rate_limit == RateLimit(100.0, 1)
    (workload,) = system.workload
    assert workload.rate == 100.0 and workload.rate_at(30.0) == pytest.approx(200.0)
    assert workload.rate_at(95.0) == 50.0
    faults = system.scenarios["spike"].faults
    assert faults[0] == F.Surge(entry="front.get", factor=3.0, at=10.0, duration=5.0)
    assert faults[1].rate == 500.0
    assert system.properties[0] == P.Recovers(name="recovers:front.get", entry="front.get",
                                              within=20.0, to=0.98)
    assert loads(dump(system)) == system


def test_a_profile_starting_later_sends_nothing_before_it() -> None:
    system = loads(edited("{at: 0s, rate: 100/s}, ", ""))
    (workload,) = system.workload
    assert workload.rate_at(10.0) == pytest.approx(300.0 * 10 / 60)  # ramping up from 0
    assert loads(dump(system)) == system


def test_the_json_schema_has_the_new_keys() -> None:
    text = str(json_schema())
    for key in ("queue_timeout", "queue_discipline", "adaptive_lifo", "rate_limit", "surge",
                "recovers", "ramp"):
        assert f"'{key}'" in text, key


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_error_is_located(case: tuple) -> None:
    _, text, (line, column), path, fragment, at = case
    with pytest.raises(SpecErrors) as caught:
        loads(text, "spec.yaml")
    (error,) = caught.value.errors
    assert (error.line, error.column, error.path) == (line, column, path), str(error)
    assert fragment in error.message, error.message
    assert text.splitlines()[line - 1][column - 1:].startswith(at)


def test_cli_validate_exits_2_with_positions(tmp_path: Path) -> None:
    for name, text, *_ in CASES:
        (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
    exe = shutil.which("faultmesh")
    command = [exe] if exe else [sys.executable, "-m", "faultmesh.cli"]
    result = subprocess.run([*command, "validate", *sorted(map(str, tmp_path.iterdir()))],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    for name, _, (line, column), *_ in CASES:
        assert f"{name}.yaml:{line}:{column}:" in result.stderr, name
