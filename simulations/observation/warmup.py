"""Warm-up detection: MSER-5 on the latency series, and truncating a finished run's figures.

A run starts with empty queues, so its first stretch is not the steady state the summary
statistics are meant to estimate. When a scenario gives no ``warmup`` (and for the plain run
without one), the warm-up is found after the run by the MSER-5 rule (White 1997; White, Cobb
and Spratt 2000): the series is cut into batches of five observations, and the truncation point
is the number of leading batches ``d`` minimising the marginal standard error

    MSER(d) = sum_{j >= d} (Y_j - mean(Y_d..))^2 / (m - d)^2

over ``d`` in the first half of the run (``mser``, ``mser5``: pure functions). A minimum at the
limit means the run was too short to settle (reported as ``settled: false``).

The observations are the timeline's bins (one second, or wider for very long runs): a batch's
value is the mean latency of the successful requests that ended in its five bins. Every entry
gives a truncation point; the run takes the latest. The search stops before the first fault, so
a warm-up never swallows a fault's window.

Memory stays bounded: ``WarmupDetector`` cuts the stretch where the warm-up may end into at most
``MAX_SEGMENTS`` segments of whole batches. Entries tally the requests that arrive in each
segment apart (``EntryStats.segments``), and at each segment's end the detector notes the
counters of every instance, service and call edge. Once the warm-up is known it is rounded up
to a segment's end; the entries keep the segments from there and every counter is reduced by
its note at that time, so the summary covers exactly what the warm-up did not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from simpy.events import Timeout

from faultmesh.simulations.observation.metrics import MAX_SEGMENTS, EntryStats, Timeline

if TYPE_CHECKING:
    import simpy

    from faultmesh.simulations.engine.edge_stats import EdgeStats
    from faultmesh.simulations.engine.instances import Instance, ServiceRuntime
    from faultmesh.simulations.observation.summary import WarmupSummary

BATCH = 5  # observations per batch (the "5" of MSER-5)
RULE = "MSER-5"

# Instance counters a warm-up discards (those ``Instance.reset_counters`` resets).
INSTANCE_COUNTERS = ("arrivals", "rejected", "refused", "injected", "served", "queued", "waited",
                     "busy_area", "up_time", "rate_limited", "shed", "expired", "orphaned")
EDGE_COUNTERS = ("calls", "attempts", "failed", "degraded", "retry_overflow", "throttled",
                 "first_attempts", "retries", "hedges")


def mser(series: Sequence[float], limit: int | None = None) -> int:
    """The MSER truncation point of ``series``: how many leading values to discard.

    Searches ``d`` in ``0..limit`` (default: the first half, ``len(series) // 2``) for the
    smallest ``sum_{j>=d} (y_j - mean_d)^2 / n_d^2``, ``n_d`` the values from ``d`` on; NaN
    values (batches without data) are left out of the sums. Ties go to the smaller ``d``;
    a ``d`` leaving fewer than two values is not considered.
    """
    m = len(series)
    bound = m // 2 if limit is None else min(limit, m)
    # Suffix sums: count, sum and sum of squares of the values from index d on.
    count = [0] * (m + 1)
    total = [0.0] * (m + 1)
    squares = [0.0] * (m + 1)
    for j in range(m - 1, -1, -1):
        y = series[j]
        present = not math.isnan(y)
        count[j] = count[j + 1] + present
        total[j] = total[j + 1] + (y if present else 0.0)
        squares[j] = squares[j + 1] + (y * y if present else 0.0)
    best, best_d = math.inf, 0
    for d in range(bound + 1):
        n = count[d]
        if n < 2:
            break
        spread = max(0.0, squares[d] - total[d] * total[d] / n)
        statistic = spread / (n * n)
        if statistic < best * (1 - 1e-12):  # ties (up to rounding) keep the smaller d
            best, best_d = statistic, d
    return best_d


def batch_means(sums: Sequence[float], counts: Sequence[int | float],
                batch: int = BATCH) -> list[float]:
    """Weighted means of consecutive batches: ``sum(sums) / sum(counts)`` per full batch (NaN
    when a batch has no count); an incomplete last batch is dropped."""
    means = []
    for start in range(0, len(sums) - batch + 1, batch):
        n = sum(counts[start:start + batch])
        means.append(sum(sums[start:start + batch]) / n if n else math.nan)
    return means


def mser5(observations: Sequence[float], limit: int | None = None) -> int:
    """MSER-5: how many leading ``observations`` to discard (a multiple of 5).

    ``limit``: the most observations that may be discarded (default: half of them).
    """
    means = batch_means(observations, [1] * len(observations))
    bound = None if limit is None else limit // BATCH
    return BATCH * mser(means, bound)


class WarmupDetector:
    """Prepares a run so its warm-up can be found and discarded after it ends.

    ``horizon``: the latest time the warm-up may end (half the run, or the first fault's start
    when that is earlier).
    """

    def __init__(self, env: simpy.Environment, timeline: Timeline, entries: list[EntryStats],
                 horizon: float, *, instances: list[Instance],
                 services: list[ServiceRuntime], edges: list[EdgeStats]) -> None:
        self.env = env
        self.timeline = timeline
        self.entries = entries
        self.instances = instances
        self.services = services
        self.edges = edges
        self.batch_width = BATCH * timeline.width
        self.limit = max(0, int(horizon / self.batch_width + 1e-9))  # batches
        self.per_segment = max(1, math.ceil(self.limit / MAX_SEGMENTS))  # batches per segment
        self.count = math.ceil(self.limit / self.per_segment)
        self.segment_width = self.per_segment * self.batch_width
        self.horizon = self.limit * self.batch_width
        # Per entry: latency sums and successful requests of each batch (by end time).
        self.sums: dict[str, list[float]] = {e.name: [] for e in entries}
        self.oks: dict[str, list[int]] = {e.name: [] for e in entries}
        self.notes: list[dict[str, Any]] = []
        self.seconds = 0.0
        self.settled = True
        if self.count:
            for entry in entries:
                entry.segments(self.segment_width, self.count)
                entry.limit = self.horizon
        timeline.listeners.append(self._on_bin)

    def start(self) -> None:
        """Note the counters at time 0 and at every segment's end."""
        for k in range(self.count + 1):
            at = min(k * self.segment_width, self.horizon)
            Timeout(self.env, at).callbacks.append(lambda _event: self._note())

    def _on_bin(self, entry: EntryStats, start: float, counts: list[int],
                latency: dict[int, int]) -> None:
        index = int(start / self.batch_width + 1e-9)
        sums, oks = self.sums[entry.name], self.oks[entry.name]
        while len(sums) <= index:
            sums.append(0.0)
            oks.append(0)
        sums[index] += entry.bin_sum
        oks[index] += counts[0]

    def _note(self) -> None:
        instances = []
        for instance in self.instances:
            instance.close_counters()
            instances.append(tuple(getattr(instance, name) for name in INSTANCE_COUNTERS))
        self.notes.append({
            "instances": instances,
            "orphaned_by": [dict(instance.orphaned_by) for instance in self.instances],
            "by_attempt": [list(instance.by_attempt) for instance in self.instances],
            "retries": [service.retries for service in self.services],
            "edges": [(tuple(getattr(edge, name) for name in EDGE_COUNTERS), dict(edge.causes))
                      for edge in self.edges],
        })

    def detect(self) -> int:
        """The warm-up's end, in segments, from the whole run's series (the latest entry's)."""
        if not self.count:
            return 0
        full = int(self.timeline.bin_start / self.batch_width + 1e-9)  # complete batches
        cut = 0
        for entry in self.entries:
            sums = self.sums[entry.name][:full]
            oks = self.oks[entry.name][:full]
            means = [s / n if n else math.nan for s, n in zip(sums, oks, strict=True)]
            bound = min(self.limit, len(means) // 2)
            d = mser(means, bound)
            if d >= bound and bound > 0 and d > 0:
                self.settled = False
            cut = max(cut, d)
        return math.ceil(cut / self.per_segment)

    def finish(self) -> float:
        """Find the warm-up, discard it from every figure, and return its length in seconds."""
        segment = self.detect()
        for entry in self.entries:
            entry.truncate(segment)
        self.seconds = min(segment * self.segment_width, self.horizon)
        if segment == 0 or not self.notes:
            return 0.0
        note = self.notes[segment]
        for instance, values in zip(self.instances, note["instances"], strict=True):
            for name, value in zip(INSTANCE_COUNTERS, values, strict=True):
                setattr(instance, name, getattr(instance, name) - value)
        for instance, orphaned_by, by_attempt in zip(
                self.instances, note["orphaned_by"], note["by_attempt"], strict=True):
            for caller, n in orphaned_by.items():
                instance.orphaned_by[caller] -= n
            instance.by_attempt = [now - then for now, then in
                                   zip(instance.by_attempt, by_attempt, strict=True)]
        for service, retries in zip(self.services, note["retries"], strict=True):
            service.retries -= retries
        for edge, (values, causes) in zip(self.edges, note["edges"], strict=True):
            for name, value in zip(EDGE_COUNTERS, values, strict=True):
                setattr(edge, name, getattr(edge, name) - value)
            for cause, n in causes.items():
                left = edge.causes[cause] - n
                if left:
                    edge.causes[cause] = left
                else:
                    del edge.causes[cause]
        return self.seconds

    def summary(self) -> WarmupSummary:
        return {"seconds": self.seconds, "detected": True, "rule": RULE,
                "settled": self.settled, "searched_s": self.horizon}


__all__ = ["BATCH", "RULE", "WarmupDetector", "batch_means", "mser", "mser5"]
