"""Fuzz faultmesh for longer than CI does: the hardening suite with many more examples.

Runs ``tests/test_hardening_fuzz.py`` (hypothesis over YAML text, mutated spec documents with
extreme values, nesting and raw bytes) with ``FAULTMESH_FUZZ_EXAMPLES`` examples per test, then
the hostile-path and extreme-spec regression tests, and prints how long it took. The contract
it checks: a System or located errors, never a traceback, a hang or a write outside the
intended regular file.

    python bench/fuzz.py              # 2,000 examples per test (about 2-3 minutes on one core)
    python bench/fuzz.py --quick      # 100 examples per test (under a minute)
    python bench/fuzz.py --examples 20000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Measured on a loaded 2-core machine: 300 examples per test took 15 s for the four fuzz
# tests (0.05 s per example); the regression tests add about half a minute.
SECONDS_PER_EXAMPLE = 0.05


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 examples per test")
    parser.add_argument("--examples", type=int, default=None,
                        help="examples per test (default 2,000; --quick: 100)")
    args = parser.parse_args(argv)
    examples = args.examples or (100 if args.quick else 2000)
    estimate = examples * SECONDS_PER_EXAMPLE + 30
    print(f"fuzzing with {examples:,} examples per test; this takes about "
          f"{estimate / 60:.0f} minute{'s' if estimate >= 90 else ''} on one core", flush=True)
    env = {**os.environ, "FAULTMESH_FUZZ_EXAMPLES": str(examples)}
    started = time.perf_counter()
    code = subprocess.call(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
         "tests/test_hardening_fuzz.py", "tests/test_hardening_paths.py",
         "tests/test_hardening_specs.py"], cwd=ROOT, env=env)
    print(f"{'passed' if code == 0 else 'FAILED'} in {time.perf_counter() - started:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
