"""A run as pictures and a self-contained ``report.html`` that opens in any browser.

``write_report(run, directory, system)`` saves the PNG plots of ``simulations.plots`` (each
drawn once by ``presentation.raster``) and an
HTML page that tells the run's story, top to bottom: what happened in a few sentences; the
scenario's faults as a table; an interactive timeline (inline SVG: fault windows shaded and
labelled, availability of the top entries, every point's values on hover through SVG
``<title>`` tooltips); the entries that went down and when; the breakers' transitions; the
properties that failed; then the tables and the PNG figures (base64). The page loads nothing:
no external file, font, script or style. Files are written atomically; the caller decides
about overwriting.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import html
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faultmesh.model.files import write_atomic
from faultmesh.model.units import format_duration, format_percent

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from faultmesh.model.system import System
    from faultmesh.simulations.observation.results import Run
    from faultmesh.simulations.observation.summary import RunSummary, Violation

FIGURES = ("timeline.png", "breakers.png", "latency.png", "topology.png")
REPORT_FILES = (*FIGURES, "report.html")


def figure_makers(run: Run, system: System) -> dict[str, Callable[[], Figure]]:
    """What draws each of the report's figures, by file name (nothing drawn yet)."""
    from faultmesh.simulations.presentation import (
        plots,  # matplotlib loads only when a report is written
    )

    utilization = {name: s["utilization"] for name, s in run.summary["services"].items()
                   if s["utilization"] is not None}
    return {
        "timeline.png": lambda: plots.timeline(run),
        "breakers.png": lambda: plots.breaker_states(run),
        "latency.png": lambda: plots.latency_distribution(run),
        "topology.png": lambda: plots.topology(system, utilization=utilization,
                                               title=f"{system.name}: utilization"),
    }


def figures(run: Run, system: System) -> dict[str, Figure]:
    """The report's figures by file name."""
    return {name: make() for name, make in figure_makers(run, system).items()}


def _png(fig: Figure) -> bytes:
    from faultmesh.simulations.presentation.raster import DPI, png

    return png(fig, DPI)


@contextlib.contextmanager
def young_garbage() -> Iterator[Callable[[], None]]:
    """Automatic garbage collection paused while figures are drawn; the caller collects the
    youngest generation (``collect()``) after each figure it drops.

    A figure is a web of reference cycles (artists, transforms, callbacks) some ten thousand
    objects strong that lives for the whole of its drawing: long enough for the collector to
    promote it to the oldest generation, where four figures' worth set off a full collection,
    a walk over every object the process holds, a run's results included (70 ms after a
    one-minute 84-entry run, more after longer ones). Paused, the figure stays young and its
    garbage is freed by collecting the youngest generation, which walks only what was
    allocated since. The collector's state is restored however the block ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield _collect_young
    finally:
        if enabled:
            gc.enable()


def _collect_young() -> None:
    gc.collect(0)


def write_report(run: Run, directory: str | os.PathLike[str], system: System) -> list[Path]:
    """Write the PNG figures and report.html into ``directory``; returns the paths."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    images: dict[str, bytes] = {}
    with young_garbage() as collect:
        for name, make in figure_makers(run, system).items():
            images[name] = _png(make())
            collect()  # the figure just drawn
    written = []
    for name, data in images.items():
        write_atomic(target / name, data)
        written.append(target / name)
    page = render_html(run, images)
    write_atomic(target / "report.html", page.encode("utf-8"))
    written.append(target / "report.html")
    return written


def _percent(value: float | None) -> str:
    return format_percent(value)


def _count(value: int) -> str:
    return f"{value:,}"


def _duration(value: float | None) -> str:
    return "n/a" if value is None else format_duration(value)


def _table(headers: list[str], rows: list[list[str]], table_id: str | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    ident = f" id='{table_id}'" if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _move(move: list[Any]) -> str:
    """A breaker transition ``[t, state, label]`` as ``12.3s cart-0 open``."""
    label = f" {move[2]}" if len(move) > 2 else ""
    return f"{format_duration(move[0])}{label} {move[1]}"


def _violation(violation: Violation) -> str:
    """A violation as the terminal shows it: when, then what (not the raw record)."""
    at = violation["at"]
    when = "over the run" if at is None else f"at {format_duration(at)}"
    return f"{when}: {html.escape(violation['detail'])}"


def root_causes_table(summary: RunSummary) -> str | None:
    """Where each entry's failures started (the terminal's root causes), most first."""
    rows = []
    for name, e in summary["entries"].items():
        causes = sorted(e["root_causes"].items(), key=lambda kv: (-kv[1], kv[0]))
        if not e["failed"] or not causes:
            continue
        share = ", ".join(f"{html.escape(cause)} {_count(n)} ({_percent(n / e['failed'])})"
                          for cause, n in causes)
        rows.append([html.escape(name), _count(e["failed"]), share])
    return _table(["entry", "failed", "root causes"], rows) if rows else None


def phases_table(summary: RunSummary) -> str | None:
    """Each stretch between fault boundaries: every entry's availability and p99 in it, and
    the breakers' moves (the terminal's phases)."""
    phases = summary.get("phases")
    if not phases:
        return None
    entries = list(summary["entries"])
    rows = []
    for phase in phases:
        cells = [f"{format_duration(phase['from'])} → {format_duration(phase['to'])}",
                 html.escape(phase["label"])]
        for entry in entries:
            e = phase["entries"].get(entry)
            cells.append("no requests" if e is None or not e["requests"] else
                         f"{_percent(e['availability'])}, p99 {_duration(e['p99'])}")
        moves = "; ".join(f"{html.escape(edge)} " + " ".join(f"{state}×{_count(n)}"
                                                            for state, n in counts.items())
                          for edge, counts in phase["breakers"].items())
        rows.append([*cells, moves])
    headers = ["time", "phase", *(f"{html.escape(entry)} (availability, p99)"
                                  for entry in entries), "breakers"]
    return _table(headers, rows)


def summary_tables(summary: RunSummary) -> str:
    """Entries, root causes, services, phases, properties and breakers as HTML tables."""
    entries = [[html.escape(name), _count(e["requests"]), _count(e["ok"]), _count(e["failed"]),
                _percent(e["availability"]), _duration(e["latency_s"]["p50"]),
                _duration(e["latency_s"]["p90"]), _duration(e["latency_s"]["p99"])]
               for name, e in summary["entries"].items()]
    services = [[html.escape(name), _percent(s["utilization"]), _count(s["requests"]),
                 _count(s["rejected"]), _count(s["retries"])]
                for name, s in summary["services"].items()]
    breakers = [[html.escape(edge), html.escape(", ".join(map(_move, b["transitions"])))]
                for edge, b in summary["breakers"].items()]
    properties = []
    for p in summary["properties"]:
        colour = "#1e8449" if p["status"] == "holds" else "#c0392b"
        violations = p["violations"]
        first = _violation(violations[0]) if violations else ""
        properties.append([html.escape(p["name"]),
                           f"<b style='color:{colour}'>{html.escape(p['status'])}</b>",
                           _count(p.get("violation_count", len(violations))), first])
    parts = [
        "<h2>Entries</h2>",
        _table(["entry", "requests", "ok", "failed", "availability", "p50", "p90", "p99"],
               entries),
    ]
    causes = root_causes_table(summary)
    if causes is not None:
        parts += ["<h2>Root causes of failures</h2>", causes]
    parts += [
        "<h2>Services</h2>",
        _table(["service", "utilization", "requests", "rejected", "retries"], services),
    ]
    phases = phases_table(summary)
    if phases is not None:
        parts += ["<h2>Phases</h2>", phases]
    parts += [
        "<h2>Properties</h2>",
        _table(["property", "status", "violations", "first violation"], properties),
    ]
    if breakers:
        parts += ["<h2>Circuit breakers</h2>", _table(["edge", "transitions"], breakers)]
    return "\n".join(parts)


# An entry is "down" in a timeline window where it served less than this share of requests.
DOWN_BELOW = 0.5
# Breaker transitions listed in the page at most (the JSON summary has them all).
TRANSITION_ROWS = 200


def faults_table(summary: RunSummary) -> str | None:
    """The scenario's faults: what, from when, until when, and the call edges they touch."""
    faults = summary.get("faults") or []
    if not faults:
        return None
    end = summary["duration_s"]
    rows = [[html.escape(f["fault"]), html.escape(f["kind"]), _duration(f["at"]),
             _duration(f["until"] if f["until"] is not None else end)
             + ("" if f["until"] is not None else " (end of run)"),
             html.escape(", ".join(f.get("edges") or [])) or "—"]
            for f in faults]
    return _table(["fault", "kind", "from", "until", "call edges affected"], rows,
                  table_id="faults")


def down_intervals(run: Run) -> list[tuple[str, float, float, int, int]]:
    """(entry, from, until, requests, failed) for every stretch of consecutive timeline
    windows in which an entry served less than DOWN_BELOW of its requests, by start time."""
    frame = run.timeline
    if frame.empty:
        return []
    width = _window(frame)
    found: list[tuple[str, float, float, int, int]] = []
    for entry, rows in frame.groupby("entry", sort=True):
        current: list[Any] | None = None
        for t, requests, ok in zip(rows["time_s"], rows["requests"], rows["ok"], strict=True):
            if not requests:
                continue  # no request arrived: no evidence either way
            down = ok < DOWN_BELOW * requests
            if not down:
                if current is not None:
                    found.append(_interval(current))
                current = None
            elif current is not None and t - current[2] <= width * 1.5:
                current[2] = t + width
                current[3] += int(requests)
                current[4] += int(requests - ok)
            else:
                if current is not None:
                    found.append(_interval(current))
                current = [entry, float(t), float(t) + width, int(requests), int(requests - ok)]
        if current is not None:
            found.append(_interval(current))
    return sorted(found, key=lambda d: (d[1], d[0]))


def _interval(d: list[Any]) -> tuple[str, float, float, int, int]:
    return str(d[0]), float(d[1]), float(d[2]), int(d[3]), int(d[4])


def _window(frame: Any) -> float:
    times = sorted(set(frame["time_s"].tolist()))
    return float(times[1] - times[0]) if len(times) > 1 else 1.0


Interval = tuple[str, float, float, int, int]


def down_table(run: Run, downs: list[Interval] | None = None) -> str:
    rows = [[html.escape(entry), _duration(start), _duration(until), _count(failed),
             _count(requests)] for entry, start, until, requests, failed in
            (down_intervals(run) if downs is None else downs)]
    if not rows:
        return (f"<p>No entry went down: every entry served at least "
                f"{DOWN_BELOW:.0%} of its requests in every window.</p>")
    return _table(["entry", "down from", "until", "failed", "requests"], rows, table_id="down")


def transitions_table(summary: RunSummary) -> str | None:
    """Every breaker transition in time order: when, which edge, which caller instance."""
    moves: list[tuple[float, str, str, str]] = sorted(
        (float(move[0]), edge, str(move[2]) if len(move) > 2 else "", str(move[1]))
        for edge, b in summary["breakers"].items() for move in b["transitions"])
    if not moves:
        return None
    rows = [[_duration(t), html.escape(edge), html.escape(instance),
             f"<span class='state {html.escape(state)}'>{html.escape(state)}</span>"]
            for t, edge, instance, state in moves[:TRANSITION_ROWS]]
    table = _table(["time", "edge", "caller instance", "new state"], rows,
                   table_id="transitions")
    if len(moves) > TRANSITION_ROWS:
        table += (f"<p>and {_count(len(moves) - TRANSITION_ROWS)} more transitions "
                  "(summary.json lists them all)</p>")
    # Per edge, first the gist: when it first opened and how often it moved; the full list
    # folds away (a flapping breaker moves hundreds of times).
    edges = list(dict.fromkeys(edge for _, edge, _, _ in moves))
    gist = []
    for edge in edges:
        mine = [m for m in moves if m[1] == edge]
        opened = next((t for t, _, _, state in mine if state == "open"), None)
        gist.append([html.escape(edge), "never" if opened is None else _duration(opened),
                     _count(len(mine)), html.escape(summary["breakers"][edge]["state"])])
    summary_table = _table(["edge", "first opened", "transitions", "state at the end"], gist,
                           table_id="breakers")
    return (f"{summary_table}<details{' open' if len(moves) <= 20 else ''}><summary>all "
            f"{_count(len(moves))} transitions in time order</summary>{table}</details>")


def story(run: Run, downs: list[Interval] | None = None) -> str:
    """What happened, in a few sentences."""
    summary = run.summary
    faults = summary.get("faults") or []
    downs = down_intervals(run) if downs is None else downs
    failed = [p["name"] for p in summary["properties"] if p["status"] != "holds"]
    moves = sum(len(b["transitions"]) for b in summary["breakers"].values())
    requests = sum(e["requests"] for e in summary["entries"].values())
    lost = sum(e["failed"] for e in summary["entries"].values())
    parts = [f"{_count(requests)} requests over {len(summary['entries'])} entries, "
             f"{_count(lost)} failed ({_percent(lost / requests if requests else None)})."]
    parts.append(f"The scenario injected {len(faults)} fault{'s' if len(faults) != 1 else ''}"
                 + (": " + "; ".join(html.escape(f["fault"]) + f" at {_duration(f['at'])}"
                                    for f in faults[:5])
                    + (f" and {len(faults) - 5} more" if len(faults) > 5 else "") if faults
                    else "") + ".")
    if downs:
        entries = list(dict.fromkeys(d[0] for d in downs))
        parts.append(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'} went down, "
                     f"the first at {_duration(downs[0][1])} ({html.escape(downs[0][0])}).")
    else:
        parts.append("No entry went down.")
    if moves:
        parts.append(f"Circuit breakers changed state {_count(moves)} times.")
    parts.append(f"{len(failed)} propert{'y' if len(failed) == 1 else 'ies'} failed"
                 + (": " + ", ".join(html.escape(n) for n in failed) if failed else "") + ".")
    return "<p class='story'>" + " ".join(parts) + "</p>"


def render_html(run: Run, images: dict[str, bytes]) -> str:
    summary = run.summary
    scenario = summary["scenario"] or "no faults"
    title = f"{summary['system']} — {scenario}"
    figures_html = "\n".join(
        f"<figure id='figure-{name[:-4]}'><img alt='{name[:-4]}' src='data:image/png;base64,"
        f"{base64.b64encode(data).decode('ascii')}'><figcaption>{name[:-4]}</figcaption></figure>"
        for name, data in images.items()
    )
    from faultmesh.simulations.presentation.svg import timeline_svg

    downs = down_intervals(run)  # the story and the table both tell them
    faults = faults_table(summary)
    transitions = transitions_table(summary)
    failed = [p for p in summary["properties"] if p["status"] != "holds"]
    story_html = "\n".join([
        story(run, downs),
        "<h2>Faults</h2>",
        faults if faults is not None else "<p>No faults: the plain workload.</p>",
        "<h2>Timeline</h2>",
        "<p class='hint'>Hover a point for its values, a shaded band for its fault.</p>",
        timeline_svg(run),
        "<h2>Entries that went down</h2>",
        down_table(run, downs),
        "<h2>Circuit breaker transitions</h2>",
        transitions if transitions is not None else "<p>No breaker changed state.</p>",
        "<h2>Failed properties</h2>",
        (_table(["property", "first violation"],
                [[html.escape(p["name"]), _violation(p["violations"][0])
                  if p["violations"] else ""] for p in failed], table_id="failed")
         if failed else "<p>Every property held.</p>"),
    ])
    verdict = summary["verdict"]
    colour = "#1e8449" if verdict == "holds" else "#c0392b"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
th {{ background: #f4f6f8; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; }}
figcaption {{ color: #666; font-size: 0.85em; }}
.story {{ font-size: 1.05em; line-height: 1.5; }}
.hint {{ color: #666; font-size: 0.85em; }}
.state.open {{ color: #c0392b; }} .state.half_open {{ color: #b9770e; }}
.state.closed {{ color: #1e8449; }}
svg.timeline {{ max-width: 100%; height: auto; font-family: system-ui, sans-serif; }}
svg.timeline .point:hover {{ r: 5; }}
svg.timeline .fault:hover {{ fill-opacity: 0.3; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>seed {summary['seed']}, {format_duration(summary['duration_s'])} simulated, warm-up
{format_duration(summary['warmup_s'])} — verdict:
<b style="color:{colour}">{html.escape(str(verdict))}</b></p>
{story_html}
<h2>Details</h2>
{summary_tables(summary)}
<h2>Figures</h2>
{figures_html}
</body></html>
"""
