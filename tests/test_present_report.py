"""report.html tells the run's story: faults, timeline, entries down, breakers, failures.

Read as text here (tests/test_report_browser.py opens it in a browser): the zone-a outage of
specs/zone_outage_shop.yaml crashes zone a from 2m to 5m, which takes frontend.checkout down
(payment lives in zone a only) and opens the breakers on its way.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from faultmesh import model, simulations
from faultmesh.simulations.presentation.report import down_intervals, write_report

ROOT = Path(__file__).resolve().parents[1]
SHOP = ROOT / "specs" / "zone_outage_shop.yaml"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    system = model.load(SHOP)
    run = simulations.simulate(system, "zone-a-outage", duration=330, seed=2)
    out = tmp_path_factory.mktemp("report")
    write_report(run, out, system)
    return (out / "report.html").read_text(encoding="utf-8")


def table(page: str, ident: str) -> list[list[str]]:
    """The rows of the table with this id, each cell's text."""
    found = re.search(rf"<table id='{ident}'>(.*?)</table>", page, re.S)
    assert found, f"no table {ident}"
    rows = re.findall(r"<tr>(.*?)</tr>", found[1], re.S)[1:]  # past the header
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell))
             for cell in re.findall(r"<td>(.*?)</td>", row, re.S)] for row in rows]


def test_fault_table(page: str) -> None:
    assert table(page, "faults") == [["crash zone:a", "crash", "2m", "5m",
                                      table(page, "faults")[0][4]]]


def test_entries_that_went_down(page: str) -> None:
    rows = table(page, "down")
    checkout = [row for row in rows if row[0] == "frontend.checkout"]
    assert checkout, rows
    assert checkout[0][1] in {"2m", "2m 1s", "2m 2s"}  # at the crash, give or take a window
    assert all(row[0] != "frontend.browse" for row in rows)  # browse has no zone-a-only callee


def test_breaker_transitions(page: str) -> None:
    rows = table(page, "transitions")
    assert rows and rows[0][3] == "open"
    assert {row[1] for row in rows} >= {"frontend->checkout"}


def test_failed_properties(page: str) -> None:
    names = [row[0] for row in table(page, "failed")]
    assert "availability:frontend.checkout" in names


def test_story_and_interactive_timeline(page: str) -> None:
    story = re.search(r"<p class='story'>(.*?)</p>", page, re.S)
    assert story and "crash zone:a at 2m" in story[1] and "went down" in story[1]
    svg = re.search(r"<svg class='timeline'.*?</svg>", page, re.S)
    assert svg
    assert re.search(r"<rect class='fault'[^>]*><title>crash zone:a: 2m to 5m</title>", svg[0])
    tips = re.findall(r"<circle class='point'[^>]*><title>([^<]*)</title>", svg[0])
    assert len(tips) > 20
    assert any(re.match(r"frontend\.checkout at 2m \d*s?: availability 0%", t) for t in tips)


def fake_run(rows: list[tuple[float, str, int, int]]) -> SimpleNamespace:
    frame = pd.DataFrame(rows, columns=["time_s", "entry", "requests", "ok"])
    return SimpleNamespace(timeline=frame)


def test_down_intervals_merge_and_split() -> None:
    rows = [(t, "a.x", 10, ok) for t, ok in
            [(0, 10), (1, 0), (2, 4), (3, 10), (4, 0), (5, 10)]]
    rows += [(t, "b.y", requests, 0) for t, requests in [(0, 5), (1, 0), (2, 5)]]
    found = down_intervals(fake_run(rows))  # type: ignore[arg-type]
    # a.x: windows 1-2 down (below half), up at 3, down again at 4; b.y: an empty window
    # does not end its outage.
    assert found == [("b.y", 0.0, 3.0, 10, 10), ("a.x", 1.0, 3.0, 20, 16),
                     ("a.x", 4.0, 5.0, 10, 10)]
