"""Behaviour of the engine's mechanisms, each on a small inline spec."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from simhelp import spec

from faultmesh.model.distributions import Constant
from faultmesh.model.faults import (
    Crash,
    ErrorFault,
    LatencyFault,
    Partition,
    RegistryOutage,
    RollingRestart,
    Scenario,
    Slowdown,
    parse_target,
)
from faultmesh.simulations import simulate

SPECS = Path(__file__).resolve().parent.parent / "specs"

TWO = """
system: two
discovery: {mode: %(mode)s, heartbeat: 1s, ttl: 3s, refresh: 2s}
orchestration: {restart: {delay: 3s}, readiness: {period: 1s}}
defaults:
  call: {timeout: %(timeout)s, retries: %(retries)d, backoff: none}
services:
  front:
    workers: 100
    endpoints:
      get:
        service_time: 0
        calls: [%(call)s]
  back:
    replicas: %(replicas)d
    workers: 100
    endpoints:
      get: {service_time: %(back_time)s}
workload:
  - {entry: front.get, rate: %(rate)s, arrivals: %(arrivals)s}
"""


def two(**overrides: object):  # type: ignore[no-untyped-def]
    values = {"mode": "server", "timeout": "1s", "retries": 0, "call": "back.get",
              "replicas": 1, "back_time": "1ms", "rate": "50/s", "arrivals": "constant"}
    values.update(overrides)
    return spec(TWO % values)


def faults(*items: object) -> Scenario:
    return Scenario("test", tuple(items))  # type: ignore[arg-type]


# --- circuit breakers --------------------------------------------------------------------------


@pytest.mark.parametrize("breaker", [
    "{consecutive_failures: 5, open_for: 2s}",
    "{failure_rate: 50%, window: 20, min_calls: 10, open_for: 2s, half_open_calls: 3}",
])
def test_breaker_opens_during_an_errors_fault_and_closes_after(breaker: str) -> None:
    system = two(call=f"{{call: back.get, circuit_breaker: {breaker}}}")
    scenario = faults(ErrorFault(target=parse_target("back.get"), rate=1.0, at=10.0,
                                 duration=10.0))
    run = simulate(system, scenario, duration=30, seed=1)
    moves = run.summary["breakers"]["front->back"]["transitions"]
    # One caller instance (front-0): its breaker's moves, tagged with it.
    assert {label for _, _, label in moves} <= {"front-0"}
    opened = [t for t, state, _ in moves if state == "open"]
    closed = [t for t, state, _ in moves if state == "closed"]
    assert opened and 10.0 <= opened[0] <= 10.5  # after 5 / 10 failures at 50/s
    assert closed and 20.0 <= closed[-1] <= 23.0  # first probe after the fault succeeds
    assert run.summary["breakers"]["front->back"]["state"] == "closed"
    assert all(t <= 23.0 for t in opened)
    causes = run.entry()["root_causes"]
    assert causes["circuit open"] > causes["injected error"]  # the breaker shed the load
    assert run.breakers["state"].tolist() == [state for _, state, _ in moves]


def test_zone_outage_shop_breakers_open_and_close() -> None:
    run = simulate(SPECS / "zone_outage_shop.yaml", "zone-a-outage", seed=3)
    breakers = run.summary["breakers"]
    moves = breakers["checkout->payment"]["transitions"]
    assert moves[0][1] == "open" and 120 <= moves[0][0] <= 125  # payment is all in zone a
    assert moves[-1][1] == "closed" and 300 <= moves[-1][0] <= 330  # after zone a returns
    phases = {p["label"]: p for p in run.summary["phases"]}
    outage = phases["crash zone:a"]["entries"]["frontend.checkout"]
    assert outage["availability"] < 0.05
    # browse keeps catalog replicas in zones b and c, but for the node grace period
    # (discovery.zone_detection, 50 s) the registry still lists catalog's zone-a instance: some
    # calls (and their retries) land on it, and only then.
    assert phases["crash zone:a"]["entries"]["frontend.browse"]["availability"] > 0.98
    frame = run.timeline
    browse = frame[(frame["entry"] == "frontend.browse") & (frame["requests"] > frame["ok"])]
    assert browse["time_s"].min() >= 120 and browse["time_s"].max() < 120 + 50
    assert "checkout->payment" in phases["crash zone:a"]["breakers"]
    after = next(p for p in run.summary["phases"] if p["from"] >= 300)
    assert after["entries"]["frontend.checkout"]["availability"] > 0.9  # recovery
    failed = {p["name"]: p["status"] for p in run.properties}
    assert failed["availability:frontend.checkout"] == "violated"
    # browse is violated only by the failures of the detection window
    browse_verdict = next(p for p in run.properties if p["name"] == "availability:frontend.browse")
    assert all(120 <= v["at"] < 170 for v in browse_verdict["violations"] if v["at"] is not None)
    assert failed["no_lost_requests"] == "holds"


def test_breaker_reaction_property() -> None:
    base = TWO.replace("workload:", "properties:\n  - breaker_reaction: {within: 2s}\nworkload:")
    values = {"mode": "server", "timeout": "1s", "retries": 0, "replicas": 1,
              "back_time": "1ms", "rate": "50/s", "arrivals": "constant"}
    guarded = spec(base % {**values, "call": "{call: back.get, circuit_breaker: "
                                             "{consecutive_failures: 3, open_for: 5s}}"})
    bare = spec(base % {**values, "call": "back.get"})
    scenario = faults(ErrorFault(target=parse_target("service:back"), rate=1.0, at=5.0,
                                 duration=5.0))
    verdict = next(p for p in simulate(guarded, scenario, duration=20).properties
                   if p["kind"] == "breaker_reaction")
    assert verdict["status"] == "holds" and verdict["faults_checked"] == 1
    verdict = next(p for p in simulate(bare, scenario, duration=20).properties
                   if p["kind"] == "breaker_reaction")
    assert verdict["status"] == "violated"
    assert "no circuit breaker guards front->back" in verdict["violations"][0]["detail"]


# --- timeouts, optional and asynchronous calls ---------------------------------------------------


def test_call_timeout_fires_and_the_callee_works_on() -> None:
    run = simulate(two(back_time="2s", timeout="500ms", rate="2/s"), duration=20, trace=True)
    entry = run.entry()
    assert entry["ok"] == 0
    assert entry["root_causes"] == {"timeout": entry["requests"]}
    latencies = run.requests["latency_s"]
    assert latencies.min() == pytest.approx(0.5) and latencies.max() == pytest.approx(0.5)
    # The callee keeps each timed-out request busy for its whole service time.
    assert run.summary["services"]["back"]["utilization"] == pytest.approx(2 * 2 / 100,
                                                                           rel=0.1)


def test_workload_timeout_ends_requests_as_timeouts() -> None:
    system = spec(TWO.replace("arrivals: %(arrivals)s}", "arrivals: %(arrivals)s, "
                              "timeout: 100ms}") % {
        "mode": "server", "timeout": "1s", "retries": 0, "call": "back.get", "replicas": 1,
        "back_time": "300ms", "rate": "10/s", "arrivals": "constant"})
    run = simulate(system, duration=10)
    entry = run.entry()
    assert entry["outcomes"]["timeout"] == entry["requests"] > 0
    assert entry["causes"] == {"timeout": entry["requests"]}


def test_retries_are_load_balanced_anew() -> None:
    system = two(replicas=2, retries=1, rate="20/s")
    scenario = faults(ErrorFault(target=parse_target("instance:back-0"), rate=1.0))
    run = simulate(system, scenario, duration=20)
    # Round robin: a failed attempt on back-0 is retried on back-1 and succeeds.
    assert run.entry()["availability"] == 1.0
    assert run.summary["services"]["back"]["retries"] > 0


def test_optional_call_failure_degrades_without_failing() -> None:
    system = two(call="{call: back.get, optional: true}")
    scenario = faults(ErrorFault(target=parse_target("back.get"), rate=1.0))
    run = simulate(system, scenario, duration=10)
    assert run.entry()["availability"] == 1.0
    edge = run.summary["calls"]["front->back"]
    assert edge["degraded"] == edge["failed"] == edge["calls"] > 0


def test_async_calls_add_no_latency() -> None:
    run = simulate(two(call="{call: back.get, async: true}", back_time="1s"), duration=10)
    latency = run.entry()["latency_s"]
    assert latency["max"] == 0.0
    assert run.summary["services"]["back"]["requests"] == run.entry()["requests"]


def test_parallel_group_joins_all() -> None:
    system = spec("""
        system: fan
        services:
          front:
            endpoints:
              get: {service_time: 0, calls: [{parallel: [b.get, c.get]}, d.get]}
          b: {workers: 100, endpoints: {get: {service_time: 10ms}}}
          c: {workers: 100, endpoints: {get: {service_time: 30ms}}}
          d: {workers: 100, endpoints: {get: {service_time: 5ms}}}
        workload: [{entry: front.get, rate: 20/s, arrivals: constant}]
    """)
    latency = simulate(system, duration=5).entry()["latency_s"]
    assert latency["mean"] == pytest.approx(0.035)
    assert latency["max"] == pytest.approx(0.035)


def test_repeat_and_probability() -> None:
    run = simulate(two(call="{call: back.get, repeat: 3}"), duration=10)
    started = run.summary["requests"]["started"]
    assert 3 * started - 3 <= run.summary["services"]["back"]["requests"] <= 3 * started
    run = simulate(two(call="{call: back.get, probability: 0.25}", rate="200/s"), duration=20)
    n = run.entry()["requests"]
    share = run.summary["services"]["back"]["requests"] / n
    assert abs(share - 0.25) < 4 * math.sqrt(0.25 * 0.75 / n)


# --- the network -------------------------------------------------------------------------------


def test_partition_drops_traffic_while_it_lasts() -> None:
    system = two(timeout="200ms")
    scenario = faults(Partition(between=(parse_target("front"), parse_target("back")),
                                at=5.0, duration=5.0))
    run = simulate(system, scenario, duration=20, trace=True)
    requests = run.requests
    failed = requests[requests["outcome"] != "ok"]
    assert set(failed["root_cause"]) == {"partition"}
    # (Constant arrivals every 20 ms, by repeated addition: times carry rounding.)
    assert failed["arrived_s"].min() > 4.99 and failed["arrived_s"].max() < 10.01
    inside = requests[(requests["arrived_s"] > 4.99) & (requests["arrived_s"] < 10.01)]
    assert len(failed) == len(inside)


def test_one_way_partition_drops_only_one_direction() -> None:
    system = two(timeout="200ms")
    scenario = faults(Partition(between=(parse_target("back"), parse_target("front")),
                                oneway=True, at=5.0, duration=5.0))
    run = simulate(system, scenario, duration=20)
    # back -> front is cut: requests arrive, responses are lost; back still does the work.
    assert run.entry()["root_causes"] == {"partition": run.entry()["failed"]}
    assert run.summary["services"]["back"]["requests"] == run.summary["requests"]["started"]


def test_message_loss_times_calls_out() -> None:
    system = spec(TWO.replace("defaults:", "network: {loss: 0.2}\ndefaults:") % {
        "mode": "server", "timeout": "50ms", "retries": 0, "call": "back.get", "replicas": 1,
        "back_time": "1ms", "rate": "200/s", "arrivals": "poisson"})
    run = simulate(system, duration=30)
    entry = run.entry()
    # A call needs its request and its response through: 0.8 * 0.8.
    n = entry["requests"]
    assert abs(entry["availability"] - 0.64) < 4 * math.sqrt(0.64 * 0.36 / n)
    assert set(entry["root_causes"]) == {"message lost"}


def test_latency_fault_and_slowdown() -> None:
    scenario = faults(LatencyFault(target=parse_target("back.get"), add=Constant(0.05), at=5.0,
                                   duration=5.0),
                      Slowdown(target=parse_target("back"), factor=10.0, at=12.0,
                               duration=3.0))
    run = simulate(two(back_time="2ms"), scenario, duration=20, trace=True)
    requests = run.requests
    during = requests[(requests["arrived_s"] >= 5.5) & (requests["arrived_s"] < 9.5)]
    assert during["latency_s"].min() == pytest.approx(0.052)
    slow = requests[(requests["arrived_s"] >= 12.5) & (requests["arrived_s"] < 14.5)]
    assert slow["latency_s"].min() == pytest.approx(0.02)
    quiet = requests[requests["arrived_s"] >= 16]
    assert quiet["latency_s"].max() == pytest.approx(0.002)


# --- instances, limits and orchestration -------------------------------------------------------


def test_queue_full_and_concurrency_limit_reject() -> None:
    system = spec("""
        system: limits
        services:
          small:
            queue: 0
            endpoints: {get: {service_time: 90ms}}
          narrow:
            workers: 10
            concurrency: 2
            endpoints: {get: {service_time: 90ms}}
        workload:
          - {entry: small.get, rate: 20/s, arrivals: constant}
          - {entry: narrow.get, rate: 40/s, arrivals: constant}
    """)
    run = simulate(system, duration=10)
    small, narrow = run.entry("small.get"), run.entry("narrow.get")
    assert small["causes"] == {"queue full": small["failed"]}
    assert small["availability"] == pytest.approx(0.5, abs=0.01)
    assert narrow["causes"] == {"concurrency limit": narrow["failed"]}
    assert narrow["ok"] == pytest.approx(200, abs=3)  # 2 every 100 ms
    assert run.summary["services"]["small"]["rejected"] == small["failed"]


def test_instance_crash_fails_requests_in_flight_and_restarts_after_delay() -> None:
    system = two(back_time="500ms", rate="10/s")
    scenario = faults(Crash(target=parse_target("instance:back-0"), at=10.0))
    run = simulate(system, scenario, duration=30, trace=True)
    causes = run.entry()["root_causes"]
    assert causes["instance died"] == 5  # 500 ms of requests at 10/s were in flight
    # Restart delay 3 s, then the first readiness probe at once (initial_delay 0): no instance
    # for 3 s. Until its third failed probe (2-3 s) the registry still lists the dead instance
    # (``instance down``), then it lists none (``no instance``).
    assert causes["instance down"] + causes["no instance"] == pytest.approx(30, abs=1)
    assert 20 <= causes["instance down"] <= 30
    requests = run.requests
    down = requests[requests["root_cause"] == "instance down"]["arrived_s"]
    none = requests[requests["root_cause"] == "no instance"]["arrived_s"]
    assert down.max() < none.min() and none.max() < 13.0
    up = run.summary["services"]["back"]["instances"]["back-0"]["up_s"]
    assert up == pytest.approx(27.0)


def test_rolling_restart_restarts_one_instance_at_a_time() -> None:
    system = two(replicas=3, retries=1)
    scenario = faults(RollingRestart(target=parse_target("back"), at=5.0, interval=10.0))
    run = simulate(system, scenario, duration=40)
    instances = run.summary["services"]["back"]["instances"]
    assert [i["up_s"] for i in instances.values()] == pytest.approx([37.0, 37.0, 37.0])
    assert run.entry()["availability"] == 1.0  # never more than one instance out


def test_cold_start_follows_depends_on_order() -> None:
    system = spec("""
        system: layers
        orchestration: {readiness: {period: 2s}}
        services:
          web: {depends_on: [api], endpoints: {get: {service_time: 0, calls: [api.get]}}}
          api: {depends_on: [db], endpoints: {get: {service_time: 0, calls: [db.get]}}}
          db: {endpoints: {get: {service_time: 0}}}
        workload: [{entry: web.get, rate: 10/s, arrivals: constant}]
    """)
    run = simulate(system, duration=20, cold_start=True, trace=True)
    requests = run.requests
    ok = requests[requests["outcome"] == "ok"]
    # Every first probe runs at once (initial_delay 0), in start order web, api, db: db is ready
    # at 0 s, api at its second probe (2 s), web at its third (4 s): nothing succeeds before.
    assert ok["arrived_s"].min() == pytest.approx(4.0, abs=0.11)
    assert set(requests[requests["arrived_s"] < 3.9]["root_cause"]) == {"no instance"}
    warm = simulate(system, duration=20)
    assert warm.entry()["availability"] == 1.0


# --- discovery ---------------------------------------------------------------------------------


def _stale_failures(mode: str, scenario: Scenario) -> list[float]:
    run = simulate(two(mode=mode, replicas=2, rate="20/s"), scenario, duration=60, seed=2,
                   trace=True)
    requests = run.requests
    return requests[requests["root_cause"] == "instance down"]["arrived_s"].tolist()


def test_client_discovery_routes_to_a_dead_instance_until_ttl_and_refresh() -> None:
    crash = faults(Crash(target=parse_target("instance:back-1"), at=10.0, duration=40.0))
    stale = _stale_failures("client", crash)
    assert stale, "callers with a cached view must hit the dead instance"
    # Gone from the registry within heartbeat + ttl (1 + 3 s), from caches within refresh (2 s).
    assert min(stale) >= 10.0 and max(stale) <= 10.0 + 1 + 3 + 2
    assert max(stale) >= 10.0 + 3  # not before the ttl expired


def test_server_discovery_notices_a_crash_after_failed_readiness_probes() -> None:
    # Server mode: the registry lists the crashed instance until its third consecutive failed
    # readiness probe (period 1 s): calls routed there fail for 2-3 s after the crash, then stop.
    crash = faults(Crash(target=parse_target("instance:back-1"), at=10.0, duration=40.0))
    stale = _stale_failures("server", crash)
    assert stale, "the registry notices a crash only after its detection delay"
    assert min(stale) >= 10.0 and max(stale) <= 10.0 + 3 * 1.0
    assert max(stale) >= 10.0 + 2 * 1.0  # not before the (failures - 1)-th period


def test_server_discovery_notices_a_zone_outage_after_the_node_grace_period() -> None:
    system = spec("""
        system: zoned
        zones: [a, b]
        discovery: {mode: server, zone_detection: 7s}
        orchestration: {readiness: {period: 1s}}
        services:
          front:
            placement: {b: 1}
            endpoints: {get: {service_time: 0, calls: [back.get]}}
          back:
            placement: {a: 1, b: 1}
            endpoints: {get: {service_time: 1ms}}
        workload: [{entry: front.get, rate: 20/s, arrivals: constant}]
    """)
    outage = faults(Crash(target=parse_target("zone:a"), at=10.0, duration=30.0))
    run = simulate(system, outage, duration=60, seed=2, trace=True)
    requests = run.requests
    stale = requests[requests["root_cause"] == "instance down"]["arrived_s"]
    # The node controller's grace period, not the readiness probes (3 x 1 s), decides: front's
    # calls reach back-0 (zone a) for 7 s, and only then.
    assert len(stale) > 0 and stale.min() >= 10.0 and stale.max() <= 17.0
    assert stale.max() >= 16.0
    assert run.entry()["failed"] == len(stale)


def test_registry_outage_freezes_the_views() -> None:
    crash = faults(Crash(target=parse_target("instance:back-1"), at=10.0, duration=40.0),
                   RegistryOutage(at=8.0, duration=20.0))
    stale = _stale_failures("client", crash)
    # Caches cannot refresh until the outage ends at 28 s (then at most one refresh period).
    assert max(stale) > 20.0 and max(stale) <= 28.0 + 2.0


def test_staleness_property() -> None:
    base = TWO.replace("workload:", "properties:\n  - staleness: {}\nworkload:")
    values = {"timeout": "1s", "retries": 0, "call": "back.get", "replicas": 2,
              "back_time": "1ms", "rate": "20/s", "arrivals": "constant"}
    crash = faults(Crash(target=parse_target("instance:back-1"), at=10.0, duration=20.0))
    client = simulate(spec(base % {**values, "mode": "client"}), crash, duration=40)
    verdict = next(p for p in client.properties if p["kind"] == "staleness")
    assert verdict["status"] == "violated" and verdict["failed_requests"] > 0
    # Server-side discovery is stale too, for the readiness probes' detection delay (3 x 1 s).
    server = simulate(spec(base % {**values, "mode": "server"}), crash, duration=40)
    verdict = next(p for p in server.properties if p["kind"] == "staleness")
    assert verdict["status"] == "violated" and verdict["window_bound_s"] == 50.0
    assert all(v["at"] >= 10 and v["until"] <= 13 for v in verdict["violations"])


# --- results -----------------------------------------------------------------------------------


def test_run_tables() -> None:
    run = simulate(two(call="{call: back.get, circuit_breaker: {consecutive_failures: 2, "
                            "open_for: 1s}}"),
                   faults(ErrorFault(target=parse_target("back"), rate=1.0, at=3, duration=2)),
                   duration=10)
    timeline = run.timeline
    assert list(timeline.columns[:2]) == ["time_s", "entry"]
    assert len(timeline) == 10 and timeline["requests"].sum() >= run.entry()["requests"]
    assert timeline.loc[timeline["time_s"] == 4, "availability"].item() < 0.1
    assert list(run.breakers.columns) == ["time_s", "edge", "state", "instance"]
    with pytest.raises(ValueError, match="trace=True"):
        run.requests  # noqa: B018
    assert "two" in repr(run) and run.ok


def test_window_monitors_report_when_and_how_badly() -> None:
    base = TWO.replace("workload:", "properties:\n"
                       "  - latency: {entry: front.get, p99: 50ms, window: 5s}\n"
                       "  - availability: {entry: front.get, at_least: 95%%, window: 10s}\n"
                       "workload:")
    system = spec(base % {"mode": "server", "timeout": "1s", "retries": 0, "call": "back.get",
                          "replicas": 1, "back_time": "1ms", "rate": "50/s",
                          "arrivals": "constant"})
    assert simulate(system, duration=60).ok
    scenario = faults(LatencyFault(target=parse_target("back"), add=Constant(0.1), at=20.0,
                                   duration=5.0),
                      ErrorFault(target=parse_target("back"), rate=1.0, at=40.0, duration=2.0))
    run = simulate(system, scenario, duration=60)
    verdicts = {p["kind"]: p for p in run.properties}
    latency = verdicts["latency"]
    assert latency["status"] == "violated"
    windowed = latency["violations"][0]
    # The first 5 s window holding a slow request ends at 21 s; the last one at 30 s.
    assert windowed["at"] == 21.0 and windowed["until"] == 30.0
    assert windowed["value"] == pytest.approx(0.101, rel=0.02)
    availability = verdicts["availability"]
    windowed = availability["violations"][0]
    # 2 s of failures in a 10 s window: 80 %, below 95 % from 41 s to 51 s.
    assert windowed["at"] == 41.0 and windowed["until"] == 51.0
    assert windowed["value"] == pytest.approx(0.8, abs=0.01)
    assert availability["violation_count"] == 1  # the run as a whole: 96.7 % >= 95 %
