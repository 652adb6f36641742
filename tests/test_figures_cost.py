"""What keeps drawing a run's figures cheap, checked on the figures themselves (no clocks).

The report's charts place their axes by hand (a layout engine measures every text in an extra
draw before the real one), label log scales in plain numbers (``10^x`` labels are mathtext,
parsed glyph by glyph), make ticks only where they are drawn, draw the topology's arrows and
the breaker lanes as a few collections, not an artist each; and a node box's size, computed
from the font without a renderer, holds the texts the renderer sets in it. The report draws
each figure once, sets a line of text as one bitmap (where matplotlib 3.11 sets it glyph by
glyph), reuses the lines the figures' builders measured, writes the PNG without re-reading
it, and keeps the collector from walking the whole process's heap while figures are drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from faultmesh import model, simulations
from faultmesh.model.graph import call_graph
from faultmesh.simulations.presentation import plots, ticks
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


def test_log_axes_mark_minor_ticks_only_across_few_decades() -> None:
    from matplotlib.figure import Figure

    fig = Figure()
    wide, narrow = fig.subplots(1, 2)
    wide.plot([0.1, 1000], [1, 2])
    narrow.plot([1.5, 8], [1, 2])
    for ax in (wide, narrow):
        ticks.log_axis(ax, "x")
    ticks.ticks_in_view(fig)
    drawn(fig)
    # Four decades: the decades alone. Less than one: the 2s and 5s, labelled.
    assert len(wide.xaxis.get_minorticklocs()) == 0
    assert [t.get_text() for t in wide.get_xticklabels()] == ["0.1", "1", "10", "100", "1000"]
    assert list(narrow.xaxis.get_minorticklocs()) == [2, 5]
    assert [t.get_text() for t in narrow.get_xticklabels(minor=True)] == ["2", "5"]


def test_charts_make_ticks_only_inside_their_view(run: simulations.Run) -> None:
    for fig in (plots.timeline(run), plots.breaker_states(run), plots.latency_distribution(run)):
        drawn(fig)
        for ax in fig.axes:
            for axis in (ax.xaxis, ax.yaxis):
                low, high = sorted(axis.get_view_interval())
                locs = [*axis.get_majorticklocs(), *axis.get_minorticklocs()]
                assert locs, "the axis is ticked"
                assert all(low - 1e-6 * (high - low) <= t <= high + 1e-6 * (high - low)
                           for t in locs), (axis, locs, (low, high))
                # No more tick artists than ticks (plus the one each list starts with).
                assert len(axis.majorTicks) <= max(1, len(axis.get_majorticklocs()))


def test_breaker_lanes_are_one_collection_per_state(run: simulations.Run) -> None:
    from matplotlib.collections import PolyCollection

    fig = plots.breaker_states(run)
    bars = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    states = {c.get_gid() for c in bars}
    assert len(bars) == len(states) and states <= {f"breaker-{s}" for s in plots.STATE_COLOURS}
    lanes = len(run.summary["breakers"])
    assert sum(len(c.get_paths()) for c in bars) >= lanes > 0


def _ink(pixels: Any) -> Any:
    """The bounding box (x0, y0, x1, y1) of the dark pixels of an RGBA image."""
    import numpy as np

    dark = np.asarray(pixels)[..., :3].min(axis=2) < 128
    ys, xs = np.nonzero(dark)
    return xs.min(), ys.min(), xs.max(), ys.max()


@pytest.mark.parametrize("rotation", [0, 90])
@pytest.mark.parametrize("text,size,weight", [("ts-ui-dashboard.api68", 8, "bold"),
                                              ("1 replica · 0.741% ≤ gy", 7, "normal"),
                                              ("latency (ms)", 10, "normal")])
def test_a_line_set_at_once_lands_where_matplotlib_sets_it(text: str, size: float,
                                                           weight: str, rotation: int) -> None:
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from faultmesh.simulations.presentation.raster import Canvas

    def draw(canvas_type: Any) -> Any:
        fig = Figure(figsize=(3, 3), dpi=110)
        fig.text(0.5, 0.5, text, fontsize=size, fontweight=weight, rotation=rotation,
                 ha="center", va="center")
        canvas = canvas_type(fig)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba()).copy()

    ours, theirs = draw(Canvas), draw(FigureCanvasAgg)
    assert all(abs(a - b) <= 1 for a, b in zip(_ink(ours), _ink(theirs), strict=True))
    # The same glyphs: as much ink, give or take what anti-aliasing spreads differently.
    ink_ours, ink_theirs = ((255 - x[..., :3].astype(int)).sum() for x in (ours, theirs))
    assert ink_ours == pytest.approx(ink_theirs, rel=0.03)


def test_report_text_is_set_a_line_at_a_time(run: simulations.Run,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.backends.backend_agg import RendererAgg

    from faultmesh.simulations.presentation import raster

    if not raster.GLYPH_BY_GLYPH:
        pytest.skip("this matplotlib already sets a line as one bitmap")
    glyph_by_glyph: list[Any] = []
    original = RendererAgg._draw_text_glyphs_and_boxes

    def counted(self: Any, *args: Any) -> None:
        glyph_by_glyph.append(args)
        original(self, *args)

    monkeypatch.setattr(RendererAgg, "_draw_text_glyphs_and_boxes", counted)
    for fig in (plots.timeline(run), plots.breaker_states(run), plots.latency_distribution(run),
                plots.topology(model.load(SHOP))):
        raster.png(fig, raster.DPI)
    assert glyph_by_glyph == []


def test_measured_labels_are_drawn_from_their_measurement(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from faultmesh.simulations.presentation import raster

    system = model.load(SHOP)
    fig = plots.topology(system)  # measures every node's label to size its box
    laid_out: list[str] = []
    original = raster._set_line

    def counted(key: Any) -> Any:
        laid_out.append(key[0])
        return original(key)

    monkeypatch.setattr(raster, "_set_line", counted)
    raster.png(fig, raster.DPI)
    assert laid_out, "the title and legend are set while drawing"
    assert not set(laid_out) & set(system.services), laid_out


def test_report_figures_are_drawn_once_each_and_written_as_drawn(
        run: simulations.Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    from matplotlib.figure import Figure
    from PIL import Image

    from faultmesh.simulations.presentation.raster import DPI
    from faultmesh.simulations.presentation.report import FIGURES, write_report

    draws: list[tuple[Any, Any]] = []
    original = Figure.draw

    def counted(self: Any, renderer: Any) -> None:
        original(self, renderer)
        draws.append((self, np.asarray(renderer.buffer_rgba()).copy()))

    monkeypatch.setattr(Figure, "draw", counted)
    write_report(run, tmp_path, model.load(SHOP))
    assert len(draws) == len(FIGURES)
    for name, (fig, pixels) in zip(FIGURES, draws, strict=True):
        with Image.open(tmp_path / name) as image:
            assert image.mode == "RGB"  # opaque: no alpha channel stored
            assert image.info["dpi"] == pytest.approx((DPI, DPI), abs=0.01)
            width, height = fig.get_size_inches() * DPI  # drawn at the report's resolution
            assert abs(pixels.shape[1] - width) < 1 and abs(pixels.shape[0] - height) < 1
            assert np.array_equal(np.asarray(image), pixels[..., :3]), name


def test_png_keeps_transparency_when_there_is_some() -> None:
    import io

    import numpy as np
    from PIL import Image

    from faultmesh.simulations.presentation.raster import encode_png

    rgba = np.zeros((5, 7, 4), dtype=np.uint8)
    rgba[..., 0] = np.arange(7) * 30
    rgba[..., 3] = 255
    rgba[2, 3, 3] = 0
    with Image.open(io.BytesIO(encode_png(rgba))) as image:
        assert image.mode == "RGBA" and np.array_equal(np.asarray(image), rgba)


def test_no_collection_while_the_report_is_drawn(run: simulations.Run, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from matplotlib.figure import Figure

    from faultmesh.simulations.presentation.report import write_report

    system = model.load(SHOP)
    drawing = [False]
    collections: list[tuple[int, bool]] = []
    original = Figure.draw

    def flagged(self: Any, renderer: Any) -> None:
        drawing[0] = True
        try:
            original(self, renderer)
        finally:
            drawing[0] = False

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append((info["generation"], drawing[0]))

    monkeypatch.setattr(Figure, "draw", flagged)
    assert gc.isenabled()
    gc.callbacks.append(record)
    try:
        write_report(run, tmp_path, system)
    finally:
        gc.callbacks.remove(record)
    # Automatic collection paused while figures are drawn; each figure's garbage collected
    # young once it is dropped, never by a walk over the whole heap; the collector restored.
    assert collections, "the figures' garbage is collected"
    assert [c for c in collections if c[1]] == []
    assert all(generation == 0 for generation, _ in collections[:4])
    assert gc.isenabled()
