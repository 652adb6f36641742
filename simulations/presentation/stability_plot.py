"""The stability map of a sweep: which grid points recovered from the trigger, how fast, and
where the verifier puts the boundary (a matplotlib Figure, no pyplot state).

``stability_map(table, x, y)`` draws a ``sweeps.stability.stability_table``: one cell per grid
point, coloured by the share of its seeds that recovered (green: all, red: none), annotated
with the mean time to recover (or "down"), and the verifier's predicted boundary
(``overload_recovery`` holds on one side, violated on the other) as a black line along the
cell edges where the prediction changes. ``faultmesh.plots.stability_map`` is this function.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from faultmesh.model.extras import requires
from faultmesh.model.units import format_duration

with requires("data", "faultmesh.plots"):
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

if TYPE_CHECKING:
    import pandas as pd

BOUNDARY_GID = "verifier-boundary"  # the boundary line's id, for readers of the figure
# Units a sweep value may carry, longest first (so "ms" is not read as "s")
_UNITS = ("/s", "/m", "/h", "ms", "us", "µs", "%", "s", "m", "h")


def _unit(values: list[Any]) -> str:
    """The unit all of an axis's values are written in (``"/s"``, ``"ms"``), or ``""``."""
    if not values or not all(isinstance(v, str) for v in values):
        return ""
    for unit in _UNITS:
        if all(str(v).endswith(unit) and _is_number(str(v)[: -len(unit)]) for v in values):
            return unit
    return ""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def axis_label(path: str, values: list[Any]) -> str:
    """A key path with the unit of its values: ``workload[0].rate (per s)``."""
    unit = _unit(values)
    if not unit:
        return path
    shown = f"per {unit[1:]}" if unit.startswith("/") else unit
    return f"{path} ({shown})"


def boundary_segments(predicted: dict[tuple[int, int], str]) -> list[list[tuple[float, float]]]:
    """The cell edges between horizontally or vertically adjacent points the verifier puts on
    different sides (one ``holds``, the other ``violated``); cell (i, j) spans
    [i - 0.5, i + 0.5] x [j - 0.5, j + 0.5] with i along x."""
    sides = {k: v == "holds" for k, v in predicted.items() if v in ("holds", "violated")}
    segments: list[list[tuple[float, float]]] = []
    for (i, j), side in sides.items():
        right = sides.get((i + 1, j))
        if right is not None and right != side:
            segments.append([(i + 0.5, j - 0.5), (i + 0.5, j + 0.5)])
        above = sides.get((i, j + 1))
        if above is not None and above != side:
            segments.append([(i - 0.5, j + 0.5), (i + 0.5, j + 0.5)])
    return segments


def stability_map(table: pd.DataFrame, x: str | None = None, y: str | None = None) -> Figure:
    """The stability map of a 2-D stability sweep's ``stability_table`` over ``x`` (the
    sweep's first parameter by default) and ``y`` (its second)."""
    import numpy as np

    params = list(table.attrs.get("params", []))
    if x is None or y is None:
        if len(params) != 2:
            raise ValueError("a stability map needs two parameters; name them (x=..., y=...)")
        x, y = x or params[0], y or params[1]
    for name in (x, y, "recovered", "predicted", "time_to_recover_s"):
        if name not in table:
            raise ValueError(f"no column {name!r}: pass stability_table(runs) of a stability "
                             "sweep")
    xs = list(dict.fromkeys(table[x]))
    ys = list(dict.fromkeys(table[y]))
    share = np.full((len(ys), len(xs)), np.nan)
    predicted: dict[tuple[int, int], str] = {}
    fig = Figure(figsize=(2.5 + 0.85 * max(5, len(xs)), 1.6 + 0.6 * max(4, len(ys))),
                 layout="constrained")
    ax = fig.subplots()
    cells = []
    for _, row in table.iterrows():
        i, j = xs.index(row[x]), ys.index(row[y])
        share[j, i] = float(row["recovered"])
        predicted[(i, j)] = str(row["predicted"])
        cells.append((i, j, float(row["recovered"]), float(row["time_to_recover_s"])))
    image = ax.imshow(share, cmap="RdYlGn", vmin=0.0, vmax=1.0, origin="lower",
                      aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="share of seeds that recovered")
    for i, j, recovered, seconds in cells:
        text = "down" if recovered <= 0 or math.isnan(seconds) else format_duration(seconds)
        ax.text(i, j, text, ha="center", va="center", fontsize="x-small",
                color="black" if 0.2 < recovered < 0.8 else "white")  # dark ends of RdYlGn
    segments = boundary_segments(predicted)
    handles: list[Any] = [Patch(color=image.cmap(1.0), label="recovered (time to recover)"),
                          Patch(color=image.cmap(0.0), label="stayed down")]
    if segments:
        boundary = LineCollection(segments, colors="black", linewidths=2.5, zorder=3,
                                  label="verifier boundary (overload_recovery)")
        boundary.set_gid(BOUNDARY_GID)
        ax.add_collection(boundary)
        handles.append(Line2D([], [], color="black", lw=2.5,
                              label="verifier boundary (overload_recovery)"))
    ax.set_xlim(-0.5, len(xs) - 0.5)
    ax.set_ylim(-0.5, len(ys) - 0.5)
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_yticks(range(len(ys)), [str(v) for v in ys])
    ax.set_xlabel(axis_label(x, xs))
    ax.set_ylabel(axis_label(y, ys))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles),
               fontsize="small", frameon=False)
    statuses = set(predicted.values())
    note = "" if segments else (
        "; the verifier has no prediction" if statuses <= {"unknown"} else
        f"; the verifier predicts {'recovery' if statuses == {'holds'} else 'no recovery'} "
        "everywhere" if len(statuses) == 1 else "")
    fig.suptitle(f"{table.attrs.get('system', 'sweep')}: stability map{note}")
    return fig


__all__ = ["BOUNDARY_GID", "axis_label", "boundary_segments", "stability_map"]
