"""Outlier detection: Envoy's state machine, its timing in the engine, the Istio import, and
what ``staleness`` concludes from it, checked against the simulator."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from import_fixtures import FIXTURES, run

from faultmesh import model
from faultmesh.model import properties as P
from faultmesh.model.faults import Crash, Scenario, Target
from faultmesh.model.system import OutlierDetection
from faultmesh.model.verify import verify
from faultmesh.simulations.engine.simulation import simulate
from faultmesh.simulations.outliers import OutlierDetector

# --- the pure state machine ----------------------------------------------------------------


@pytest.mark.parametrize(("percent", "always", "hosts", "allowed"), [
    (10, False, 3, 0),  # 1/3 = 33% > 10%: Envoy since #27909 ejects none
    (10, True, 3, 1),  # always_eject_one_host restores the first ejection
    (34, False, 3, 1),
    (50, False, 3, 1),
    (67, False, 3, 2),  # 2/3 = 66.7% <= 67%
    (100, False, 3, 3),
    (10, False, 10, 1),
    (100, False, 1, 1),
    (0, False, 5, 0),
])
def test_max_ejection_percent_counts_the_host_being_ejected(
        percent: float, always: bool, hosts: int, allowed: int) -> None:
    policy = OutlierDetection(max_ejection_percent=percent, always_eject_one_host=always)
    assert policy.ejectable(hosts) == allowed


def _detector(**kwargs: Any) -> OutlierDetector:
    policy = OutlierDetection(**{"interval": 1.0, "base_ejection_time": 5.0,
                                 "max_ejection_percent": 50.0, **kwargs})
    return OutlierDetector(policy, ["a", "b", "c"], "caller-0")


def test_consecutive_5xx_ejects_at_the_threshold_and_a_success_resets() -> None:
    d = _detector(consecutive_5xx=3)
    assert not d.record("a", 1.0, "error") and not d.record("a", 1.1, "gateway")
    d.record("a", 1.2, "ok")  # a success clears the count
    assert not d.record("a", 1.3, "error") and not d.record("a", 1.4, "error")
    assert d.record("a", 1.5, "error")
    assert d.ejected == {"a"}
    assert d.events == [[1.5, "a", "eject", "caller-0"]]


def test_gateway_counter_is_cleared_by_a_non_gateway_5xx() -> None:
    d = _detector(consecutive_5xx=0, consecutive_gateway_errors=2)
    d.record("a", 1.0, "gateway")
    d.record("a", 1.1, "error")  # a 500: not a gateway error, clears that counter
    assert not d.record("a", 1.2, "gateway")
    assert d.record("a", 1.3, "gateway")


def test_ejection_time_grows_is_capped_and_returns_at_interval_ticks() -> None:
    d = _detector(consecutive_5xx=1, max_ejection_time=12.0)
    d.record("a", 0.5, "error")
    assert d.tick(5.0) == []  # 4.5 s ejected: not yet
    assert d.tick(6.0) == ["a"]  # the first tick after 0.5 + 5
    d.record("a", 6.2, "error")  # ejected again before a tick in service: 2 x 5 s
    assert [t for t in range(7, 18) if d.tick(float(t))] == [17]  # 6.2 + 10 = 16.2 -> 17
    d.record("a", 17.5, "error")  # 3 x 5 = 15 capped at 12: 29.5 -> 30
    assert [t for t in range(18, 40) if d.tick(float(t))] == [30]


def test_multiplier_decays_while_the_host_stays_in_service() -> None:
    d = _detector(consecutive_5xx=1)
    d.record("a", 0.0, "error")
    d.tick(5.0)
    d.record("a", 5.5, "error")  # second ejection: 10 s
    d.tick(16.0)  # returns at 16
    d.tick(17.0)  # in service: 2 -> 1
    d.tick(18.0)  # 1 -> 0
    d.record("a", 18.5, "error")  # back to 1 x base
    assert d.ejection_length("a") == 5.0
    assert [t for t in range(19, 30) if d.tick(float(t))] == [24]


def test_no_more_than_the_allowed_share_is_ejected() -> None:
    d = _detector(consecutive_5xx=1)  # 50% of 3: one host
    assert d.record("a", 1.0, "error")
    assert not d.record("b", 1.1, "error")
    assert d.ejected == {"a"} and d.overflows == 1
    d.tick(7.0)  # a returns
    assert d.record("b", 7.5, "error")  # now b may go


# --- the engine's timing -------------------------------------------------------------------

SPEC = """
system: od
discovery: {mode: client, heartbeat: 1s, ttl: 1h, refresh: 1h}
services:
  front:
    replicas: %(callers)d
    endpoints:
      home: {calls: [{call: cart.get, timeout: 100ms, retries: %(retries)d}]}
  cart:
    replicas: 3
    restart: never
    outlier_detection: %(outlier)s
    endpoints:
      get: {service_time: 1ms}
workload:
  - {entry: front.home, rate: 100/s, arrivals: constant}
"""


def _system(outlier: str = "{consecutive_5xx: 3, interval: 1s, base_ejection_time: 5s, "
            "max_ejection_percent: 50}", callers: int = 1, retries: int = 0,
            extra: str = "") -> Any:
    return model.loads(SPEC % {"callers": callers, "retries": retries, "outlier": outlier}
                       + extra)


def _crash(*names: str, at: float = 10.0, duration: float = 60.0) -> Scenario:
    faults = tuple(Crash(target=Target("instance", n), at=at) for n in names)
    return Scenario(name="dead", faults=faults, duration=duration, warmup=1.0)


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float, str, str]]:
    """Record every attempt result each detector is told: (caller, t, host, result)."""
    seen: list[tuple[str, float, str, str]] = []
    record = OutlierDetector.record

    def spy(self: OutlierDetector, host: str, now: float, result: Any) -> bool:
        seen.append((self.caller, now, host, result))
        return record(self, host, now, result)

    monkeypatch.setattr(OutlierDetector, "record", spy)
    return seen


def _reference(policy: OutlierDetection, hosts: int,
               attempts: list[tuple[float, str, str]], until: float) -> list[list[Any]]:
    """Envoy's rules written out plainly, replayed over one caller's attempts."""
    allowed = policy.ejectable(hosts)
    count: dict[str, int] = {}
    ejected: dict[str, tuple[float, int]] = {}
    multiplier: dict[str, int] = {}
    events: list[list[Any]] = []
    ticks = iter(policy.interval * k for k in range(1, int(until / policy.interval) + 2))
    tick = next(ticks)
    for t, host, result in attempts:
        while tick <= t:
            for h in sorted(set(count) | set(ejected)):
                if h in ejected:
                    start, m = ejected[h]
                    if tick - start >= min(policy.base_ejection_time * m,
                                           policy.max_ejection_time) - 1e-9:
                        del ejected[h]
                        count[h] = 0
                        events.append([tick, h, "return"])
                elif multiplier.get(h):
                    multiplier[h] -= 1
            tick = next(ticks)
        count[host] = 0 if result == "ok" else count.get(host, 0) + 1
        if count[host] == policy.consecutive_5xx and host not in ejected:
            if len(ejected) < allowed:
                multiplier[host] = multiplier.get(host, 0) + 1
                ejected[host] = (t, multiplier[host])
                events.append([t, host, "eject"])
            count[host] = 0
    return events


def test_engine_ejects_as_envoy_would(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spy(monkeypatch)
    system = _system(callers=2)
    summary = simulate(system, _crash("cart-1"), seed=3).summary
    edge = summary["outliers"]["front->cart"]
    policy = system.services["cart"].outlier_detection
    assert policy is not None
    for caller in ("front-0", "front-1"):
        attempts = [(t, h, r) for c, t, h, r in seen if c == caller]
        mine = [e[:3] for e in edge["ejections"] if e[3] == caller]
        assert mine == _reference(policy, 3, attempts, 60.0)
        ejects = [e for e in mine if e[2] == "eject"]
        returns = [e for e in mine if e[2] == "return"]
        assert len(ejects) >= 3 and {e[1] for e in ejects} == {"cart-1"}
        # Ejected right at the third consecutive failure from this caller.
        failures = [t for t, h, r in attempts if h == "cart-1" and r != "ok"]
        assert ejects[0][0] == failures[2]
        # Back after base_ejection_time, at the first interval tick; then 2x, then 3x.
        for k, (eject, back) in enumerate(zip(ejects, returns, strict=False), start=1):
            held = back[0] - eject[0]
            assert k * 5.0 <= held < k * 5.0 + 1.0 + 1e-9
            assert back[0] == pytest.approx(round(back[0]))  # on a 1 s tick
        # Nothing sent to the host while this caller had it ejected.
        for eject, back in zip(ejects, [*returns, [math.inf]], strict=False):
            assert not any(eject[0] < t < back[0] and h == "cart-1" for t, h, _ in attempts)


def test_max_ejection_percent_holds_in_the_engine() -> None:
    summary = simulate(_system(), _crash("cart-0", "cart-1"), seed=1).summary
    edge = summary["outliers"]["front->cart"]
    ejected: set[str] = set()
    for _t, host, what, _caller in edge["ejections"]:
        (ejected.add if what == "eject" else ejected.discard)(host)
        assert len(ejected) <= 1  # 50% of 3 hosts
    assert edge["overflows"] > 0  # the second dead host was detected, and refused
    assert {e[1] for e in edge["ejections"]} == {"cart-0", "cart-1"}  # in turn


def test_ejection_shows_in_the_terminal_view() -> None:
    from rich.console import Console

    from faultmesh.simulations.presentation.terminal import render

    summary = simulate(_system(), _crash("cart-1", duration=30.0), seed=1).summary
    console = Console(record=True, width=120)
    render(summary, console)
    lines = [line for line in console.export_text().splitlines() if "front->cart:" in line]
    assert len(lines) == 1 and "ejection(s) of cart-1, first at" in lines[0]


# --- the Istio import ----------------------------------------------------------------------

MANIFESTS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: front}
spec:
  selector: {matchLabels: {app: front}}
  template:
    metadata: {labels: {app: front}}
    spec:
      containers:
        - name: front
          image: front
          env: [{name: CART_ADDR, value: "cart:8080"}]
---
apiVersion: v1
kind: Service
metadata: {name: front}
spec: {selector: {app: front}, ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart}
spec:
  replicas: 3
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec:
      containers: [{name: cart, image: cart}]
---
apiVersion: v1
kind: Service
metadata: {name: cart}
spec: {selector: {app: cart}, ports: [{port: 8080}]}
"""

ISTIO = """
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: cart-vs}
spec:
  hosts: [cart]
  http:
    - route: [{destination: {host: cart}}]
      retries: {attempts: 2, perTryTimeout: 100ms, retryOn: "5xx,connect-failure"}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: cart-dr}
spec:
  host: cart.default.svc.cluster.local
  trafficPolicy:
    connectionPool: {http: {maxRetries: 3}}
    outlierDetection:
      consecutive5xxErrors: 3
      interval: 1s
      baseEjectionTime: 5s
      maxEjectionPercent: 50
      minHealthPercent: 0
"""


def _imported(capsys: pytest.CaptureFixture[str], tmp_path: Path, *texts: str,
              files: tuple[Path, ...] = ()) -> tuple[dict[str, Any], str]:
    paths = list(files)
    for i, text in enumerate(texts):
        path = tmp_path / f"manifest{i}.yaml"
        path.write_text(text)
        paths.append(path)
    target = tmp_path / "spec.yaml"
    code, _, err = run(capsys, "import", "istio", *map(str, paths), "-o", str(target))
    assert code == 0, err
    return yaml.safe_load(target.read_text()), target.read_text()


def test_istio_outlier_detection_imports_and_ejects_as_envoy(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    doc, text = _imported(capsys, tmp_path, MANIFESTS, ISTIO)
    assert doc["services"]["cart"]["outlier_detection"] == {
        "consecutive_5xx": 3, "interval": "1s", "base_ejection_time": "5s",
        "max_ejection_percent": 50}
    header = text.split("\nsystem:")[0]
    assert "maxRetries" in header and "NOT modelled" not in header
    assert "minHealthPercent" not in header  # 0, Istio's default, is what faultmesh models
    system = model.loads(text + "workload:\n  - {entry: front.serve, rate: 100/s, "
                         "arrivals: constant}\n")
    policy = system.services["cart"].outlier_detection
    assert policy == OutlierDetection(consecutive_5xx=3, interval=1.0, base_ejection_time=5.0,
                                      max_ejection_percent=50.0)
    [call] = system.services["front"].endpoints["serve"].steps
    assert call.retries == 2
    seen = _spy(monkeypatch)
    summary = simulate(system, _crash("cart-1", at=10.0, duration=60.0), seed=2).summary
    [edge] = summary["outliers"].values()
    attempts = [(t, h, r) for _c, t, h, r in seen]
    assert [e[:3] for e in edge["ejections"]] == _reference(policy, 3, attempts, 60.0)
    ejects = [e for e in edge["ejections"] if e[2] == "eject"]
    returns = [e for e in edge["ejections"] if e[2] == "return"]
    failures = [t for t, h, r in attempts if h == "cart-1" and r != "ok"]
    assert ejects and ejects[0][0] == failures[2]  # right after the third failure
    assert 5.0 <= returns[0][0] - ejects[0][0] < 6.0 + 1e-9
    if len(returns) > 1:  # re-ejected at once on return: 2x the base
        assert 10.0 <= returns[1][0] - ejects[1][0] < 11.0 + 1e-9


BOUTIQUE = FIXTURES / "online_boutique"

CART_RULES = """
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: cartservice}
spec:
  host: cartservice
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 2, interval: 2s, baseEjectionTime: 4s,
                       maxEjectionPercent: 100}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: cartservice}
spec:
  hosts: [cartservice]
  http:
    - route: [{destination: {host: cartservice}}]
      retries: {attempts: 1, perTryTimeout: 200ms}
"""


@pytest.mark.skipif(not BOUTIQUE.is_dir(), reason="upstream fixtures not found")
def test_online_boutique_release_files_with_a_cart_rule(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    doc, text = _imported(capsys, tmp_path, CART_RULES,
                          files=(BOUTIQUE / "kubernetes-manifests.yaml",
                                 BOUTIQUE / "istio-manifests.yaml"))
    assert doc["services"]["cartservice"]["outlier_detection"]["consecutive_5xx"] == 2
    system = model.loads(text)
    scenario = Scenario(name="cart-dies", faults=(
        Crash(target=Target("instance", "cartservice-0"), at=10.0, duration=20.0),),
        duration=40.0, warmup=1.0)
    seen = _spy(monkeypatch)
    summary = simulate(system, scenario, seed=1).summary
    edges = summary["outliers"]
    assert "frontend->cartservice" in edges
    events = edges["frontend->cartservice"]["ejections"]
    ejects = [e for e in events if e[2] == "eject"]
    # The only replica is ejected (100% allows it) once cart dies, and never before.
    assert ejects and all(e[0] >= 10.0 for e in ejects)
    for eject in ejects:
        back = next((e for e in events if e[2] == "return" and e[0] > eject[0]
                     and e[3] == eject[3]), None)
        if back is not None:
            assert back[0] - eject[0] >= 4.0 and back[0] % 2.0 == pytest.approx(0.0)
    # While a caller has the lone host ejected it sends it nothing (no healthy upstream).
    for eject in ejects:
        until = next((e[0] for e in events if e[2] == "return" and e[0] > eject[0]
                      and e[3] == eject[3]), math.inf)
        assert not any(c == eject[3] and eject[0] < t < until for c, t, _h, _r in seen)


# --- what staleness concludes, against the simulator ---------------------------------------

STALE = """
properties:
  - staleness: {}
"""


def _stale_system(outlier: str, retries: int) -> Any:
    text = (SPEC % {"callers": 2, "retries": retries, "outlier": outlier}).replace(
        "{mode: client, heartbeat: 1s, ttl: 1h, refresh: 1h}",
        "{mode: client, heartbeat: 1s, ttl: 20s, refresh: 5s}").replace(
        "    restart: never\n", "    restart: never\n    load_balancer: random\n")
    return model.loads(text + STALE)


def _stale_failures(system: Any) -> int:
    summary = simulate(system, _crash("cart-1", duration=50.0), seed=4).summary
    [verdict] = [p for p in summary["properties"] if p["kind"] == "staleness"]
    return int(verdict["failed_requests"])


def test_staleness_holds_when_the_first_failure_ejects() -> None:
    covered = _stale_system("{consecutive_gateway_errors: 1, interval: 1s, "
                            "base_ejection_time: 5s, max_ejection_percent: 50}", retries=1)
    verdict = verify(covered, [P.Staleness()])["staleness"]
    assert verdict.status == "holds" and "outlier detection" in verdict.explanation
    assert _stale_failures(covered) == 0
    # The same call without outlier detection: violated, and failures show.
    bare = _stale_system("none", retries=1)
    assert verify(bare, [P.Staleness()])["staleness"].status == "violated"
    assert _stale_failures(bare) > 0
    # Room for no ejection (10% of 3): no cover either.
    cramped = _stale_system("{consecutive_gateway_errors: 1, max_ejection_percent: 10}",
                            retries=1)
    assert verify(cramped, [P.Staleness()])["staleness"].status == "violated"


def test_staleness_bound_holds_in_simulation() -> None:
    system = _stale_system("{consecutive_5xx: 3, interval: 1s, base_ejection_time: 5s, "
                           "max_ejection_percent: 50}", retries=0)
    verdict = verify(system, [P.Staleness()])["staleness"]
    assert verdict.status == "violated" and verdict.counterexample is not None
    bound = verdict.counterexample.numbers["failed_attempts_per_caller_instance"]
    assert bound == 3 * (math.floor(25.0 / 5.0) + 2)
    failures = _stale_failures(system)
    assert 0 < failures <= 2 * bound  # two caller instances
