"""Plots, the HTML report, Jupyter displays and `verify --replay`, as a user meets them."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from matplotlib.patches import Polygon, Rectangle

from faultmesh import model, simulations
from faultmesh.simulations.presentation import plots
from faultmesh.simulations.presentation.report import FIGURES

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "specs" / "zone_outage_shop.yaml"
PNG = b"\x89PNG\r\n\x1a\n"

# A data: URI (an embedded figure): base64 holds "/" and "//", so these are taken out before
# the page is searched for protocol-relative links.
_DATA_URI = re.compile(r"data:[\w/+.-]+(?:;[\w=.-]+)*,[^'\"\s)<>]*", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"""\b(?:src|href|srcset|action|formaction|poster|background|xlink:href)"""
                        r"""\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]*)""", re.IGNORECASE)
_LEAVING = re.compile(r"@import|\b(?:https?|ftp|file):|//", re.IGNORECASE)


def external_references(page: str) -> list[str]:
    """Everything in an HTML page that would load or link something outside the file: an
    attribute or CSS url() that is not data: or #, @import, a URL scheme, or //."""
    found = [m[0] for m in _ATTRIBUTE.finditer(page)
             if not m[1].strip("'\"").strip().lower().startswith(("data:", "#"))]
    found += [m[0] for m in _CSS_URL.finditer(page)
              if not m[1].strip().lower().startswith(("data:", "#"))]
    rest = _DATA_URI.sub("data:", page)
    found += [rest[max(0, m.start() - 30):m.end() + 30] for m in _LEAVING.finditer(rest)]
    return found


def faultmesh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faultmesh", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)


@pytest.fixture(scope="module")
def outage_run() -> simulations.Run:
    return simulations.simulate(model.load(SHOP), "zone-a-outage", duration=400, seed=5)


def test_simulate_out_writes_report_and_figures(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = faultmesh("simulate", str(SHOP), "--scenario", "zone-a-outage", "--duration", "400s",
                     "--seed", "4", "--out", str(out))
    assert done.returncode == 1, done.stderr  # checkout's availability is violated
    for name in FIGURES:
        assert (out / name).read_bytes().startswith(PNG), name
    page = (out / "report.html").read_text(encoding="utf-8")
    images = re.findall(r"<img alt='([a-z]+)' src='data:image/png;base64,([A-Za-z0-9+/=]+)'>",
                        page)
    assert sorted(alt for alt, _ in images) == sorted(name[:-4] for name in FIGURES)
    for _, data in images:  # self-contained: every figure is embedded, not linked
        assert base64.b64decode(data).startswith(PNG)
    assert external_references(page) == []
    # The check notices a page that leaves the file, wherever the reference stands.
    for leak in ('<img src="https://x">', "<style>p { background: url(http://x/a.png) }</style>",
                 "<link rel=stylesheet href='//cdn.example/a.css'>", "<a href=other.html>a</a>",
                 "<style>@import 'more.css';</style>", "<img srcset='x.png 2x'>"):
        assert external_references(page.replace("</body>", leak + "</body>")), leak
    for text in ("frontend.checkout", "frontend.browse", "availability:frontend.checkout",
                 "violated", "frontend-&gt;checkout", "Entries"):
        assert text in page, text
    # A second run into the same directory must not overwrite the report without --force.
    again = faultmesh("simulate", str(SHOP), "--duration", "30s", "--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr


def test_timeline_shades_every_fault_window(outage_run: simulations.Run) -> None:
    fig = outage_run.plot_timeline()
    top, bottom = fig.axes[:2]
    spans = [p for p in top.patches if isinstance(p, Polygon | Rectangle)]
    faults = outage_run.summary["faults"]
    assert len(spans) == len(faults) + 1  # the warm-up and each fault
    labels = {line.get_label() for line in top.get_lines()}
    assert labels == set(outage_run.summary["entries"])
    # The outage shows: checkout's availability touches zero while browse stays at 100%.
    checkout = next(line for line in top.get_lines() if line.get_label() == "frontend.checkout")
    assert min(checkout.get_ydata()) == 0
    assert bottom.get_yscale() == "log"


def test_breaker_lanes_show_open_periods(outage_run: simulations.Run) -> None:
    fig = outage_run.plot_breakers()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == sorted(outage_run.summary["breakers"])
    red = [bar for bar in ax.patches if bar.get_facecolor()[:3] == pytest.approx(
        (0xC0 / 255, 0x39 / 255, 0x2B / 255), abs=1e-3) and bar.get_width() > 0]
    assert red, "the outage opens at least one breaker"


def test_latency_distribution_without_traces(outage_run: simulations.Run) -> None:
    assert not outage_run.traced
    buckets = outage_run.latency_buckets("frontend.browse")
    ok = outage_run.summary["entries"]["frontend.browse"]["ok"]
    assert sum(count for _, count in buckets) <= ok and sum(c for _, c in buckets) > 0.8 * ok
    fig = outage_run.plot_latency()
    hist, cdf = fig.axes[:2]
    assert hist.patches and cdf.get_lines()


def test_topology_colours_down_services() -> None:
    system = model.load(SHOP)
    fig = plots.topology(system, down=["payment", "checkout"], failed=["zone:a"])
    assert "zone:a" in fig.axes[0].get_title()


def test_jupyter_displays() -> None:
    system = model.load(SHOP)
    report = model.verify(system, kinds=["survives"])
    assert "violated" in report._repr_html_() and "payment" in report._repr_html_()
    run = simulations.simulate(system, duration=20, seed=1)
    assert "<table>" in run._repr_html_() and "frontend.browse" in run._repr_html_()


def test_verify_replay_cli_agrees_with_the_proof() -> None:
    done = faultmesh("verify", str(SHOP), "--property", "survives", "--replay", "--json")
    assert done.returncode == 1, done.stderr
    body = json.loads(done.stdout)
    (replay,) = body["replays"]
    assert replay["agrees"] and replay["failures"] == ["zone:a"]
    predicted = {e["entry"]: e["predicted"] for e in replay["entries"]}
    assert predicted == {"frontend.checkout": "down", "frontend.browse": "up"}
    text = faultmesh("verify", str(SHOP), "--property", "survives", "--replay")
    assert "agrees with the proof" in text.stdout


# --- the figures' artists: nothing covers the data, labels stay in their boxes ----------------


def drawn(fig: Any) -> Any:
    """Lay the figure out and draw it (Agg); returns the renderer that measured it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def test_breaker_legend_stays_off_the_lanes(outage_run: simulations.Run) -> None:
    # Found by a new user: the legend sat in the upper right of the axes, over a lane's bars.
    fig = outage_run.plot_breakers()
    renderer = drawn(fig)
    ax = fig.axes[0]
    legends = [*fig.legends, *[a.get_legend() for a in fig.axes if a.get_legend()]]
    assert legends, "the chart names its colours"
    lanes = ax.get_window_extent(renderer)
    for legend in legends:
        assert not legend.get_window_extent(renderer).overlaps(lanes)


def test_timeline_full_availability_is_drawn_inside_the_frame(
        outage_run: simulations.Run) -> None:
    # Found by a new user: with a run that drops to 0 %, the 100 % line lay a pixel under the
    # top of the frame and could not be seen.
    fig = outage_run.plot_timeline()
    renderer = drawn(fig)
    top = fig.axes[0]
    browse = next(line for line in top.get_lines() if line.get_label() == "frontend.browse")
    assert max(browse.get_ydata()) == 100
    frame = top.get_window_extent(renderer)
    y100 = top.transData.transform((0, 100))[1]
    assert frame.y1 - y100 >= 4, "pixels between the 100 % line and the frame"


def node_boxes(fig: Any) -> dict[str, Any]:
    return {artist.get_gid().removeprefix(plots.NODE_PREFIX): artist
            for artist in fig.axes[0].get_children()
            if (artist.get_gid() or "").startswith(plots.NODE_PREFIX)}


@pytest.mark.parametrize("spec", ["zone_outage_shop", "online_boutique", "dsb_social_network"])
def test_topology_labels_stay_inside_their_nodes(spec: str) -> None:
    # Found by a new user: names longer than the fixed circles spilled out of them.
    from matplotlib.text import Text

    system = model.load(ROOT / "specs" / f"{spec}.yaml")
    utilization = {name: 0.5 for name in system.services}
    fig = plots.topology(system, utilization=utilization, title="utilization")
    renderer = drawn(fig)
    boxes = node_boxes(fig)
    assert set(system.services) <= set(boxes)
    extents = {}
    for name, box in boxes.items():
        frame = box.patch.get_window_extent(renderer)
        texts = [t for t in box.findobj(Text) if t.get_text()]
        assert texts[0].get_text() == name
        for text in texts:
            inner = text.get_window_extent(renderer)
            assert frame.x0 <= inner.x0 and inner.x1 <= frame.x1, (name, text.get_text())
            assert frame.y0 <= inner.y0 and inner.y1 <= frame.y1, (name, text.get_text())
        extents[name] = frame
    names = sorted(extents)
    for i, a in enumerate(names):  # and no node covers another
        for b in names[i + 1:]:
            assert not extents[a].overlaps(extents[b]), (a, b)


def test_topology_draws_zones_and_never_the_implicit_one() -> None:
    from matplotlib.patches import Rectangle
    from matplotlib.text import Text

    system = model.load(SHOP)
    fig = plots.topology(system, down=["payment", "checkout"], failed=["zone:a"])
    drawn(fig)
    legend_texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert [t for t in legend_texts if t.startswith("zone")] == ["zone a", "zone b", "zone c"]
    boxes = node_boxes(fig)
    # payment's two replicas are both in zone a: one chip each, outlined as failed.
    payment = boxes["payment"]
    assert [t.get_text() for t in payment.findobj(Text) if t.get_text()] == \
        ["payment", "2 replicas", "a"]
    chips = [r for r in payment.findobj(Rectangle) if r is not payment.patch and r.get_width() < 20]
    assert len(chips) == 2
    assert all(chip.get_edgecolor()[:3] == pytest.approx((0xC0 / 255, 0x39 / 255, 0x2B / 255),
                                                          abs=1e-3) for chip in chips)
    frontend = [t.get_text() for t in boxes["frontend"].findobj(Text) if t.get_text()]
    assert frontend == ["frontend", "3 replicas", "a", "b", "c"]
    # A spec without zones draws none and never names the implicit one.
    plain = plots.topology(model.load(ROOT / "specs" / "chain.yaml"))
    drawn(plain)
    texts = [t.get_text() for t in plain.findobj(Text)]
    assert not any("zone" in t or t == "default" for t in texts)


def test_report_tables_read_like_the_terminal(outage_run: simulations.Run) -> None:
    # Found by a new user: the "first violation" column showed a raw Python dict, there was no
    # phases or root-cause section though the terminal has both, counts had no thousands
    # separators, and the page said "utilisation" where everything else says "utilization".
    from faultmesh.simulations.presentation.report import summary_tables

    summary = outage_run.summary
    page = summary_tables(summary)
    assert "{'at'" not in page and "'detail'" not in page
    checkout = next(p for p in summary["properties"]
                    if p["name"] == "availability:frontend.checkout")
    first = checkout["violations"][0]
    assert first["at"] is not None
    assert re.search(r"<td>at \d+m( [\d.]+s)?: availability 0% in the 1m window", page)
    assert "<h2>Phases</h2>" in page and "crash zone:a" in page
    assert "<h2>Root causes of failures</h2>" in page and "circuit open" in page
    browse = summary["entries"]["frontend.browse"]
    assert browse["requests"] >= 1000 and f"<td>{browse['requests']:,}</td>" in page
    assert "utilisation" not in page and "<th>utilization</th>" in page
    # One way to write an availability: 100% exactly, three decimals near it, never 100.000%.
    assert "100.000%" not in page and "100%" in page
    for name in ("report.py", "terminal.py", "plots.py"):
        source = (ROOT / "simulations" / "presentation" / name).read_text(encoding="utf-8")
        assert "utilisation" not in source, name
