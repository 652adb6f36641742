"""Benchmark: faultmesh against ciw and a hand-written SimPy model on one tandem network.

The network is specs/chain.yaml: three single-worker stations in series, Poisson arrivals at
0.8/s, exponential service at rates 2, 1.5 and 1.25/s (mean end-to-end sojourn 4.484 s). Each
engine runs it for about ``--requests`` requests (default 200,000), each in a child process of
its own, so that its peak memory (the child's maximum resident set size, from ``os.wait4``) is
its own:

* **faultmesh** as a user runs it: the whole CLI process, ``faultmesh simulate specs/chain.yaml
  --duration D --seed 1 --json``, timed end to end (start-up, spec loading, JSON included);
* **ciw** 3: the same network as a ciw ``Network`` (simulation time only);
* **SimPy**: a minimal hand-written model, one process per request holding a ``Resource`` per
  station (simulation time only).

faultmesh also runs a copy of the spec with circuit breakers on both edges (a rate-based one on
a -> b, a consecutive-failures one on b -> c): the same queueing network, with every call going
through its breaker too. (Timeouts are always in the path: each call of chain.yaml has one.)

It prints requests per second (by wall-clock time, and by CPU time, which a busy machine
disturbs less), peak memory and the mean sojourn (a sanity check: all three should be near
4.48 s) for each, and the ratios. ``--memory`` also runs faultmesh for 2 million
requests and reports its peak memory (the target: under 300 MB with traces off).

Beside the three stations it runs two 1,000-service topologies (issue 13), each request
making 999 calls: a chain ``s0 -> s1 -> ... -> s999`` and a fan-out-3 tree (``s{i}`` calls
``s{3i+1..3i+3}``), 3 replicas in 3 zones, 4 workers, exponential 1 ms service, 5 requests/s,
through the whole CLI as above; it prints their requests and calls per CPU second.

Usage: ``python bench/simulate.py [--requests N] [--memory] [--quick] [--dry-run]``
(``--quick``: 20,000 requests, 20 simulated seconds of the topologies instead of 100). It
says first how long it will take. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from announce import add_options, announce, spoken  # noqa: E402

SPEC = ROOT / "specs" / "chain.yaml"
# Requests per CPU second of each engine on this network, and a process's start-up, measured on
# the development machine: rough figures for the estimate printed before the runs.
CPU_RATES = {"faultmesh": 18_000, "ciw": 18_000, "simpy": 40_000}
START_UP = 1.5
ARRIVAL_RATE = 0.8
SERVICE_RATES = (2.0, 1.5, 1.25)
THEORY_MEAN = sum(1 / (mu - ARRIVAL_RATE) for mu in SERVICE_RATES)
TOPOLOGY_SIZE = 1000
TOPOLOGY_RATE = 5.0  # requests/s into s0
CALLS_PER_CPU_SECOND = 60_000  # rough, for the estimate: each request makes 999 calls


# --- the peers, run inside a child process -------------------------------------------------------


def run_ciw(horizon: float, seed: int) -> dict[str, float]:
    import ciw

    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(ARRIVAL_RATE), None, None],
        service_distributions=[ciw.dists.Exponential(mu) for mu in SERVICE_RATES],
        routing=[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]],
        number_of_servers=[1, 1, 1],
    )
    ciw.seed(seed)
    start, cpu = time.perf_counter(), time.process_time()
    simulation = ciw.Simulation(network)
    simulation.simulate_until_max_time(horizon)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    records = simulation.get_all_records()
    arrived = {r.id_number: r.arrival_date for r in records if r.node == 1}
    sojourns = [r.exit_date - arrived[r.id_number] for r in records
                if r.node == 3 and r.id_number in arrived]
    return {"seconds": seconds, "cpu": cpu, "requests": len(sojourns),
            "mean_sojourn": sum(sojourns) / len(sojourns)}


def run_simpy(horizon: float, seed: int) -> dict[str, float]:
    import random

    import simpy

    rng = random.Random(seed)
    env = simpy.Environment()
    stations = [simpy.Resource(env, capacity=1) for _ in SERVICE_RATES]
    sojourns: list[float] = []

    def request(env: simpy.Environment):  # type: ignore[no-untyped-def]
        arrived = env.now
        for station, mu in zip(stations, SERVICE_RATES, strict=True):
            with station.request() as slot:
                yield slot
                yield env.timeout(rng.expovariate(mu))
        sojourns.append(env.now - arrived)

    def source(env: simpy.Environment):  # type: ignore[no-untyped-def]
        while True:
            yield env.timeout(rng.expovariate(ARRIVAL_RATE))
            env.process(request(env))

    env.process(source(env))
    start, cpu = time.perf_counter(), time.process_time()
    env.run(until=horizon)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"seconds": seconds, "cpu": cpu, "requests": len(sojourns),
            "mean_sojourn": sum(sojourns) / len(sojourns)}


# --- the parent ----------------------------------------------------------------------------------


def child(argv: list[str]) -> tuple[str, float, float, float]:
    """Run a child process; return its stdout, wall-clock and CPU seconds, peak RSS in MB."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=ROOT)
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):
        raise SystemExit(f"{argv[0]} failed with exit code {process.returncode}")
    peak_mb = usage.ru_maxrss / 1024  # Linux reports kilobytes
    return output, seconds, usage.ru_utime + usage.ru_stime, peak_mb


def faultmesh_command() -> list[str]:
    found = shutil.which("faultmesh")
    if found:
        return [found]
    return [sys.executable, "-m", "faultmesh"]


def with_breakers(directory: Path) -> Path:
    """chain.yaml with a circuit breaker on each of its two edges."""
    text = SPEC.read_text()
    edits = {
        "- {call: b.run, timeout: 2h}": "- {call: b.run, timeout: 2h, circuit_breaker: "
        "{failure_rate: 50%, window: 100, open_for: 30s}}",
        "calls: [c.run]": "calls: [{call: c.run, circuit_breaker: "
        "{consecutive_failures: 5, open_for: 30s}}]",
    }
    for old, new in edits.items():
        if old not in text:
            raise SystemExit(f"bench: {SPEC.name} changed; cannot add breakers at {old!r}")
        text = text.replace(old, new)
    path = directory / "chain_breakers.yaml"
    path.write_text(text)
    return path


def run_faultmesh(horizon: float, seed: int, spec: Path = SPEC) -> dict[str, float]:
    output, seconds, cpu, peak = child([*faultmesh_command(), "simulate", str(spec),
                                        "--duration", f"{horizon:g}", "--seed", str(seed),
                                        "--json"])
    summary = json.loads(output)
    entry = summary["entries"]["a.run"]
    return {"seconds": seconds, "cpu": cpu, "requests": entry["requests"],
            "mean_sojourn": entry["latency_s"]["mean"], "peak_mb": peak}


def topology_yaml(kind: str, n: int = TOPOLOGY_SIZE) -> str:
    """A ``chain`` or fan-out-3 ``tree`` of ``n`` services, every request calling each once."""
    lines = [f"system: {kind}-{n}", "zones: [a, b, c]", "defaults:", "  call: {timeout: 30s}",
             "  service: {replicas: 3, workers: 4, endpoint_defaults: "
             "{service_time: {exponential: 1ms}}}", "services:"]
    for i in range(n):
        callees = [i + 1] if kind == "chain" else range(3 * i + 1, 3 * i + 4)
        calls = ", ".join(f"s{j}.handle" for j in callees if j < n)
        lines.append(f"  s{i}: {{endpoints: {{handle: {{calls: [{calls}]}}}}}}")
    lines += ["workload:", f"  - {{entry: s0.handle, rate: {TOPOLOGY_RATE:g}/s}}"]
    return "\n".join(lines) + "\n"


def run_topology(kind: str, horizon: float, seed: int, directory: Path) -> dict[str, float]:
    spec = directory / f"{kind}-{TOPOLOGY_SIZE}.yaml"
    spec.write_text(topology_yaml(kind))
    output, seconds, cpu, peak = child([*faultmesh_command(), "simulate", str(spec),
                                        "--duration", f"{horizon:g}", "--seed", str(seed),
                                        "--json"])
    entry = json.loads(output)["entries"]["s0.handle"]
    return {"seconds": seconds, "cpu": cpu, "requests": entry["requests"], "peak_mb": peak}


def run_peer(name: str, horizon: float, seed: int) -> dict[str, float]:
    output, _, _, peak = child([sys.executable, __file__, "--peer", name, "--horizon",
                                repr(horizon), "--seed", str(seed)])
    result = json.loads(output)
    result["peak_mb"] = peak
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--memory", action="store_true",
                        help="also run faultmesh for 2 million requests and report peak memory")
    parser.add_argument("--peer", choices=("ciw", "simpy"), help=argparse.SUPPRESS)
    parser.add_argument("--horizon", type=float, help=argparse.SUPPRESS)
    add_options(parser, "20,000 requests")
    args = parser.parse_args()

    if args.peer:  # inside a child process
        runner = run_ciw if args.peer == "ciw" else run_simpy
        print(json.dumps(runner(args.horizon, args.seed)))
        return
    if args.quick:
        args.requests = 20_000
    # faultmesh twice (with and without breakers), ciw and SimPy once each, one after another
    cpu = args.requests * (2 / CPU_RATES["faultmesh"] + 1 / CPU_RATES["ciw"]
                           + 1 / CPU_RATES["simpy"]) + 4 * START_UP
    if args.memory:
        cpu += 2_000_000 / CPU_RATES["faultmesh"] + START_UP
    topology_horizon = 20.0 if args.quick else 100.0
    cpu += 2 * (topology_horizon * TOPOLOGY_RATE * (TOPOLOGY_SIZE - 1) / CALLS_PER_CPU_SECOND
                + START_UP)
    announce(f"about {spoken(cpu)} on a quiet machine (longer when the CPUs are shared)",
             f"4 engine runs of about {args.requests:,} requests each, then 2 topologies of "
             f"{TOPOLOGY_SIZE:,} services"
             + (", then faultmesh for 2,000,000 (--memory)" if args.memory else ""),
             quick=args.quick)
    if args.dry_run:
        return

    horizon = args.requests / ARRIVAL_RATE
    print(f"tandem M/M/1 x3 (lambda 0.8/s; mu 2, 1.5, 1.25/s), about {args.requests:,} "
          f"requests ({horizon:,.0f} simulated seconds); theory: mean sojourn "
          f"{THEORY_MEAN:.3f} s")
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            "faultmesh (whole CLI)": run_faultmesh(horizon, args.seed),
            "  with breakers": run_faultmesh(horizon, args.seed, with_breakers(Path(tmp))),
            "ciw": run_peer("ciw", horizon, args.seed),
            "SimPy (hand-written)": run_peer("simpy", horizon, args.seed),
        }
    print(f"{'engine':<24}{'requests':>10}{'seconds':>9}{'req/s':>10}{'CPU s':>8}"
          f"{'req/CPU s':>11}{'peak MB':>9}{'mean sojourn':>14}")
    for name, r in results.items():
        r["rate"] = r["requests"] / r["seconds"]
        r["cpu_rate"] = r["requests"] / r["cpu"]
        print(f"{name:<24}{r['requests']:>10,}{r['seconds']:>9.2f}{r['rate']:>10,.0f}"
              f"{r['cpu']:>8.2f}{r['cpu_rate']:>11,.0f}{r['peak_mb']:>9.0f}"
              f"{r['mean_sojourn']:>14.3f}")
    ours = results["faultmesh (whole CLI)"]
    for peer, target in (("ciw", "2x"), ("SimPy (hand-written)", "0.7x")):
        theirs = results[peer]
        print(f"faultmesh / {peer}: {ours['rate'] / theirs['rate']:.2f}x speed "
              f"({ours['cpu_rate'] / theirs['cpu_rate']:.2f}x by CPU time), "
              f"{ours['peak_mb'] / theirs['peak_mb']:.2f}x memory   (target: >= {target} speed)")

    print(f"\n{TOPOLOGY_SIZE:,} services, {topology_horizon:g} simulated seconds at "
          f"{TOPOLOGY_RATE:g} requests/s, {TOPOLOGY_SIZE - 1} calls per request "
          f"(whole CLI, start-up and loading included):")
    print(f"{'topology':<24}{'requests':>10}{'seconds':>9}{'CPU s':>8}{'req/CPU s':>11}"
          f"{'calls/CPU s':>13}{'peak MB':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("chain", "tree"):
            r = run_topology(kind, topology_horizon, args.seed, Path(tmp))
            print(f"{kind:<24}{r['requests']:>10,}{r['seconds']:>9.2f}{r['cpu']:>8.2f}"
                  f"{r['requests'] / r['cpu']:>11,.1f}"
                  f"{r['requests'] * (TOPOLOGY_SIZE - 1) / r['cpu']:>13,.0f}{r['peak_mb']:>9.0f}")
    print(f"(the 3-station network above: {ours['cpu_rate']:,.0f} requests, "
          f"{2 * ours['cpu_rate']:,.0f} calls per CPU second)")

    if args.memory:
        big = 2_000_000
        r = run_faultmesh(big / ARRIVAL_RATE, args.seed)
        print(f"memory: faultmesh, {r['requests']:,} requests in {r['seconds']:.1f} s: peak "
              f"{r['peak_mb']:.0f} MB (target: under 300 MB); mean sojourn "
              f"{r['mean_sojourn']:.3f} s")


if __name__ == "__main__":
    main()
