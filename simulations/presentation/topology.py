"""The topology figure: the call graph in layers, each service a box sized to its label.

``topology(system, down=..., failed=..., utilization=...)`` returns a matplotlib Figure (no
pyplot state); ``plots.topology`` is this function. Callers sit left of their callees, layers
placed by their widest box; within a layer, nodes are ordered to cut edge crossings (Graphviz
``dot``'s ordering when ``dot`` is on PATH, else the barycentre heuristic). The figure's size
follows the graph, so labels keep their size at any number of services.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from faultmesh.model.extras import requires
from faultmesh.model.system import DEFAULT_ZONE as IMPLICIT_ZONE
from faultmesh.model.units import format_percent
from faultmesh.simulations.presentation.raster import DPI, measure

with requires("data", "faultmesh.plots"):
    from matplotlib.artist import Artist
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

if TYPE_CHECKING:
    from faultmesh.model.system import System


def topology(system: System, *, down: Collection[str] = (), failed: Collection[str] = (),
             utilization: Mapping[str, float] | None = None, title: str | None = None) -> Figure:
    """The call graph, in layers: callers left of their callees (``layered_layout``). ``down``
    services are red and ``failed`` (``instance:x-0``/``zone:a``) outlined; with
    ``utilization`` ({service: 0..1+}) services are coloured by it instead.

    Each service is a box sized to its label (name, replicas, utilization), and holds its
    instances grouped by zone: one square per instance in its zone's colour, beside the zone's
    name (a spec without zones has no zones to draw). Failed zones and instances are outlined
    in red. The figure grows with the graph (an inch per layer's widest label across,
    NODE_HEIGHT inches per row down), so labels keep their size (6 pt at the least) at any
    number of services; the axes are placed in inches, which lets arrows end at the boxes'
    sides without clipping each arrow to its boxes (a second per hundred services).
    """
    from matplotlib import colormaps

    from faultmesh.model.graph import call_graph

    graph = call_graph(system)
    zoned = system.zones != (IMPLICIT_ZONE,)
    sizes = {node: _box_size(system, node, None if utilization is None
                             else utilization.get(node), zoned) for node in graph.nodes}
    layout = _spread(layered_layout(graph), sizes)
    xs = [x for x, _ in layout.values()] or [0.0]
    ys = [y for _, y in layout.values()] or [0.0]
    # One data unit is an inch across and NODE_HEIGHT inches down.
    x_low, x_high = min(xs) - LAYER_MARGIN, max(xs) + LAYER_MARGIN
    y_low, y_high = min(ys) - 0.7, max(ys) + 0.7
    plot_w, plot_h = x_high - x_low, (y_high - y_low) * NODE_HEIGHT
    bar = 1.4 if utilization is not None else 0.0  # the colour bar's strip
    legend = 0.5 if (zoned or down) and utilization is None else 0.15
    heading = title or system.name
    if failed:
        heading += "\nfailed: " + ", ".join(failed)
    top = 0.35 + 0.2 * heading.count("\n")
    fig_w = max(6.0, plot_w + bar + 0.2)
    fig_h = max(3.5, plot_h + legend + top)
    left = (fig_w - bar - plot_w) / 2
    bottom = legend + (fig_h - legend - top - plot_h) / 2
    fig = Figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes((left / fig_w, bottom / fig_h, plot_w / fig_w, plot_h / fig_h))
    ax.set_axis_off()
    ax.set_xlim(x_low, x_high)
    ax.set_ylim(y_low, y_high)
    cmap = colormaps["YlOrRd"]
    zone_colours = dict(zip(system.zones, _zone_colours(len(system.zones)), strict=True))
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
        _node_box(ax, node, layout[node], colour, service, zoned, zone_colours, set(failed),
                  None if utilization is None else utilization.get(node), sizes[node])
    _arrows(ax, [(layout[u], sizes[u], layout[v], sizes[v],
                  d["info"].optional or d["info"].asynchronous)
                 for u, v, d in graph.edges(data=True) if u != v])  # a self-call: the box says it
    ax.set_title(heading, fontsize=10, y=1.0)  # fixed: the axes have no ticks to clear
    handles: list[Any] = []
    if zoned:
        handles += [Patch(facecolor=c, edgecolor="#34495e", label=f"zone {z}")
                    for z, c in zone_colours.items()]
    if utilization is not None:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        strip = min(plot_h * 0.6, 4.0)
        cax = fig.add_axes(((fig_w - bar + 0.3) / fig_w, (bottom + (plot_h - strip) / 2) / fig_h,
                            0.2 / fig_w, strip / fig_h))
        fig.colorbar(ScalarMappable(Normalize(0, 1), cmap), cax=cax, label="utilization")
    elif down:
        handles += [Patch(color="#f1948a", label="down"), Patch(color="#aed6f1", label="up")]
    if handles and utilization is None:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6),
                   fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.0))
    elif handles:  # zones with utilization: the zone key sits below, the colour bar right
        fig.legend(handles=handles, loc="lower left", ncol=min(len(handles), 6), fontsize=8,
                   frameon=False, bbox_to_anchor=(0.0, 0.0))
    return fig


ARC = 0.12  # an arrow's bend: its control point off the chord by this share of its length
HEAD_LENGTH, HEAD_HALF_WIDTH = 4 / 72, 2 / 72  # inches


def _arrows(ax: Any, edges: list[tuple[tuple[float, float], tuple[float, float],
                                       tuple[float, float], tuple[float, float], bool]]) -> None:
    """Every call as an arrow, box side to box side, in two collections (shafts, heads).

    Curved (a quadratic Bézier bent by ARC, as matplotlib's ``arc3`` connection), so that a
    call that skips a layer does not hide behind the boxes it passes; dashed when optional or
    asynchronous. One collection for all, not an arrow patch each: a hundred arrow patches
    recomputed their paths on every draw, a tenth of a second at TrainTicket's size.
    """
    from matplotlib.collections import PathCollection, PolyCollection
    from matplotlib.path import Path

    shafts, heads, colours, styles = [], [], [], []
    for u, u_size, v, v_size, loose in edges:
        start, end = _between(u, u_size, v, v_size)
        # In inches (one data unit is an inch across, NODE_HEIGHT inches down), where the
        # bend and the head keep their shape.
        x1, y1, x2, y2 = start[0], start[1] * NODE_HEIGHT, end[0], end[1] * NODE_HEIGHT
        cx, cy = (x1 + x2) / 2 + ARC * (y2 - y1), (y1 + y2) / 2 - ARC * (x2 - x1)
        shafts.append(Path([start, (cx, cy / NODE_HEIGHT), end],
                           [Path.MOVETO, Path.CURVE3, Path.CURVE3]))
        along = math.hypot(x2 - cx, y2 - cy) or 1.0
        ux, uy = (x2 - cx) / along, (y2 - cy) / along
        bx, by = x2 - HEAD_LENGTH * ux, y2 - HEAD_LENGTH * uy
        heads.append([(x2, y2 / NODE_HEIGHT),
                      (bx - HEAD_HALF_WIDTH * uy, (by + HEAD_HALF_WIDTH * ux) / NODE_HEIGHT),
                      (bx + HEAD_HALF_WIDTH * uy, (by - HEAD_HALF_WIDTH * ux) / NODE_HEIGHT)])
        colours.append("#7f8c8d" if loose else "#34495e")
        styles.append("--" if loose else "-")
    if not edges:
        return
    ax.add_collection(PathCollection(shafts, facecolors="none", edgecolors=colours,
                                     linestyles=styles, linewidths=1.0, zorder=1),
                      autolim=False)
    ax.add_collection(PolyCollection(heads, facecolors=colours, edgecolors=colours,
                                     linewidths=1.0, zorder=1), autolim=False)


def _between(u: tuple[float, float], u_size: tuple[float, float], v: tuple[float, float],
             v_size: tuple[float, float]) -> tuple[tuple[float, float], tuple[float, float]]:
    """Where an arrow from box ``u`` to box ``v`` leaves and enters them: the points where the
    line between their centres crosses their outlines (sizes are half extents in inches)."""
    dx, dy = v[0] - u[0], (v[1] - u[1]) * NODE_HEIGHT  # in inches

    def reach(size: tuple[float, float]) -> float:
        across = size[0] / abs(dx) if dx else math.inf
        down = size[1] / abs(dy) if dy else math.inf
        return min(across, down, 0.49)

    a, b = reach(u_size), reach(v_size)
    return ((u[0] + a * dx, u[1] + a * dy / NODE_HEIGHT),
            (v[0] - b * dx, v[1] - b * dy / NODE_HEIGHT))


NODE_PREFIX = "node:"  # gid of each service's box (tests and tools find nodes by it)

# The rows of a node, top to bottom: the name, the detail, the zone chips (sizes in points).
NAME_SIZE, DETAIL_SIZE, ZONE_SIZE, CHIP, CHIP_GAP, ROW_GAP, GROUP_GAP = 8, 7, 6, 7.0, 2.0, 2, 6
ROUND_PAD = 3.5  # the round box style's own padding, in points (part of BOX_PAD)


class NodeBox(Artist):
    """One node: its box (``patch``), its texts and its zone chips, placed in points around
    the node's centre. The sizes come from ``_box_size``, so nothing is measured while
    drawing (an offset box measured every text twice per draw, the figure's largest cost)."""

    def __init__(self, patch: Any, texts: list[Any], chips: list[Any]) -> None:
        super().__init__()
        self.patch = patch
        self.texts = texts
        self.chips = chips

    def get_children(self) -> list[Any]:
        return [self.patch, *self.texts, *self.chips]

    def set_figure(self, fig: Any) -> None:
        super().set_figure(fig)
        for child in self.get_children():
            child.set_figure(fig)

    def get_window_extent(self, renderer: Any = None) -> Any:
        return self.patch.get_window_extent(renderer)

    def draw(self, renderer: Any) -> None:
        if not self.get_visible():
            return
        for child in self.get_children():
            child.draw(renderer)
        self.stale = False


def _node_box(ax: Any, name: str, at: tuple[float, float], colour: Any, service: Any,
              zoned: bool, zone_colours: Mapping[str, Any], failed: set[str],
              utilization: float | None, size: tuple[float, float]) -> NodeBox:
    """One node: a box sized to its contents (``size``, from ``_box_size``), so no label
    spills out; its rows as ``_box_size`` measures them."""
    from matplotlib.colors import to_rgb
    from matplotlib.patches import FancyBboxPatch, Rectangle
    from matplotlib.text import Text
    from matplotlib.transforms import Affine2D, ScaledTranslation

    fig = ax.figure
    # Points from the node's centre: scale points to inches, then move to the centre.
    place = (Affine2D().scale(1 / 72) + fig.dpi_scale_trans
             + ScaledTranslation(at[0], at[1], ax.transData))
    red, green, blue = to_rgb(colour)
    ink = "white" if 0.299 * red + 0.587 * green + 0.114 * blue < 0.5 else "black"
    half_w, half_h = size[0] * 72, size[1] * 72
    outline = "#c0392b" if service is not None and f"service:{name}" in failed else "#34495e"
    patch = FancyBboxPatch((-half_w + ROUND_PAD, -half_h + ROUND_PAD),
                           2 * (half_w - ROUND_PAD), 2 * (half_h - ROUND_PAD),
                           boxstyle=f"round,pad={ROUND_PAD}", facecolor=colour,
                           edgecolor=outline, transform=place)
    top = half_h - BOX_PAD
    texts = [Text(0, top, name, fontsize=NAME_SIZE, fontweight="bold", color=ink,
                  ha="center", va="top", transform=place)]
    chips: list[Any] = []
    if service is not None:
        top -= NAME_SIZE * 1.2 + ROW_GAP
        texts.append(Text(0, top, _detail(service, utilization), fontsize=DETAIL_SIZE,
                          color=ink, ha="center", va="top", transform=place))
        if zoned:
            top -= DETAIL_SIZE * 1.2 + ROW_GAP
            groups = _zone_groups(service, zone_colours)
            x = -_chips_width(groups) / 2
            middle = top - CHIP / 2
            for zone, indices in groups:
                texts.append(Text(x, middle, zone, fontsize=ZONE_SIZE, ha="left",
                                  va="center_baseline", transform=place))
                x += _text_points(zone, ZONE_SIZE, False) + 2
                for index in indices:
                    down = f"zone:{zone}" in failed or f"instance:{service.name}-{index}" in failed
                    chips.append(Rectangle((x, middle - CHIP / 2), CHIP, CHIP,
                                           facecolor=zone_colours[zone],
                                           edgecolor="#c0392b" if down else "#34495e",
                                           lw=1.6 if down else 0.6, transform=place))
                    x += CHIP + CHIP_GAP
                x += GROUP_GAP - CHIP_GAP
    box = NodeBox(patch, texts, chips)
    box.set_zorder(3)
    box.set_gid(NODE_PREFIX + name)
    ax.add_artist(box)
    box.set_clip_on(False)
    return box


def _zone_groups(service: Any, zone_colours: Mapping[str, Any]) -> list[tuple[str, list[int]]]:
    """The service's instances grouped by zone (``a ■■  b ■``): (zone, instance indices)."""
    groups = []
    for zone in zone_colours:
        indices = [i for i, z in enumerate(service.zones) if z == zone]
        if indices:
            groups.append((zone, indices))
    return groups


def _chips_width(groups: list[tuple[str, list[int]]]) -> float:
    """The zone chips' row across, in points: per zone its name, 2 pt, its squares."""
    return (sum(_text_points(zone, ZONE_SIZE, False) + 2 + (CHIP + CHIP_GAP) * len(indices)
                - CHIP_GAP for zone, indices in groups)
            + GROUP_GAP * (len(groups) - 1))


def _zone_colours(count: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["Pastel2"]
    return [cmap(i % cmap.N) for i in range(count)]


# The gap between layers, the margin at the sides (half the widest first or last box,
# roughly) and the height of one node row, in inches.
LAYER_GAP, LAYER_MARGIN, NODE_HEIGHT = 0.8, 1.0, 0.75


# Texts are measured as they are set at this resolution: report.py's PNG dpi. (Hinting makes
# a text's width in points depend a little on the pixel size.)
MEASURE_DPI = DPI


def _text_points(text: str, size: float, bold: bool) -> float:
    """How wide ``text`` is set at ``size`` points, in points, measured as the Agg renderer
    measures it (the same font, size, resolution and hinting) but without a figure
    (``raster.measure``; the outline of a TextPath, measured before, took a second per hundred
    labels: every glyph's Bézier extrema)."""
    return measure(text, size, bold)


# Padding between a node's label and its box's outline (the AnnotationBbox's pad and the
# round box style's, each 0.35 of 10 pt), in points.
BOX_PAD = 7.5


def _box_size(system: System, node: str, utilization: float | None,
              zoned: bool) -> tuple[float, float]:
    """Half a node's box across and down, in inches: its rows as ``_node_box`` sets them
    (name 8 pt bold, detail 7 pt, zone chips 7 pt squares), 2 pt apart, plus the padding."""
    service = system.services.get(node)
    widths = [_text_points(node, 8, True)]
    height = 8.0 * 1.2
    if service is not None:
        widths.append(_text_points(_detail(service, utilization), 7, False))
        height += 2 + 7 * 1.2
        if zoned:
            widths.append(_chips_width(_zone_groups(service, dict.fromkeys(system.zones))))
            height += ROW_GAP + CHIP
    return (max(widths) / 2 + BOX_PAD) / 72, (height / 2 + BOX_PAD) / 72


def _detail(service: Any, utilization: float | None) -> str:
    detail = f"{service.replicas} replica{'' if service.replicas == 1 else 's'}"
    if utilization is not None:
        detail += f" · {format_percent(utilization)}"
    return detail


def _spread(layout: Mapping[str, tuple[float, float]],
            sizes: Mapping[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """The layered layout with layers placed by the width of their widest box (in inches)."""
    widths: dict[float, float] = {}
    for node, (x, _) in layout.items():
        widths[x] = max(widths.get(x, 0.0), 2 * sizes[node][0])
    centres: dict[float, float] = {}
    edge = 0.0
    for x in sorted(widths):
        centres[x] = edge + widths[x] / 2
        edge += widths[x] + LAYER_GAP
    return {node: (centres[x], y) for node, (x, y) in layout.items()}


def layered_layout(graph: Any) -> dict[str, tuple[float, float]]:
    """Callers left of callees: layers by longest call distance from a source (members of a
    call cycle share a layer). Within a layer, nodes are ordered to cut edge crossings: by
    Graphviz ``dot``'s own ordering when ``dot`` is on PATH, else by the barycentre heuristic
    (Sugiyama et al. 1981: each node at the mean position of its neighbours in the layer
    before, sweeping down and up a few times)."""
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
    for node in sorted(graph.nodes):
        layers.setdefault(depth[node], []).append(node)
    ranks = _dot_order(graph)
    if ranks is not None:
        for nodes in layers.values():
            nodes.sort(key=lambda n: (ranks.get(n, 0.0), n))
    else:
        _barycentre(graph, layers)
    positions = {}
    for level, nodes in layers.items():
        for index, node in enumerate(nodes):
            positions[node] = (float(level), -index + (len(nodes) - 1) / 2)
    return positions


BARYCENTRE_SWEEPS = 4


def _barycentre(graph: Any, layers: dict[int, list[str]]) -> None:
    """Reorder each layer (in place) by the mean index of its nodes' neighbours in the layer
    swept from; a node without such neighbours keeps its index."""
    levels = sorted(layers)
    for sweep in range(BARYCENTRE_SWEEPS):
        down = sweep % 2 == 0
        order = levels if down else levels[::-1]
        for previous, level in itertools.pairwise(order):
            index = {n: i for i, n in enumerate(layers[previous])}
            nodes = layers[level]

            def key(pair: tuple[int, str], index: dict[str, int] = index,
                    down: bool = down) -> tuple[float, int]:
                i, node = pair
                near = graph.predecessors(node) if down else graph.successors(node)
                seen = [index[n] for n in near if n in index]
                return (sum(seen) / len(seen) if seen else float(i), i)

            layers[level] = [n for _, n in sorted(enumerate(nodes), key=key)]


def _dot_order(graph: Any) -> dict[str, float] | None:
    """Each node's place across its rank in Graphviz ``dot``'s layout (top first), or None
    when ``dot`` is not on PATH or fails."""
    import shutil
    import subprocess

    dot = shutil.which("dot")
    if dot is None:
        return None
    names = {node: f"n{i}" for i, node in enumerate(graph.nodes)}
    lines = ["digraph g {", "rankdir=LR;", "node [shape=box, width=1.2, height=0.5];"]
    lines += [f"{names[u]} -> {names[v]};" for u, v in graph.edges if u != v]
    lines += [f"{name};" for name in names.values()]
    lines.append("}")
    try:
        result = subprocess.run([dot, "-Tplain"], input="\n".join(lines), capture_output=True,
                                text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    back = {name: node for node, name in names.items()}
    places: dict[str, float] = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[0] == "node" and parts[1] in back:
            places[back[parts[1]]] = -float(parts[3])  # plain y grows upward
    return places


__all__ = ["NODE_PREFIX", "layered_layout", "topology"]
