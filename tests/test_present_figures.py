"""The figures of a real-sized run stay legible: checked on the drawn figures' artists.

An 84-entry, 64-service run (tests/present_topology.py) through a scenario that crashes one
service: the timeline and latency figures draw the top entries and pool the rest, every
legend sits outside every axes' data area, the topology's node boxes do not overlap and no
text is set below 6 pt; a 100-service topology as well.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from present_topology import write_trainticket_like

from faultmesh import simulations
from faultmesh.model.distributions import Constant
from faultmesh.model.spec import load
from faultmesh.model.system import Call, Endpoint, FrozenMap, Service, System, Workload
from faultmesh.simulations.presentation import plots
from faultmesh.simulations.presentation.report import figures

matplotlib = pytest.importorskip("matplotlib")

MIN_FONT = 6.0


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> System:
    return load(write_trainticket_like(tmp_path_factory.mktemp("tt") / "tt.yaml"))


@pytest.fixture(scope="module")
def run(system: System) -> simulations.Run:
    return simulations.simulate(system, "svc-outage", seed=3, duration="40s")


def drawn(fig: Any) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def legends(fig: Any) -> list[Any]:
    found = list(fig.legends)
    found += [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return found


def data_axes(fig: Any) -> list[Any]:
    """Axes that hold data (colour bars hold a scale, not data)."""
    return [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]


def overlap(a: Any, b: Any) -> float:
    """Area (pixels²) where two boxes overlap."""
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(0.0, width) * max(0.0, height)


def test_figures_are_legible(run: simulations.Run, system: System) -> None:
    drawn_any = False
    for name, fig in figures(run, system).items():
        renderer = drawn(fig)
        for legend in legends(fig):
            box = legend.get_window_extent(renderer)
            for ax in data_axes(fig):
                assert overlap(box, ax.get_window_extent(renderer)) == 0, \
                    f"{name}: a legend covers the data of {ax}"
        for text in fig.findobj(matplotlib.text.Text):
            if text.get_text() and text.get_visible():
                assert text.get_fontsize() >= MIN_FONT, (name, text.get_text())
        drawn_any = True
    assert drawn_any


def test_timeline_draws_the_top_entries_by_impact(run: simulations.Run) -> None:
    fig = plots.timeline(run)
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    entries = run.summary["entries"]
    failing = sorted(entries, key=lambda n: (-entries[n]["failed"], -entries[n]["requests"], n))
    assert any(entries[n]["failed"] for n in entries)  # the crash made some requests fail
    assert labels == [*failing[:plots.TOP_ENTRIES], f"other ({len(entries) - 8} entries)",
                      "p99", "p50"]
    assert legend.get_title().get_text() == f"top 8 of {len(entries)} entries by failed requests"
    top = fig.axes[0]
    assert len(top.get_lines()) == plots.TOP_ENTRIES + 1


def test_pooled_availability_counts_every_request(run: simulations.Run) -> None:
    shown, rest, _ = plots.ranked_entries(run)
    assert len(shown) == plots.TOP_ENTRIES and len(rest) == 84 - plots.TOP_ENTRIES
    frame = run.timeline
    pooled = plots._pooled_timeline(frame, rest)
    rows = frame[frame["entry"].isin(rest)]
    assert pooled["requests"].sum() == rows["requests"].sum()
    window = pooled.iloc[len(pooled) // 2]
    at = rows[rows["time_s"] == window["time_s"]]
    assert window["availability"] == pytest.approx(at["ok"].sum() / at["requests"].sum())
    assert window["p99"] == at["p99"].max()


def test_named_entries_are_all_drawn(run: simulations.Run) -> None:
    names = [f"ts-ui-dashboard.api{k:02d}" for k in range(12)]
    fig = plots.timeline(run, names)
    assert [line.get_label() for line in fig.axes[0].get_lines()] == names


def layered(n: int, seed: int = 5) -> System:
    """n services in chains of fan-out up to 3 (as bench/verify.py builds them)."""
    rng = random.Random(seed)
    services = {}
    for i in range(n):
        later = list(range(i + 1, n))
        targets = rng.sample(later, min(len(later), rng.randint(1, 3))) if i < n - 20 else []
        steps = tuple(Call(f"service-{j:03d}", "handle", timeout=1.0) for j in targets)
        endpoint = Endpoint("handle", Constant(0.001), steps=steps)
        services[f"service-{i:03d}"] = Service(f"service-{i:03d}",
                                               FrozenMap({"handle": endpoint}),
                                               zones=("a", "b", "c"))
    return System(FrozenMap(services), name=f"layered-{n}", zones=("a", "b", "c"),
                  workload=(Workload("service-000", "handle", 10.0),))


@pytest.mark.parametrize("size", [64, 100])
def test_topology_boxes_do_not_overlap(size: int, system: System) -> None:
    subject = system if size == 64 else layered(size)
    fig = plots.topology(subject, failed=["zone:a"], down=[next(iter(subject.services))])
    renderer = drawn(fig)
    boxes = {artist.get_gid(): artist.get_window_extent(renderer)
             for artist in fig.axes[0].artists if str(artist.get_gid()).startswith("node:")}
    assert len(boxes) == len(subject.services) + 1  # and the workload source
    overlapping = [(a, b) for (a, p), (b, q) in itertools.combinations(boxes.items(), 2)
                   if overlap(p, q) > 0]
    assert overlapping == []
    # Every box inside the figure, and the figure no larger than its layers need.
    frame = fig.bbox
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1
               for b in boxes.values())
    for text in fig.findobj(matplotlib.text.Text):
        if text.get_text():
            assert text.get_fontsize() >= MIN_FONT


def test_layers_are_ordered_to_cut_crossings() -> None:
    subject = layered(40)
    from faultmesh.model.graph import call_graph

    graph = call_graph(subject)

    def crossings(layout: dict[str, tuple[float, float]]) -> int:
        edges = [(layout[u], layout[v]) for u, v in graph.edges if layout[v][0] == layout[u][0] + 1]
        count = 0
        for (a, b), (c, d) in itertools.combinations(edges, 2):
            if a[0] == c[0] and (a[1] - c[1]) * (b[1] - d[1]) < 0:
                count += 1
        return count

    ordered = plots.layered_layout(graph)
    by_name = {}
    layers: dict[float, list[str]] = {}
    for node, (x, _) in ordered.items():
        layers.setdefault(x, []).append(node)
    for x, nodes in layers.items():
        for index, node in enumerate(sorted(nodes)):
            by_name[node] = (x, -index + (len(nodes) - 1) / 2)
    assert crossings(ordered) < crossings(by_name)
