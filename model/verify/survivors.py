"""Counting survivors of a placement, in closed form: what is left after the worst failures,
and the fewest replicas to add (and where) so that enough are. Pure integer arithmetic; the
repairs (``repairs``) ask here first and fall back to z3 only when a direct answer is not
found.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

# Ways of choosing the surviving zones ``fewest_surviving`` tries at most before leaving the
# placement to z3 (C(Z, K): 3 for three zones, 252 for ten zones and five failures).
SPLITS_LIMIT = 256


def surviving(counts: tuple[int, ...], zones: bool, failures: int) -> int:
    """Instances of a placement left after its worst ``failures`` failures (the largest need
    ``fewest_added`` meets with nothing added): ``failures`` fewer instances, or with zones
    the ``Z - failures`` least-populated zones' instances."""
    if not zones:
        return max(0, sum(counts) - failures)
    m = len(counts) - failures
    return sum(sorted(counts)[:m]) if m > 0 else 0


def fewest_added(counts: tuple[int, ...], zones: bool, failures: int, need: int) -> int:
    """How many replicas ``surviving_at_least`` adds (the count alone, in O(zones)).

    Instances only: what ``sum - failures`` lacks of ``need``. Zones: the cheapest split keeps
    the ``failures`` most-populated zones as the ones that fail (an exchange argument: a less
    populated zone there costs at least as much to raise); those are raised to the level ``v =
    max(ceil(need / m), the largest of the other m)`` and the other ``m`` zones get what their
    sum lacks of ``need``. (Checked against the solver's optimum by the tests.)
    """
    return adder(counts, zones, failures)(need)


def adder(counts: tuple[int, ...], zones: bool, failures: int) -> Callable[[int], int]:
    """``fewest_added`` for one placement, as a function of ``need`` (sorted once)."""
    if not zones:
        short = failures - sum(counts)
        return lambda need: max(0, need + short)
    ordered = sorted(counts)
    m = len(ordered) - failures
    bottom_sum, bottom_max, top = sum(ordered[:m]), ordered[m - 1], ordered[m:]

    def added(need: int) -> int:
        level = max(-(-need // m), bottom_max)
        return sum(max(0, level - c) for c in top) + max(0, need - bottom_sum)

    return added


def fewest_surviving(counts: tuple[int, ...], loads: tuple[int, ...], zones: bool,
                     failures: int, need: int) -> tuple[int, ...] | None:
    """``surviving_at_least`` without a solver: the new per-zone counts, optimal for the same
    three objectives (fewest added; then added x ``loads``; then added x zone index), or None
    when there are too many ways to split the zones (the caller asks z3 instead).

    Instances only: ``sum - failures >= need``; what is missing goes to the cheapest zone.
    Zones: the worst ``failures`` zones leave the smallest ``m = Z - failures`` counts. Every
    optimum has this shape: ``m`` "bottom" zones, each at most a level ``v``, holding ``need``
    between them, and the other zones raised to at least ``v`` (higher would only cost). For a
    chosen bottom ``B`` the cheapest is ``v = max(ceil(need / m), max c(B))``; the top costs
    ``sum max(0, v - c)`` and the bottom ``max(0, need - sum c(B))``, spread cheapest zone
    first, each bottom zone up to ``max(v, the lowest top count)``. Trying every ``B`` (3 for
    three zones) and keeping the best by the objectives gives the optimum z3 finds, about a
    thousand times faster (a 10,000-service repair asks this thousands of times).
    """
    size = len(counts)
    order = sorted(range(size), key=lambda i: (loads[i], i))  # the cheapest zone first
    if not zones:
        new = list(counts)
        new[order[0]] += max(0, need + failures - sum(counts))
        return tuple(new)
    m = size - failures
    if m <= 0 or math.comb(size, m) > SPLITS_LIMIT:
        return None
    best: tuple[tuple[int, int, int], tuple[int, ...]] | None = None
    for bottom in itertools.combinations(range(size), m):
        inside = set(bottom)
        top = [j for j in range(size) if j not in inside]
        low = max(-(-need // m), max(counts[i] for i in bottom))
        cap = max(low, min(counts[j] for j in top)) if top else None
        new = list(counts)
        for j in top:
            new[j] = max(counts[j], low)
        short = max(0, need - sum(counts[i] for i in bottom))
        for i in order:
            if short == 0:
                break
            if i in inside:
                give = short if cap is None else min(short, cap - counts[i])
                new[i] += give
                short -= give
        added = [n - c for n, c in zip(new, counts, strict=True)]
        key = (sum(added), sum(a * w for a, w in zip(added, loads, strict=True)),
               sum(a * i for i, a in enumerate(added)))
        if best is None or key < best[0]:
            best = (key, tuple(new))
    assert best is not None
    return best[1]


__all__ = ["SPLITS_LIMIT", "adder", "fewest_added", "fewest_surviving", "surviving"]
