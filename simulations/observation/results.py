"""A finished run: its JSON summary, and its timeline, breakers and traces as DataFrames.

``Run.summary`` is the ``simulate --json`` object of the design (``system``, ``scenario``,
``seed``, ``duration_s``, ``entries``, ``services``, ``breakers``, ``properties``) plus extra
keys: ``warmup_s``, ``verdict``, ``requests`` (the ledger), ``calls`` (per edge), ``faults``
and ``phases`` (the per-phase view). Entry statistics count the requests that arrived after
the warm-up and ended before the end of the run; ``latency_s`` is over the successful ones.

DataFrames are built on first use (pandas is imported only then): ``timeline`` (one row per
bin and entry), ``breakers`` (one row per transition), ``requests`` (one row per workload
request; needs ``trace=True``). ``save(directory)`` writes all of them, each file atomically,
and a ``manifest.json`` last: a directory without it holds an interrupted, incomplete set.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faultmesh.model.extras import requires
from faultmesh.model.files import NotARegularFile, atomic_path, check_target, write_atomic
from faultmesh.model.units import format_duration, format_percent

if TYPE_CHECKING:
    from faultmesh.model.system import System
    from faultmesh.simulations.breakers import CircuitBreaker
    from faultmesh.simulations.observation.metrics import Histogram, RequestTrace, Timeline
    from faultmesh.simulations.observation.spans import SpanLog
    from faultmesh.simulations.observation.summary import (
        EntrySummary,
        PropertySummary,
        RunSummary,
    )

OUTPUT_FILES = ("summary.json", "timeline.parquet", "breakers.parquet", "requests.parquet")
# Written last, listing every file of the set with its size and SHA-256: a directory of
# results without it was interrupted (a killed run can leave a valid summary.json and no
# tables), and is reported as incomplete rather than read as a finished run.
MANIFEST = "manifest.json"


class OutputExists(FileExistsError):
    """``save`` would overwrite earlier results."""


def _leftovers(directory: Path, names: Sequence[str]) -> list[Path]:
    """Temporary files a killed writer left behind (``.NAME.*.tmp*``, as files.atomic_path
    names them), for the set's own names only."""
    return sorted(path for name in (*names, MANIFEST)
                  for path in directory.glob(f".{glob.escape(name)}.*.tmp*") if path.is_file())


def check_output(directory: str | os.PathLike[str], names: Sequence[str], *,
                 force: bool = False) -> None:
    """Refuse a results directory before anything is run or written.

    Every target must be a regular file or absent (``NotARegularFile``, whatever ``force``
    says); without ``force`` a directory already holding any of ``names`` is refused
    (``OutputExists``), and one without a manifest is named incomplete.
    """
    target = Path(directory)
    if not target.is_dir():
        if target.exists():
            raise NotARegularFile(f"{target} exists and is not a directory")
        return
    for name in (*names, MANIFEST):
        check_target(target / name)
    if force:
        return
    existing = [n for n in (*names, MANIFEST) if (target / n).exists()]
    leftovers = _leftovers(target, names)
    if (target / MANIFEST).exists():
        raise OutputExists(f"{target} already holds results ({', '.join(existing)}); "
                           "use another directory or --force to overwrite")
    if existing or leftovers:
        found = ", ".join([*existing, *(p.name for p in leftovers)])
        raise OutputExists(f"{target} holds an incomplete set of results ({found}; no "
                           f"{MANIFEST}: an earlier run was interrupted); use another "
                           "directory or --force to replace them")


def clear_output(directory: Path, names: Sequence[str]) -> None:
    """Remove an earlier set (manifest first, so a crash midway still reads as incomplete),
    then the temporary files a killed run left."""
    for name in (MANIFEST, *names):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    for path in _leftovers(directory, names):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def write_manifest(directory: Path, written: Sequence[Path]) -> Path:
    """Write the manifest of a finished set: the last file written."""
    files = {}
    for path in written:
        data = path.read_bytes()
        files[path.name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    write_atomic(directory / MANIFEST, json.dumps({"complete": True, "files": files},
                                                  indent=2) + "\n")
    return directory / MANIFEST


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of a results directory, or None when the set is incomplete (no manifest,
    or a listed file missing or changed)."""
    target = Path(directory)
    try:
        manifest = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
        for name, meta in manifest["files"].items():
            data = (target / name).read_bytes()
            if len(data) != meta["bytes"] or hashlib.sha256(data).hexdigest() != meta["sha256"]:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return manifest if isinstance(manifest, dict) else None


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

    @property
    def spans(self) -> SpanLog | None:
        """One span per job of a traced run (``observation.spans``); None when untraced."""
        return self._trace.spans if self._trace is not None else None

    # --- output -------------------------------------------------------------------------------

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.summary, indent=indent, allow_nan=False)

    def save(self, directory: str | os.PathLike[str], *, force: bool = False,
             report: System | None = None) -> list[Path]:
        """Write summary.json, timeline.parquet, breakers.parquet (and requests.parquet when
        traced) into ``directory``, then ``manifest.json`` last; with ``report`` (the run's
        System) also the PNG figures and report.html, as ``simulate --out`` does.

        Refuses to overwrite earlier results unless ``force`` (which first removes the
        earlier set and any temporary files a killed run left), and never replaces anything
        that is not a regular file. Returns the paths written, the manifest last.
        """
        target = Path(directory)
        names = list(OUTPUT_FILES)
        if report is not None:
            from faultmesh.simulations.presentation.report import REPORT_FILES

            names += REPORT_FILES
        check_output(target, names, force=force)
        # Ask before writing anything: a missing package would otherwise leave half the files.
        with requires("data", "writing Parquet files"):
            import pandas  # noqa: F401
            import pyarrow  # noqa: F401
        target.mkdir(parents=True, exist_ok=True)
        clear_output(target, names)
        written = []
        for name in OUTPUT_FILES:
            if name == "requests.parquet" and not self.traced:
                continue
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
        if report is not None:
            from faultmesh.simulations.presentation.report import write_report

            written += write_report(self, target, report)
        written.append(write_manifest(target, written))
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
            f"{name}: {e['requests']:,} requests, availability {format_percent(e['availability'])}"
            for name, e in s["entries"].items())
        scenario = s["scenario"] or "no faults"
        return (f"<Run {s['system']} ({scenario}, seed {s['seed']}, "
                f"{format_duration(s['duration_s'])}): {s['verdict']}; {entries}>")
