"""Long benchmarks say how long they will take before they start, and have a quick mode.

``bench/verify.py`` ran 21 minutes without a word. Each benchmark now prints what it will run
and an estimate (an upper bound where its contenders are capped) first, and takes ``--quick``
and ``--dry-run`` (print that, then stop: what these tests run, so they take a second).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ("verify.py", "simulate.py", "sweep.py")
UNIT = {"s": 1, "min": 60, "h": 3600}


def estimate(bench: str, *args: str) -> float:
    """The seconds a benchmark says it will take (``--dry-run``)."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / bench), "--dry-run", *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    said = re.search(r"this takes .*?(\d+(?:\.\d+)?) (s|min|h)\b", done.stdout)
    assert said, done.stdout
    if not args:
        assert "--quick" in done.stdout  # the long form points to the short one
    return float(said[1]) * UNIT[said[2]]


@pytest.mark.parametrize("bench", BENCHES)
def test_benchmarks_say_how_long_and_quick_is_short(bench: str) -> None:
    full, quick = estimate(bench), estimate(bench, "--quick")
    assert quick < full
    assert quick <= 90  # about a minute at most


def test_verify_bound_follows_the_caps() -> None:
    # 6 runs (3 sizes x 2 K) x (2 z3 contenders x 120 s + 30 s brute force) = 27 min
    assert estimate("verify.py") == 27 * 60
    assert estimate("verify.py", "--sizes", "1000", "--failures", "2", "--cap", "60",
                    "--skip", "brute") == 120
