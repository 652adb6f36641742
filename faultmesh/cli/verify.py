"""``faultmesh verify``: prove or refute a spec's properties, with counterexamples and repairs.

Exit codes per the contract: 0 every property holds, 1 one is violated, 3 one is unknown (and
none violated), 2 bad input. ``--json`` prints exactly one JSON object (``Report.to_json``);
otherwise a table for people, then each counterexample and repair, and with ``--graph`` the
counterexample's chain drawn over the topology (dot or mermaid), its services highlighted.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from faultmesh.cli.app import VERDICT_EXIT, SpecArg, app, bad_input, load_spec, out
from faultmesh.model import properties as P
from faultmesh.model.extras import check
from faultmesh.model.graph import to_dot, to_mermaid
from faultmesh.model.system import System
from faultmesh.model.units import format_duration
from faultmesh.model.verify import Report, Verdict, properties_to_verify, verify

if TYPE_CHECKING:
    from faultmesh.simulations.replay import Replay

STATUS_STYLE = {"holds": "bold green", "violated": "bold red", "unknown": "bold yellow"}


def _known_names(system: System) -> list[str]:
    return list(dict.fromkeys([*P.STATIC_KINDS, *(p.name for p in system.properties
                                                  if p.kind in P.STATIC_KINDS)]))


def choose(system: System, names: list[str] | None,
           failures: int | None) -> list[P.Property]:
    """The properties to verify: the spec's and the always-on ones, narrowed by ``names``.

    A named kind the spec does not list is checked with its defaults, so ``--property
    breaker`` works on any spec.
    """
    if not names:
        return properties_to_verify(system, failures=failures)
    known = _known_names(system)
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            bad_input(f"--property {name!r} is not a property of this spec{hint} "
                      f"(known: {', '.join(known)})")
    chosen = properties_to_verify(system, kinds=names, failures=failures)
    present = {p.kind for p in chosen} | {p.name for p in chosen}
    for name in names:
        if name not in present and name in P.PROPERTY_TYPES:
            default = P.PROPERTY_TYPES[name]()
            if failures is not None and isinstance(default, P.Survives | P.Capacity):
                default = dataclasses.replace(default, failures=failures)
            chosen.append(default)
    return chosen


def _status(status: str) -> Text:
    return Text(status, style=STATUS_STYLE[status])


def _print_table(report: Report) -> None:
    table = Table(title=f"{report.system}: {report.verdict}", title_justify="left")
    table.add_column("property")
    table.add_column("status")
    table.add_column("time", justify="right")
    table.add_column("explanation", overflow="fold")
    for v in report.verdicts:
        table.add_row(v.name, _status(v.status), format_duration(v.seconds), v.explanation)
    out.print(table)


def _print_details(v: Verdict) -> None:
    ce = v.counterexample
    if ce is None and v.repair is None:
        return
    out.print(Text.assemble((v.name, "bold"), ": ", _status(v.status)))
    if ce is not None:
        if ce.failures:
            out.print(f"  failures: {', '.join(ce.failures)}", markup=False)
        if ce.down:
            out.print(f"  down:     {', '.join(ce.down)}", markup=False)
        if ce.chain:
            out.print(f"  chain:    {' -> '.join(ce.chain)}", markup=False)
        if ce.numbers:
            numbers = ", ".join(f"{k}={val:g}" for k, val in ce.numbers.items())
            out.print(f"  numbers:  {numbers}", markup=False)
    if v.repair is not None:
        out.print(f"  repair:   {v.repair.description}", markup=False)
        for key, value in v.repair.changes.items():
            out.print(f"            {key}: {json.dumps(value)}", markup=False)


def highlight(system: System, v: Verdict) -> list[str]:
    """The services a counterexample involves: its chain's, plus the down entries' services."""
    ce = v.counterexample
    if ce is None:
        return []
    names = [*ce.chain, *ce.down]
    return [s for s in dict.fromkeys(n.partition(".")[0] for n in names) if s in system.services]


@app.command("verify")
def verify_command(
    spec: SpecArg,
    failures: Annotated[int | None, typer.Option(
        "--failures", help="K for survives and capacity (adds survives if the spec has none)",
        show_default=False)] = None,
    names: Annotated[list[str] | None, typer.Option(
        "--property", help="check only this property kind or name (repeatable)",
        show_default=False)] = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", help="solver time limit per property, in seconds")] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
    graph: Annotated[str | None, typer.Option(
        "--graph", help="draw each counterexample's chain: dot or mermaid",
        show_default=False)] = None,
    replay_runs: Annotated[bool, typer.Option(
        "--replay", help="simulate each survives/capacity counterexample and compare")] = False,
    seed: Annotated[int, typer.Option("--seed", help="random seed for --replay")] = 0,
) -> None:
    """Prove or refute the spec's properties (plus the always-on ones) with Z3."""
    if failures is not None and failures < 0:
        bad_input(f"--failures must be at least 0, not {failures}")
    if timeout < 0:
        bad_input(f"--timeout must not be negative, not {timeout:g}")
    if graph is not None and graph not in ("dot", "mermaid"):
        bad_input(f"--graph takes dot or mermaid, not {graph!r}")
    if graph is not None and as_json:
        bad_input("--graph draws for people and cannot go with --json; use "
                  "`faultmesh graph SPEC --highlight SERVICE` on the JSON's chain instead")
    if replay_runs:  # a replay measures availability on the run's timeline (a DataFrame)
        check("data", "verify --replay")
    system = load_spec(spec)
    report = verify(system, choose(system, names, failures), timeout=timeout)
    replays = _replays(system, report, seed) if replay_runs else []
    if as_json:
        body = report.to_json()
        if replay_runs:
            body["replays"] = [r.to_json() for r in replays]
        print(json.dumps(body, indent=2))
        raise typer.Exit(VERDICT_EXIT[report.verdict])
    _print_table(report)
    for v in report.verdicts:
        if v.status != "holds":
            _print_details(v)
    if graph is not None:
        for v in report.verdicts:
            marked = highlight(system, v)
            if v.status == "violated" and marked:
                out.print(f"\n{v.name}: counterexample over the topology ({graph})",
                          markup=False)
                drawing = to_dot(system, marked) if graph == "dot" else to_mermaid(system, marked)
                out.print(drawing, markup=False, end="")
    if replay_runs and not replays:
        out.print("\n--replay: nothing to replay: no survives or capacity property was violated "
                  "with a failure set to crash", markup=False)
    for result in replays:
        _print_replay(result)
    raise typer.Exit(VERDICT_EXIT[report.verdict])


REPLAYED_KINDS = ("survives", "capacity")


def _replays(system: System, report: Report, seed: int) -> list[Replay]:
    """Simulate every replayable counterexample (a failure set) of the report."""
    from faultmesh.simulations.replay import replay

    return [replay(system, v, seed=seed) for v in report.verdicts
            if v.kind in REPLAYED_KINDS and v.status == "violated" and v.counterexample
            and v.counterexample.failures]


def _print_replay(result: Replay) -> None:
    """What the proof predicted next to what the simulation measured: per entry for survives,
    for the overloaded service for capacity."""
    failures = ", ".join(result.verdict.counterexample.failures)  # type: ignore[union-attr]
    start, end = result.window
    table = Table(title=f"replay of {result.verdict.name}: {failures} down, measured "
                        f"{format_duration(start)}–{format_duration(end)}", title_justify="left")
    if result.services:
        for column in ("service", "proof says", "simulation measured", ""):
            table.add_column(column)
        for s in result.services:
            table.add_row(s.service, s.claim(), s.measured(), _agreement(s.agrees))
    else:
        for column in ("entry", "proof says", "availability in window", ""):
            table.add_column(column)
        for e in result.entries:
            shown = "no requests" if e.availability is None else f"{e.availability:.2%}"
            table.add_row(e.entry, e.claim(), shown, _agreement(e.agrees))
    out.print()
    _print_whole(table)
    verdict = "agrees with" if result.agrees else "DISAGREES with"
    out.print(f"the simulation {verdict} the proof", markup=False)


def _agreement(agrees: bool) -> Text:
    return Text("agrees", style="green") if agrees else Text("disagrees", style="red")


def _print_whole(table: Table) -> None:
    """Print ``table`` without cutting a cell: a terminal gets its own width; a pipe or file
    (no width to fit) gets the table at its natural width, so names are never truncated."""
    if out.is_terminal:
        out.print(table)
        return
    wide = Console(file=out.file, width=UNBOUNDED_WIDTH, highlight=False, soft_wrap=True,
                   no_color=out.no_color, color_system=None)
    wide.print(table)


UNBOUNDED_WIDTH = 100_000
