"""Pictures of runs and systems, as matplotlib Figures (no pyplot state, no GUI needed).

Each function returns a ``matplotlib.figure.Figure``; Jupyter displays it inline, and
``fig.savefig(path)`` writes it. The functions read a ``Run``'s DataFrames and summary only,
so they work on runs loaded back from disk too.

- ``timeline``: availability and latency percentiles over time, fault windows shaded;
- ``breaker_states``: each circuit breaker's state over time, one lane per edge;
- ``latency_distribution``: histogram and CDF of request latency per entry;
  both draw the top TOP_ENTRIES entries by impact (failed requests) or, when none failed, by
  traffic, pool the rest as "other (N entries)", and keep their legend outside the axes;
- ``topology`` (module ``presentation.topology``): the call graph in layers, with failed
  instances and down services coloured (a counterexample), or services coloured by
  utilization; each service's instances by zone.
- ``sweep``: a sweep's table (``summarize``): metric against one parameter with confidence
  intervals (``sweep_lines``), or heatmaps over two (``sweep_heatmap``).
- ``stability_map``: a stability sweep over two parameters: recovered or not, time to recover,
  the verifier's boundary (``presentation.stability_plot``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from faultmesh.model.extras import requires

with requires("data", "faultmesh.plots"):
    import numpy as np
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, StepPatch

# The topology figure lives in its own module; it is one of this module's pictures.
from faultmesh.simulations.presentation.ticks import log_axis, ticks_in_view
from faultmesh.simulations.presentation.topology import NODE_PREFIX as NODE_PREFIX
from faultmesh.simulations.presentation.topology import _text_points
from faultmesh.simulations.presentation.topology import (
    layered_layout as layered_layout,
)
from faultmesh.simulations.presentation.topology import topology as topology

if TYPE_CHECKING:
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


# Entries drawn one by one at most; the rest are pooled into one "other (N entries)" series.
TOP_ENTRIES = 8
OTHER_COLOUR = "#7f7f7f"


def ranked_entries(run: Run, entries: Collection[str] | None = None,
                   top: int = TOP_ENTRIES) -> tuple[list[str], list[str], str]:
    """(entries drawn one by one, entries pooled as "other", how they were ranked).

    Named ``entries`` are all drawn. Otherwise the ``top`` entries by impact (failed requests,
    then requests) when any request failed, else by traffic (requests); ties by name."""
    stats = run.summary["entries"]
    if entries is not None:
        return list(entries), [], "as named"
    names = list(stats)
    impact = any(stats[n]["failed"] for n in names)
    if impact:
        names.sort(key=lambda n: (-stats[n]["failed"], -stats[n]["requests"], n))
    else:
        names.sort(key=lambda n: (-stats[n]["requests"], n))
    basis = "failed requests" if impact else "traffic"
    if len(names) <= top + 1:  # "other (1 entry)" would hide one line behind a grey one
        return names, [], basis
    return names[:top], names[top:], basis


def _legend_title(shown: list[str], rest: list[str], basis: str) -> str | None:
    if not rest:
        return None
    return f"top {len(shown)} of {len(shown) + len(rest)} entries by {basis}"


# Manual placement, in inches. The report's figures place their axes by hand: constrained
# layout measured every tick label and legend entry in an extra draw before the real one, most
# of the cost of saving these figures. Margins: the y label and tick labels left, the x label
# and ticks below, the title above.
LEFT_IN, BOTTOM_IN, TOP_IN, GAP_IN = 0.75, 0.5, 0.45, 0.15


def _legend_inches(labels: Collection[str], title: str | None, fontsize: float) -> float:
    """How wide a legend of ``labels`` (with line handles) is, in inches, by its texts' widths
    (measured without a renderer) and matplotlib's default legend spacings (in em)."""
    widest = max((_text_points(label, fontsize, False) for label in labels), default=0.0)
    # handle 2.0 em + its gap 0.8 em, border padding 0.4 em and frame each side.
    width = widest + fontsize * (2.0 + 0.8 + 2 * 0.4) + 2
    if title:
        width = max(width, _text_points(title, fontsize, False) + fontsize * 0.8 + 2)
    return width / 72


def _box(fig: Any, left: float, bottom: float, width: float, height: float) -> tuple[
        float, float, float, float]:
    """An axes rectangle given in inches, as figure fractions."""
    fig_w, fig_h = fig.get_size_inches()
    return (left / fig_w, bottom / fig_h, width / fig_w, height / fig_h)


def entry_rows(frame: Any, shown: list[str]) -> list[Any]:
    """Each of the ``shown`` entries' rows of a timeline frame (the frame split once, not
    compared row by row once per entry)."""
    codes, names = frame["entry"].factorize()
    index = {name: code for code, name in enumerate(names)}
    return [frame.take(np.flatnonzero(codes == index[name])) if name in index
            else frame.iloc[:0] for name in shown]


def _pooled_timeline(frame: Any, rest: list[str]) -> Any:
    """The pooled entries per time window: availability over all their requests, and the
    worst p99 and p50 among them (percentiles do not add up; the worst is an upper bound)."""
    import pandas as pd

    rows = frame[frame["entry"].isin(rest)]
    times, window = np.unique(rows["time_s"].to_numpy(), return_inverse=True)
    requests = np.bincount(window, rows["requests"].to_numpy(), len(times)).astype(np.int64)
    ok = np.bincount(window, rows["ok"].to_numpy(), len(times)).astype(np.int64)
    worst = {}
    for column in ("p99", "p50"):  # the largest value per window, missing ones (NaN) skipped
        worst[column] = np.full(len(times), np.nan)
        np.fmax.at(worst[column], window, rows[column].to_numpy(dtype=float))
    with np.errstate(invalid="ignore", divide="ignore"):
        availability = np.where(requests > 0, ok / np.maximum(requests, 1), np.nan)
    return pd.DataFrame({"time_s": times, "requests": requests, "ok": ok, **worst,
                         "availability": availability})


def timeline(run: Run, entries: Collection[str] | None = None, *,
             top: int = TOP_ENTRIES) -> Figure:
    """Availability (top) and latency p99 (solid) and p50 (dashed) below, over time.

    Without ``entries``, the ``top`` entries by impact (or traffic, see ``ranked_entries``) are
    drawn one by one and the others pooled as one grey "other (N entries)" series; one legend,
    right of the axes (never over the data), says which."""
    from matplotlib.lines import Line2D

    frame = run.timeline
    summary = run.summary
    shown, rest, basis = ranked_entries(run, entries, top)
    series: list[tuple[str, Any, Any]] = []
    for name, colour, rows in zip(shown, _colours(len(shown)), entry_rows(frame, shown),
                                  strict=True):
        series.append((name, colour, rows))
    if rest:
        series.append((f"other ({len(rest)} entries)", OTHER_COLOUR,
                       _pooled_timeline(frame, rest)))
    title = _legend_title(shown, rest, basis)
    legend_w = _legend_inches([label for label, _, _ in series], title, 7) + 2 * GAP_IN
    fig = Figure(figsize=(max(11.0, LEFT_IN + 5 + legend_w), 6))
    plot_w = fig.get_size_inches()[0] - LEFT_IN - legend_w
    panel = (6 - BOTTOM_IN - TOP_IN - GAP_IN) / 2
    upper = fig.add_axes(_box(fig, LEFT_IN, BOTTOM_IN + panel + GAP_IN, plot_w, panel))
    lower = fig.add_axes(_box(fig, LEFT_IN, BOTTOM_IN, plot_w, panel), sharex=upper)
    upper.tick_params(labelbottom=False)
    handles: list[Any] = []
    for label, colour, rows in series:
        if rows.empty:
            continue
        upper.plot(rows["time_s"], rows["availability"] * 100, color=colour, lw=1.2, label=label)
        lower.plot(rows["time_s"], rows["p99"] * 1000, color=colour, lw=1.2, label=f"{label} p99")
        lower.plot(rows["time_s"], rows["p50"] * 1000, color=colour, lw=0.8, ls="--",
                   label=f"{label} p50")
        handles.append(Line2D([], [], color=colour, lw=1.6, label=label))
    for ax in (upper, lower):
        _shade_faults(ax, summary, label=ax is upper)
        ax.grid(alpha=0.3)
    upper.set_xlim(0, summary["duration_s"])  # the run, as the breaker lanes show it
    upper.set_ylabel("availability (%)")
    # Room above 100 %: a run at full availability draws its line at the top, where the
    # axes' frame hid it when the limit sat half a percent above over a 0-100 range.
    low = max(0.0, _lowest(upper) - 5)
    upper.set_ylim(bottom=low, top=100 + max(1.0, 0.04 * (100 - low)))
    lower.set_ylabel("latency (ms)")
    if _positive(lower):
        log_axis(lower, "y")
    lower.set_xlabel("time (s)")
    if handles:
        handles += [Line2D([], [], color="#333333", lw=1.2, label="p99"),
                    Line2D([], [], color="#333333", lw=0.8, ls="--", label="p50")]
        # Outside the axes, right of both panels: inside, 84 entries covered both.
        fig.legend(handles=handles, loc="upper left", fontsize=7, title=title,
                   title_fontsize=7, borderaxespad=0,
                   bbox_to_anchor=_box(fig, LEFT_IN + plot_w + GAP_IN, 6 - TOP_IN, 0, 0)[:2])
    scenario = summary.get("scenario") or "no faults"
    fig.suptitle(f"{summary['system']} — {scenario} (seed {summary['seed']})")
    ticks_in_view(fig)
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
    height = 1 + 0.4 * max(1, len(edges))
    fig = Figure(figsize=(10, height + 0.4))  # and a strip for the legend below
    # Left: the widest lane label (8 pt) and its tick; below: ticks, x label, the legend.
    left = max((_text_points(edge, 8, False) for edge in edges), default=0.0) / 72 + 0.2
    left = min(max(left, 0.5), 6.0)
    ax = fig.add_axes(_box(fig, left, BOTTOM_IN + 0.4, 10 - left - 0.3,
                           height - BOTTOM_IN - 0.35))
    # One artist per state for all lanes, however many breakers and however often they
    # flapped: a bar is a rectangle (its corners) in the state's collection.
    bars: dict[str, list[list[tuple[float, float]]]] = {}
    # Each breaker's transitions in time order, the frame read once (not filtered per lane).
    moves: dict[str, dict[str, list[tuple[float, str]]]] = {}
    for edge, instance, t, state in zip(frame["edge"], frame["instance"], frame["time_s"],
                                        frame["state"], strict=True):
        moves.setdefault(edge, {}).setdefault(instance, []).append((float(t), state))
    for lane, edge in enumerate(edges):
        mine_by = moves.get(edge, {})
        labels = sorted(summaries[edge].get("instances") or set(mine_by)) or [""]
        height = 0.5 / len(labels)
        for strip, label in enumerate(labels):
            mine = mine_by.get(label, []) if label else sorted(
                move for strip_moves in mine_by.values() for move in strip_moves)
            times = [0.0, *(t for t, _ in mine), end]
            states = ["closed", *(state for _, state in mine)]
            low = lane + 0.25 - height * (strip + 1)
            for start, stop, state in zip(times, times[1:], states, strict=False):
                bars.setdefault(state, []).append(
                    [(start, low), (start, low + height), (stop, low + height), (stop, low)])
    for state, rectangles in bars.items():
        ax.add_collection(PolyCollection(rectangles, facecolors=STATE_COLOURS[state], lw=0,
                                         zorder=2, gid=f"breaker-{state}"))
    _shade_faults(ax, run.summary, label=False)
    ax.set_yticks(range(len(edges)), edges, fontsize=8)
    ax.set_xlim(0, end)
    ax.set_xlabel("time (s)")
    if not edges:
        ax.text(0.5, 0.5, "no circuit breakers configured", ha="center", va="center",
                transform=ax.transAxes)
    # Below the axes, not on them: inside, the legend covered the lanes' bars.
    fig.legend(handles=[Patch(color=c, label=s.replace("_", "-"))
                        for s, c in STATE_COLOURS.items()], loc="lower center",
               fontsize=8, ncol=3, frameon=False, borderaxespad=0.2,
               bbox_to_anchor=(0.5, 0.0))
    # At a fixed height (no ticks on top to clear): else the title's place is found by
    # measuring the tick labels' boxes once more on every draw.
    ax.set_title("circuit breaker states", y=1.0)
    ticks_in_view(fig)
    return fig


def latency_distribution(run: Run, entries: Collection[str] | None = None, *,
                         top: int = TOP_ENTRIES) -> Figure:
    """Histogram (left) and CDF (right) of request latency.

    Uses the per-request trace when the run has one; otherwise the run's streaming
    histograms (bucket counts with bounded relative error), so it works with traces off.
    Entries beyond the ``top`` (as ``timeline`` ranks them) are pooled as "other (N entries)".
    """
    shown, rest, basis = ranked_entries(run, entries, top)
    series: list[tuple[str, Any, list[float], list[float]]] = []
    for name, colour in zip(shown, _colours(len(shown)), strict=True):
        series.append((name, colour, *_latency_sample(run, name)))
    if rest:
        values: list[float] = []
        weights: list[float] = []
        for name in rest:
            more, heavy = _latency_sample(run, name)
            values += more
            weights += heavy
        series.append((f"other ({len(rest)} entries)", OTHER_COLOUR, values, weights))
    title = _legend_title(shown, rest, basis)
    legend_w = _legend_inches([name for name, _, _, _ in series], title, 7) + 2 * GAP_IN
    fig = Figure(figsize=(max(11.0, 2 * LEFT_IN + 6 + legend_w), 4))
    panel = (fig.get_size_inches()[0] - 2 * LEFT_IN - legend_w) / 2  # each y label its margin
    height = 4 - BOTTOM_IN - TOP_IN
    hist_ax = fig.add_axes(_box(fig, LEFT_IN, BOTTOM_IN, panel - GAP_IN, height))
    cdf_ax = fig.add_axes(_box(fig, 2 * LEFT_IN + panel - GAP_IN, BOTTOM_IN, panel, height))
    for name, colour, values, weights in series:
        if not len(values):
            continue
        # In arrays: the pooled "other" series holds every bucket of 76 entries.
        millis = np.asarray(values, dtype=float) * 1000
        weight = np.asarray(weights, dtype=float)
        positive = millis[millis > 0]
        low = max(float(positive.min()) if positive.size else 1e-3, 1e-3)
        high = max(float(millis.max()), low * 10)
        bins = np.geomspace(low, high, 61)
        counts, _ = np.histogram(millis, bins=bins, weights=weight)
        # Added as an artist, its extent given as two corners: ``stairs`` measured the
        # patch's outline segment by segment to find what these corners say.
        steps = StepPatch(counts, bins, baseline=0, fill=True, color=colour, alpha=0.5,
                          label=name)
        steps.sticky_edges.y.append(0)
        hist_ax.add_artist(steps)
        hist_ax.update_datalim([(bins[0], 0), (bins[-1], counts.max())])
        order = np.argsort(millis, kind="stable")
        xs = millis[order]
        ys = np.cumsum(weight[order]) / weight.sum()
        cdf_ax.step(xs, ys, where="post", color=colour, label=name)
    hist_ax.autoscale_view()  # to the extents given, as ``stairs`` would
    for ax in (hist_ax, cdf_ax):
        log_axis(ax, "x")
        ax.set_xlabel("latency (ms)")
        ax.grid(alpha=0.3)
    hist_ax.set_ylabel("requests")
    cdf_ax.set_ylabel("fraction of requests ≤ x")
    cdf_ax.axhline(0.99, color="#888888", lw=0.8, ls=":")
    if series:
        fig.legend(handles=hist_ax.get_legend_handles_labels()[0], loc="upper left",
                   fontsize=7, title=title, title_fontsize=7, borderaxespad=0,
                   bbox_to_anchor=_box(fig, 2 * LEFT_IN + 2 * panel, 4 - TOP_IN, 0, 0)[:2])
    fig.suptitle("latency distribution (successful requests)")
    ticks_in_view(fig)
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


def _colours(count: int) -> list[Any]:
    """Distinct colours; up to nine, tab10 without its grey (the pooled "other" series')."""
    from matplotlib import colormaps

    if count <= 9:
        cmap = colormaps["tab10"]
        return [cmap(i if i < 7 else i + 1) for i in range(count)]
    cmap = colormaps["tab20"]
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


def stability_map(table: Any, x: str | None = None, y: str | None = None) -> Figure:
    """A stability sweep's map (``sweeps.stability.stability_table``): recovered or not per
    grid point, the time to recover, and the verifier's predicted boundary on top; drawn by
    ``presentation.stability_plot.stability_map``."""
    from faultmesh.simulations.presentation.stability_plot import stability_map as draw

    return draw(table, x, y)
