"""Pictures of runs and systems, as matplotlib Figures (no pyplot state, no GUI needed).

Each function returns a ``matplotlib.figure.Figure``; Jupyter displays it inline, and
``fig.savefig(path)`` writes it. The functions read a ``Run``'s DataFrames and summary only,
so they work on runs loaded back from disk too.

- ``timeline``: availability and latency percentiles over time, fault windows shaded;
- ``breaker_states``: each circuit breaker's state over time, one lane per edge;
- ``latency_distribution``: histogram and CDF of request latency per entry;
- ``topology``: the call graph, with failed instances and down services coloured (a
  counterexample), or services coloured by utilization; each service's instances by zone.
- ``sweep``: a sweep's table (``summarize``): metric against one parameter with confidence
  intervals (``sweep_lines``), or heatmaps over two (``sweep_heatmap``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from faultmesh.model.extras import requires
from faultmesh.model.spec.build import DEFAULT_ZONE as IMPLICIT_ZONE
from faultmesh.model.units import format_percent

with requires("data", "faultmesh.plots"):
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

if TYPE_CHECKING:
    from faultmesh.model.system import System
    from faultmesh.simulations.observation.results import Run

STATE_COLOURS = {"closed": "#2e8b57", "half_open": "#e6a23c", "open": "#c0392b"}
FAULT_COLOUR = "#c0392b"
WARMUP_COLOUR = "#bbbbbb"


def _shade_faults(ax: Any, summary: Mapping[str, Any], *, label: bool) -> None:
    """Shade the warm-up and every fault window of the run on ``ax``."""
    end = summary["duration_s"]
    warmup = summary.get("warmup_s", 0.0) or 0.0
    if warmup > 0:
        ax.axvspan(0, warmup, color=WARMUP_COLOUR, alpha=0.25, lw=0, zorder=0)
    for index, fault in enumerate(summary.get("faults", [])):
        until = fault["until"] if fault["until"] is not None else end
        ax.axvspan(fault["at"], until, color=FAULT_COLOUR, alpha=0.12, lw=0, zorder=0)
        if label:
            ax.annotate(fault["fault"], xy=(fault["at"], 1.0), xycoords=("data", "axes fraction"),
                        xytext=(2, -10 - 10 * (index % 3)), textcoords="offset points",
                        fontsize=7, color=FAULT_COLOUR)


def timeline(run: Run, entries: Collection[str] | None = None) -> Figure:
    """Availability (top) and latency p50/p90/p99 (bottom) over time, per entry."""
    frame = run.timeline
    summary = run.summary
    names = list(entries) if entries is not None else list(summary["entries"])
    fig = Figure(figsize=(10, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    colours = _colours(len(names))
    for name, colour in zip(names, colours, strict=True):
        rows = frame[frame["entry"] == name]
        if rows.empty:
            continue
        top.plot(rows["time_s"], rows["availability"] * 100, color=colour, lw=1.2, label=name)
        bottom.plot(rows["time_s"], rows["p99"] * 1000, color=colour, lw=1.2, label=f"{name} p99")
        bottom.plot(rows["time_s"], rows["p50"] * 1000, color=colour, lw=0.8, ls="--",
                    label=f"{name} p50")
    for ax in (top, bottom):
        _shade_faults(ax, summary, label=ax is top)
        ax.grid(alpha=0.3)
    top.set_ylabel("availability (%)")
    # Room above 100 %: a run at full availability draws its line at the top, where the
    # axes' frame hid it when the limit sat half a percent above over a 0-100 range.
    low = max(0.0, _lowest(top) - 5)
    top.set_ylim(bottom=low, top=100 + max(1.0, 0.04 * (100 - low)))
    bottom.set_ylabel("latency (ms)")
    if _positive(bottom):
        bottom.set_yscale("log")
    bottom.set_xlabel("time (s)")
    top.legend(loc="lower left", fontsize=8, ncol=2)
    bottom.legend(loc="upper left", fontsize=7, ncol=2)
    scenario = summary.get("scenario") or "no faults"
    fig.suptitle(f"{summary['system']} — {scenario} (seed {summary['seed']})")
    return fig


def breaker_states(run: Run) -> Figure:
    """One lane per breaker edge, coloured by state over the run.

    An edge has a breaker in each caller instance (and per policy): its lane is split into
    one thin strip per breaker, top to bottom in label order (``cart-0``, ``cart-1``, ...).
    """
    frame = run.breakers
    end = run.summary["duration_s"]
    summaries = run.summary.get("breakers", {})
    edges = sorted(summaries)
    fig = Figure(figsize=(10, 1 + 0.4 * max(1, len(edges))), layout="constrained")
    ax = fig.subplots()
    for lane, edge in enumerate(edges):
        rows = frame[frame["edge"] == edge]
        labels = sorted(summaries[edge].get("instances") or set(rows["instance"])) or [""]
        height = 0.5 / len(labels)
        for strip, label in enumerate(labels):
            mine = rows[rows["instance"] == label] if label else rows
            times = [0.0, *mine["time_s"].tolist(), end]
            states = ["closed", *mine["state"].tolist()]
            y = lane + 0.25 - height * (strip + 0.5)
            for start, stop, state in zip(times, times[1:], states, strict=False):
                ax.barh(y, stop - start, left=start, height=height, color=STATE_COLOURS[state],
                        lw=0, zorder=2)
    _shade_faults(ax, run.summary, label=False)
    ax.set_yticks(range(len(edges)), edges, fontsize=8)
    ax.set_xlim(0, end)
    ax.set_xlabel("time (s)")
    if not edges:
        ax.text(0.5, 0.5, "no circuit breakers configured", ha="center", va="center",
                transform=ax.transAxes)
    # Below the axes, not on them: inside, the legend covered the lanes' bars.
    fig.legend(handles=[Patch(color=c, label=s.replace("_", "-"))
                        for s, c in STATE_COLOURS.items()], loc="outside lower center",
               fontsize=8, ncol=3, frameon=False)
    ax.set_title("circuit breaker states")
    return fig


def latency_distribution(run: Run, entries: Collection[str] | None = None) -> Figure:
    """Histogram (left) and CDF (right) of request latency.

    Uses the per-request trace when the run has one; otherwise the run's streaming
    histograms (bucket counts with bounded relative error), so it works with traces off.
    """
    names = list(entries) if entries is not None else list(run.summary["entries"])
    fig = Figure(figsize=(10, 4), layout="constrained")
    hist_ax, cdf_ax = fig.subplots(1, 2)
    for name, colour in zip(names, _colours(len(names)), strict=True):
        values, weights = _latency_sample(run, name)
        if not len(values):
            continue
        millis = [v * 1000 for v in values]
        low = max(min(m for m in millis if m > 0) if any(m > 0 for m in millis) else 1e-3, 1e-3)
        high = max(max(millis), low * 10)
        bins = [low * (high / low) ** (i / 60) for i in range(61)]
        hist_ax.hist(millis, bins=bins, weights=weights, color=colour, alpha=0.5, label=name)
        order = sorted(zip(millis, weights, strict=True))
        total = sum(w for _, w in order)
        acc, xs, ys = 0.0, [], []
        for value, weight in order:
            acc += weight
            xs.append(value)
            ys.append(acc / total)
        cdf_ax.step(xs, ys, where="post", color=colour, label=name)
    for ax in (hist_ax, cdf_ax):
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms)")
        ax.grid(alpha=0.3)
    hist_ax.set_ylabel("requests")
    cdf_ax.set_ylabel("fraction of requests ≤ x")
    cdf_ax.axhline(0.99, color="#888888", lw=0.8, ls=":")
    hist_ax.legend(fontsize=8)
    fig.suptitle("latency distribution (successful requests)")
    return fig


def _latency_sample(run: Run, entry: str) -> tuple[list[float], list[float]]:
    """(values, weights) of successful-request latencies for one entry."""
    if run.traced:
        frame = run.requests
        rows = frame[(frame["entry"] == entry) & (frame["outcome"] == "ok")]
        values = rows["latency_s"].tolist()
        return values, [1.0] * len(values)
    buckets = run.latency_buckets(entry)
    return [value for value, _ in buckets], [float(count) for _, count in buckets]


def topology(system: System, *, down: Collection[str] = (), failed: Collection[str] = (),
             utilization: Mapping[str, float] | None = None, title: str | None = None) -> Figure:
    """The call graph. ``down`` services are red and ``failed`` (``instance:x-0``/``zone:a``)
    outlined; with ``utilization`` ({service: 0..1+}) services are coloured by it instead.

    Each service is a box sized to its label (name, replicas, utilization), and holds its
    instances grouped by zone: one square per instance in its zone's colour, beside the zone's
    name (a spec without zones has no zones to draw). Failed zones and instances are outlined
    in red.
    """
    from matplotlib import colormaps

    from faultmesh.model.graph import call_graph

    graph = call_graph(system)
    layout = _spread(graph, _layered_layout(graph), utilization is not None)
    xs = [x for x, _ in layout.values()] or [0.0]
    ys = [y for _, y in layout.values()] or [0.0]
    # One data unit is about an inch across (layers are placed by their widest label) and
    # about NODE_HEIGHT inches down, so boxes sized to their labels do not run into each other.
    width = max(xs) - min(xs) + 2 * LAYER_MARGIN
    height = (max(ys) - min(ys) + 1.4) * NODE_HEIGHT
    fig = Figure(figsize=(max(6.0, width + (1.6 if utilization is not None else 0.4)),
                          max(3.5, height + 1.4)), layout="constrained")
    ax = fig.subplots()
    ax.set_axis_off()
    cmap = colormaps["YlOrRd"]
    zoned = system.zones != (IMPLICIT_ZONE,)
    zone_colours = dict(zip(system.zones, _zone_colours(len(system.zones)), strict=True))
    boxes = {}
    for node, data in graph.nodes(data=True):
        if data["kind"] == "source":
            colour: Any = "#dddddd"
        elif utilization is not None:
            colour = cmap(min(1.0, utilization.get(node, 0.0)))
        elif node in down:
            colour = "#f1948a"
        else:
            colour = "#aed6f1"
        service = system.services.get(node) if data["kind"] != "source" else None
        boxes[node] = _node_box(ax, node, layout[node], colour, service, zoned, zone_colours,
                                set(failed), None if utilization is None
                                else utilization.get(node))
    for u, v, d in graph.edges(data=True):
        loose = d["info"].optional or d["info"].asynchronous
        # Arrows run between the boxes' edges (patchA/patchB), curved so that a call that
        # skips a layer does not hide behind the boxes it passes.
        ax.annotate("", xy=layout[v], xytext=layout[u], zorder=1, arrowprops=dict(
            arrowstyle="-|>", color="#7f8c8d" if loose else "#34495e",
            linestyle="--" if loose else "-", lw=1.0, shrinkA=2, shrinkB=2,
            patchA=boxes[u].patch, patchB=boxes[v].patch, connectionstyle="arc3,rad=0.12"))
    ax.set_xlim(min(xs) - LAYER_MARGIN, max(xs) + LAYER_MARGIN)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    heading = title or system.name
    if failed:
        heading += "\nfailed: " + ", ".join(failed)
    ax.set_title(heading, fontsize=10)
    handles: list[Any] = []
    if zoned:
        handles += [Patch(facecolor=c, edgecolor="#34495e", label=f"zone {z}")
                    for z, c in zone_colours.items()]
    if utilization is not None:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        fig.colorbar(ScalarMappable(Normalize(0, 1), cmap), ax=ax, label="utilization",
                     shrink=0.6)
    elif down:
        handles += [Patch(color="#f1948a", label="down"), Patch(color="#aed6f1", label="up")]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6),
                   fontsize=8, frameon=False)
    return fig


NODE_PREFIX = "node:"  # gid of each service's box (tests and tools find nodes by it)


def _node_box(ax: Any, name: str, at: tuple[float, float], colour: Any, service: Any,
              zoned: bool, zone_colours: Mapping[str, Any], failed: set[str],
              utilization: float | None) -> Any:
    """One node: a box sized to its contents (an AnnotationBbox), so no label spills out."""
    from matplotlib.colors import to_rgb
    from matplotlib.offsetbox import AnnotationBbox, TextArea, VPacker

    red, green, blue = to_rgb(colour)
    ink = "white" if 0.299 * red + 0.587 * green + 0.114 * blue < 0.5 else "black"
    rows: list[Any] = [TextArea(name, textprops={"fontsize": 8, "fontweight": "bold",
                                                 "color": ink})]
    if service is not None:
        detail = f"{service.replicas} replica{'' if service.replicas == 1 else 's'}"
        if utilization is not None:
            detail += f" · {format_percent(utilization)}"
        rows.append(TextArea(detail, textprops={"fontsize": 7, "color": ink}))
        if zoned:
            rows.append(_zone_chips(service, zone_colours, failed))
    content = VPacker(children=rows, align="center", pad=0, sep=2)
    outline = "#c0392b" if service is not None and f"service:{name}" in failed else "#34495e"
    box = AnnotationBbox(content, at, xycoords="data", frameon=True, pad=0.35, zorder=3,
                         bboxprops={"boxstyle": "round,pad=0.35", "facecolor": colour,
                                    "edgecolor": outline})
    box.set_gid(NODE_PREFIX + name)
    ax.add_artist(box)
    return box


def _zone_chips(service: Any, zone_colours: Mapping[str, Any], failed: set[str]) -> Any:
    """The service's instances grouped by zone: ``a ■■  b ■``, one square per instance."""
    from matplotlib.offsetbox import DrawingArea, HPacker, TextArea
    from matplotlib.patches import Rectangle

    groups: list[Any] = []
    for zone in zone_colours:
        indices = [i for i, z in enumerate(service.zones) if z == zone]
        if not indices:
            continue
        size, gap = 7.0, 2.0
        chips = DrawingArea(len(indices) * (size + gap) - gap, size)
        for slot, index in enumerate(indices):
            down = f"zone:{zone}" in failed or f"instance:{service.name}-{index}" in failed
            chips.add_artist(Rectangle((slot * (size + gap), 0), size, size,
                                       facecolor=zone_colours[zone],
                                       edgecolor="#c0392b" if down else "#34495e",
                                       lw=1.6 if down else 0.6))
        groups.append(HPacker(children=[TextArea(zone, textprops={"fontsize": 6}), chips],
                              align="center", pad=0, sep=2))
    return HPacker(children=groups, align="center", pad=0, sep=6)


def _zone_colours(count: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["Pastel2"]
    return [cmap(i % cmap.N) for i in range(count)]


# Inches per character of a node's bold name (8 pt), the gap between layers, the margin at
# the sides (half the widest first or last box, roughly) and the height of one node row.
CHAR_WIDTH, LAYER_GAP, LAYER_MARGIN, NODE_HEIGHT = 0.085, 0.7, 1.0, 0.75


def _spread(graph: Any, layout: Mapping[str, tuple[float, float]],
            with_utilization: bool) -> dict[str, tuple[float, float]]:
    """The layered layout with layers placed by the width of their widest label (in inches)."""
    widths: dict[float, float] = {}
    for node, (x, _) in layout.items():
        replicas = graph.nodes[node].get("replicas", 0)
        detail = len(f"{replicas} replicas") + (9 if with_utilization else 0)
        widths[x] = max(widths.get(x, 0.0), CHAR_WIDTH * max(len(node), detail))
    centres: dict[float, float] = {}
    edge = 0.0
    for x in sorted(widths):
        centres[x] = edge + widths[x] / 2
        edge += widths[x] + LAYER_GAP
    return {node: (centres[x], y) for node, (x, y) in layout.items()}


def _layered_layout(graph: Any) -> dict[str, tuple[float, float]]:
    """Callers left of callees: layers by longest call distance from a source."""
    from faultmesh.model.graph import components

    depth: dict[str, int] = {}
    successors = {node: list(graph.successors(node)) for node in graph.nodes}
    # Components come callees first: reversed, each comes after every caller outside it.
    for members in reversed(components(successors, graph.nodes)):
        level = max((depth[p] + 1 for m in members for p in graph.predecessors(m)
                     if p in depth), default=0)
        for member in members:
            depth[member] = level
    layers: dict[int, list[str]] = {}
    for node in graph.nodes:
        layers.setdefault(depth[node], []).append(node)
    positions = {}
    for level, nodes in layers.items():
        for index, node in enumerate(sorted(nodes)):
            positions[node] = (float(level), -index + (len(nodes) - 1) / 2)
    return positions


def _colours(count: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def _lowest(ax: Any) -> float:
    lows = [min(line.get_ydata(), default=100.0) for line in ax.get_lines()]
    finite = [float(v) for v in lows if not math.isnan(float(v))]
    return min(finite, default=100.0)


def _positive(ax: Any) -> bool:
    return any(any(float(v) > 0 for v in line.get_ydata()) for line in ax.get_lines())


# ---------------------------------------------------------------------------------------------
# Sweeps: a table of ``summarize`` (means with confidence intervals per grid point)
# ---------------------------------------------------------------------------------------------

SWEEP_METRICS = (("availability", "availability (%)", 100.0),
                 ("latency_p99_s", "p99 latency (ms)", 1000.0))
SWEEP_ENTRIES = 6  # entries drawn at most (the first ones of the table)


def sweep(table: Any, params: list[str] | None = None,
          entries: Collection[str] | None = None) -> Figure:
    """A sweep's table as a figure: ``sweep_lines`` for one parameter, ``sweep_heatmap`` for two.

    ``table`` is ``summarize(runs)``; ``params`` defaults to the sweep's own (the table remembers
    them). Raises ValueError for a grid of no or more than two parameters.
    """
    params = list(params if params is not None else table.attrs.get("params", []))
    if len(params) == 1:
        return sweep_lines(table, params[0], entries)
    if len(params) == 2:
        return sweep_heatmap(table, params[0], params[1], entries)
    raise ValueError(f"a sweep plot draws one or two parameters; this table has {len(params)}"
                     f"{': ' + ', '.join(params) if params else ''}")


def sweep_entries(table: Any, entries: Collection[str] | None = None) -> list[str]:
    """The workload entries a sweep table has metrics for (the named ones, checked)."""
    suffix = "/availability_mean"
    known = [c[: -len(suffix)] for c in table.columns if c.endswith(suffix)]
    if entries is None:
        return known[:SWEEP_ENTRIES]
    missing = [e for e in entries if e not in known]
    if missing:
        raise ValueError(f"no metrics for {', '.join(missing)} in this table; it has "
                         f"{', '.join(known) or 'none'}")
    return list(entries)


def sweep_lines(table: Any, param: str, entries: Collection[str] | None = None) -> Figure:
    """Availability and p99 latency against one parameter: a line per entry, with the 95%
    confidence interval across seeds as error bars (clipped to the metric's range)."""
    names = sweep_entries(table, entries)
    values = list(table[param])  # one row per grid point, in grid order
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    xs = [float(v) for v in values] if numeric else list(range(len(values)))
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2, squeeze=False)[0]
    for ax, (metric, label, scale) in zip(axes, SWEEP_METRICS, strict=True):
        for name, colour in zip(names, _colours(len(names)), strict=True):
            means = [float(m) for m in table[f"{name}/{metric}_mean"]]
            cis = [0.0 if math.isnan(c) else float(c) for c in table[f"{name}/{metric}_ci95"]]
            # An interval is drawn within the metric's range (0 <= availability <= 1).
            top = 1.0 if metric == "availability" else math.inf
            low = [min(c, max(m, 0.0)) * scale for m, c in zip(means, cis, strict=True)]
            high = [min(c, max(top - m, 0.0)) * scale for m, c in zip(means, cis, strict=True)]
            ax.errorbar(xs, [m * scale for m in means], yerr=[low, high], marker="o",
                        capsize=4, color=colour, label=name)
        ax.set_xlabel(param)
        ax.set_ylabel(label)
        if not numeric or all(isinstance(v, int) for v in values):
            ax.set_xticks(xs, [str(v) for v in values])
        ax.grid(alpha=0.3)
    if names:
        axes[0].legend(fontsize="small")
    fig.suptitle(f"{table.attrs.get('system', 'sweep')}: mean with 95% CI across seeds")
    return fig


def sweep_heatmap(table: Any, rows: str, cols: str,
                  entries: Collection[str] | None = None) -> Figure:
    """Mean availability and p99 latency over a grid of two parameters, one row of heatmaps
    per entry, each cell labelled with its value."""
    import numpy as np

    names = sweep_entries(table, entries)
    row_values = list(dict.fromkeys(table[rows]))
    col_values = list(dict.fromkeys(table[cols]))
    fig = Figure(figsize=(11, 3.6 * max(1, len(names))), layout="constrained")
    axes = fig.subplots(max(1, len(names)), 2, squeeze=False)
    for i, name in enumerate(names):
        for ax, (metric, label, scale) in zip(axes[i], SWEEP_METRICS, strict=True):
            grid = np.full((len(row_values), len(col_values)), np.nan)
            for _, r in table.iterrows():
                grid[row_values.index(r[rows]), col_values.index(r[cols])] = \
                    r[f"{name}/{metric}_mean"] * scale
            cmap = "RdYlGn" if metric == "availability" else "viridis_r"
            image = ax.imshow(grid, cmap=cmap, aspect="auto")
            fig.colorbar(image, ax=ax, label=label)
            ax.set_xticks(range(len(col_values)), [str(v) for v in col_values])
            ax.set_yticks(range(len(row_values)), [str(v) for v in row_values])
            ax.set_xlabel(cols)
            ax.set_ylabel(rows)
            ax.set_title(f"{name}: {label}", fontsize="medium")
            for (r, c), value in np.ndenumerate(grid):
                if not math.isnan(value):
                    red, green, blue, _ = image.cmap(image.norm(value))
                    dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                    text = f"{value:.2f}%" if metric == "availability" else f"{value:.3g}"
                    ax.text(c, r, text, ha="center", va="center", fontsize="small",
                            color="white" if dark else "black")
    fig.suptitle(f"{table.attrs.get('system', 'sweep')}: mean across seeds")
    return fig
