"""Instance life cycle and run length: readiness probes, crash detection, k-of-n availability
under mttf/mttr with the default orchestration, and warm-up detection (MSER-5)."""

from __future__ import annotations

import math
import statistics
from dataclasses import replace
from typing import Any

import pytest
from simhelp import spec, t_quantile

from faultmesh import model
from faultmesh.model.detection import server_window, stale_window
from faultmesh.model.distributions import Constant
from faultmesh.model.faults import Crash, LatencyFault, Scenario, parse_target
from faultmesh.model.spec.dump import dump
from faultmesh.simulations import simulate
from faultmesh.simulations.observation.warmup import batch_means, mser, mser5


def ci99(samples: list[float]) -> tuple[float, float, float]:
    """(mean, low, high): the 99 % Student-t confidence interval of the mean."""
    n = len(samples)
    mean = statistics.fmean(samples)
    half = t_quantile(0.995, n - 1) * statistics.stdev(samples) / math.sqrt(n)
    return mean, mean - half, mean + half


# --- readiness ---------------------------------------------------------------------------------

ONE = """
system: one
orchestration: {restart: {delay: 3s}, readiness: {period: 10s, failures: 2%(delay)s}}
services:
  api:
    endpoints: {get: {service_time: 0}}
workload: [{entry: api.get, rate: 10/s, arrivals: constant}]
"""


@pytest.mark.parametrize(("initial_delay", "ready_at"), [(None, 13.0), ("2s", 15.0)])
def test_first_probe_runs_initial_delay_after_the_start(initial_delay: str | None,
                                                         ready_at: float) -> None:
    # Crash at 10 s, restart 3 s later; the first probe runs initial_delay (default 0) after
    # the restart and passes: ready at 13 s (15 s with 2 s), not a whole period (10 s) later.
    delay = "" if initial_delay is None else f", initial_delay: {initial_delay}"
    system = spec(ONE % {"delay": delay})
    crash = Scenario("crash", (Crash(target=parse_target("instance:api-0"), at=10.0),),
                     warmup=0.0)
    requests = simulate(system, crash, duration=30, trace=True).requests
    failed = requests[requests["outcome"] != "ok"]["arrived_s"]
    assert failed.min() >= 10.0 and failed.max() < ready_at
    assert failed.max() >= ready_at - 0.1 - 1e-9  # 10/s: the last failure is just before


def test_a_service_overrides_readiness() -> None:
    system = spec("""
        system: s
        orchestration: {readiness: {period: 4s, failures: 2, initial_delay: 1s}}
        services:
          a: {readiness: {period: 2s, failures: 5, initial_delay: 3s},
              endpoints: {get: {service_time: 0}}}
          b: {endpoints: {get: {service_time: 0}}}
    """)
    a, b = system.services["a"].readiness, system.services["b"].readiness
    assert (a.period, a.failures, a.initial_delay, a.detection) == (2.0, 5, 3.0, 10.0)
    assert (b.period, b.failures, b.initial_delay, b.detection) == (4.0, 2, 1.0, 8.0)
    assert model.loads(dump(system)) == system


@pytest.mark.parametrize(("period", "failures"), [(1.0, 1), (1.0, 3), (2.0, 2)])
def test_a_crash_is_noticed_at_the_failures_th_failed_probe(period: float,
                                                            failures: int) -> None:
    # Server-side discovery: front's calls reach the crashed back-1 until its readiness probes
    # have failed `failures` times in a row: within ((failures - 1) * period, failures * period].
    system = spec(f"""
        system: two
        discovery: {{mode: server}}
        orchestration: {{readiness: {{period: {period}s, failures: {failures}}}}}
        services:
          front: {{endpoints: {{get: {{service_time: 0, calls: [back.get]}}}}}}
          back: {{replicas: 2, endpoints: {{get: {{service_time: 1ms}}}}}}
        workload: [{{entry: front.get, rate: 50/s, arrivals: constant}}]
    """)
    crash = Scenario("crash", (Crash(target=parse_target("instance:back-1"), at=10.0,
                                     duration=20.0),), warmup=0.0)
    for seed in range(3):  # each seed probes at a phase of its own
        requests = simulate(system, crash, duration=40, seed=seed, trace=True).requests
        stale = requests[requests["root_cause"] == "instance down"]["arrived_s"]
        assert len(stale) > 0
        assert stale.min() >= 10.0
        assert 10.0 + (failures - 1) * period - 0.05 <= stale.max() <= 10.0 + failures * period
        # Besides those, only the calls in flight at the crash fail.
        causes = requests[requests["outcome"] != "ok"]["root_cause"].value_counts()
        assert set(causes.index) <= {"instance down", "instance died"}
        assert causes.get("instance died", 0) <= 1


def test_verifier_and_simulator_count_the_same_stale_window() -> None:
    text = """
        system: w
        discovery: {mode: %(mode)s, ttl: 4s, refresh: 3s, zone_detection: %(zone)s}
        orchestration: {readiness: {period: 5s, failures: 4}}
        services:
          front: {endpoints: {get: {service_time: 0, calls: [back.get]}}}
          back: {replicas: 2, endpoints: {get: {service_time: 0}}}
        workload: [{entry: front.get, rate: 5/s}]
        properties: [{staleness: {}}]
    """
    from faultmesh.model.verify.deadline import Deadline
    from faultmesh.model.verify.staleness import check_staleness

    cases = [("server", "7s", 20.0), ("server", "40s", 40.0), ("client", "7s", 7.0)]
    for mode, zone, window in cases:
        system = spec(text % {"mode": mode, "zone": zone})
        assert stale_window(system) == window
        if mode == "server":
            assert server_window(system) == window  # max(5 s x 4 failures, zone_detection)
        verdict = check_staleness(system, system.properties[0], Deadline(30))
        assert verdict.status == "violated"
        assert verdict.counterexample.numbers["window_s"] == window
        run = simulate(system, duration=5)
        monitor = next(p for p in run.properties if p["kind"] == "staleness")
        assert monitor["window_bound_s"] == window


# --- k-of-n availability under mttf/mttr, default orchestration --------------------------------

REPLICATED = """
system: kofn
services:
  api:
    replicas: %(n)d
    endpoints: {get: {service_time: 0}}
workload: [{entry: api.get, rate: 10/s}]
"""

SERIES = """
system: series
services:
  front:
    endpoints: {get: {service_time: 0, calls: [a.get, b.get]}}
  a: {endpoints: {get: {service_time: 0}}}
  b: {endpoints: {get: {service_time: 0}}}
workload: [{entry: front.get, rate: 10/s}]
"""


@pytest.mark.parametrize(("k", "n", "mttf", "mttr"), [
    (1, 2, 5.0, 1.0),
    (1, 2, 20.0, 2.0),
    (1, 3, 10.0, 5.0),
    (2, 2, 10.0, 2.0),
])
def test_k_of_n_availability_matches_the_binomial_law(k: int, n: int, mttf: float,
                                                      mttr: float) -> None:
    # Every replica alternates exponential up-times (mean mttf, counted from its restart) and
    # repair times (mean mttr: the whole time down, restart delay included, and with the
    # default initial_delay of 0 it is ready at once), independently. The entry is up while at
    # least k of its n replicas are: sum_{j>=k} C(n, j) p^j (1 - p)^(n - j), p = mttf/(mttf+mttr).
    # 1-of-n is one service behind the ingress; 2-of-2 is a chain of two single replicas.
    if k == 1:
        system = spec(REPLICATED % {"n": n})
        target = "service:api"
        faults: tuple[Crash, ...] = (Crash(target=parse_target(target), mttf=mttf, mttr=mttr),)
    else:
        system = spec(SERIES)
        faults = tuple(Crash(target=parse_target(f"service:{s}"), mttf=mttf, mttr=mttr)
                       for s in ("a", "b"))
    assert system.orchestration == model.system.Orchestration()  # the defaults
    def k_of_n(p: float) -> float:
        return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))

    p = mttf / (mttf + mttr)
    theory = k_of_n(p)
    scenario = Scenario("flapping", faults, warmup=0.0)
    duration = 1200.0
    runs = [simulate(system, scenario, duration=duration, seed=seed) for seed in range(8)]
    _mean, low, high = ci99([run.entry()["availability"] for run in runs])
    assert low <= theory <= high, f"availability {theory:.4f} outside [{low:.4f}, {high:.4f}]"
    # The old readiness (ready a whole 10 s period after each restart) is far outside.
    old = k_of_n(mttf / (mttf + mttr + 10.0))
    assert not low <= old <= high
    up = [i["up_s"] / duration for run in runs for s in run.summary["services"].values()
          for i in s["instances"].values() if s is not run.summary["services"].get("front")]
    _mean, low, high = ci99(up)
    assert low <= p <= high, f"up fraction {p:.4f} outside [{low:.4f}, {high:.4f}]"


# --- warm-up: MSER-5 ---------------------------------------------------------------------------


def test_mser_by_hand() -> None:
    # y = 4 0 1 0 1 0. MSER(d) = sum of squared deviations of y[d:] / len(y[d:])^2:
    #   d=0: mean 1,   SSE 12  -> 12/36 = 0.333
    #   d=1: mean 0.4, SSE 1.2 -> 1.2/25 = 0.048   <- the minimum
    #   d=2: mean 0.5, SSE 1   -> 1/16 = 0.0625
    #   d=3: mean 1/3, SSE 2/3 -> (2/3)/9 = 0.074
    y = [4.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert mser(y) == 1
    assert mser(y, limit=0) == 0
    # A constant tail after a ramp: cut the ramp (ties keep the earliest minimum).
    assert mser([9.0, 5.0, 3.0, 2.0, 2.0, 2.0, 2.0, 2.0]) == 3
    assert mser([2.0, 2.0, 2.0, 2.0]) == 0  # all equal: nothing to cut
    # NaN (a batch without data) is left out: the same answer as without it.
    assert mser([4.0, 0.0, math.nan, 1.0, 0.0, 1.0, 0.0], limit=3) == 1
    assert mser([]) == 0 and mser([1.0]) == 0


def test_mser5_batches_five_observations() -> None:
    # Batch means 4 0 1 0 1 0 (as above): MSER cuts one batch, i.e. five observations.
    observations = [v for mean in (4, 0, 1, 0, 1, 0) for v in (mean - 1, mean + 1, mean,
                                                               mean, mean)]
    assert batch_means(observations, [1] * len(observations)) == [4, 0, 1, 0, 1, 0]
    assert mser5(observations) == 5
    assert mser5([*observations, 100.0, 100.0]) == 5  # an incomplete last batch is dropped
    assert mser5(observations, limit=4) == 0  # no whole batch may go
    # Weighted batches: sums over counts; an empty batch is NaN.
    means = batch_means([2.0, 4.0, 0.0, 0.0], [1, 1, 0, 0], batch=2)
    assert means[0] == 3.0 and math.isnan(means[1])


MM1 = """
system: mm1x
defaults: {call: {timeout: 1h}}
services:
  server:
    replicas: %(replicas)d
    load_balancer: random
    endpoints: {serve: {service_time: {exponential: %(service)s}}}
workload: [{entry: server.serve, rate: %(rate)s/s}]
"""


def test_mm1_at_rho_095_detected_warmup_removes_the_empty_start_bias() -> None:
    # Ten replicas behind random balancing are ten independent M/M/1 queues at rho = 0.95
    # (mu = 100/s each): mean sojourn 1/(mu - lambda) = 0.2 s. Started empty, a 30 s run
    # reports the mean well below it; MSER-5 finds and discards the empty start.
    mu, rho, replicas = 100.0, 0.95, 10
    system = spec(MM1 % {"replicas": replicas, "service": f"{1 / mu}",
                         "rate": f"{rho * mu * replicas}"})
    theory = 1 / (mu - rho * mu)
    runs = [simulate(system, duration=30, seed=seed) for seed in range(12)]
    detected = [run.summary["warmup"] for run in runs]
    assert all(d["detected"] and d["rule"] == "MSER-5" for d in detected)
    assert sum(d["seconds"] > 0 for d in detected) >= 9
    assert all(run.summary["warmup_s"] == d["seconds"] <= 15.0
               for run, d in zip(runs, detected, strict=True))
    _mean, low, high = ci99([run.entry()["latency_s"]["mean"] for run in runs])
    assert low <= theory <= high, f"mean {theory} outside [{low:.4f}, {high:.4f}]"


def test_warmup_given_is_kept_and_zero_disables_detection() -> None:
    system = spec(MM1 % {"replicas": 1, "service": "10ms", "rate": "95"})
    given = simulate(system, Scenario("w", warmup=7.0), duration=30).summary
    assert given["warmup_s"] == 7.0 and given["warmup"]["detected"] is False
    none = simulate(system, Scenario("w", warmup=0.0), duration=30).summary
    assert none["warmup_s"] == 0.0 and none["warmup"]["detected"] is False


def test_detected_warmup_is_discarded_from_every_figure() -> None:
    system = spec(MM1 % {"replicas": 1, "service": "10ms", "rate": "95"})
    for seed in range(4):
        run = simulate(system, duration=40, seed=seed, trace=True)
        cut = run.summary["warmup_s"]
        requests = run.requests
        kept = requests[requests["arrived_s"] >= cut]
        entry = run.entry()
        assert entry["requests"] == len(kept)
        ok = kept[kept["outcome"] == "ok"]
        assert entry["latency_s"]["mean"] == pytest.approx(ok["latency_s"].mean())
        assert entry["latency_s"]["max"] == pytest.approx(ok["latency_s"].max())
        # The instance counters restart at the cut too (no network: arrival = arrival there).
        service = run.summary["services"]["server"]
        assert service["requests"] == len(kept) + run.summary["requests"]["in_flight"]
        assert service["instances"]["server-0"]["up_s"] == pytest.approx(40.0 - cut)


def test_detection_stops_before_the_first_fault() -> None:
    system = spec(MM1 % {"replicas": 1, "service": "10ms", "rate": "95"})
    fault = LatencyFault(target=parse_target("server"), add=Constant(0.05), at=12.0,
                         duration=5.0)
    for seed in range(4):
        summary = simulate(system, Scenario("slow", (fault,)), duration=60, seed=seed).summary
        assert summary["warmup"]["detected"]
        assert summary["warmup"]["searched_s"] == 10.0  # whole 5 s batches before 12 s
        assert summary["warmup_s"] <= 10.0


def test_warmup_detection_keeps_memory_bounded() -> None:
    # A long run: at most MAX_SEGMENTS tallies per entry, the warm-up rounded up to one's end.
    from faultmesh.simulations.engine.simulation import Simulation
    from faultmesh.simulations.observation.metrics import MAX_SEGMENTS

    system = spec(MM1 % {"replicas": 1, "service": "10ms", "rate": "5"})
    simulation = Simulation(system, None, duration=3600, seed=1, trace=False, cold_start=False)
    entry = next(iter(simulation.entries.values()))
    assert len(entry.tallies) <= MAX_SEGMENTS
    assert simulation.detector is not None
    assert len(entry.tallies) * simulation.detector.segment_width >= 1800.0
    summary: dict[str, Any] = simulation.run().summary
    assert summary["warmup_s"] % simulation.detector.segment_width == 0


def test_spec_without_warmup_round_trips() -> None:
    system = spec("""
        system: s
        services: {a: {endpoints: {get: {service_time: 0}}}}
        scenarios:
          plain: {duration: 1m}
          given: {duration: 1m, warmup: 0s}
    """)
    assert system.scenarios["plain"].warmup is None
    assert system.scenarios["given"].warmup == 0.0
    assert model.loads(dump(system)) == system
    assert replace(system.scenarios["plain"], warmup=5.0).warmup == 5.0
