"""Benchmark: the same sweep serially, on the local process pool and on a Dask LocalCluster.

    python bench/sweep.py [--spec specs/mm1.yaml] [--duration 12h] [--seeds 8] [--workers 2]
    python bench/sweep.py --quick       # 1h runs, 2 seeds: well under a minute

Runs one sweep (two grid points times ``--seeds`` seeds; by default 16 runs of the M/M/1 spec
that take a few seconds each) with each backend, checks that every backend produced the same
per-run results, and prints the wall-clock times and the speed-up over serial side by side.
The parallel backends pay for starting their worker processes; that cost is in their times.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from announce import add_options, announce, spoken  # noqa: E402

import faultmesh  # noqa: E402
from faultmesh.model.units import parse_duration  # noqa: E402
from faultmesh.simulations.presentation.terminal import print_table  # noqa: E402
from faultmesh.simulations.sweeps import run_sweep  # noqa: E402

# Requests one worker simulates per CPU second on a one-service spec such as mm1 (measured on
# the development machine; a rough figure for the estimate printed before the runs).
REQUESTS_PER_CPU_SECOND = 50_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(ROOT / "specs" / "mm1.yaml"))
    parser.add_argument("--duration", default="12h", help="simulated time per run")
    parser.add_argument("--seeds", type=int, default=8, help="seeds per grid point")
    parser.add_argument("--set", dest="grid", default="workload[0].rate=7/s,8/s",
                        help="the grid: PATH=V1,V2,...")
    parser.add_argument("--workers", type=int, default=2)
    add_options(parser, "1h of simulated time per run, 2 seeds")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.seeds = "1h", 2
    path, _, values = args.grid.partition("=")
    from faultmesh.simulations.sweeps import parse_set

    grid = dict([parse_set(f"{path}={values}")])
    common: dict[str, Any] = dict(duration=args.duration, seeds=args.seeds, grid=grid,
                                  progress=False)
    console = Console()
    runs = len(next(iter(grid.values()))) * args.seeds
    rate = sum(w.rate for w in faultmesh.load(args.spec).workload)
    cpu = runs * rate * parse_duration(args.duration) / REQUESTS_PER_CPU_SECOND
    parallel = min(args.workers, os.cpu_count() or 1)
    # serial, then the two parallel backends (each also starts its workers, a few seconds)
    estimate = cpu + 2 * (cpu / parallel + 5)
    announce(f"about {spoken(estimate)} on a quiet machine (longer when the CPUs are shared)",
             f"sweep of {Path(args.spec).name}: {runs} runs of {args.duration} simulated "
             f"each, with 3 backends, on {os.cpu_count()} CPUs", quick=args.quick)
    if args.dry_run:
        return 0
    rows = []
    results = {}
    for label, backend, workers in (("serial", "serial", None),
                                    (f"local pool ({args.workers} workers)", "local",
                                     args.workers),
                                    (f"dask LocalCluster ({args.workers} workers)", "dask",
                                     args.workers)):
        load = os.getloadavg()[0]
        start = time.perf_counter()
        result = run_sweep(args.spec, backend=backend, workers=workers, **common)
        seconds = time.perf_counter() - start
        results[backend] = result.records
        rows.append((label, seconds, load))
        console.print(f"  {label}: {seconds:.2f} s")
    serial = rows[0][1]
    table = Table(title="sweep backends (wall clock, same runs)", title_justify="left")
    table.add_column("backend")
    table.add_column("seconds", justify="right")
    table.add_column("runs/s", justify="right")
    table.add_column("speed-up vs serial", justify="right")
    table.add_column("load avg before", justify="right")
    for label, seconds, load in rows:
        table.add_row(label, f"{seconds:.2f}", f"{runs / seconds:.2f}",
                      f"{serial / seconds:.2f}x", f"{load:.2f}")
    print_table(console, table)
    if rows[0][2] > 0.5:
        console.print("note: the machine was busy before the benchmark (1-minute load average "
                      f"{rows[0][2]:.2f}); parallel speed-ups are understated when other "
                      "processes share the CPUs (later loads include this benchmark's own runs)")
    same = results["serial"] == results["local"] == results["dask"]
    console.print(f"per-run results identical across backends: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
