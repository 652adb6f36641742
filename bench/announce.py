"""What every benchmark says before it starts: how long it will take, and how to take less.

A benchmark that runs for minutes says so first (an upper bound where its contenders are capped,
an estimate from its workload otherwise), and each has ``--quick`` (a small version that still
exercises every contender) and ``--dry-run`` (say what would run and how long, then stop).
"""

from __future__ import annotations

import argparse


def spoken(seconds: float) -> str:
    """``40 s``, ``3 min``, ``1.5 h``: a duration rounded for people."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def add_options(parser: argparse.ArgumentParser, quick: str) -> None:
    """``--quick`` (described by ``quick``) and ``--dry-run``."""
    parser.add_argument("--quick", action="store_true", help=f"a short run: {quick}")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would run and how long it would take, then stop")


def announce(estimate: str, plan: str, *, quick: bool) -> None:
    """One paragraph before any work: what runs, how long, and the quicker way."""
    print(f"{plan}\nthis takes {estimate}"
          + ("" if quick else "; --quick for a short run, --dry-run to only print this"),
          flush=True)
