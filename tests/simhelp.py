"""Helpers of the simulator tests: inline specs, replications, confidence intervals."""

from __future__ import annotations

import math
import statistics
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from faultmesh import model
from faultmesh.model.faults import Scenario
from faultmesh.model.system import System
from faultmesh.model.verify.deadline import Deadline
from faultmesh.simulations import simulate


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile by the Cornish-Fisher expansion (good to 1e-3 for df >= 5)."""
    z = statistics.NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def spec(text: str) -> System:
    """A System from an inline YAML spec."""
    return model.loads(textwrap.dedent(text))


def interval(samples: list[float]) -> tuple[float, float, float]:
    """(mean, lower, upper): the 99.9 % confidence interval of the mean of ``samples``."""
    n = len(samples)
    mean = statistics.fmean(samples)
    half = t_quantile(0.9995, n - 1) * statistics.stdev(samples) / math.sqrt(n)
    return mean, mean - half, mean + half


def assert_within(samples: list[float], theory: float, what: str, slack: float = 0.0) -> None:
    """The theory lies in the 99.9 % CI of the replications' mean (widened by ``slack``,
    relative, for known biases such as histogram buckets)."""
    mean, low, high = interval(samples)
    low -= abs(theory) * slack
    high += abs(theory) * slack
    assert low <= theory <= high, (
        f"{what}: theory {theory:.5g} outside the 99.9% CI [{low:.5g}, {high:.5g}] "
        f"(mean {mean:.5g} of {len(samples)} replications)")


def replicate(system: System, seeds: Iterable[int], measure: Callable[[Any], float], *,
              duration: float, warmup: float = 0.0,
              scenario: Scenario | None = None) -> list[float]:
    """Run ``system`` once per seed and measure each run."""
    base = scenario or Scenario("replication")
    chosen = replace(base, warmup=warmup)
    return [measure(simulate(system, chosen, duration=duration, seed=seed)) for seed in seeds]


class Countdown(Deadline):
    """A deadline that has time left for its first ``reads`` clock readings, then none:
    where a checker looks at its deadline is then observable without timing anything.
    ``read`` counts the readings made."""

    def __init__(self, reads: int = 10**9) -> None:
        super().__init__(3600.0)
        self.reads = reads
        self.read = 0

    def left(self) -> float:
        self.read += 1
        return 3600.0 if self.read <= self.reads else 0.0
