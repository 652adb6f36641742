"""Helpers of the simulator tests: inline specs, replications, confidence intervals."""

from __future__ import annotations

import math
import statistics
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import model
from model.faults import Scenario
from model.system import System
from simulations import simulate

# Two-sided 99.9 % quantiles of Student's t, by degrees of freedom.
T_999 = {9: 4.781, 11: 4.437, 15: 4.073, 19: 3.883, 23: 3.768, 29: 3.659}


def spec(text: str) -> System:
    """A System from an inline YAML spec."""
    return model.loads(textwrap.dedent(text))


def interval(samples: list[float]) -> tuple[float, float, float]:
    """(mean, lower, upper): the 99.9 % confidence interval of the mean of ``samples``."""
    n = len(samples)
    mean = statistics.fmean(samples)
    half = T_999[n - 1] * statistics.stdev(samples) / math.sqrt(n)
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
