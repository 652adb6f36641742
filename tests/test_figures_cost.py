"""What keeps drawing a run's figures cheap, checked on the figures themselves (no clocks).

The report's charts place their axes by hand (a layout engine measures every text in an extra
draw before the real one), label log scales in plain numbers (``10^x`` labels are mathtext,
parsed glyph by glyph), draw the topology's arrows as two collections, not an arrow patch
each; and a node box's size, computed from the font without a renderer, holds the texts the
renderer sets in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from faultmesh import model, simulations
from faultmesh.model.graph import call_graph
from faultmesh.simulations.presentation import plots
from faultmesh.simulations.presentation.topology import MEASURE_DPI, _text_points

matplotlib = pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "specs" / "zone_outage_shop.yaml"


@pytest.fixture(scope="module")
def run() -> simulations.Run:
    return simulations.simulate(model.load(SHOP), "zone-a-outage", seed=1, duration=200)


def drawn(fig: Any) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def test_charts_have_no_layout_engine(run: simulations.Run) -> None:
    for fig in (plots.timeline(run), plots.breaker_states(run), plots.latency_distribution(run)):
        assert fig.get_layout_engine() is None


def test_log_scales_are_labelled_without_mathtext(run: simulations.Run) -> None:
    fig = plots.latency_distribution(run)
    drawn(fig)
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert labels, "the latency axis is labelled"
        assert not any("$" in label for label in labels), labels
        assert all(float(label) > 0 for label in labels)


def test_topology_arrows_are_collections() -> None:
    from matplotlib.collections import PathCollection, PolyCollection
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.text import Annotation

    system = model.load(SHOP)
    fig = plots.topology(system)
    ax = fig.axes[0]
    assert not [a for a in ax.get_children() if isinstance(a, Annotation | FancyArrowPatch)]
    shafts = [c for c in ax.collections if isinstance(c, PathCollection)]
    heads = [c for c in ax.collections if isinstance(c, PolyCollection)]
    edges = [(u, v) for u, v in call_graph(system).edges if u != v]
    assert len(shafts) == 1 and len(heads) == 1
    assert len(shafts[0].get_paths()) == len(heads[0].get_paths()) == len(edges) > 0


@pytest.mark.parametrize("text,size,bold", [("ts-ui-dashboard", 8, True),
                                            ("3 replicas · 12.5%", 7, False), ("a", 6, False)])
def test_text_width_without_a_renderer_matches_the_renderer(text: str, size: float,
                                                            bold: bool) -> None:
    from matplotlib.figure import Figure

    fig = Figure(dpi=MEASURE_DPI)
    label = fig.text(0, 0, text, fontsize=size, fontweight="bold" if bold else "normal")
    renderer = drawn(fig)
    measured = label.get_window_extent(renderer).width * 72 / MEASURE_DPI  # in points
    assert _text_points(text, size, bold) == pytest.approx(measured, abs=0.5)
