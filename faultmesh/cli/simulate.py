"""The ``simulate`` command: run a spec through a scenario and report what the monitors saw."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from faultmesh.cli.app import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_VIOLATED,
    Command,
    SpecArg,
    app,
    bad_input,
    err,
    load_spec,
    out,
)
from faultmesh.model.cost import LongRun
from faultmesh.model.extras import check
from faultmesh.model.units import parse_duration
from faultmesh.simulations.presentation.report import REPORT_FILES
from faultmesh.simulations.presentation.terminal import ROWS

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from faultmesh.model.faults import Scenario
    from faultmesh.model.system import System

PROGRESS_AFTER = 2.0  # seconds of wall-clock time before a progress bar appears


class ProgressBar:
    """A progress bar on stderr, shown only once a run has taken a couple of seconds."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def __call__(self, done: float, total: float) -> None:
        if self.bar is None:
            if time.monotonic() - self.started < PROGRESS_AFTER:
                return
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            bar = Progress(TextColumn("simulating"), BarColumn(),
                           TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                           console=err, transient=True)
            bar.start()
            self.bar, self.task = bar, bar.add_task("simulate", total=total)
        if self.task is not None:
            self.bar.update(self.task, completed=done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


class Reached:
    """Passes progress on (to a bar, if any) and remembers how far the run got, so an
    interrupted run can say so."""

    def __init__(self, bar: ProgressBar | None) -> None:
        self.bar = bar
        self.simulated = 0.0
        self.total = 0.0

    def __call__(self, done: float, total: float) -> None:
        self.simulated, self.total = done, total
        if self.bar is not None:
            self.bar(done, total)


def _check_out(out_dir: Path, names: tuple[str, ...], force: bool) -> None:
    from faultmesh.simulations.observation.results import OutputExists, check_output

    try:
        check_output(out_dir, names, force=force)
    except OutputExists as exc:
        bad_input(str(exc))
    except OSError as exc:
        bad_input(f"cannot write to {out_dir}: {exc.strerror or exc}")


def _located(spec: str | Path, path: tuple[str | int, ...], message: str) -> str:
    """``file:line:col: path: message``, the line and column read again from the spec file
    (a spec read from stdin is named without them)."""
    from faultmesh.model.spec.errors import SpecError, format_path
    from faultmesh.model.spec.load import STDIN, read_spec_bytes
    from faultmesh.model.spec.yaml_source import read_yaml

    line = column = 0
    name = str(spec)
    if name != STDIN:
        try:
            name, raw = read_spec_bytes(spec)
            line, column = read_yaml(raw.decode("utf-8"), name).locate(path)
        except Exception:  # the spec loaded a moment ago; without a position is still right
            line = column = 0
    return str(SpecError(name, line, column, format_path(path), message))


def _announce_cost(spec: str | Path, system: System, scenario: Scenario | None,
                   seconds: float | None) -> None:
    """Before the run: refuse one that cannot finish (exit 2), warn before a long one and
    about workload rates that are almost certainly a mistake, each located in the spec."""
    from faultmesh.model.cost import estimate, long_run, refusal, too_fast
    from faultmesh.simulations.engine.simulation import DEFAULT_DURATION

    if seconds is None:
        seconds = scenario.duration if scenario is not None and scenario.duration else \
            DEFAULT_DURATION
    cost = estimate(system, scenario, seconds)
    refused = refusal(cost)
    if refused is not None:
        bad_input(_located(spec, refused.path, refused.message))
    for path, message in too_fast(system):
        err.print(f"warning: {_located(spec, path, message)}", markup=False)
    said = long_run(cost)
    if said is not None:
        err.print(f"note: {said}", markup=False)


def _with_labels(summary: Any, labels: dict[str, str]) -> Any:
    """The summary with each labelled entry's ``label`` beside the contract's keys (the JSON
    contract's objects take added keys, as ``root_causes``); unlabelled entries unchanged."""
    if not labels:
        return summary
    entries = {name: {**body, "label": labels[name]} if name in labels else body
               for name, body in summary["entries"].items()}
    return {**summary, "entries": entries}


def _interrupted(system: str, scenario: str | None, seed: int, reached: Reached,
                 as_json: bool) -> NoReturn:
    """Ctrl-C: say how far the run got (one JSON object under --json), exit 130."""
    if as_json:
        print(json.dumps({"system": system, "scenario": scenario, "seed": seed,
                          "interrupted": True, "simulated_s": reached.simulated,
                          "duration_s": reached.total or None}, indent=2))
    err.print(f"interrupted after {reached.simulated:g} of {reached.total:g} simulated "
              "seconds; nothing written", markup=False)
    raise typer.Exit(EXIT_INTERRUPTED)


@app.command(cls=Command,
             short_help="run a spec through a scenario's faults (exit 1: a violation seen)")
def simulate(
    spec: SpecArg,
    scenario: Annotated[str | None, typer.Option(
        "--scenario", "-s", metavar="NAME",
        help="a scenario of the spec (default: the workload, no faults)",
        show_default=False)] = None,
    duration: Annotated[str | None, typer.Option(
        "--duration", "-d", metavar="D", help="simulated time, e.g. 10m, 30s, 600 (default: "
        "the scenario's, else 60s)", show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="random seed")] = 0,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", metavar="DIR", help="write summary.json, Parquet tables, figures and "
        "report.html into this directory", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
    trace: Annotated[bool, typer.Option(
        "--trace", help="keep one record per request: requests.parquet (needs --out)")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="overwrite earlier results in --out (needs --out)")] = False,
    otlp: Annotated[Path | None, typer.Option(
        "--otlp", metavar="FILE", help="write the simulated requests as OTLP JSON spans "
        "(opens in Jaeger; `faultmesh import traces` reads it)", show_default=False)] = None,
    full: Annotated[bool, typer.Option(
        "--full", help=f"every entry, service and breaker edge (by default the {ROWS} most "
        "telling of each, the rest counted)")] = False,
) -> None:
    """Simulate a spec under a scenario's faults; exit 1 if a monitored property is violated."""
    from faultmesh.simulations.engine.simulation import UnknownScenario, resolve_scenario
    from faultmesh.simulations.engine.simulation import simulate as run_simulation
    from faultmesh.simulations.observation.results import OUTPUT_FILES, OutputExists

    for flag, given in (("--trace", trace), ("--force", force)):
        if given and out_dir is None and (flag == "--trace" or otlp is None):
            # it would change nothing: say so rather than ignore it
            bad_input(f"{flag} works on the files --out writes; add --out DIR")
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
    names = (*OUTPUT_FILES, *REPORT_FILES)
    if out_dir is not None:  # refuse before the run, not after it
        _check_out(out_dir, names, force)
    if otlp is not None and otlp.exists() and not force:
        bad_input(f"{otlp} exists; pass --force to overwrite it")
    _announce_cost(spec, system, chosen, seconds)
    progress = ProgressBar() if err.is_terminal else None
    reached = Reached(progress)
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():  # said above, located, by _announce_cost
            warnings.simplefilter("ignore", LongRun)
            run = run_simulation(system, chosen, duration=seconds, seed=seed,
                                 trace=trace or otlp is not None, progress=reached)
    except ValueError as exc:  # e.g. a warm-up longer than --duration
        bad_input(f"{spec}: {exc}")
    except KeyboardInterrupt:
        if progress is not None:
            progress.close()
        _interrupted(system.name, chosen.name if chosen is not None else None, seed,
                     reached, as_json)
    finally:
        if progress is not None:
            progress.close()
    elapsed = time.perf_counter() - started
    if otlp is not None and run.spans is not None:
        from faultmesh.cli.app import write_atomic
        from faultmesh.simulations.observation.otlp import otlp_json

        write_atomic(otlp, otlp_json(run.spans, system.name))
        (err if as_json else out).print(f"wrote {len(run.spans)} spans to {otlp}", markup=False)
    from faultmesh.simulations.presentation.terminal import endpoint_labels, not_fired

    unfired = not_fired(run.summary)
    if unfired:  # the summary says so too (faults_not_fired); this reaches --json users
        err.print(f"warning: {unfired}", markup=False)
    if out_dir is not None:
        try:
            written = run.save(out_dir, force=force, report=system)
        except OutputExists as exc:
            bad_input(str(exc))
        except OSError as exc:
            bad_input(f"cannot write to {out_dir}: {exc.strerror or exc}")
        names_written = ", ".join(path.name for path in written)
        (err if as_json else out).print(f"wrote {names_written} to {out_dir}", markup=False)
    labels = endpoint_labels(system, run.summary["entries"])
    if as_json:
        print(json.dumps(_with_labels(run.summary, labels), indent=2, allow_nan=False))
    else:
        from faultmesh.simulations.presentation.terminal import render

        render(run.summary, out, elapsed, full=full, labels=labels)
    raise typer.Exit(EXIT_OK if run.ok else EXIT_VIOLATED)
