"""Benchmark: what drawing a run's figures and report.html costs next to simulating it.

The run is TrainTicket-sized (tests/present_topology.py: 64 services, 84 workload entries,
300 requests/s in all) through its svc-outage scenario, stretched to ``--duration``. Both
sides are CPU seconds of this process (``time.process_time``): the simulation, then
``write_report`` (four PNG figures and report.html). The drawing is timed on the second call;
matplotlib's one-off costs are counted apart and printed too: its import (with the modules that
draw: the figure, the Agg canvas, the PNG writer, and pandas and networkx, which the figures
read through) and the first call's extra (fonts opened, first text layouts). The ratio is
printed both ways, without and with those one-off costs. The run's tables (``run.timeline``,
``run.breakers``) are built before either call and not counted: ``faultmesh simulate`` builds
them anyway to write the Parquet files.

    python bench/figures.py                 # 5 minutes simulated (about 20 s of CPU)
    python bench/figures.py --quick         # 60 s simulated
    python bench/figures.py --duration 10m
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from announce import add_options, announce
from present_topology import write_trainticket_like

import faultmesh
from faultmesh.model.cost import LongRun
from faultmesh.model.units import parse_duration
from faultmesh.simulations.presentation.report import write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="5m", help="simulated time (default 5m)")
    add_options(parser, "60 s simulated")
    args = parser.parse_args()
    duration = 60.0 if args.quick else parse_duration(args.duration)
    announce(f"about {max(5, round(duration / 15))} s",
             f"84-entry run, {duration:g} s simulated, then its figures and report.html",
             quick=args.quick)
    if args.dry_run:
        return
    work = Path(tempfile.mkdtemp())
    system = faultmesh.load(write_trainticket_like(work / "trainticket.yaml", total_rate=300.0))
    start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LongRun)
        run = faultmesh.simulate(system, "svc-outage", seed=1, duration=duration)
    simulation = time.process_time() - start
    start = time.process_time()
    for module in ("faultmesh.simulations.presentation.plots", "matplotlib.backends.backend_agg",
                   "PIL.PngImagePlugin", "pandas", "networkx"):
        importlib.import_module(module)
    imports = time.process_time() - start
    _tables = (run.timeline, run.breakers)
    start = time.process_time()
    write_report(run, work / "first", system)
    first = time.process_time() - start
    start = time.process_time()
    write_report(run, work / "second", system)
    draw = time.process_time() - start
    once = imports + first
    requests = sum(e["requests"] for e in run.summary["entries"].values())
    print(f"simulation          {simulation:7.2f} s CPU ({requests:,} requests)")
    print(f"figures + report    {draw:7.2f} s CPU = {draw / simulation:.1%} of the simulation "
          "(without matplotlib's import)")
    print(f"  with the import   {once:7.2f} s CPU = {once / simulation:.1%} of the simulation "
          f"(import {imports:.2f} s + first call {first:.2f} s)")


if __name__ == "__main__":
    main()
