"""``faultmesh verify``: prove or refute a spec's properties, with counterexamples and repairs.

Exit codes per the contract: 0 every property holds, 1 one is violated, 3 one is unknown (and
none violated), 2 bad input. ``--json`` prints exactly one JSON object (``Report.to_json``,
plus ``checked_by_simulation`` when the spec has dynamic properties); otherwise a table for
people, then each counterexample and repair.
With ``--graph`` the counterexamples' chains drawn over the topology (dot or mermaid, their
services highlighted) are all that goes to stdout, so it pipes into ``dot``; the table goes to
stderr. The spec's dynamic properties (availability, latency, breaker reaction) are no question
for a proof: the output names them and the command that checks them (``simulate``).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import shlex
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from faultmesh.cli.app import VERDICT_EXIT, Command, SpecArg, app, bad_input, err, load_spec, out
from faultmesh.model import properties as P
from faultmesh.model.extras import check
from faultmesh.model.graph import to_dot, to_mermaid
from faultmesh.model.system import System
from faultmesh.model.units import format_duration, format_percent
from faultmesh.model.verify import Report, Verdict, properties_to_verify, verify
from faultmesh.model.verify.wording import (
    SUMMARY_LIMIT,
    arrow,
    change_lines,
    change_summary,
    grouped_names,
    numbers_text,
)
from faultmesh.simulations.presentation.terminal import (
    UNBOUNDED,
    endpoint_labels,
    labelled,
    print_table,
)

if TYPE_CHECKING:
    from faultmesh.simulations.replay import Replay

STATUS_STYLE = {"holds": "bold green", "violated": "bold red", "unknown": "bold yellow"}


def _known_names(system: System) -> list[str]:
    return list(dict.fromkeys([*P.STATIC_KINDS, *(p.name for p in system.properties
                                                  if p.kind in P.STATIC_KINDS)]))


# Properties a simulation's monitors check (DESIGN: "checked by verify (static) and/or by
# monitors (dynamic)"); no proof decides them.
DYNAMIC_KINDS = tuple(kind for kind in P.PROPERTY_TYPES if kind not in P.STATIC_KINDS)


# How a spec declares each dynamic property (for the message when it declares none).
DYNAMIC_EXAMPLES = {"availability": "{entry: SERVICE.ENDPOINT, at_least: 99.9%}",
                    "latency": "{entry: SERVICE.ENDPOINT, p99: 250ms}",
                    "breaker_reaction": "{within: 10s}"}


def _undeclared_dynamic(system: System, names: list[str]) -> None:
    """A named dynamic kind the spec does not declare: there is nothing to check, by proof or
    by simulation; say where it would be checked and how to declare it (exit 2)."""
    for name in names:
        if name in DYNAMIC_KINDS and not any(p.kind == name for p in system.properties):
            example = DYNAMIC_EXAMPLES.get(name, "{...}")
            bad_input(f"--property {name}: {name} is checked by simulation (`faultmesh "
                      f"simulate`), not by verify, and this spec declares none; add one under "
                      f"properties, e.g. `- {name}: {example}`")


def simulated(system: System, names: list[str] | None) -> list[P.Property]:
    """The spec's properties a simulation checks, narrowed by ``names`` (kinds or names)."""
    dynamic = [p for p in system.properties if p.kind in DYNAMIC_KINDS]
    if names:
        dynamic = [p for p in dynamic if p.kind in names or p.name in names]
    return dynamic


def simulate_command(spec: Path, system: System) -> str:
    """The command that checks the dynamic properties: a simulation of the spec's first
    scenario (its monitors watch them), or of the plain workload when it has none."""
    command = f"faultmesh simulate {shlex.quote(str(spec))}"
    if system.scenarios:
        command += f" --scenario {shlex.quote(next(iter(system.scenarios)))}"
    return command


def simulated_json(spec: Path, system: System, props: list[P.Property]) -> list[dict[str, Any]]:
    return [{"name": p.name, "kind": p.kind, "check": simulate_command(spec, system)}
            for p in props]


def simulated_note(spec: Path, system: System, props: list[P.Property]) -> str:
    names = ", ".join(p.name for p in props)
    return (f"checked by simulation, not by proof: {names}; run `{simulate_command(spec, system)}`"
            " (its monitors check them; `verify --replay` simulates this report's "
            "counterexamples)")


def choose(system: System, names: list[str] | None,
           failures: int | None) -> list[P.Property]:
    """The properties to verify: the spec's and the always-on ones, narrowed by ``names``.

    A named kind the spec does not list is checked with its defaults, so ``--property
    breaker`` works on any spec. A name of a property simulation checks (``availability``)
    is left to ``simulated``: it is answered with a note, not proved.
    """
    if not names:
        return properties_to_verify(system, failures=failures)
    dynamic = {p.name for p in system.properties if p.kind in DYNAMIC_KINDS}
    names = [name for name in names if name not in DYNAMIC_KINDS and name not in dynamic]
    if not names:
        return []
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


def _print_table(report: Report, console: Console, *, full: bool = False) -> None:
    """One row per property. In a pipe or a file, a table at its natural width, one line per
    row (lines may be long there: a CI log, ``| wc -l``), so a report's length is its number
    of properties, whatever it explains. On a terminal, a table at its width with ``full``;
    else one line per property with its explanation wrapped under it across the whole width
    (a table's narrow explanation column took three times the lines)."""
    table = Table(title=f"{report.system}: {report.verdict}", title_justify="left",
                  box=box.SIMPLE_HEAD)
    table.add_column("property")
    table.add_column("status", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("explanation", overflow="fold")
    for v in report.verdicts:
        table.add_row(v.name, _status(v.status), format_duration(v.seconds), v.explanation)
    if console.is_terminal and full:
        print_table(console, table)
    elif console.is_terminal:
        console.print(Text.assemble((f"{report.system}: ", "bold"), _status(report.verdict)))
        name_width = max(len(v.name) for v in report.verdicts)
        for v in report.verdicts:
            head = f" {v.status:<8}  {v.name:<{name_width}}  {format_duration(v.seconds):>7}  "
            lines = textwrap.wrap(head + v.explanation, width=max(40, console.width - 1),
                                  subsequent_indent="    ", break_on_hyphens=False)
            first = Text(lines[0])
            first.stylize(STATUS_STYLE[v.status], 1, 1 + len(v.status))
            console.print(first, *lines[1:], sep="\n", soft_wrap=True)
    else:
        natural = Measurement.get(console, console.options.update(max_width=UNBOUNDED),
                                  table).maximum
        wide = Console(file=console.file, width=max(console.width, natural), highlight=False,
                       soft_wrap=True, no_color=console.no_color,
                       color_system=console.color_system)  # type: ignore[arg-type]
        with wide.capture() as captured:
            wide.print(table)
        # Rich pads every line to the table's width; a log or a diff wants no trailing blanks.
        console.file.write("".join(line.rstrip() + "\n"
                                   for line in captured.get().splitlines()))


def _reported(v: Verdict) -> list[str]:
    """The endpoints a counterexample names (chain, down, degraded), in order, once each."""
    ce = v.counterexample
    if ce is None:
        return []
    return list(dict.fromkeys([*ce.chain, *ce.down, *ce.degraded]))


def _print_details(v: Verdict, out: Console, *, full: bool = False,
                   labels: dict[str, str] | None = None) -> bool:
    """A property's counterexample and repair; long lists (down entries, repair changes) are
    grouped and counted unless ``full``. True if anything was left out. The chain's labelled
    endpoints carry their label (``nginx.composePost (POST /wrk2-api/post/compose)``)."""
    ce = v.counterexample
    if ce is None and v.repair is None:
        return False
    cut = False
    out.print(Text.assemble((v.name, "bold"), ": ", _status(v.status)))
    if ce is not None:
        if ce.failures:
            out.print(f"  failures: {', '.join(ce.failures)}", markup=False)
        if ce.down:
            down = ", ".join(ce.down) if full else grouped_names(ce.down)
            cut |= not full and len(ce.down) > SUMMARY_LIMIT
            out.print(f"  down:     {down}", markup=False)
        if ce.degraded:
            names = list(ce.degraded)
            shown = (", ".join(f"{n} ({format_percent(ce.degraded[n])} served)" for n in names)
                     if full or len(names) <= SUMMARY_LIMIT else grouped_names(names))
            cut |= not full and len(names) > SUMMARY_LIMIT
            out.print(f"  degraded: {shown}", markup=False)
        if ce.chain:
            steps = [labelled(step, labels or {}) for step in ce.chain]
            chain = " -> ".join(steps) if full else arrow(steps)
            cut |= not full and len(ce.chain) > 6
            out.print(f"  chain:    {chain}", markup=False)
        if ce.numbers:
            out.print(f"  numbers:  {numbers_text(ce.numbers)}", markup=False)
    if v.repair is not None:
        out.print(f"  repair:   {v.repair.description}", markup=False)
        lines = change_lines(v.repair.changes) if full else change_summary(v.repair.changes)
        cut |= not full and len(lines) < len(change_lines(v.repair.changes))
        for line in lines:
            out.print(f"            {line}", markup=False)
    return cut


def graph_scope(system: System, marked: list[str], ce_failures: tuple[str, ...] = ()
                ) -> list[str]:
    """The counterexample's neighbourhood: its services (and the failed ones) with their
    direct callers and callees, workload sources included."""
    from faultmesh.model.graph import call_graph

    graph = call_graph(system)
    core = set(marked)
    for failure in ce_failures:
        kind, _, target = failure.partition(":")
        if kind == "service":
            core.add(target)
        elif kind == "instance":
            core.add(target.rpartition("-")[0])
    core &= set(graph.nodes)
    near = set(core)
    for node in core:
        near.update(graph.predecessors(node))
        near.update(graph.successors(node))
    return [n for n in graph.nodes if n in near]


def highlight(system: System, v: Verdict) -> list[str]:
    """The services a counterexample involves: its chain's, plus the down entries' services."""
    ce = v.counterexample
    if ce is None:
        return []
    names = [*ce.chain, *ce.down]
    return [s for s in dict.fromkeys(n.partition(".")[0] for n in names) if s in system.services]


@app.command("verify", cls=Command,
             short_help="prove or refute the spec's properties with Z3 (exit 1: violated)")
def verify_command(
    spec: SpecArg,
    failures: Annotated[int | None, typer.Option(
        "--failures", metavar="K",
        help="K for survives and capacity (adds survives if the spec has none)",
        show_default=False)] = None,
    names: Annotated[list[str] | None, typer.Option(
        "--property", metavar="NAME", help="check only this property kind or name (repeatable)",
        show_default=False)] = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", metavar="S",
        help="time limit for the whole of verify (all properties), in seconds")] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
    graph: Annotated[str | None, typer.Option(
        "--graph", metavar="dot|mermaid",
        help="draw each counterexample's chain over the topology: the drawing alone goes to "
        "stdout (pipe it to dot), the table to stderr", show_default=False)] = None,
    scope: Annotated[str, typer.Option(
        "--graph-scope", metavar="near|all",
        help="with --graph: near draws each counterexample's services with their direct "
        "callers and callees; all draws the whole system")] = "near",
    full: Annotated[bool, typer.Option(
        "--full", help="every down entry and repair change, not grouped and counted")] = False,
    replay_runs: Annotated[bool, typer.Option(
        "--replay", help="simulate each survives/capacity counterexample and compare")] = False,
    seed: Annotated[int, typer.Option(
        "--seed", metavar="N", help="random seed for --replay")] = 0,
) -> None:
    """Prove or refute the spec's properties (plus the always-on ones) with Z3."""
    if failures is not None and failures < 0:
        bad_input(f"--failures must be at least 0, not {failures}")
    from faultmesh.model.spec.fields import MAX_FAILURES  # (pydantic: not at start-up)

    if failures is not None and failures > MAX_FAILURES:  # the same bound as the spec's
        bad_input(f"--failures must be at most {MAX_FAILURES:,}, not {failures:,}")
    if timeout < 0:
        bad_input(f"--timeout must not be negative, not {timeout:g}")
    if graph is not None and graph not in ("dot", "mermaid"):
        bad_input(f"--graph takes dot or mermaid, not {graph!r}")
    if scope not in ("near", "all"):
        bad_input(f"--graph-scope takes near or all, not {scope!r}")
    if graph is not None and as_json:
        bad_input("--graph draws for people and cannot go with --json; use "
                  "`faultmesh graph SPEC --highlight SERVICE` on the JSON's chain instead")
    if replay_runs:  # a replay measures availability on the run's timeline (a DataFrame)
        check("data", "verify --replay")
    system = load_spec(spec)
    _undeclared_dynamic(system, names or [])
    by_simulation = simulated(system, names)
    report = verify(system, choose(system, names, failures), timeout=timeout)
    replays = _replays(system, report, seed) if replay_runs else []
    if as_json:
        body = report.to_json()
        if by_simulation:  # beside the contract's keys, only when there is something to say
            body["checked_by_simulation"] = simulated_json(spec, system, by_simulation)
        if replay_runs:
            body["replays"] = [r.to_json() for r in replays]
        _add_labels(system, report, body)
        print(json.dumps(body, indent=2))
        raise typer.Exit(VERDICT_EXIT[report.verdict])
    # With --graph, stdout carries the drawings alone (`... --graph dot | dot -Tsvg`).
    people = out if graph is None else err
    if report.verdicts:
        _print_table(report, people, full=full)
    cut = False
    labels = endpoint_labels(system)
    for v in report.verdicts:
        if v.status != "holds":
            cut |= _print_details(v, people, full=full, labels=labels)
    if cut:
        people.print("(long lists grouped and counted: `--full` or `--json` for all)",
                     markup=False)
    if by_simulation:
        people.print(simulated_note(spec, system, by_simulation), markup=False)
    if graph is not None:
        _print_graphs(system, report, graph, everything=scope == "all")
    if replay_runs and not replays:
        people.print("\n--replay: nothing to replay: no survives or capacity property was "
                     "violated with a failure set to crash", markup=False)
    for result in replays:
        _print_replay(result, people)
    raise typer.Exit(VERDICT_EXIT[report.verdict])


def _add_labels(system: System, report: Report, body: dict[str, Any]) -> None:
    """Beside a counterexample's contract keys, ``labels``: the label of each labelled endpoint
    it names; only when there is one, so unlabelled specs print what they always did."""
    for v, prop in zip(report.verdicts, body["properties"], strict=True):
        labels = endpoint_labels(system, _reported(v))
        if labels and prop.get("counterexample") is not None:
            prop["counterexample"]["labels"] = labels


def _print_graphs(system: System, report: Report, fmt: str, *, everything: bool) -> None:
    """Each violated property's counterexample, alone on stdout: its neighbourhood (the
    chain's and failed services with their direct callers and callees), or the whole topology
    when ``everything``; a comment line (which dot and mermaid both skip) names the property."""
    comment = "//" if fmt == "dot" else "%%"
    drawn = 0
    for v in report.verdicts:
        marked = highlight(system, v)
        if v.status == "violated" and marked:
            only = None
            what = "over the topology"
            if not everything:
                failures = v.counterexample.failures if v.counterexample else ()
                only = graph_scope(system, marked, failures)
                total = len(system.services) + len({w.source for w in system.workload})
                what = (f"and its neighbourhood ({len(only)} of {total} nodes: its services "
                        "with their direct callers and callees; --graph-scope all for the "
                        "whole system)")
            drawing = (to_dot(system, marked, only=only) if fmt == "dot"
                       else to_mermaid(system, marked, only=only))
            out.print(f"{comment} {v.name}: counterexample {what}", markup=False)
            out.print(drawing, markup=False, end="")
            drawn += 1
    if not drawn:
        err.print(f"--graph {fmt}: no counterexample to draw", markup=False)


REPLAYED_KINDS = ("survives", "capacity", "overload_recovery")


def _replays(system: System, report: Report, seed: int) -> list[Replay]:
    """Simulate every replayable counterexample of the report: a failure set, or (capacity)
    an overload with nothing failed, replayed as the plain workload."""
    from faultmesh.simulations.replay import replay

    return [replay(system, v, seed=seed) for v in report.verdicts
            if v.kind in REPLAYED_KINDS and v.status == "violated" and v.counterexample
            and (v.counterexample.failures or v.counterexample.trigger
                 or v.kind == "capacity")]


def _print_replay(result: Replay, out: Console) -> None:
    """What the proof predicted next to what the simulation measured: per entry for survives,
    for the overloaded service for capacity."""
    failures = ", ".join(result.verdict.counterexample.failures)  # type: ignore[union-attr]
    start, end = result.window
    what = f"{failures} down" if failures else "nothing failed (the plain workload)"
    if result.verdict.counterexample and result.verdict.counterexample.trigger:
        from faultmesh.simulations.engine.faults import describe

        what = "after the trigger " + ", ".join(
            describe(f) for f in result.verdict.counterexample.trigger)
    table = Table(title=f"replay of {result.verdict.name}: {what}, measured "
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
            shown = "no requests" if e.availability is None else format_percent(e.availability)
            table.add_row(e.entry, e.claim(), shown, _agreement(e.agrees))
    out.print()
    print_table(out, table)
    for monitor in result.recovers:
        for violation in monitor.get("violations", [])[:1]:
            out.print(f"{monitor['name']}: {violation['detail']}", markup=False)
    for what, (start, end), entries in result.others:
        # The other runs of an overload replay: the surge trigger, the repaired system.
        shown = "; ".join(
            f"{e.entry} "
            f"{'no requests' if e.availability is None else format_percent(e.availability)}"
            f" (proof says {e.claim()}, {'agrees' if e.agrees else 'DISAGREES'})"
            for e in entries) or "nothing measured"
        out.print(f"{what}, measured {format_duration(start)}–{format_duration(end)}: {shown}",
                  markup=False)
    verdict = "agrees with" if result.agrees else "DISAGREES with"
    out.print(f"the simulation {verdict} the proof", markup=False)


def _agreement(agrees: bool) -> Text:
    return Text("agrees", style="green") if agrees else Text("disagrees", style="red")

