"""A run as pictures and a self-contained ``report.html`` that opens in any browser.

``write_report(run, directory, system)`` saves the PNG plots of ``simulations.plots`` and an
HTML page embedding them (base64, no external files or scripts) with the summary tables and
the property verdicts. Files are written atomically; the caller decides about overwriting.
"""

from __future__ import annotations

import base64
import html
import io
import os
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


def figures(run: Run, system: System) -> dict[str, Figure]:
    """The report's figures by file name."""
    from faultmesh.simulations.presentation import (
        plots,  # matplotlib loads only when a report is written
    )

    utilization = {name: s["utilization"] for name, s in run.summary["services"].items()
                   if s["utilization"] is not None}
    return {
        "timeline.png": plots.timeline(run),
        "breakers.png": plots.breaker_states(run),
        "latency.png": plots.latency_distribution(run),
        "topology.png": plots.topology(system, utilization=utilization,
                                       title=f"{system.name}: utilization"),
    }


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def write_report(run: Run, directory: str | os.PathLike[str], system: System) -> list[Path]:
    """Write the PNG figures and report.html into ``directory``; returns the paths."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    images = {name: _png(fig) for name, fig in figures(run, system).items()}
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


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


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


def render_html(run: Run, images: dict[str, bytes]) -> str:
    summary = run.summary
    scenario = summary["scenario"] or "no faults"
    title = f"{summary['system']} — {scenario}"
    figures_html = "\n".join(
        f"<figure><img alt='{name[:-4]}' src='data:image/png;base64,"
        f"{base64.b64encode(data).decode('ascii')}'><figcaption>{name[:-4]}</figcaption></figure>"
        for name, data in images.items()
    )
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
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>seed {summary['seed']}, {format_duration(summary['duration_s'])} simulated, warm-up
{format_duration(summary['warmup_s'])} — verdict:
<b style="color:{colour}">{html.escape(str(verdict))}</b></p>
{summary_tables(summary)}
<h2>Figures</h2>
{figures_html}
</body></html>
"""
