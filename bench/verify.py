"""Benchmark: `survives` on generated layered topologies, faultmesh against its peers.

The topology (as the verifier issue fixes it): N services s0..s{N-1}, each with 3 replicas, one
per zone a/b/c, each calling 3 later services (the next one, so the whole system is in the
entry's cone, and two random later ones), one workload entry s0.handle. `survives` holds at
K=2 and is violated at K=3 (three failures: one service's three replicas, or the three zones).

Columns, each timed end to end on the same System:
  faultmesh   ``model.verify.verify`` (the combinatorial checker), verdict and repair included
  naive z3    one Bool per instance and zone, AtMost(K), availability propagated up the calls
  z3 COI+sym  ``tests/survives_z3_oracle.py`` (cone of influence, zone/replica symmetry breaking)
  brute force every failure set of size <= K, each evaluated directly

    python bench/verify.py                      # 1,000 / 5,000 / 10,000 services, K = 2, 3
    python bench/verify.py --quick              # 1,000 services, contenders capped at 10 s
    python bench/verify.py --sizes 1000 --cap 30
    python bench/verify.py --unchained          # all calls random: the entry cone is ~1/5
    python bench/verify.py --end-to-end         # YAML of 10,000 and 100,000 services: load,
                                                # every default property, memory

Every contender but faultmesh is capped (``--cap`` seconds per z3 run, ``--brute-cap`` per
brute force), so the whole run has an upper bound, printed before it starts: about 27 minutes
with the defaults, under a minute with ``--quick``.

The issue's naive timings (2.6 s at 1,000 services, 360 s at 5,000, K=2) match the unchained
topology; with the chain every service is in the cone and the naive encoding is much slower.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import z3
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from announce import add_options, announce, spoken

from faultmesh.model.distributions import Constant
from faultmesh.model.properties import Survives
from faultmesh.model.system import Call, Endpoint, FrozenMap, Service, System, Workload
from faultmesh.model.verify import verify
from faultmesh.simulations.presentation.terminal import print_table

# The independent z3 encoding is a test oracle, not part of the product.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import survives_z3_oracle as survives_z3

ZONES = ("a", "b", "c")


def layered(n: int, fanout: int = 3, seed: int = 7, chained: bool = True) -> System:
    """The generated topology (built directly: loading 10,000 services from YAML is not what
    is being measured). ``chained``: one of the calls goes to the next service, so every
    service is in the entry's cone; without it (all calls random) the cone of s0 holds only
    about a fifth of the services and every contender has far less to do."""
    rng = random.Random(seed)
    services = {}
    for i in range(n):
        if chained:
            later = list(range(i + 2, n))
            targets = ([i + 1] if i + 1 < n else []) + rng.sample(later,
                                                                   min(fanout - 1, len(later)))
        else:
            later = list(range(i + 1, n))
            targets = rng.sample(later, min(fanout, len(later)))
        steps = tuple(Call(f"s{j}", "handle", timeout=1.0) for j in targets)
        endpoint = Endpoint("handle", Constant(0.001), steps=steps)
        services[f"s{i}"] = Service(f"s{i}", FrozenMap({"handle": endpoint}), zones=ZONES)
    return System(FrozenMap(services), name=f"layered-{n}", zones=ZONES,
                  workload=(Workload("s0", "handle", 100.0),))


# --- the contenders ----------------------------------------------------------------------------


def faultmesh(system: System, budget: int, cap: float) -> tuple[str, int | None]:
    verdict = verify(system, [Survives(failures=budget)], timeout=cap).verdicts[0]
    size = len(verdict.counterexample.failures) if verdict.counterexample else None
    return verdict.status, size


def naive_z3(system: System, budget: int, cap: float) -> tuple[str, int | None]:
    """The straightforward encoding the issue measured (2.6 s at 1,000 services, K=2)."""
    start = time.perf_counter()
    zone = {z: z3.Bool(f"zone_{z}") for z in system.zones}
    failed: list[z3.BoolRef] = list(zone.values())
    up: dict[str, z3.BoolRef] = {}
    for name, service in system.services.items():
        alive = []
        for i, z in enumerate(service.zones):
            inst = z3.Bool(f"inst_{name}_{i}")
            failed.append(inst)
            alive.append(z3.And(z3.Not(inst), z3.Not(zone[z])))
        up[name] = z3.Or(*alive)
    available = {f"{n}.{e}": z3.Bool(f"avail_{n}_{e}")
                 for n, s in system.services.items() for e in s.endpoints}
    solver = z3.Solver()
    for name, service in system.services.items():
        for ep_name, endpoint in service.endpoints.items():
            needed = [available[c.target] for c in endpoint.calls()
                      if not c.asynchronous and not c.optional and c.probability >= 1]
            solver.add(available[f"{name}.{ep_name}"] == z3.And(up[name], *needed))
    solver.add(z3.AtMost(*failed, budget))
    solver.add(z3.Or(*[z3.Not(available[e]) for e in system.entries]))
    solver.set("timeout", max(1, int((cap - (time.perf_counter() - start)) * 1000)))
    result = solver.check()
    if result == z3.sat:
        model = solver.model()
        return "violated", sum(1 for f in failed if z3.is_true(model.eval(f)))
    return ("holds", None) if result == z3.unsat else ("unknown", None)


def coi_z3(system: System, budget: int, cap: float) -> tuple[str, int | None]:
    kinds = survives_z3.FailureKinds.of(("instance", "zone"))
    status = survives_z3.decide(system, kinds, budget,
                                timeout_ms=int(cap * 1000))
    return status, None


def brute_force(system: System, budget: int, cap: float) -> tuple[str, int | None]:
    """Every failure set in order of size, evaluated directly; gives up at the cap."""
    start = time.perf_counter()
    units = [("zone", z) for z in system.zones] + [
        ("instance", (name, i)) for name, s in system.services.items()
        for i in range(s.replicas)]
    by_zone: dict[str, list[str]] = {z: [] for z in system.zones}
    for name, service in system.services.items():
        for z in set(service.zones):
            by_zone[z].append(name)
    succ = {f"{n}.{e}": [c.target for c in ep.calls()
                         if not c.asynchronous and not c.optional and c.probability >= 1]
            for n, s in system.services.items() for e, ep in s.endpoints.items()}
    checked = 0
    for size in range(budget + 1):
        for combo in itertools.combinations(units, size):
            checked += 1
            if checked % 4096 == 0 and time.perf_counter() - start > cap:
                return "unknown", checked
            zones = {u[1] for u in combo if u[0] == "zone"}
            instances = {u[1] for u in combo if u[0] == "instance"}
            touched = {n for z in zones for n in by_zone[z]} | {n for n, _ in instances}
            down = {n for n in touched
                    if all(z in zones or (n, i) in instances
                           for i, z in enumerate(system.services[n].zones))}
            if down and _entry_down(system, succ, down):
                return "violated", size
    return "holds", None


def _entry_down(system: System, succ: dict[str, list[str]], down: set[str]) -> bool:
    for entry in system.entries:
        seen = {entry}
        queue = deque([entry])
        while queue:
            node = queue.popleft()
            if node.partition(".")[0] in down:
                return True
            for nxt in succ[node]:
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
    return False


# --- the table ---------------------------------------------------------------------------------

Contender = Callable[[System, int, float], tuple[str, int | None]]


def timed(fn: Contender, system: System, budget: int, cap: float) -> tuple[float, str, object]:
    start = time.perf_counter()
    status, detail = fn(system, budget, cap)
    return time.perf_counter() - start, status, detail


# --- end to end: the spec as YAML, loaded, every default property ----------------------------


def layered_yaml(n: int, fanout: int = 3, seed: int = 7) -> str:
    """``layered(n)`` as a spec a user would write (one template for what every service
    shares), with every default property."""
    rng = random.Random(seed)
    lines = [f"system: layered-{n}", "zones: [a, b, c]", "defaults:", "  call: {timeout: 1s}",
             "  service: {replicas: 3, workers: 4, endpoint_defaults: {service_time: 1ms}}",
             "services:"]
    for i in range(n):
        later = range(i + 2, n)
        targets = ([i + 1] if i + 1 < n else []) + rng.sample(later, min(fanout - 1, len(later)))
        calls = ", ".join(f"s{j}.handle" for j in targets)
        lines.append(f"  s{i}: {{endpoints: {{handle: {{calls: [{calls}]}}}}}}")
    lines += ["workload:", "  - {entry: s0.handle, rate: 100/s}", "properties:",
              "  - survives: {failures: 1}", "  - capacity: {failures: 1}",
              "  - timeouts_nest: {}", "  - retry_amplification: {max: 8}", "  - staleness: {}",
              "  - breaker: {}"]
    return "\n".join(lines) + "\n"


def end_to_end_child(n: int, cap: float) -> None:
    """In a child process (its peak memory is its own): load and verify, one JSON line out."""
    import json
    import resource
    import tempfile

    from faultmesh.model.spec import load

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"layered-{n}.yaml"
        path.write_text(layered_yaml(n), encoding="utf-8")
        size = path.stat().st_size
        start = time.perf_counter()
        system = load(path)
        loaded = time.perf_counter() - start
    start = time.perf_counter()
    report = verify(system, timeout=cap)
    total = time.perf_counter() - start
    print(json.dumps({"n": n, "bytes": size, "load": loaded, "verify": total,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "properties": [(v.kind, v.status, v.seconds) for v in report.verdicts]}))


def end_to_end(sizes: list[int], cap: float) -> None:
    import json
    import subprocess

    for n in sizes:
        done = subprocess.run([sys.executable, __file__, "--end-to-end-child", str(n),
                               "--cap", str(cap)], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{n:,} services: failed\n{done.stderr[-2000:]}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{n:,} services ({row['bytes'] / 1e6:.1f} MB of YAML): load {row['load']:.2f} s, "
              f"verify {row['verify']:.2f} s, load + verify {row['load'] + row['verify']:.2f} s, "
              f"peak memory {row['rss_mb']:,.0f} MB")
        for kind, status, seconds in row["properties"]:
            print(f"  {kind:22s} {status:9s} {seconds:7.2f} s")


def main() -> None:
    if len(sys.argv) >= 3 and sys.argv[1] == "--end-to-end-child":
        cap = float(sys.argv[sys.argv.index("--cap") + 1]) if "--cap" in sys.argv else 300.0
        end_to_end_child(int(sys.argv[2]), cap)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--failures", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--cap", type=float, default=120.0, help="seconds per z3 run")
    parser.add_argument("--brute-cap", type=float, default=30.0, help="seconds per brute force")
    parser.add_argument("--skip", nargs="*", default=[], choices=["naive", "coi", "brute"])
    parser.add_argument("--unchained", action="store_true",
                        help="all calls random (small entry cone) instead of s{i} -> s{i+1}")
    add_options(parser, "1,000 services, z3 capped at 10 s and brute force at 5 s")
    parser.add_argument("--end-to-end", action="store_true",
                        help="load and verify YAML specs of --sizes services (default 10,000 "
                             "and 100,000; --quick: 1,000 and 10,000) with every default "
                             "property; --cap bounds each verify")
    args = parser.parse_args()
    if args.end_to_end:
        sizes = [1000, 10000] if args.quick else (
            args.sizes if "--sizes" in sys.argv else [10000, 100000])
        announce(f"at most about {spoken(len(sizes) * (args.cap + 60))}",
                 f"load + verify of {', '.join(f'{n:,}' for n in sizes)} services, each in a "
                 "child process", quick=args.quick)
        if not args.dry_run:
            end_to_end(sizes, args.cap)
        return
    if args.quick:
        args.sizes, args.cap, args.brute_cap = [1000], 10.0, 5.0
    runs = len(args.sizes) * len(args.failures)
    capped = {"naive": args.cap, "coi": args.cap, "brute": args.brute_cap}
    bound = runs * sum(cap for key, cap in capped.items() if key not in args.skip)
    announce(f"at most about {spoken(bound)} for the capped contenders, plus faultmesh's own "
             "time (not capped)",
             f"survives on {', '.join(f'{n:,}' for n in args.sizes)} services, K = "
             f"{', '.join(map(str, args.failures))}: {runs} runs of each contender",
             quick=args.quick)
    if args.dry_run:
        return

    console = Console()
    table = Table(title="survives on layered topologies (3 replicas, zones a/b/c, fan-out 3)")
    for column in ("services", "K", "verdict", "faultmesh", "naive z3", "ratio", "z3 COI+sym",
                   "ratio", "brute force", "ratio"):
        table.add_column(column, justify="right", no_wrap=column != "verdict")
    for n in args.sizes:
        system = layered(n, chained=not args.unchained)
        for budget in args.failures:
            ours, status, size = timed(faultmesh, system, budget, args.cap)
            verdict = status + (f" ({size} failures)" if size else "")
            row = [f"{n:,}", str(budget), verdict, f"{ours:.3f} s"]
            for key, fn, cap in (("naive", naive_z3, args.cap), ("coi", coi_z3, args.cap),
                                 ("brute", brute_force, args.brute_cap)):
                if key in args.skip:
                    row += ["-", "-"]
                    continue
                seconds, their, detail = timed(fn, system, budget, cap)
                if their == "unknown":
                    note = f" ({detail:,} sets)" if key == "brute" else ""
                    row += [f"> {cap:g} s{note}", f"> {cap / ours:,.0f}x"]
                else:
                    if their != status:
                        console.print(f"[red]{key} disagrees at n={n} K={budget}: {their}")
                    row += [f"{seconds:.2f} s", f"{seconds / ours:,.0f}x"]
                console.print(f"n={n} K={budget} {key}: {row[-2]}", style="dim")
            table.add_row(*row)
    print_table(console, table)  # whole numbers at any width, in a pipe too


if __name__ == "__main__":
    main()
