"""The run's timeline as inline SVG for ``report.html``: interactive without a script.

Availability over time for the entries ``plots.ranked_entries`` picks (the rest pooled as
"other"), the warm-up and every fault window shaded and labelled; each point and each fault
band carries an SVG ``<title>``, which browsers show as a tooltip on hover. Plain text, no
external resource, so the page stays one self-contained file.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from faultmesh.model.units import format_duration, format_percent

if TYPE_CHECKING:
    from faultmesh.simulations.observation.results import Run

# matplotlib's tab10 without its grey (the pooled series'), as the PNG timeline draws them.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#bcbd22", "#17becf")
OTHER = "#7f7f7f"
WIDTH, HEIGHT = 1000, 330
LEFT, RIGHT, TOP, BOTTOM = 56, 250, 24, 42
POINTS = 150  # points per series at most (windows are merged beyond)


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def timeline_svg(run: Run) -> str:
    """The availability timeline as an ``<svg>`` element (a string)."""
    from faultmesh.simulations.presentation.plots import (
        _pooled_timeline,
        entry_rows,
        ranked_entries,
    )

    summary = run.summary
    frame = run.timeline
    end = float(summary["duration_s"]) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + plot_w * min(max(t / end, 0.0), 1.0)

    def y(share: float) -> float:
        return TOP + plot_h * (1.0 - share)

    parts = [f"<svg class='timeline' "
             f"viewBox='0 0 {WIDTH} {HEIGHT}' width='{WIDTH}' height='{HEIGHT}' role='img' "
             f"aria-label='availability over time'>"]
    warmup = float(summary.get("warmup_s") or 0.0)
    if warmup > 0:
        parts.append(f"<rect x='{x(0):.1f}' y='{TOP}' width='{x(warmup) - x(0):.1f}' "
                     f"height='{plot_h}' fill='#bbbbbb' fill-opacity='0.25'>"
                     f"<title>warm-up: 0 s to {_esc(format_duration(warmup))} "
                     "(not counted)</title></rect>")
    for index, fault in enumerate(summary.get("faults") or []):
        until = fault["until"] if fault["until"] is not None else end
        parts.append(
            f"<rect class='fault' x='{x(fault['at']):.1f}' y='{TOP}' "
            f"width='{max(1.0, x(until) - x(fault['at'])):.1f}' height='{plot_h}' "
            f"fill='#c0392b' fill-opacity='0.12'><title>{_esc(fault['fault'])}: "
            f"{_esc(format_duration(fault['at']))} to {_esc(format_duration(until))}"
            "</title></rect>")
        parts.append(f"<text x='{x(fault['at']) + 3:.1f}' y='{TOP + 12 + 12 * (index % 3)}' "
                     f"font-size='11' fill='#c0392b'>{_esc(fault['fault'])}</text>")
    # Axes: availability 0-100 % up, time across.
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f"<line x1='{LEFT}' x2='{LEFT + plot_w}' y1='{y(share):.1f}' "
                     f"y2='{y(share):.1f}' stroke='#dddddd'/>"
                     f"<text x='{LEFT - 6}' y='{y(share) + 4:.1f}' font-size='11' "
                     f"text-anchor='end'>{share * 100:.0f}%</text>")
    for k in range(7):
        t = end * k / 6
        parts.append(f"<text x='{x(t):.1f}' y='{TOP + plot_h + 16}' font-size='11' "
                     f"text-anchor='middle'>{_esc(format_duration(t))}</text>")
    parts.append(f"<text x='{LEFT + plot_w / 2:.1f}' y='{HEIGHT - 6}' font-size='12' "
                 "text-anchor='middle'>time</text>"
                 f"<text x='14' y='{TOP + plot_h / 2:.1f}' font-size='12' text-anchor='middle' "
                 f"transform='rotate(-90 14 {TOP + plot_h / 2:.1f})'>availability</text>")
    shown, rest, basis = ranked_entries(run)
    series: list[tuple[str, str, Any]] = [
        (name, PALETTE[i % len(PALETTE)], rows)
        for i, (name, rows) in enumerate(zip(shown, entry_rows(frame, shown), strict=True))]
    if rest:
        series.append((f"other ({len(rest)} entries)", OTHER, _pooled_timeline(frame, rest)))
    legend_x = LEFT + plot_w + 16
    if rest:
        parts.append(f"<text x='{legend_x}' y='{TOP + 4}' font-size='11' fill='#555'>"
                     f"top {len(shown)} of {len(shown) + len(rest)} by {_esc(basis)}</text>")
    for index, (name, colour, rows) in enumerate(series):
        points = _points(rows)
        if points:
            path = " ".join(f"{x(t):.1f},{y(a):.1f}" for t, a, _, _ in points
                            if a is not None)
            parts.append(f"<g class='series' data-entry='{_esc(name)}'>"
                         f"<polyline points='{path}' fill='none' stroke='{colour}' "
                         "stroke-width='1.5'/>")
            for t, a, p99, n in points:
                if a is None:
                    continue
                tip = (f"{name} at {format_duration(t)}: availability {format_percent(a)}, "
                       f"p99 {'n/a' if p99 is None else format_duration(p99)}, "
                       f"{n:,} requests")
                parts.append(f"<circle class='point' cx='{x(t):.1f}' cy='{y(a):.1f}' r='2.5' "
                             f"fill='{colour}'><title>{_esc(tip)}</title></circle>")
            parts.append("</g>")
        row_y = TOP + 22 + 16 * index
        parts.append(f"<line x1='{legend_x}' x2='{legend_x + 18}' y1='{row_y - 4}' "
                     f"y2='{row_y - 4}' stroke='{colour}' stroke-width='2'/>"
                     f"<text x='{legend_x + 24}' y='{row_y}' font-size='11'>{_esc(name)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _points(rows: Any) -> list[tuple[float, float | None, float | None, int]]:
    """(time, availability, p99, requests) per point, windows merged so that a series has
    at most POINTS points (availability pooled over the merged requests, worst p99)."""
    times = rows["time_s"].tolist()
    if not times:
        return []
    requests = rows["requests"].tolist()
    ok = rows["ok"].tolist()
    p99 = rows["p99"].tolist()
    step = max(1, -(-len(times) // POINTS))
    out = []
    for start in range(0, len(times), step):
        n = int(sum(requests[start:start + step]))
        good = sum(ok[start:start + step])
        worst = [v for v in p99[start:start + step] if v == v]  # NaN != NaN
        out.append((float(times[start]), good / n if n else None,
                    max(worst) if worst else None, n))
    return out


__all__ = ["timeline_svg"]
