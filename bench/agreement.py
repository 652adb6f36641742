"""Differential test at scale: thousands of generated systems, verifier against simulator.

    python bench/agreement.py [--systems N] [--quick] [--thorough] [--seed S] [--out DIR]

Draws ``--systems`` systems (default 2,000; ``--quick``: 200) with every feature both halves
share, verifies survives, capacity, staleness and timeouts_nest on each and simulates the
adversarial scenarios of each verdict (``tests/agreement.py`` says exactly what is compared
and with which statistical tolerance). Prints per property how many verdicts held or were
violated and how many of those the simulation contradicted, and the run time. Each
disagreement's spec (``model.dump``) goes to ``--out`` with the finding as a header comment,
for triage. Exit code 1 on any disagreement. The "crashed" column counts properties whose
verification raised (each one also counts as a disagreement).
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from faultmesh.model.spec import dump
from faultmesh.model.spec.load import from_document
from faultmesh.model.strategies import spec_documents


def _harness() -> Any:
    """tests/agreement.py, loaded by path (this script's own name would shadow it)."""
    path = Path(__file__).resolve().parent.parent / "tests" / "agreement.py"
    spec = importlib.util.spec_from_file_location("agreement_harness", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


A = _harness()
FEATURES: dict[str, Any] = dict(
    max_services=5, max_replicas=3, max_zones=3, balancers=True, probabilities=True,
    network_latency=True, limits=True, discovery=True, all_properties=True, scenarios=False)
SECONDS_PER_SYSTEM = {"fast": 0.6, "thorough": 2.5}  # measured on one core of a laptop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="200 systems")
    parser.add_argument("--thorough", action="store_true",
                        help="longer windows, more failure sets and call sites per system")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("agreement-disagreements"))
    args = parser.parse_args(argv)
    count = 200 if args.quick else args.systems
    mode = "thorough" if args.thorough else "fast"
    chosen = A.THOROUGH if args.thorough else A.FAST
    console = Console(stderr=True)
    estimate = count * SECONDS_PER_SYSTEM[mode]
    console.print(f"{count} systems at {mode} settings: about {estimate / 60:.0f} min "
                  f"({SECONDS_PER_SYSTEM[mode]} s a system on one core)")

    seen: collections.Counter[tuple[str, str]] = collections.Counter()
    wrong: collections.Counter[tuple[str, str]] = collections.Counter()
    written: list[Path] = []
    systems = [0]
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[bad]} disagreeing"), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("systems", total=count, bad=0)

        @seed(args.seed)
        @settings(max_examples=count, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(spec_documents(**FEATURES))
        def one(document: dict) -> None:
            system = from_document(document)
            systems[0] += 1
            findings = A.check(system, chosen)
            disagreeing = [f for f in findings if not f.agrees]
            for kind, status in {(f.kind, f.status) for f in findings}:
                seen[(kind, status)] += 1
            for kind, status in {(f.kind, f.status) for f in disagreeing}:
                wrong[(kind, status)] += 1
            if disagreeing:
                path = args.out / f"{systems[0]:05d}.yaml"
                header = "".join(f"# {f.kind} {f.status} [{f.scenario}]: "
                                 + " / ".join(f.detail.splitlines()) + "\n"
                                 for f in disagreeing)
                path.write_text(header + dump(system))
                written.append(path)
            progress.update(task, advance=1, bad=len(written))

        one()
    elapsed = time.perf_counter() - start

    table = Table(title=f"{systems[0]} systems in {elapsed:.0f} s")
    for column in ("property", "holds", "disagree", "violated", "disagree", "unknown",
                   "crashed"):
        table.add_column(column, justify="right")
    for kind in A.KINDS:
        table.add_row(kind, str(seen[(kind, "holds")]), str(wrong[(kind, "holds")]),
                      str(seen[(kind, "violated")]), str(wrong[(kind, "violated")]),
                      str(seen[(kind, "unknown")]), str(seen[(kind, "error")]))
    Console().print(table)
    total = len(written)
    print(f"disagreements: {total} systems" + (f" (specs in {args.out}/)" if total else ""))
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
