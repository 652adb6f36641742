"""The terminal view of a run: a ``Run.summary`` as rich tables.

Per entry: requests, ok, failed, availability, latency quantiles, and the root causes of the
failures. Per service: utilization, requests, rejected, retries, instances up. The circuit
breakers: how often each opened, when first, when last closed, and its final state. For
scenarios with faults, the per-phase view: each stretch between fault boundaries with every
entry's availability and p99 and the breakers' moves in it, so the outage's impact, the
breakers opening and closing, and the recovery read top to bottom. Last, the property verdicts
with their first violations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from faultmesh.model.units import format_duration

if TYPE_CHECKING:
    from faultmesh.simulations.observation.summary import RunSummary

STATE_STYLE = {"open": "bold red", "half_open": "yellow", "closed": "green"}


def duration(value: float | None) -> str:
    """A latency for people (``850µs``, ``12.4ms``, ``1.32s``), ``-`` when there is none."""
    return "-" if value is None else format_duration(value)


def percent(value: float | None) -> Text:
    if value is None:
        return Text("-", style="dim")
    style = "green" if value >= 0.999 else "yellow" if value >= 0.99 else "bold red"
    digits = 3 if 0.99 <= value < 1 else 1
    return Text(f"{value * 100:.{digits}f}%", style=style)


def _top(counts: dict[str, int], limit: int = 3) -> str:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return ", ".join(f"{name} {n:,}" for name, n in ranked)


def _table(title: str, caption: str | None = None) -> Table:
    return Table(title=title, caption=caption, box=box.SIMPLE_HEAD, title_justify="left",
                 title_style="bold", caption_justify="left", pad_edge=False,
                 collapse_padding=True)


def entries_table(summary: RunSummary) -> Table:
    table = _table("Entries")
    table.add_column("entry", no_wrap=True)
    for name in ("requests", "ok", "failed", "avail.", "p50", "p90", "p99"):
        table.add_column(name, justify="right", no_wrap=True)
    notes = []
    for name, e in summary["entries"].items():
        latency = e["latency_s"]
        table.add_row(name, f"{e['requests']:,}", f"{e['ok']:,}",
                      Text(f"{e['failed']:,}", style="red" if e["failed"] else ""),
                      percent(e["availability"]), duration(latency["p50"]),
                      duration(latency["p90"]), duration(latency["p99"]))
        if e["failed"]:
            notes.append(f"{name}: {_top(e['root_causes'])}")
    if notes:
        table.caption = "root causes of failures: " + "; ".join(notes)
    return table


def services_table(summary: RunSummary) -> Table:
    table = _table("Services", "instances up: up for the whole measured time")
    for name in ("service", "utilization", "requests", "rejected", "retries", "instances up"):
        table.add_column(name, justify="left" if name == "service" else "right", no_wrap=True)
    measured = summary["duration_s"] - summary["warmup_s"]
    for name, s in summary["services"].items():
        utilization = s["utilization"]
        style = "bold red" if utilization >= 0.9 else "yellow" if utilization >= 0.7 else ""
        instances = s["instances"]
        full = sum(1 for i in instances.values() if i["up_s"] >= measured - 1e-9)
        up = Text(f"{full}/{len(instances)}", style="" if full == len(instances) else "yellow")
        table.add_row(name, Text(f"{utilization:.1%}", style=style), f"{s['requests']:,}",
                      Text(f"{s['rejected']:,}", style="red" if s["rejected"] else ""),
                      f"{s['retries']:,}", up)
    return table


def breakers_table(summary: RunSummary) -> Table | None:
    breakers = summary["breakers"]
    if not breakers:
        return None
    table = _table("Circuit breakers")
    table.add_column("edge", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    # An edge has one breaker per caller instance and policy; "opened" counts all of theirs.
    for name in ("breakers", "opened", "first open", "last closed"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("final state", no_wrap=True)
    for edge, b in breakers.items():
        moves = b["transitions"]
        opens = [float(move[0]) for move in moves if move[1] == "open"]
        closes = [float(move[0]) for move in moves if move[1] == "closed"]
        final = b["state"]
        scoped = b["instances"]
        stuck = sum(1 for one in scoped.values() if one["state"] == final)
        shown = final if final == "closed" or len(scoped) < 2 \
            else f"{final} ({stuck} of {len(scoped)})"
        table.add_row(edge, b["kind"], str(len(scoped) or 1), str(len(opens)),
                      duration(opens[0] if opens else None),
                      duration(closes[-1] if closes else None),
                      Text(shown, style=STATE_STYLE.get(final, "")))
    return table


def phases_view(summary: RunSummary) -> Text | None:
    """Each phase on its own lines: label, every entry's availability and p99, breaker moves."""
    phases = summary.get("phases")
    if not phases:
        return None
    text = Text()
    text.append("Phases\n", style="bold")
    for phase in phases:
        label = phase["label"]
        text.append(f" {format_duration(phase['from']):>7} → {format_duration(phase['to']):<7} ")
        text.append(label, style="dim" if label == "warm-up"
                    else "bold yellow" if phase["faults"] else "green")
        text.append("\n")
        cells = []
        for entry, e in phase["entries"].items():
            cell = Text(f"{entry} ")
            if e["requests"]:
                cell.append_text(percent(e["availability"]))
                cell.append(f" p99 {duration(e['p99'])}", style="dim")
            else:
                cell.append("no requests", style="dim")
            cells.append(cell)
        if cells:
            text.append("   ")
            text.append_text(Text("   ").join(cells))
            text.append("\n")
        if phase["breakers"]:
            text.append("   breakers: ", style="dim")
            moves = []
            for edge, counts in phase["breakers"].items():
                move = Text(f"{edge} ")
                opened, closed = counts.get("open", 0), counts.get("closed", 0)
                move.append(" ".join(f"{state}×{n}" for state, n in counts.items()),
                            style="red" if opened > closed else "green" if closed else "yellow")
                moves.append(move)
            text.append_text(Text(" · ").join(moves))
            text.append("\n")
    return text


def properties_view(summary: RunSummary) -> Group:
    table = _table("Properties")
    for name in ("property", "verdict", "violations", "first at"):
        table.add_column(name, justify="right" if name in ("violations", "first at") else "left",
                         no_wrap=True)
    details = Text()
    for p in summary["properties"]:
        holds = p["status"] == "holds"
        first = p["violations"][0] if p["violations"] else None
        at = first["at"] if first else None
        table.add_row(p["name"], Text(p["status"], style="green" if holds else "bold red"),
                      f"{p['violation_count']:,}",
                      format_duration(at) if at is not None else ("-" if first is None else "run"))
        for violation in p["violations"][:3]:
            details.append(" ✗ ", style="bold red")
            details.append(f"{p['name']}: ", style="bold")
            details.append(f"{violation['detail']}\n")
        hidden = p["violation_count"] - min(3, len(p["violations"]))
        if hidden > 0:
            details.append(f"   … and {hidden:,} more\n", style="dim")
    return Group(table, details) if details else Group(table)


def render(summary: RunSummary, console: Console, elapsed: float | None = None) -> None:
    """Print the summary of a run."""
    scenario = summary["scenario"] or "no faults"
    head = Text()
    head.append(f"{summary['system']}", style="bold")
    head.append(f" · {scenario} · seed {summary['seed']} · "
                f"{format_duration(summary['duration_s'])} simulated")
    if summary["warmup_s"]:
        head.append(f" (warm-up {format_duration(summary['warmup_s'])})")
    if elapsed is not None:
        head.append(f" in {format_duration(elapsed)}", style="dim")
    parts: list[Any] = [head, entries_table(summary), services_table(summary)]
    for part in (breakers_table(summary), phases_view(summary)):
        if part is not None:
            parts.append(part)
    parts.append(properties_view(summary))
    verdict = summary["verdict"]
    parts.append(Text(f"verdict: {verdict}",
                      style="bold green" if verdict == "holds" else "bold red"))
    console.print(Group(*parts))
