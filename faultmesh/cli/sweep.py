"""The ``sweep`` command: a spec over a grid of values and seeds, on a process pool or Dask."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.table import Table

from faultmesh.cli.app import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_VIOLATED,
    Command,
    SpecArg,
    app,
    bad_input,
    err,
    load_spec,
    out,
    plural,
)
from faultmesh.model.extras import check
from faultmesh.model.units import format_duration
from faultmesh.simulations.presentation.terminal import print_table

EXIT_INTERRUPTED = 130  # as a shell reports a process stopped by SIGINT


@app.command("sweep", cls=Command,
             short_help="many runs over a grid of values and seeds, with 95% confidence intervals")
def sweep_command(
    spec: SpecArg,
    scenario: Annotated[list[str] | None, typer.Option(
        "--scenario", metavar="NAME", help="scenario to run (repeat to sweep over several); "
        "default: the workload with no faults", show_default=False)] = None,
    duration: Annotated[str | None, typer.Option(
        "--duration", metavar="D",
        help="simulated time per run, e.g. 60s or 10m (overrides a scenario's own)",
        show_default=False)] = None,
    seeds: Annotated[int, typer.Option(
        "--seeds", metavar="N", help="replications per grid point")] = 5,
    seed: Annotated[int, typer.Option(
        "--seed", metavar="N",
        help="base seed; each run's seed is derived from it and the run's place")] = 0,
    settings: Annotated[list[str] | None, typer.Option(
        "--set", metavar="PATH=V1,V2,...",
        help="vary a spec value by its key path, e.g. services.cart.replicas=1,2,3 "
        "(repeat for a grid)", show_default=False)] = None,
    backend: Annotated[str | None, typer.Option(
        "--backend", metavar="local|dask|serial",
        help="where runs execute: a process pool on this machine (the default), a Dask "
        "cluster, or one after another in this process", show_default=False)] = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", metavar="ADDRESS",
        help="Dask scheduler address (implies --backend dask); default: a local cluster",
        show_default=False)] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", metavar="N", help="worker processes (default: one per CPU)",
        show_default=False)] = None,
    output: Annotated[Path | None, typer.Option(
        "--out", metavar="DIR", help="keep runs, parquet tables and plots in this directory",
        show_default=False)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="finish the sweep in --out: run only the missing runs")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="replace a different sweep already in --out (needs --out)")] = False,
    stability: Annotated[bool, typer.Option(
        "--stability", help="the scenario's faults are a trigger: record whether and how fast "
        "each point recovers after them, beside the verifier's overload_recovery verdict; over "
        "two --set paths, draw the stability map")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
) -> None:
    """Run a spec many times: over a grid of parameter values (--set) times --seeds seeds.

    Prints the mean of each metric with its 95% confidence interval across seeds per grid
    point. Exit 0 when every property held in every run, 1 when some run violated one, 2 for
    bad input, 4 when runs failed (an internal error), 130 when interrupted (finished runs
    are kept in --out; --resume finishes). With --stability, each point also says whether
    the entry recovered after the scenario's last fault, how fast, and whether the verifier
    predicted it (overload_recovery); over two --set paths the stability map is drawn in
    --out (stability_map_*.png).
    """
    from faultmesh.simulations.presentation.progress import ProgressBar
    from faultmesh.simulations.sweeps import (
        Backend,
        SweepFailed,
        SweepInputError,
        SweepInterrupted,
        parse_grid,
        run_sweep,
    )
    from faultmesh.simulations.sweeps.plan import check_size

    if force and output is None:  # it would change nothing: say so rather than ignore it
        bad_input("--force replaces a sweep in the directory --out names; add --out DIR")
    check("data", "sweep")  # its tables are DataFrames
    if scheduler or backend == "dask":
        check("dask", "sweep --backend dask")
    system = load_spec(spec)
    try:
        grid = parse_grid(settings or [])
        # Counted before planning: a sweep too large to plan is refused at once, and the user
        # knows what is coming before the first run (or the planning of many points) starts.
        if seeds >= 1:  # otherwise planning refuses --seeds, below
            planned = check_size(grid, seeds, len(scenario or ()))
            err.print(f"sweep {system.name}: {plural(planned, 'run')} planned "
                      f"({plural(planned // seeds, 'grid point')} x {plural(seeds, 'seed')})",
                      markup=False)
        # The bar appears once the workers are up and is gone before any message below.
        with ProgressBar(f"sweep {system.name}") as bar:
            result = run_sweep(
                system, scenario=scenario or None, duration=duration, seeds=seeds, grid=grid,
                base_seed=seed,
                backend=cast("Backend", backend or ("dask" if scheduler else "local")),
                workers=workers, scheduler=scheduler, out=output, resume=resume, force=force,
                progress=bar, stability=stability or None)
    except SweepInputError as exc:
        bad_input(str(exc))
    except SweepInterrupted as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except SweepFailed as exc:
        # Runs that crashed are a failure of the tool, not a verdict: exit 4, never 1.
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(EXIT_INTERNAL) from None

    violating = int(result.table["runs_violating"].sum()) if "runs_violating" in result.table \
        else 0
    stable = _stability(result) if stability else None
    if as_json:
        runs = [result.records[t.run_id] for t in result.plan.runs]
        document: dict[str, Any] = {"runs": _plain(runs),
                                    "table": _plain(result.table.to_dict(orient="records"))}
        if stable is not None:
            document["stability"] = _plain(stable)
        print(json.dumps(document, indent=1))
    else:
        _print_table(result.table, result.plan.params)
        if stable is not None:
            err.print(_stability_line(stable), markup=False)
        total = len(result.plan.runs)
        note = plural(total, "run")
        if result.executed != total:
            note += f" ({result.executed:,} run now)"
        if violating:
            note += f"; properties violated in {violating}"
        if output is not None:
            note += f"; results in {output}"
        err.print(note, markup=False)
    raise typer.Exit(EXIT_VIOLATED if violating else EXIT_OK)


def _stability(result: Any) -> dict[str, Any]:
    """A stability sweep's per-point outcome, its agreement with the verifier, its figure."""
    from faultmesh.simulations.sweeps.stability import boundary_agreement, stability_table

    table = stability_table(result.runs)
    params = result.plan.params
    found: dict[str, Any] = {
        "points": table.to_dict(orient="records"),
        "recovered": int((table["recovered"] > 0.5).sum()), "total": len(table),
        "figure": next((str(f) for f in result.files if f.name.startswith("stability_map_")),
                       None)}
    if len(params) == 2 and "scenario" not in params:
        agreement = boundary_agreement(table, params[0], params[1])
        found["agreement"] = {
            "predicted": agreement.predicted, "disagree": len(agreement.disagree),
            "beyond_one_step": [list(p) for p in agreement.beyond_one_step],
            "within_one_step": agreement.within_one_step}
    return found


def _stability_line(stable: dict[str, Any]) -> str:
    line = (f"stability: recovered at {stable['recovered']} of "
            f"{plural(stable['total'], 'point')}")
    agreement = stable.get("agreement")
    if agreement is not None:
        if agreement["predicted"] == 0:
            line += "; the verifier gave no overload_recovery verdict (unknown)"
        elif agreement["predicted"] < stable["total"]:
            line += (f"; the verifier predicted {agreement['predicted']} of them "
                     "(overload_recovery unknown elsewhere)")
        elif agreement["within_one_step"]:
            line += (f"; the verifier's boundary is within one grid step of the simulated one "
                     f"({agreement['disagree']} of {stable['total']} points differ)")
        else:
            line += (f"; the verifier's boundary is more than one grid step off at "
                     f"{plural(len(agreement['beyond_one_step']), 'point')}")
    if stable["figure"]:
        line += f"; map in {stable['figure']}"
    return line


def _plain(value: Any) -> Any:
    """JSON-ready: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(mean: float, ci: float, kind: str) -> str:
    if math.isnan(mean):
        return "-"
    if kind == "availability":
        return f"{mean * 100:.3f}%" if math.isnan(ci) else f"{mean * 100:.3f} ± {ci * 100:.3f}%"
    text = format_duration(mean)
    return text if math.isnan(ci) else f"{text} ± {format_duration(ci)}"


def _print_table(table: Any, params: list[str]) -> None:
    suffix = "/availability_mean"
    entries = [c[: -len(suffix)] for c in table.columns if c.endswith(suffix)]
    view = Table(title="mean ± 95% CI across seeds", title_justify="left")
    for param in params:
        view.add_column(param, no_wrap=True)
    view.add_column("runs", justify="right", no_wrap=True)
    view.add_column("entry")
    for name in ("availability", "p50", "p99"):
        view.add_column(name, justify="right", no_wrap=True)
    has_properties = "runs_violating" in table
    if has_properties:
        view.add_column("violating", justify="right", no_wrap=True)
    has_recovery = "recovered_mean" in table  # a stability sweep
    if has_recovery:
        for name in ("recovered", "recovers in", "predicted"):
            view.add_column(name, justify="right", no_wrap=True)
    for _, row in table.iterrows():
        for i, entry in enumerate(entries or [None]):
            cells = [str(row[p]) if i == 0 else "" for p in params]
            cells.append(str(row["runs"]) if i == 0 else "")
            if entry is None:
                cells += ["-", "-", "-", "-"]
            else:
                cells += [entry] + [
                    _fmt(row.get(f"{entry}/{m}_mean", math.nan),
                         row.get(f"{entry}/{m}_ci95", math.nan), kind)
                    for m, kind in (("availability", "availability"),
                                    ("latency_p50_s", "latency"), ("latency_p99_s", "latency"))]
            if has_properties:
                cells.append(f"{row['runs_violating']}/{row['runs']}" if i == 0 else "")
            if has_recovery:
                seconds = float(row["time_to_recover_s_mean"])
                cells += [f"{round(row['recovered_mean'] * row['runs'])}/{row['runs']}",
                          "-" if math.isnan(seconds) else format_duration(seconds),
                          str(row["predicted"])] if i == 0 else ["", "", ""]
            view.add_row(*cells)
    print_table(out, view)
