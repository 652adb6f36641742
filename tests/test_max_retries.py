"""``max_retries``: Envoy's retry circuit breaker, per caller instance and callee service.

The engine is watched from outside (a monitor wrapped around the call sites' senders and
``settle``), so the limit is checked against the retries actually on the wire, not against the
engine's own count; the Istio import and the spec round trip are checked too.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from import_fixtures import run

from faultmesh import model
from faultmesh.model import SpecErrors, dump
from faultmesh.model.faults import ErrorFault, Scenario, Target
from faultmesh.model.system import System
from faultmesh.simulations.engine import calls
from faultmesh.simulations.engine.simulation import Simulation, simulate

SPEC = """
system: retries
defaults: {{call: {{timeout: 1s, retries: 3, backoff: none}}{default}}}
services:
  front:
    replicas: 2
    workers: 1000
    endpoints:
      serve: {{calls: [cart.get]}}
  cart:
    replicas: 2
    workers: 1000
{limit}    endpoints:
      get: {{service_time: 50ms}}
workload:
  - {{entry: front.serve, rate: 200/s, arrivals: constant}}
"""

# Every attempt on cart fails: each request makes its retries, many at once per caller.
FAILING = Scenario(name="failing", faults=(ErrorFault(target=Target("service", "cart"),
                                                      rate=0.9),))


def system(limit: str = "", default: str = "") -> System:
    return model.loads(SPEC.format(limit=limit, default=default))


class RetryMonitor:
    """Retries on the wire per (edge, caller instance): sent and not yet settled."""

    def __init__(self) -> None:
        self.out: dict[tuple[str, str], set[int]] = defaultdict(set)
        self.peak: dict[tuple[str, str], int] = defaultdict(int)

    def key(self, site: calls.CallSite, run: calls.CallRun) -> tuple[str, str]:
        return (site.callee, run.caller.name)

    def sent(self, site: calls.CallSite, run: calls.CallRun) -> None:
        if run.attempt >= 1:  # the attempt about to be made is a retry
            key = self.key(site, run)
            self.out[key].add(id(run))
            self.peak[key] = max(self.peak[key], len(self.out[key]))

    def settled(self, site: calls.CallSite, run: calls.CallRun) -> None:
        self.out[self.key(site, run)].discard(id(run))


@pytest.fixture
def monitor(monkeypatch: pytest.MonkeyPatch) -> Iterator[RetryMonitor]:
    watch = RetryMonitor()
    # A site picks its sender when it is built (a lean one when it has no per-attempt
    # mechanism): both are watched, patched before the run builds its sites.
    settle = calls.CallSite.settle

    def watching(send: Any) -> Any:
        def watched_send(site: calls.CallSite, run: calls.CallRun) -> None:
            watch.sent(site, run)
            send(site, run)
        return watched_send

    def watched_settle(site: calls.CallSite, run: calls.CallRun, *args: Any) -> None:
        watch.settled(site, run)
        settle(site, run, *args)

    for name in ("_send", "_send_plain"):
        monkeypatch.setattr(calls.CallSite, name, watching(getattr(calls.CallSite, name)))
    monkeypatch.setattr(calls.CallSite, "settle", watched_settle)
    yield watch


def test_retries_outstanding_per_caller_instance_stay_within_the_limit(
        monitor: RetryMonitor) -> None:
    limited = Simulation(system("    max_retries: 2\n"), FAILING, duration=10.0, seed=3,
                         trace=False, cold_start=False)
    summary = limited.run().summary
    assert set(monitor.peak) == {("cart", "front-0"), ("cart", "front-1")}
    assert max(monitor.peak.values()) == 2  # reached, never passed
    assert max(limited.retry_limits[("front", "cart")].peak) == 2
    edge = summary["calls"]["front->cart"]
    assert edge["retry_overflow"] > 0
    # An overflowed call fails with its failed attempt's cause, not "retries exhausted".
    assert edge["causes"].get("injected error", 0) > 0
    assert edge["failed"] == sum(edge["causes"].values())


def test_without_a_limit_many_more_retries_are_out(monitor: RetryMonitor) -> None:
    summary = simulate(system(), FAILING, duration=10.0, seed=3).summary
    assert max(monitor.peak.values()) > 2  # the limited run above would fail on this load
    assert summary["calls"]["front->cart"]["retry_overflow"] == 0


def test_a_limit_of_zero_allows_no_retry(monitor: RetryMonitor) -> None:
    summary = simulate(system("    max_retries: 0\n"), FAILING, duration=5.0, seed=1).summary
    edge = summary["calls"]["front->cart"]
    assert not monitor.peak  # first attempts only
    assert edge["retry_overflow"] == edge["failed"] > 0


def test_unlimited_runs_exactly_as_without_the_key() -> None:
    plain = simulate(system(), FAILING, duration=5.0, seed=7).summary
    unlimited = simulate(system("    max_retries: unlimited\n"), FAILING, duration=5.0,
                         seed=7).summary
    never_reached = simulate(system("    max_retries: 1000\n"), FAILING, duration=5.0,
                             seed=7).summary
    assert json.dumps(unlimited, sort_keys=True) == json.dumps(plain, sort_keys=True)
    assert json.dumps(never_reached, sort_keys=True) == json.dumps(plain, sort_keys=True)


def test_defaults_apply_and_a_service_overrides_them() -> None:
    default = system(default=", max_retries: 4")
    assert default.services["cart"].max_retries == 4
    override = system("    max_retries: unlimited\n", default=", max_retries: 4")
    assert override.services["cart"].max_retries is None
    assert override.services["front"].max_retries == 4
    assert system().services["cart"].max_retries is None


def test_the_key_round_trips_and_is_bounded() -> None:
    limited = system("    max_retries: 5\n")
    text = dump(limited)
    assert yaml.safe_load(text)["services"]["cart"]["max_retries"] == 5
    assert model.loads(text) == limited
    assert "max_retries" not in yaml.safe_load(dump(system()))["services"]["cart"]
    with pytest.raises(SpecErrors, match="max_retries"):
        system("    max_retries: -1\n")
    with pytest.raises(SpecErrors, match="max_retries"):
        system("    max_retries: 10000001\n")


ISTIO = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart}
spec:
  replicas: 2
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec: {containers: [{name: cart, image: cart, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: cart}
spec: {selector: {app: cart}, ports: [{port: 80}]}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: cart-dr}
spec:
  host: cart.default.svc.cluster.local
  trafficPolicy:
    connectionPool: {http: {maxRetries: %s}}
"""


def _import(capsys: pytest.CaptureFixture[str], tmp_path: Path, value: str) -> tuple[Any, str]:
    source = tmp_path / "mesh.yaml"
    source.write_text(ISTIO % value)
    target = tmp_path / "spec.yaml"
    code, _, err = run(capsys, "import", "istio", str(source), "-o", str(target))
    assert code == 0, err
    text = target.read_text()
    return yaml.safe_load(text), text


def test_istio_max_retries_is_imported_per_caller_instance(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    doc, text = _import(capsys, tmp_path, "3")
    assert doc["services"]["cart"]["max_retries"] == 3
    header = text.split("\nsystem:")[0]
    assert "maxRetries 3 -> max_retries, counted per caller instance" in header
    assert "not modelled" not in header.split("Skipped")[0]
    assert model.loads(text).services["cart"].max_retries == 3


@pytest.mark.parametrize("value", ["0", "4294967295"])
def test_istio_default_max_retries_is_unlimited(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path, value: str) -> None:
    doc, text = _import(capsys, tmp_path, value)
    assert "max_retries" not in doc["services"]["cart"]
    assert f"maxRetries {value} read as unlimited" in text.split("\nsystem:")[0]


def test_staleness_does_not_count_a_retry_that_max_retries_can_refuse() -> None:
    """A retry that avoids the dead instance covers the stale window only if it is made:
    with max_retries on the callee it may be refused, so the call is not covered."""
    from faultmesh.model import loads, verify

    text = """
system: stale
discovery: {mode: client, ttl: 10s, refresh: 10s}
services:
  front:
    endpoints:
      home: {service_time: 1ms, calls: [{call: back.get, retries: 1, retry_other_instance: true}]}
  back:
    replicas: 2
    load_balancer: random
    endpoints:
      get: {service_time: 1ms}
workload:
  - {entry: front.home, rate: 10/s}
properties:
  - staleness: {}
"""
    covered = verify(loads(text), kinds=["staleness"])["staleness"]
    assert covered.status == "holds"
    limited = loads(text.replace("    replicas: 2\n", "    replicas: 2\n    max_retries: 1\n"))
    verdict = verify(limited, kinds=["staleness"])["staleness"]
    assert verdict.status == "violated"
