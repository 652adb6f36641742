"""A finished run: its JSON summary, and its timeline, breakers and traces as DataFrames.

``Run.summary`` is the ``simulate --json`` object of the design (``system``, ``scenario``,
``seed``, ``duration_s``, ``entries``, ``services``, ``breakers``, ``properties``) plus extra
keys: ``warmup_s``, ``verdict``, ``requests`` (the ledger), ``calls`` (per edge), ``faults``
and ``phases`` (the per-phase view). Entry statistics count the requests that arrived after
the warm-up and ended before the end of the run; ``latency_s`` is over the successful ones.

DataFrames are built on first use (pandas is imported only then): ``timeline`` (one row per
bin and entry), ``breakers`` (one row per transition), ``requests`` (one row per workload
request; needs ``trace=True``). ``save(directory)`` writes all of them, each file atomically.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faultmesh.model.extras import requires
from faultmesh.model.files import atomic_path, write_atomic
from faultmesh.model.units import format_duration

if TYPE_CHECKING:
    from faultmesh.simulations.breakers import CircuitBreaker
    from faultmesh.simulations.observation.metrics import Histogram, RequestTrace, Timeline
    from faultmesh.simulations.observation.summary import (
        EntrySummary,
        PropertySummary,
        RunSummary,
    )

OUTPUT_FILES = ("summary.json", "timeline.parquet", "breakers.parquet", "requests.parquet")


class OutputExists(FileExistsError):
    """``save`` would overwrite earlier results."""


class Run:
    """The results of one simulation run."""

    def __init__(self, summary: RunSummary, timeline: Timeline,
                 breakers: dict[tuple[str, str], dict[str, CircuitBreaker]],
                 trace: RequestTrace | None,
                 latency: dict[str, Histogram] | None = None) -> None:
        self.summary = summary
        self._timeline = timeline
        self._breakers = breakers
        self._trace = trace
        self._latency = latency or {}

    # --- verdicts -----------------------------------------------------------------------------

    @property
    def properties(self) -> list[PropertySummary]:
        return self.summary["properties"]

    @property
    def ok(self) -> bool:
        """Whether every monitored property holds."""
        return all(p["status"] == "holds" for p in self.properties)

    @property
    def violated(self) -> list[str]:
        return [p["name"] for p in self.properties if p["status"] != "holds"]

    def entry(self, name: str | None = None) -> EntrySummary:
        """The summary of one entry (the only one when ``name`` is omitted)."""
        entries = self.summary["entries"]
        if name is None:
            if len(entries) != 1:
                raise ValueError(f"this run has entries {sorted(entries)}; name one")
            return next(iter(entries.values()))
        return entries[name]

    # --- tables -------------------------------------------------------------------------------

    @cached_property
    def timeline(self) -> Any:
        """Per-bin metrics per entry: requests, ok, errors, timeouts, rejected, p50/p90/p99."""
        return self._timeline.frame()

    @cached_property
    def breakers(self) -> Any:
        """Every circuit breaker transition: ``time_s``, ``edge``, ``state``, ``instance``.

        ``instance`` is the breaker's label: the caller instance it lives in (``cart-0``),
        with ``/k`` for the edge's k-th policy when the edge has several.
        """
        with requires("data"):
            import pandas as pd

        rows = [(t, f"{caller}->{callee}", state, label)
                for (caller, callee), scoped in self._breakers.items()
                for label, breaker in scoped.items()
                for t, state in breaker.transitions]
        rows.sort(key=lambda row: row[0])
        return pd.DataFrame(rows, columns=["time_s", "edge", "state", "instance"])

    @cached_property
    def requests(self) -> Any:
        """One row per workload request (needs ``simulate(..., trace=True)``)."""
        if self._trace is None:
            raise ValueError("per-request traces are off; run simulate(..., trace=True)")
        return self._trace.frame()

    def latency_buckets(self, entry: str) -> list[tuple[float, int]]:
        """(latency in seconds, count) per histogram bucket of the entry's successful requests
        after warm-up; available with traces off (bounded relative error per bucket)."""
        from faultmesh.simulations.observation.metrics import bucket_value

        histogram = self._latency.get(entry)
        if histogram is None:
            return []
        return [(min(bucket_value(key, histogram.per_octave), histogram.max), count)
                for key, count in sorted(histogram.counts.items())]

    @property
    def traced(self) -> bool:
        return self._trace is not None

    # --- output -------------------------------------------------------------------------------

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.summary, indent=indent, allow_nan=False)

    def save(self, directory: str | os.PathLike[str], *, force: bool = False) -> list[Path]:
        """Write summary.json, timeline.parquet, breakers.parquet (and requests.parquet when
        traced) into ``directory``; refuses to overwrite earlier results unless ``force``."""
        target = Path(directory)
        names = [n for n in OUTPUT_FILES if n != "requests.parquet" or self.traced]
        if not force:
            existing = [n for n in OUTPUT_FILES if (target / n).exists()]
            if existing:
                raise OutputExists(f"{target} already holds {', '.join(existing)}; "
                                   "use another directory or --force to overwrite")
        # Ask before writing anything: a missing package would otherwise leave half the files.
        with requires("data", "writing Parquet files"):
            import pandas  # noqa: F401
            import pyarrow  # noqa: F401
        target.mkdir(parents=True, exist_ok=True)
        written = []
        for name in names:
            path = target / name
            if name == "summary.json":
                write_atomic(path, self.to_json() + "\n")
            else:
                frame = {"timeline.parquet": lambda: self.timeline,
                         "breakers.parquet": lambda: self.breakers,
                         "requests.parquet": lambda: self.requests}[name]()
                with atomic_path(path) as tmp:
                    frame.to_parquet(tmp, index=False)
            written.append(path)
        if force and not self.traced and (target / "requests.parquet").exists():
            (target / "requests.parquet").unlink()  # stale traces of an earlier run
        return written

    # --- display ------------------------------------------------------------------------------

    # --- pictures (matplotlib Figures; Jupyter shows them inline) -------------------------------

    def plot_timeline(self, entries: list[str] | None = None) -> Any:
        """Availability and latency percentiles over time, fault windows shaded."""
        from faultmesh.simulations.presentation import plots

        return plots.timeline(self, entries)

    def plot_breakers(self) -> Any:
        """Each circuit breaker's state over time."""
        from faultmesh.simulations.presentation import plots

        return plots.breaker_states(self)

    def plot_latency(self, entries: list[str] | None = None) -> Any:
        """Latency histogram and CDF per entry."""
        from faultmesh.simulations.presentation import plots

        return plots.latency_distribution(self, entries)

    def _repr_html_(self) -> str:
        import html

        from faultmesh.simulations.presentation.report import summary_tables

        s = self.summary
        scenario = html.escape(s["scenario"] or "no faults")
        return (f"<div><b>{html.escape(s['system'])}</b> — {scenario}, seed {s['seed']}, "
                f"{format_duration(s['duration_s'])}: <b>{html.escape(s['verdict'])}</b>"
                f"{summary_tables(s)}</div>")

    def __repr__(self) -> str:
        s = self.summary
        entries = ", ".join(
            f"{name}: {e['requests']} requests, availability "
            + ("n/a" if e["availability"] is None else f"{e['availability']:.3%}")
            for name, e in s["entries"].items())
        scenario = s["scenario"] or "no faults"
        return (f"<Run {s['system']} ({scenario}, seed {s['seed']}, "
                f"{format_duration(s['duration_s'])}): {s['verdict']}; {entries}>")
