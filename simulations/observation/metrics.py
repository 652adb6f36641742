"""Streaming metrics: log-bucketed latency histograms, outcome counters, a binned timeline.

Memory is flat in the number of requests: a latency is folded into a bucket the moment its
request ends. Buckets are logarithmic, ``FINE`` per octave (relative error of a reported
quantile below 0.3 %), keyed by small integers; the per-bin histograms of the timeline use
``FINE >> COARSE_SHIFT`` buckets per octave (about 1 % error) and are dropped once their bin is
closed. The timeline has one row per bin and entry: requests that ended in the bin by outcome,
and latency quantiles of the successful ones. Bins are a second long, or longer for runs over
``MAX_BINS`` seconds, so that there are never more than ``MAX_BINS`` of them.

Bins close lazily, when the first request ending after them is recorded (or at the end of the
run); listeners (monitors, the per-phase view, the warm-up detector) see every closed bin in
order.

When the warm-up is to be detected after the run (``simulations.observation.warmup``), an
entry also tallies the requests that arrived in each of at most ``MAX_SEGMENTS`` segments of
the stretch where the warm-up may end, apart from the rest; ``truncate`` then folds the kept
segments into the run-long figures, so memory stays bounded whatever the request count.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable
from math import log2
from typing import Any

from faultmesh.model.extras import requires
from faultmesh.simulations.observation.spans import SpanLog
from faultmesh.simulations.observation.summary import EntrySummary, LatencySummary
from faultmesh.simulations.outcomes import OK, OUTCOMES

FINE = 128  # buckets per octave of the run-long histograms
COARSE_SHIFT = 2  # per-bin histograms: FINE >> COARSE_SHIFT buckets per octave
COARSE = FINE >> COARSE_SHIFT
OCTAVES_BELOW_ONE = 40  # smallest latency told apart from zero: 2**-40 s (about 1 ps)
_SMALLEST = 2.0**-OCTAVES_BELOW_ONE
MAX_BINS = 10_000
QUANTILES = (0.5, 0.9, 0.99)


def bucket(value: float) -> int:
    """The fine bucket of a non-negative value (0 for anything below ``2**-40``)."""
    if value <= _SMALLEST:
        return 0
    return int((math.log2(value) + OCTAVES_BELOW_ONE) * FINE)


def bucket_value(key: int, per_octave: int = FINE) -> float:
    """The representative (log-midpoint) value of a bucket."""
    if key == 0:
        return 0.0
    return 2.0 ** ((key + 0.5) / per_octave - OCTAVES_BELOW_ONE)


def quantiles(counts: dict[int, int], total: int, qs: Iterable[float],
              per_octave: int = FINE) -> list[float]:
    """Nearest-rank quantiles of a bucketed histogram with ``total`` values."""
    wanted = [(max(1, math.ceil(q * total)), i) for i, q in enumerate(qs)]
    wanted.sort()
    result = [math.nan] * len(wanted)
    if total == 0:
        return result
    seen = 0
    position = 0
    for key in sorted(counts):
        seen += counts[key]
        while position < len(wanted) and wanted[position][0] <= seen:
            result[wanted[position][1]] = bucket_value(key, per_octave)
            position += 1
        if position == len(wanted):
            break
    return result


class Histogram:
    """A log-bucketed histogram of non-negative values with exact count, mean and max."""

    __slots__ = ("count", "counts", "max", "per_octave", "total")

    def __init__(self, per_octave: int = FINE) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        self.per_octave = per_octave

    def add(self, value: float) -> None:
        key = bucket(value)
        if self.per_octave != FINE:
            key >>= COARSE_SHIFT
        self.add_key(key, value)

    def add_key(self, key: int, value: float) -> None:
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        self.count += 1
        self.total += value
        if value > self.max:
            self.max = value

    def merge(self, other: Histogram) -> None:
        """Add every value of ``other`` (same resolution): counts, mean and max."""
        self.merge_counts(other.counts)
        self.total += other.total
        self.max = max(self.max, other.max)

    def merge_counts(self, counts: dict[int, int], sign: int = 1) -> None:
        """Add (or with ``sign=-1`` remove) bucket counts; mean and max are not kept."""
        mine = self.counts
        for key, n in counts.items():
            left = mine.get(key, 0) + sign * n
            if left:
                mine[key] = left
            else:
                del mine[key]
            self.count += sign * n

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def quantile(self, q: float) -> float:
        value = quantiles(self.counts, self.count, (q,), self.per_octave)[0]
        # The bucket's midpoint may exceed the largest value seen; never report beyond it.
        return min(value, self.max) if self.max and not math.isnan(value) else value

    def summary(self) -> LatencySummary:
        """``{"mean", "p50", "p90", "p99", "max"}`` in seconds (None when empty)."""
        if not self.count:
            return {"mean": None, "p50": None, "p90": None, "p99": None, "max": None}
        p50, p90, p99 = (min(v, self.max) for v in
                         quantiles(self.counts, self.count, QUANTILES, self.per_octave))
        return {"mean": self.mean, "p50": p50, "p90": p90, "p99": p99, "max": self.max}


class Tally:
    """Outcome counts, causes, root causes and the latency histogram of some requests."""

    __slots__ = ("causes", "latency", "outcomes", "roots")

    def __init__(self) -> None:
        self.latency = Histogram()
        self.outcomes = [0, 0, 0, 0]
        self.causes: dict[str, int] = {}
        self.roots: dict[str, int] = {}

    def failure(self, outcome: int, cause: str, root: str) -> None:
        self.outcomes[outcome] += 1
        self.causes[cause] = self.causes.get(cause, 0) + 1
        self.roots[root] = self.roots.get(root, 0) + 1

    def merge_into(self, other: EntryStats | Tally) -> None:
        """Add this tally's requests to ``other``'s."""
        other.latency.merge(self.latency)
        for i, n in enumerate(self.outcomes):
            other.outcomes[i] += n
        for mine, theirs in ((self.causes, other.causes), (self.roots, other.roots)):
            for key, n in mine.items():
                theirs[key] = theirs.get(key, 0) + n


MAX_SEGMENTS = 64  # most tallies an entry keeps apart for a warm-up found after the run


class EntryStats:
    """Everything measured about one workload entry (``service.endpoint``).

    Run-long statistics count requests that arrived after the warm-up; the timeline counts every
    request by the bin it ended in. With ``segments(width, count)`` set, requests that arrive
    before ``width * count`` are tallied per segment of ``width`` seconds instead, until
    ``truncate`` keeps the segments from a warm-up found after the run.
    """

    __slots__ = ("bin_counts", "bin_latency", "bin_sum", "causes", "index", "latency", "limit",
                 "name", "outcomes", "roots", "segment_width", "tallies", "timeline", "warmup")

    def __init__(self, name: str, index: int, warmup: float, timeline: Timeline) -> None:
        self.name = name
        self.index = index
        self.warmup = warmup
        self.timeline = timeline
        self.latency = Histogram()
        self.outcomes = [0, 0, 0, 0]
        self.causes: dict[str, int] = {}
        self.roots: dict[str, int] = {}
        self.bin_counts = [0, 0, 0, 0]
        self.bin_latency: dict[int, int] = {}
        self.bin_sum = 0.0  # latencies of the current bin's successful requests, summed
        self.tallies: list[Tally] = []
        self.segment_width = 1.0
        self.limit = 0.0  # requests arriving before this are tallied per segment

    def segments(self, width: float, count: int) -> None:
        """Tally requests arriving before ``width * count`` per segment of ``width`` seconds."""
        self.segment_width = width
        self.tallies = [Tally() for _ in range(count)]
        self.limit = width * count

    def truncate(self, start: int) -> None:
        """Keep the segments from index ``start`` on (the warm-up ends there); drop the rest."""
        for tally in self.tallies[start:]:
            tally.merge_into(self)
        self.warmup = self.segment_width * start
        self.tallies = []
        self.limit = 0.0

    def record_ok(self, arrived: float, now: float) -> None:
        """A request that arrived at ``arrived`` succeeded at ``now``."""
        if now >= self.timeline.bin_end:
            self.timeline.roll(now)
        latency = now - arrived
        # bucket(latency), inlined: this runs once per request.
        key = int((log2(latency) + OCTAVES_BELOW_ONE) * FINE) if latency > _SMALLEST else 0
        coarse = key >> COARSE_SHIFT
        bin_latency = self.bin_latency
        bin_latency[coarse] = bin_latency.get(coarse, 0) + 1
        self.bin_counts[OK] += 1
        self.bin_sum += latency
        if arrived < self.limit:
            tally = self.tallies[min(int(arrived / self.segment_width), len(self.tallies) - 1)]
            tally.outcomes[OK] += 1
            tally.latency.add_key(key, latency)
        elif arrived >= self.warmup:
            self.outcomes[OK] += 1
            self.latency.add_key(key, latency)

    def record_failure(self, arrived: float, now: float, outcome: int, cause: str,
                       root: str) -> None:
        if now >= self.timeline.bin_end:
            self.timeline.roll(now)
        self.bin_counts[outcome] += 1
        if arrived < self.limit:
            self.tallies[min(int(arrived / self.segment_width), len(self.tallies) - 1)].failure(
                outcome, cause, root)
        elif arrived >= self.warmup:
            self.outcomes[outcome] += 1
            self.causes[cause] = self.causes.get(cause, 0) + 1
            self.roots[root] = self.roots.get(root, 0) + 1

    def summary(self) -> EntrySummary:
        requests = sum(self.outcomes)
        ok = self.outcomes[OK]
        return {
            "requests": requests,
            "ok": ok,
            "failed": requests - ok,
            "availability": ok / requests if requests else None,
            "latency_s": self.latency.summary(),
            "outcomes": dict(zip(OUTCOMES, self.outcomes, strict=True)),
            "causes": dict(sorted(self.causes.items())),
            "root_causes": dict(sorted(self.roots.items())),
        }


BinListener = Callable[[EntryStats, float, list[int], dict[int, int]], None]
"""Called as ``listener(entry, bin_start, counts_by_outcome, coarse_latency_buckets)``; the
list and mapping are the timeline's and may be reused: copy them to keep them. The entry's
``bin_sum`` is the bin's summed latency of successful requests."""


class Timeline:
    """Per-bin, per-entry counts and latency quantiles, kept as flat columns."""

    COLUMNS = ("requests", "ok", "errors", "timeouts", "rejected", "p50", "p90", "p99")

    def __init__(self, duration: float) -> None:
        self.width = max(1.0, math.ceil(duration / MAX_BINS)) if duration > MAX_BINS else 1.0
        self.bin_start = 0.0
        self.bin_end = self.width
        self.entries: list[EntryStats] = []
        self.listeners: list[BinListener] = []
        self.starts = array("d")
        self.columns: list[dict[str, array]] = []

    def add_entry(self, entry: EntryStats) -> None:
        self.entries.append(entry)
        self.columns.append({name: array("d") for name in self.COLUMNS})

    def roll(self, now: float) -> None:
        """Close every bin that ends at or before ``now``."""
        while now >= self.bin_end:
            self._close()

    def finish(self, end: float) -> None:
        """Close the remaining bins up to ``end`` (the last one may be partial)."""
        while self.bin_start < end:
            self._close()

    def _close(self) -> None:
        start = self.bin_start
        self.starts.append(start)
        listeners = self.listeners
        for entry, columns in zip(self.entries, self.columns, strict=True):
            counts = entry.bin_counts
            latency = entry.bin_latency
            ok, errors, timeouts, rejected = counts
            columns["requests"].append(ok + errors + timeouts + rejected)
            columns["ok"].append(ok)
            columns["errors"].append(errors)
            columns["timeouts"].append(timeouts)
            columns["rejected"].append(rejected)
            if ok:
                p50, p90, p99 = quantiles(latency, ok, QUANTILES, COARSE)
            else:
                p50 = p90 = p99 = math.nan
            columns["p50"].append(p50)
            columns["p90"].append(p90)
            columns["p99"].append(p99)
            for listener in listeners:
                listener(entry, start, counts, latency)
            if ok or errors or timeouts or rejected:
                entry.bin_counts = [0, 0, 0, 0]
                entry.bin_latency = {}
                entry.bin_sum = 0.0
        self.bin_start = self.bin_end
        self.bin_end = self.bin_start + self.width

    def frame(self) -> Any:
        """The timeline as a pandas DataFrame: one row per (bin, entry)."""
        with requires("data"):
            import pandas as pd

        parts = []
        for entry, columns in zip(self.entries, self.columns, strict=True):
            data: dict[str, Any] = {"time_s": self.starts.tolist(), "entry": entry.name}
            for name in self.COLUMNS:
                values = columns[name].tolist()
                data[name] = values if name.startswith("p") else [int(v) for v in values]
            parts.append(pd.DataFrame(data))
        if not parts:
            return pd.DataFrame(columns=["time_s", "entry", *self.COLUMNS])
        frame = pd.concat(parts, ignore_index=True)
        frame["availability"] = frame["ok"] / frame["requests"].where(frame["requests"] > 0)
        return frame.sort_values(["time_s", "entry"], kind="stable", ignore_index=True)


class RequestTrace:
    """Opt-in per-request records of workload requests, one row each, kept as columns."""

    COLUMNS = ("id", "entry", "instance", "arrived_s", "ended_s", "latency_s", "outcome", "cause",
               "root_cause")

    def __init__(self) -> None:
        self.rows: dict[str, list[Any]] = {name: [] for name in self.COLUMNS}
        # One span per job (observation.spans), set by the engine when it records them.
        self.spans: SpanLog | None = None

    def add(self, ident: int, entry: str, instance: str | None, arrived: float, ended: float,
            outcome: int, cause: str | None, root: str | None) -> None:
        rows = self.rows
        rows["id"].append(ident)
        rows["entry"].append(entry)
        rows["instance"].append(instance)
        rows["arrived_s"].append(arrived)
        rows["ended_s"].append(ended)
        rows["latency_s"].append(ended - arrived)
        rows["outcome"].append(OUTCOMES[outcome])
        rows["cause"].append(cause)
        rows["root_cause"].append(root)

    def __len__(self) -> int:
        return len(self.rows["id"])

    def frame(self) -> Any:
        with requires("data"):
            import pandas as pd

        return pd.DataFrame(self.rows).sort_values("id", ignore_index=True)
