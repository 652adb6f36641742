"""The terminal view of a run: a ``Run.summary`` as rich tables.

Per entry: requests, ok, failed, availability, latency quantiles, and the root causes of the
failures; an entry whose endpoint has a label (the operation as its users name it, ``POST
/wrk2-api/post/compose``) shows it in an ``operation`` column. Per service: utilization,
requests, rejected, retries, instances up. The circuit breakers: how often each opened, when
first, when last closed, and its final state. For scenarios with faults, the per-phase view:
each stretch between fault boundaries with every entry's availability and p99 and the breakers'
moves in it, so the outage's impact, the breakers opening and closing, and the recovery read
top to bottom. Last, the property verdicts with their first violations.

No table cuts a number or a name (``print_table``, which the command line's other tables use
too): each table comes at the console's width, names wrapping in their cells; when the numbers
alone are too wide, a terminal gets one block per row and a pipe or file (a CI log) gets every
row on one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from faultmesh.model.units import format_duration, format_percent

if TYPE_CHECKING:
    from faultmesh.model.system import System
    from faultmesh.simulations.observation.summary import RunSummary

STATE_STYLE = {"open": "bold red", "half_open": "yellow", "closed": "green"}
ELLIPSIS = "…"  # what rich puts where it cuts a cell short
UNBOUNDED = 100_000  # a width no table reaches: its natural width is what it measures


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` with every cell whole.

    At the console's width if it fits there with the columns that may wrap (names,
    explanations) wrapped between words and the others (numbers: ``no_wrap``) whole. If not: on
    a terminal, one block per row, its fields packed onto lines of the terminal's width; in a
    pipe or file (a CI log, where lines may be long), the table at its natural width, one line
    per row. Sets each ``no_wrap`` column's ``min_width`` to its widest cell.
    """
    if not _cuts(console, table):
        console.print(table, soft_wrap=False)  # a console that soft-wraps would not wrap captions
    elif console.is_terminal:
        console.print(records(table, console.width), soft_wrap=False)
    else:
        natural = Measurement.get(console, console.options.update(max_width=UNBOUNDED),
                                  table).maximum
        wide = Console(file=console.file, width=natural, highlight=False, soft_wrap=True,
                       no_color=console.no_color,
                       color_system=console.color_system)  # type: ignore[arg-type]
        wide.print(table)


def _cuts(console: Console, table: Table) -> bool:
    """Whether rich, fitting ``table`` to the console's width, would cut a cell short: the
    narrowest it can be (wrapping columns at their longest word, ``no_wrap`` ones whole) is too
    wide, or its rendering shows an ellipsis that no cell holds."""
    options = console.options.update(max_width=UNBOUNDED)
    for column in table.columns:
        if column.no_wrap:  # rich would shrink it below its content (and cut) to fit
            widest = max((Measurement.get(console, options, cell).maximum
                          for cell in (column.header, *column.cells)), default=0)
            column.min_width = max(column.min_width or 0, widest)
    if Measurement.get(console, options, table).minimum > console.width:
        return True
    own = any(ELLIPSIS in _plain(cell) for column in table.columns for cell in column.cells)
    if own:  # a cell that itself holds an ellipsis: compare with the natural rendering
        return _rendered(console, table, console.width).count(ELLIPSIS) > _rendered(
            console, table, UNBOUNDED).count(ELLIPSIS)
    return ELLIPSIS in _rendered(console, table, console.width)


def _rendered(console: Console, table: Table, width: int) -> str:
    lines = console.render_lines(table, console.options.update(width=width, max_width=width),
                                 pad=False)
    return "\n".join("".join(segment.text for segment in line) for line in lines)


def _plain(cell: RenderableType) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def records(table: Table, width: int) -> Text:
    """``table`` as one block per row: the first cell on its own line, then ``header value``
    fields packed onto lines no wider than ``width`` (a field is never split); empty cells are
    left out, and the caption follows."""
    text = Text()
    if table.title:
        text.append(f"{_plain(table.title)}\n", style="bold")
    headers = [_plain(column.header) for column in table.columns]
    rows = zip(*([*column.cells] for column in table.columns), strict=True)
    for row in rows:
        first, *rest = row
        name = _plain(first)
        if name:
            text.append(f" {name}\n", style="bold")
        line, used = Text("   "), 3
        for header, cell in zip(headers[1:], rest, strict=True):
            value = cell if isinstance(cell, Text) else Text(str(cell))
            if not value.plain:
                continue
            field = Text.assemble((f"{header} ", "dim"), value)
            extra = len(field) + (2 if used > 3 else 0)
            if used > 3 and used + extra > width:
                text.append_text(line)
                text.append("\n")
                line, used = Text("   "), 3
                extra = len(field)
            if used > 3:
                line.append("  ")
            line.append_text(field)
            used += extra
        if used > 3:
            text.append_text(line)
            text.append("\n")
    if table.caption:
        text.append(f"{_plain(table.caption)}\n", style="dim")
    return text


def duration(value: float | None) -> str:
    """A latency for people (``850µs``, ``12.4ms``, ``1.32s``), ``-`` when there is none."""
    return "-" if value is None else format_duration(value)


def percent(value: float | None) -> Text:
    if value is None:
        return Text("-", style="dim")
    style = "green" if value >= 0.999 else "yellow" if value >= 0.99 else "bold red"
    return Text(format_percent(value), style=style)


def _top(counts: dict[str, int], limit: int = 3) -> str:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return ", ".join(f"{name} {n:,}" for name, n in ranked)


def endpoint_labels(system: System, names: Iterable[str] | None = None) -> dict[str, str]:
    """``service.endpoint`` -> label for the labelled endpoints (of ``names`` if given)."""
    labels = {f"{service}.{name}": endpoint.label
              for service, body in system.services.items()
              for name, endpoint in body.endpoints.items() if endpoint.label is not None}
    if names is None:
        return labels
    return {name: labels[name] for name in names if name in labels}


def labelled(name: str, labels: Mapping[str, str]) -> str:
    """``nginx.composePost (POST /wrk2-api/post/compose)``, or the bare name if unlabelled."""
    label = labels.get(name)
    return f"{name} ({label})" if label else name


def _table(title: str, caption: str | None = None) -> Table:
    return Table(title=title, caption=caption, box=box.SIMPLE_HEAD, title_justify="left",
                 title_style="bold", caption_justify="left", pad_edge=False,
                 collapse_padding=True)


# Rows a table shows at most unless ``full``: the most telling ones, the rest counted.
ROWS = 12


def ranked(summary: RunSummary) -> list[str]:
    """The entries by impact (failed requests), then traffic, then name."""
    entries = summary["entries"]
    return sorted(entries, key=lambda n: (-entries[n]["failed"], -entries[n]["requests"], n))


def _shown(names: list[str], full: bool) -> list[str]:
    """The names a table shows: all with ``full`` or when one more would do, else ROWS."""
    return names if full or len(names) <= ROWS + 1 else names[:ROWS]


def entries_table(summary: RunSummary, full: bool = True,
                  labels: Mapping[str, str] | None = None) -> Table:
    """One row per entry; unless ``full``, the ROWS with most failures (then most requests)
    and one line counting the others. With ``labels``, an ``operation`` column beside the
    entry when a row shown has one (a column, not a longer name, so rows stay one line)."""
    table = _table("Entries")
    table.add_column("entry")
    names = list(summary["entries"]) if full else _shown(ranked(summary), full)
    labels = labels or {}
    operation = any(name in labels for name in names)
    if operation:
        table.add_column("operation")
    for name in ("requests", "ok", "failed", "avail.", "p50", "p90", "p99"):
        table.add_column(name, justify="right", no_wrap=True)
    notes = []
    for name in names:
        e = summary["entries"][name]
        latency = e["latency_s"]
        table.add_row(name, *([labels.get(name, "")] if operation else []),
                      f"{e['requests']:,}", f"{e['ok']:,}",
                      Text(f"{e['failed']:,}", style="red" if e["failed"] else ""),
                      percent(e["availability"]), duration(latency["p50"]),
                      duration(latency["p90"]), duration(latency["p99"]))
        if e["failed"]:
            notes.append(f"{name}: {_top(e['root_causes'])}")
    captions = []
    hidden = [n for n in summary["entries"] if n not in set(names)]
    if hidden:
        requests = sum(summary["entries"][n]["requests"] for n in hidden)
        failed = sum(summary["entries"][n]["failed"] for n in hidden)
        share = (requests - failed) / requests if requests else None
        captions.append(f"{len(hidden)} more entries ({requests:,} requests, {failed:,} failed, "
                        f"availability {format_percent(share)}): `--full` for every row")
    if notes:
        captions.append("root causes of failures: " + "; ".join(notes))
    if captions:
        table.caption = "\n".join(captions)
    return table


def services_table(summary: RunSummary, full: bool = True) -> Table:
    """One row per service; unless ``full``, the ROWS that rejected most, then the busiest."""
    table = _table("Services", "instances up: up for the whole measured time")
    for name in ("service", "utilization", "requests", "rejected", "retries", "instances up"):
        if name == "service":
            table.add_column(name)
        else:
            table.add_column(name, justify="right", no_wrap=True)
    measured = summary["duration_s"] - summary["warmup_s"]
    services = summary["services"]
    names = list(services)
    if not full:
        def down(name: str) -> bool:
            return any(i["up_s"] < measured - 1e-9 for i in services[name]["instances"].values())

        names = _shown(sorted(names, key=lambda n: (-services[n]["rejected"], not down(n),
                                                    -services[n]["utilization"], n)), full)
        hidden = [n for n in services if n not in set(names)]
        if hidden:
            busiest = max(services[n]["utilization"] for n in hidden)
            facts = [f"utilization at most {format_percent(busiest)}"]
            if not any(services[n]["rejected"] for n in hidden):
                facts.insert(0, "none rejecting")
            if not any(down(n) for n in hidden):
                facts.insert(1 if len(facts) > 1 else 0, "all instances up throughout")
            table.caption = (f"{len(hidden)} more services ({', '.join(facts)}): `--full` for "
                             f"every row\n{table.caption}")
    for name in names:
        s = services[name]
        utilization = s["utilization"]
        style = "bold red" if utilization >= 0.9 else "yellow" if utilization >= 0.7 else ""
        instances = s["instances"]
        whole = sum(1 for i in instances.values() if i["up_s"] >= measured - 1e-9)
        up = Text(f"{whole}/{len(instances)}", style="" if whole == len(instances) else "yellow")
        table.add_row(name, Text(format_percent(utilization), style=style), f"{s['requests']:,}",
                      Text(f"{s['rejected']:,}", style="red" if s["rejected"] else ""),
                      f"{s['retries']:,}", up)
    return table


def breakers_table(summary: RunSummary, full: bool = True) -> Table | None:
    """One row per edge with breakers; unless ``full``, the ROWS that opened most."""
    breakers = summary["breakers"]
    if not breakers:
        return None
    table = _table("Circuit breakers")
    if not full:
        def opened(edge: str) -> int:
            return sum(1 for move in breakers[edge]["transitions"] if move[1] == "open")

        names = _shown(sorted(breakers, key=lambda e: (-opened(e), e)), full)
        hidden = [e for e in breakers if e not in names]
        if hidden:
            never = all(opened(e) == 0 for e in hidden)
            table.caption = (f"{len(hidden)} more edges with breakers"
                             f"{', none of which opened' if never else ''}: `--full` for "
                             "every row")
        breakers = {e: breakers[e] for e in names}
    table.add_column("edge")
    table.add_column("kind")
    # An edge has one breaker per caller instance and policy; "opened" counts all of theirs.
    for name in ("breakers", "opened", "first open", "last closed"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("final state")
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


def outliers_view(summary: RunSummary) -> Text | None:
    """One line per edge with outlier detection: ejections, hosts, first and last, returns."""
    outliers = summary.get("outliers")
    if not outliers:
        return None
    text = Text("Outlier ejections\n", style="bold")
    for edge, o in outliers.items():
        events = o["ejections"]
        ejects = [e for e in events if e[2] == "eject"]
        hosts = sorted({str(e[1]) for e in ejects})
        line = f"  {edge}: {o['ejected']} ejection(s)"
        if ejects:
            line += (f" of {', '.join(hosts)}, first at {duration(float(ejects[0][0]))}, "
                     f"{sum(1 for e in events if e[2] == 'return')} return(s)")
        if o["overflows"]:
            line += f", {o['overflows']} refused by max_ejection_percent"
        if o["still_ejected"]:
            line += f", {len(o['still_ejected'])} still ejected at the end"
        text.append(line + "\n", style="yellow" if ejects else "")
    return text


def phases_view(summary: RunSummary, full: bool = True) -> Text | None:
    """Each phase on its own lines: label, every entry's availability and p99 (unless
    ``full``: the entries the entries table shows, the others pooled), breaker moves."""
    phases = summary.get("phases")
    if not phases:
        return None
    shown = set(_shown(ranked(summary), full))
    text = Text()
    text.append("Phases\n", style="bold")
    for phase in phases:
        label = phase["label"]
        text.append(f" {format_duration(phase['from']):>7} → {format_duration(phase['to']):<7} ")
        text.append(label, style="dim" if label == "warm-up"
                    else "bold yellow" if phase["faults"] else "green")
        text.append("\n")
        cells = []
        pooled = [e for entry, e in phase["entries"].items() if entry not in shown]
        order = list(phase["entries"]) if full else [n for n in ranked(summary)
                                                     if n in phase["entries"]]
        for entry in order:
            e = phase["entries"][entry]
            if entry not in shown:
                continue
            cell = Text(f"{entry} ")
            if e["requests"]:
                cell.append_text(percent(e["availability"]))
                cell.append(f" p99 {duration(e['p99'])}", style="dim")
            else:
                cell.append("no requests", style="dim")
            cells.append(cell)
        if pooled:
            requests = sum(e["requests"] for e in pooled)
            ok = sum(e["requests"] * (e["availability"] or 0.0) for e in pooled)
            cell = Text(f"{len(pooled)} others ", style="dim")
            cell.append_text(percent(ok / requests) if requests else Text("no requests"))
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


def properties_view(summary: RunSummary) -> tuple[Table, Text]:
    """The verdicts' table, and the first violations of each (an empty Text when none)."""
    table = _table("Properties")
    table.add_column("property")
    table.add_column("verdict", no_wrap=True)
    for name in ("violations", "first at"):
        table.add_column(name, justify="right", no_wrap=True)
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
            details.append(f"   and {hidden:,} more\n", style="dim")
    return table, details


def not_fired(summary: RunSummary) -> str | None:
    """One line naming the scenario's faults that never started (the run ended first)."""
    faults = summary.get("faults_not_fired") or []
    if not faults:
        return None
    listed = ", ".join(f"{f['fault']} (at {format_duration(f['at'])})" for f in faults)
    count = len(faults)
    return (f"{count} fault{'s' if count != 1 else ''} never fired: the run ends at "
            f"{format_duration(summary['duration_s'])}, before {listed}")


def render(summary: RunSummary, console: Console, elapsed: float | None = None, *,
           full: bool = True, labels: Mapping[str, str] | None = None) -> None:
    """Print the summary of a run; unless ``full``, long tables keep their ROWS most telling
    rows and count the others. ``labels``: the entries' operation names (endpoint_labels)."""
    scenario = summary["scenario"] or "no faults"
    head = Text()
    head.append(f"{summary['system']}", style="bold")
    head.append(f" · {scenario} · seed {summary['seed']} · "
                f"{format_duration(summary['duration_s'])} simulated")
    warmup = summary["warmup"]
    if warmup["detected"]:
        unsettled = ("" if warmup.get("settled", True)
                     else "; not settled: too short for steady state, figures biased")
        head.append(f" (warm-up {format_duration(summary['warmup_s'])} discarded, found by "
                    f"{warmup['rule']}{unsettled})")
    elif summary["warmup_s"]:
        head.append(f" (warm-up {format_duration(summary['warmup_s'])})")
    if elapsed is not None:
        head.append(f" in {format_duration(elapsed)}", style="dim")
    unfired = not_fired(summary)
    if unfired:
        head.append(f"\n{unfired}", style="bold yellow")
    properties, details = properties_view(summary)
    parts: list[Table | Text | None] = [
        head, entries_table(summary, full, labels), services_table(summary, full),
        breakers_table(summary, full), outliers_view(summary), phases_view(summary, full),
        properties, details]
    verdict = summary["verdict"]
    parts.append(Text(f"verdict: {verdict}",
                      style="bold green" if verdict == "holds" else "bold red"))
    for part in parts:
        if isinstance(part, Table):
            print_table(console, part)
        elif part:
            # Text wraps at spaces on a terminal (never inside a number); unwrapped elsewhere.
            console.print(part, soft_wrap=not console.is_terminal, end="")
            if not part.plain.endswith("\n"):
                console.print()
