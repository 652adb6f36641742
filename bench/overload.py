"""Differential test of ``overload_recovery`` at scale: the verifier against the simulator.

    python bench/overload.py [--systems N] [--seed S] [--out DIR]

Draws ``--systems`` retry-storm systems (default 1,000; ``tests/overload_systems.py`` says what
they look like and what is compared), verifies ``overload_recovery`` on each, and simulates:
for every ``holds`` a latency trigger on the busiest service, requiring the entry to come back
within the fluid drain time plus a margin; for every ``violated`` the counterexample's trigger,
requiring the entry to stay down; ``unknown`` verdicts are counted by what the proof could not
decide. Prints the counts, the disagreements and the time; each
disagreement's spec goes to ``--out`` for triage. Exit code 1 on any disagreement.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import random
import sys
import time
from pathlib import Path
from typing import Any

from faultmesh.model import properties as P
from faultmesh.model.spec import dump
from faultmesh.model.spec.load import from_document
from faultmesh.model.verify import Deadline
from faultmesh.model.verify.overload import check


def _harness() -> Any:
    path = Path(__file__).resolve().parent.parent / "tests" / "overload_systems.py"
    spec = importlib.util.spec_from_file_location("overload_systems", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _why(explanation: str) -> str:
    """The construct an ``unknown`` verdict names, without the service and the figures."""
    doubt = explanation.split(": ", 1)[-1]
    for construct in ("propagate_deadline", "queue_timeout", "bounded queue", "lifo",
                      "rate limited", "queueing delay", "certainly brings"):
        if construct in doubt:
            return {"certainly brings": "storm floor below capacity (caps, callers' throughput)",
                    "queueing delay": "below capacity, queueing only",
                    "lifo": "adaptive LIFO"}.get(construct, construct)
    return doubt[:60]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    harness = _harness()
    rng = random.Random(args.seed)
    counts: collections.Counter[tuple[str, bool]] = collections.Counter()
    causes: collections.Counter[str] = collections.Counter()
    undecided: collections.Counter[str] = collections.Counter()
    start = time.perf_counter()
    cpu = time.process_time()
    for index in range(args.systems):
        doc = harness.overload_spec(rng, index)
        system = from_document(doc, f"<generated {index}>")
        verdict = check(system, P.OverloadRecovery(), Deadline(60))
        if verdict.status == "violated":
            causes[verdict.explanation.split(":")[0] and
                   ("nominal" if "no trigger needed" in verdict.explanation else "storm")] += 1
        if verdict.status == "unknown":
            undecided[_why(verdict.explanation)] += 1
        result = harness.trial(system, verdict, seed=index, others=True)
        counts[(result.status, result.agrees)] += 1
        if not result.agrees:
            print(f"disagreement #{index} ({result.status}): {result.detail}\n  "
                  f"{verdict.explanation}")
            if args.out is not None:
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / f"overload-{index}.yaml").write_text(
                    f"# {result.status}, simulation disagrees: {result.detail}\n"
                    + dump(system))
    holds = counts[("holds", True)] + counts[("holds", False)]
    violated = counts[("violated", True)] + counts[("violated", False)]
    print(f"{args.systems} systems: {holds} holds ({counts[('holds', False)]} disagree), "
          f"{violated} violated ({counts[('violated', False)]} disagree; "
          f"{causes['nominal']} overloaded at nominal load), "
          f"{counts[('unknown', True)]} unknown")
    for why, n in undecided.most_common():
        print(f"  unknown: {n} {why}")
    print(f"{time.perf_counter() - start:.1f}s wall, {time.process_time() - cpu:.1f}s CPU")
    return 1 if counts[("holds", False)] or counts[("violated", False)] else 0


if __name__ == "__main__":
    raise SystemExit(main())
