"""The ``simulate`` command: run a spec through a scenario and report what the monitors saw."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from faultmesh.cli.app import (
    EXIT_OK,
    EXIT_VIOLATED,
    SpecArg,
    app,
    bad_input,
    err,
    load_spec,
    out,
)
from faultmesh.model.extras import check
from faultmesh.model.units import parse_duration
from faultmesh.simulations.presentation.report import REPORT_FILES, write_report

PROGRESS_AFTER = 2.0  # seconds of wall-clock time before a progress bar appears


class ProgressBar:
    """A progress bar on stderr, shown only once a run has taken a couple of seconds."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.bar = None
        self.task = None

    def __call__(self, done: float, total: float) -> None:
        if self.bar is None:
            if time.monotonic() - self.started < PROGRESS_AFTER:
                return
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("simulating"), BarColumn(),
                                TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                                console=err, transient=True)
            self.bar.start()
            self.task = self.bar.add_task("simulate", total=total)
        self.bar.update(self.task, completed=done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@app.command()
def simulate(
    spec: SpecArg,
    scenario: Annotated[str | None, typer.Option(
        "--scenario", "-s", help="a scenario of the spec (default: the workload, no faults)",
        show_default=False)] = None,
    duration: Annotated[str | None, typer.Option(
        "--duration", "-d", help="simulated time, e.g. 10m, 30s, 600 (default: the "
        "scenario's, else 60s)", show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 0,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="write summary.json and Parquet tables into this directory",
        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
    trace: Annotated[bool, typer.Option(
        "--trace", help="keep one record per request (requests.parquet with --out)")] = False,
    force: Annotated[bool, typer.Option("--force", help="overwrite results in --out")] = False,
) -> None:
    """Simulate a spec under a scenario's faults; exit 1 if a monitored property is violated."""
    from faultmesh.simulations.engine.simulation import UnknownScenario, resolve_scenario
    from faultmesh.simulations.engine.simulation import simulate as run_simulation
    from faultmesh.simulations.observation.results import OUTPUT_FILES, OutputExists

    if out_dir is not None:  # before the run, not after it
        check("data", "simulate --out")
    system = load_spec(spec)
    seconds = None
    if duration is not None:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            bad_input(f"--duration: {exc}")
        if seconds <= 0:
            bad_input("--duration must be positive")
    try:
        chosen = resolve_scenario(system, scenario)
    except UnknownScenario as exc:
        bad_input(f"{spec}: {exc}")
    if out_dir is not None and not force:
        existing = [name for name in (*OUTPUT_FILES, *REPORT_FILES)
                    if (out_dir / name).exists()]
        if existing:
            bad_input(f"{out_dir} already holds {', '.join(existing)}; choose another "
                      "directory or pass --force to overwrite")
    progress = ProgressBar() if err.is_terminal else None
    started = time.perf_counter()
    try:
        run = run_simulation(system, chosen, duration=seconds, seed=seed, trace=trace,
                             progress=progress)
    except ValueError as exc:  # e.g. a warm-up longer than --duration
        bad_input(f"{spec}: {exc}")
    finally:
        if progress is not None:
            progress.close()
    elapsed = time.perf_counter() - started
    if out_dir is not None:
        try:
            written = run.save(out_dir, force=force)
        except OutputExists as exc:
            bad_input(str(exc))
        except OSError as exc:
            bad_input(f"cannot write to {out_dir}: {exc.strerror or exc}")
        written += write_report(run, out_dir, system)
        names = ", ".join(path.name for path in written)
        (err if as_json else out).print(f"wrote {names} to {out_dir}", markup=False)
    if as_json:
        print(json.dumps(run.summary, indent=2, allow_nan=False))
    else:
        from faultmesh.simulations.presentation.terminal import render

        render(run.summary, out, elapsed)
    raise typer.Exit(EXIT_OK if run.ok else EXIT_VIOLATED)
