"""Same spec + scenario + seed gives the same run: in one process and across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from faultmesh import simulations
from faultmesh.model import loads

# Every source of randomness and every order-sensitive structure in one spec: client-side
# discovery with caches, all balancers, both breaker kinds, retries with jitter, loss, latency
# distributions, async and probabilistic calls, parallel groups, and a scenario with crashes
# (scheduled and stochastic), a partition, errors and a registry outage.
EVERYTHING = textwrap.dedent("""
    system: everything
    zones: [a, b]
    network:
      latency: {same_zone: {exponential: 0.5ms}, cross_zone: {lognormal: {mean: 2ms, p99: 8ms}}}
      loss: 0.001
    discovery: {mode: client, heartbeat: 2s, ttl: 5s, refresh: 3s}
    orchestration: {restart: {delay: 2s}, readiness: {period: 1s}}
    defaults:
      call: {timeout: 300ms, retries: 2, backoff: {base: 10ms, cap: 80ms, jitter: full}}
    services:
      edge:
        replicas: 2
        workers: 8
        load_balancer: {least_request: {choices: 2}}
        endpoints:
          home:
            service_time: {exponential: 1ms}
            calls:
              - {call: cart.get, circuit_breaker: {failure_rate: 50%, window: 20,
                                                   min_calls: 10, open_for: 5s,
                                                   half_open_calls: 2}}
              - parallel: [catalog.list, {call: ads.get, optional: true}]
              - {call: audit.log, async: true, probability: 0.3}
      cart:
        replicas: 3
        workers: 2
        queue: 20
        load_balancer: consistent_hash
        endpoints:
          get:
            service_time: {uniform: [0.5ms, 3ms]}
            calls:
              - {call: db.read, circuit_breaker: {consecutive_failures: 3, open_for: 2s}}
      catalog:
        replicas: 2
        load_balancer: random
        concurrency: 16
        endpoints:
          list: {service_time: {empirical: [1ms, 2ms, 5ms]}}
      ads:
        endpoints:
          get: {service_time: {normal: {mean: 2ms, sd: 1ms}}}
      audit:
        endpoints:
          log: {service_time: 1ms}
      db:
        replicas: 2
        workers: 4
        endpoints:
          read: {service_time: {exponential: 0.5ms}}
    workload:
      - {entry: edge.home, rate: 150/s, arrivals: poisson}
      - {entry: cart.get, rate: 20/s, arrivals: constant, timeout: 1s}
    properties:
      - availability: {entry: edge.home, at_least: 99%, window: 10s}
      - latency: {entry: edge.home, p99: 50ms, window: 10s}
      - breaker_reaction: {within: 5s}
      - staleness: {}
    scenarios:
      storm:
        duration: 60s
        warmup: 5s
        faults:
          - {at: 10s, for: 10s, crash: "zone:a"}
          - {at: 0s, crash: "service:db", mttf: 15s, mttr: 3s}
          - {at: 25s, for: 5s, partition: {between: [cart, db], oneway: true}}
          - {at: 32s, for: 5s, errors: {target: catalog.list, rate: 30%}}
          - {at: 40s, for: 10s, registry_outage: {}}
          - {at: 45s, crash: "instance:cart-1"}
          - {at: 50s, rolling_restart: {target: catalog, interval: 2s}}
          - {at: 52s, for: 5s, latency: {target: ads, add: {exponential: 20ms}}}
          - {at: 54s, for: 4s, slowdown: {target: "zone:b", factor: 3}}
          - {at: 56s, for: 3s, loss: {rate: 10%}}
""")


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "everything.yaml"
    path.write_text(EVERYTHING)
    return path


def test_same_seed_same_run_in_process() -> None:
    system = loads(EVERYTHING)
    first = simulations.simulate(system, "storm", seed=11, trace=True)
    second = simulations.simulate(system, "storm", seed=11, trace=True)
    assert first.summary == second.summary
    assert first.requests.equals(second.requests)
    assert first.timeline.equals(second.timeline)
    assert first.breakers.equals(second.breakers)
    assert first.summary["requests"]["started"] > 5000  # the run did something


def test_different_seeds_differ() -> None:
    system = loads(EVERYTHING)
    one = simulations.simulate(system, "storm", seed=1).summary
    two = simulations.simulate(system, "storm", seed=2).summary
    assert one["entries"] != two["entries"]


def test_same_seed_same_run_across_processes(spec_file: Path) -> None:
    outputs = []
    for hash_seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-m", "faultmesh", "simulate", str(spec_file), "--scenario",
             "storm", "--seed", "5", "--json"],
            capture_output=True, text=True, env=env, check=False)
        assert result.returncode in (0, 1), result.stderr
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1]
    in_process = simulations.simulate(loads(EVERYTHING), "storm", seed=5).summary
    assert json.loads(json.dumps(in_process)) == outputs[0]
