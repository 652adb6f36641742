"""Tables never cut a number or a name: in a pipe, in a CI log and on an 80-column terminal.

Rich fits a table to the console's width by cutting cells short with an ellipsis
(``19.8…``, ``breake…``). ``print_table`` wraps names instead, and when the numbers alone do
not fit it lays the table out one block per row (terminal) or at its natural width (pipe).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.table import Table

from faultmesh.simulations.presentation.terminal import print_table, records, render

ROOT = Path(__file__).resolve().parent.parent
SHOP = str(ROOT / "specs" / "zone_outage_shop.yaml")
# A word cut short: a letter or digit right before or after rich's ellipsis.
CUT = re.compile(r"\w…|…\w")


def _cli(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    """The command line in a subprocess, its stdout a pipe (as in a CI log)."""
    env = {**os.environ, "COLUMNS": str(columns)}
    env.pop("FORCE_COLOR", None)
    return subprocess.run([sys.executable, "-m", "faultmesh", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def summary() -> dict[str, Any]:
    done = _cli("simulate", SHOP, "--scenario", "zone-a-outage", "--duration", "3m", "--json")
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _numbers(summary: dict[str, Any]) -> list[str]:
    """Counts the terminal view prints (with thousands separators), as it prints them."""
    shown = []
    for e in summary["entries"].values():
        shown += [f"{e['requests']:,}", f"{e['ok']:,}", f"{e['failed']:,}"]
    for s in summary["services"].values():
        shown += [f"{s['requests']:,}", f"{s['retries']:,}"]
    return shown


def _terminal(width: int, summary: dict[str, Any]) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=width, color_system=None,
                      highlight=False, soft_wrap=True)
    render(summary, console)  # type: ignore[arg-type]
    return buffer.getvalue()


@pytest.mark.parametrize("width", [80, 60, 40])
def test_terminal_view_cuts_nothing_at_any_width(summary: dict[str, Any], width: int) -> None:
    text = _terminal(width, summary)
    assert not CUT.search(text), CUT.search(text)
    words = set(re.split(r"\s+", text))
    for number in _numbers(summary):
        assert number in words, (number, width)
    for name in [*summary["entries"], *summary["services"], *summary["breakers"]]:
        assert name in words, (name, width)
    # Lines stay within the terminal's width (the table changed layout instead of cutting).
    assert max(len(line.rstrip()) for line in text.splitlines()) <= width


def test_simulate_in_a_pipe_at_80_columns_keeps_rows_whole(summary: dict[str, Any]) -> None:
    done = _cli("simulate", SHOP, "--scenario", "zone-a-outage", "--duration", "3m")
    assert done.returncode in (0, 1), done.stderr
    assert not CUT.search(done.stdout), CUT.search(done.stdout)
    lines = done.stdout.splitlines()
    for edge, breaker in summary["breakers"].items():
        row = [line for line in lines if line.strip().startswith(edge + " ")]
        assert row, edge
        assert breaker["kind"] in row[0]  # the row is one line: nothing folded away
    for number in _numbers(summary):
        assert number in done.stdout.split(), number


def test_verify_and_sweep_tables_in_a_pipe_cut_nothing() -> None:
    verified = _cli("verify", str(ROOT / "specs" / "dsb_hotel_reservation.yaml"))
    assert verified.returncode == 1, verified.stderr
    assert not CUT.search(verified.stdout)
    swept = _cli("sweep", str(ROOT / "specs" / "mm1.yaml"), "--duration", "20s", "--seeds", "2",
                 "--backend", "serial", "--set", "services.server.workers=1,2", columns=60)
    assert swept.returncode in (0, 1), swept.stderr
    assert "…" not in swept.stdout
    assert re.search(r"\d+\.\d{3}%", swept.stdout)  # availabilities whole


def test_a_too_wide_table_becomes_one_block_per_row_on_a_terminal() -> None:
    table = Table(title="wide")
    table.add_column("name")
    for column in ("alpha", "beta", "gamma"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_row("first-row", "123,456,789.5", "2m 3.25s", "99.991%")
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=30, color_system=None)
    print_table(console, table)
    text = buffer.getvalue()
    for value in ("123,456,789.5", "2m 3.25s", "99.991%", "first-row"):
        assert value in text
    assert "…" not in text
    assert records(table, 30).plain.splitlines()[1] == " first-row"
