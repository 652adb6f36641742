"""Benchmark: how long the command line takes to start, beside ``python -c pass``.

Each command runs ``--repeat`` times in a fresh process (the way a user runs it); the table
gives the median wall-clock time and the median CPU time of the child (user + system, from
``os.wait4``: a busy machine disturbs it less), and each beside the peer, the interpreter
starting and doing nothing:

  python -c pass                   the floor: no program can start faster in this Python
  faultmesh --help                 the command line and its help, no spec read
  faultmesh validate specs/mm1.yaml    the spec loader (pydantic, the schema) on a small spec
  faultmesh verify specs/mm1.yaml --json   the verifier (Z3) on the same spec

    python bench/cli.py              # 7 runs of each
    python bench/cli.py --quick      # 3 runs of each

Not a test: nothing is asserted (tests/test_scale_startup.py checks what start-up imports).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from announce import add_options, announce, spoken  # noqa: E402

SPEC = ROOT / "specs" / "mm1.yaml"


def faultmesh() -> list[str]:
    found = shutil.which("faultmesh")
    return [found] if found else [sys.executable, "-m", "faultmesh.cli"]


def commands() -> list[tuple[str, list[str]]]:
    fm = faultmesh()
    return [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("faultmesh --help", [*fm, "--help"]),
        ("faultmesh validate mm1.yaml", [*fm, "validate", str(SPEC)]),
        ("faultmesh verify mm1.yaml --json", [*fm, "verify", str(SPEC), "--json"]),
    ]


def once(argv: list[str]) -> tuple[float, float]:
    """(wall, child CPU) seconds of one run, its output discarded."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(child.pid, 0)
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs of each command")
    add_options(parser, "3 runs of each command")
    args = parser.parse_args()
    if args.quick:
        args.repeat = 3
    plan = commands()
    announce(f"about {spoken(len(plan) * args.repeat * 1.0)}",
             f"start-up of {len(plan)} commands, {args.repeat} runs each", quick=args.quick)
    if args.dry_run:
        return
    rows = []
    for label, argv in plan:
        runs = [once(argv) for _ in range(args.repeat)]
        rows.append((label, statistics.median(r[0] for r in runs),
                     statistics.median(r[1] for r in runs)))
    floor_wall, floor_cpu = rows[0][1], rows[0][2]
    print(f"{'command':36s} {'wall':>8s} {'x pass':>7s} {'CPU':>8s} {'x pass':>7s}")
    for label, wall, cpu in rows:
        print(f"{label:36s} {wall:7.3f}s {wall / floor_wall:6.1f}x {cpu:7.3f}s "
              f"{cpu / max(floor_cpu, 1e-3):6.1f}x")


if __name__ == "__main__":
    main()
