"""Pictures of runs and systems, as matplotlib Figures (no pyplot state, no GUI needed).

Each function returns a ``matplotlib.figure.Figure``; Jupyter displays it inline, and
``fig.savefig(path)`` writes it. The functions read a ``Run``'s DataFrames and summary only,
so they work on runs loaded back from disk too.

- ``timeline``: availability and latency percentiles over time, fault windows shaded;
- ``breaker_states``: each circuit breaker's state over time, one lane per edge;
- ``latency_distribution``: histogram and CDF of request latency per entry;
- ``topology``: the call graph, with failed instances and down services coloured (a
  counterexample), or services coloured by utilisation.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

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
    top.set_ylim(bottom=max(0.0, _lowest(top) - 5), top=100.5)
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
    """One lane per breaker edge, coloured by state over the run."""
    frame = run.breakers
    end = run.summary["duration_s"]
    edges = sorted(run.summary.get("breakers", {}))
    fig = Figure(figsize=(10, 1 + 0.4 * max(1, len(edges))), layout="constrained")
    ax = fig.subplots()
    for lane, edge in enumerate(edges):
        rows = frame[frame["edge"] == edge]
        times = [0.0, *rows["time_s"].tolist(), end]
        states = ["closed", *rows["state"].tolist()]
        for start, stop, state in zip(times, times[1:], states, strict=False):
            ax.barh(lane, stop - start, left=start, height=0.5, color=STATE_COLOURS[state], lw=0,
                    zorder=2)
    _shade_faults(ax, run.summary, label=False)
    ax.set_yticks(range(len(edges)), edges, fontsize=8)
    ax.set_xlim(0, end)
    ax.set_xlabel("time (s)")
    if not edges:
        ax.text(0.5, 0.5, "no circuit breakers configured", ha="center", va="center",
                transform=ax.transAxes)
    ax.legend(handles=[Patch(color=c, label=s.replace("_", "-"))
                       for s, c in STATE_COLOURS.items()], loc="upper right", fontsize=8,
              ncol=3)
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
    listed; with ``utilization`` ({service: 0..1+}) services are coloured by it instead."""
    import networkx as nx
    from faultmesh.model.graph import call_graph
    from matplotlib import colormaps

    graph = call_graph(system)
    layout = _layered_layout(graph)
    fig = Figure(figsize=(max(8, 0.9 * len(graph)), 6), layout="constrained")
    ax = fig.subplots()
    ax.set_axis_off()
    colours = []
    cmap = colormaps["YlOrRd"]
    for node, data in graph.nodes(data=True):
        if data["kind"] == "source":
            colours.append("#dddddd")
        elif utilization is not None:
            colours.append(cmap(min(1.0, utilization.get(node, 0.0))))
        elif node in down:
            colours.append("#f1948a")
        else:
            colours.append("#aed6f1")
    solid = [(u, v) for u, v, d in graph.edges(data=True)
             if not d["info"].optional and not d["info"].asynchronous]
    dashed = [(u, v) for u, v, d in graph.edges(data=True)
              if d["info"].optional or d["info"].asynchronous]
    nx.draw_networkx_nodes(graph, layout, ax=ax, node_color=colours, node_size=1400,
                           edgecolors="#34495e")
    # Curved edges keep a call that skips a layer from hiding behind the nodes it passes.
    nx.draw_networkx_edges(graph, layout, ax=ax, edgelist=solid, arrows=True, node_size=1400,
                           edge_color="#34495e", connectionstyle="arc3,rad=0.12")
    nx.draw_networkx_edges(graph, layout, ax=ax, edgelist=dashed, arrows=True, node_size=1400,
                           style="dashed", edge_color="#7f8c8d", connectionstyle="arc3,rad=0.12")
    labels = {}
    for node, data in graph.nodes(data=True):
        label = node if data["kind"] == "source" else f"{node}\n×{data['replicas']}"
        if utilization is not None and node in utilization:
            label += f"\n{utilization[node]:.0%}"
        labels[node] = label
    nx.draw_networkx_labels(graph, layout, labels=labels, ax=ax, font_size=7)
    heading = title or system.name
    if failed:
        heading += "\nfailed: " + ", ".join(failed)
    ax.set_title(heading, fontsize=10)
    if utilization is not None:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        fig.colorbar(ScalarMappable(Normalize(0, 1), cmap), ax=ax, label="utilisation",
                     shrink=0.6)
    elif down:
        ax.legend(handles=[Patch(color="#f1948a", label="down"),
                           Patch(color="#aed6f1", label="up")], loc="lower right", fontsize=8)
    return fig


def _layered_layout(graph: Any) -> dict[str, tuple[float, float]]:
    """Callers left of callees: layers by longest call distance from a source."""
    import networkx as nx

    depth: dict[str, int] = {}
    condensed = nx.condensation(graph)
    for component in nx.topological_sort(condensed):
        members = condensed.nodes[component]["members"]
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
