"""Running a sweep end to end: plan, execute on a backend, keep, tabulate, write the outputs.

``run_sweep`` returns a ``SweepResult`` (plan, records, runs frame, table, files written);
``sweep`` is the notebook-friendly form that returns the runs frame. Progress is reported to a
plain callback ``(done, total, record)``: once before any run finishes (``record`` None, with
the runs already on disk counted as done) and after each finished run; raising
KeyboardInterrupt from it stops the sweep like Ctrl-C does. ``sweep(progress=True)`` draws a
bar on stderr with ``presentation.progress.ProgressBar``, as the command line does.

Robustness: with an output directory (``out``), each finished run is written as it completes;
Ctrl-C cancels what is pending and keeps what finished (``SweepInterrupted``); ``resume=True``
runs only the run-ids missing on disk; runs that raise are reported together
(``SweepFailed``) after the others finished. At the end the directory gets ``runs.parquet``,
``table.parquet`` and the figures of ``presentation.plots.sweep`` as PNG files.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from faultmesh.model.files import atomic_path
from faultmesh.model.system import System
from faultmesh.simulations.sweeps import backends
from faultmesh.simulations.sweeps.backends import Backend, executor
from faultmesh.simulations.sweeps.errors import SweepFailed, SweepInputError, SweepInterrupted
from faultmesh.simulations.sweeps.plan import Plan, load_system, plan
from faultmesh.simulations.sweeps.stability import RecoveryOptions, stability_table
from faultmesh.simulations.sweeps.store import RunStore, record_for
from faultmesh.simulations.sweeps.tables import runs_frame, summarize

if TYPE_CHECKING:
    import pandas as pd

# (done, total, record): record is None for the first report, made before any run finishes
ProgressCallback = Callable[[int, int, dict[str, Any] | None], None]


@dataclass
class SweepResult:
    """Everything a finished sweep produced (``sweep()`` returns its ``runs`` frame)."""

    plan: Plan
    records: dict[str, dict[str, Any]]
    runs: pd.DataFrame
    table: pd.DataFrame
    executed: int
    files: list[Path] = field(default_factory=list)


def run_sweep(system_or_path: System | str | os.PathLike[str], *,
              scenario: str | Iterable[str] | None = None, duration: float | str | None = None,
              seeds: int = 5, grid: Mapping[str, Iterable[Any]] | None = None,
              base_seed: int = 0, backend: Backend = "local", workers: int | None = None,
              scheduler: str | None = None, out: str | os.PathLike[str] | None = None,
              resume: bool = False, force: bool = False,
              progress: ProgressCallback | Literal[False] | None = None,
              plots: bool = True,
              stability: RecoveryOptions | bool | None = None) -> SweepResult:
    """``sweep()`` with everything it made: plan, records, runs frame, table, files written."""
    the_plan = plan(system_or_path, scenario=scenario, duration=duration, seeds=seeds,
                    grid=grid, base_seed=base_seed, stability=stability)
    if resume and out is None:
        raise SweepInputError("--resume needs --out (the directory of the sweep to resume)")
    runner = backends.run_one  # read now: a replaced hook reaches every backend
    executor(backend, runner, workers, scheduler, 1)  # options are checked before any write
    store = RunStore(Path(out), the_plan.to_json(), resume=resume, force=force) \
        if out is not None else None
    wanted = {task.run_id for task in the_plan.runs}
    records: dict[str, dict[str, Any]] = store.load(store.run_ids() & wanted) if store else {}
    todo = [task for task in the_plan.runs if task.run_id not in records]
    failures: dict[str, str] = {}
    total = len(the_plan.runs)
    pool = executor(backend, runner, workers, scheduler, len(todo))
    try:
        # Workers first (a cluster may take seconds to start, or fail to connect), then the
        # first report.
        with pool if todo else contextlib.nullcontext():
            if progress:
                progress(len(records), total, None)
            for task, result in pool.results(todo) if todo else ():
                if isinstance(result, BaseException):
                    failures[task.run_id] = _explain(result)
                elif task.run_id not in records:  # a retried duplicate is dropped
                    record = record_for(task, result)
                    if store is not None:
                        store.save(record)
                    records[task.run_id] = record
                    if progress:
                        progress(len(records), total, record)
    except KeyboardInterrupt:
        # Leaving the executor on Ctrl-C has cancelled what was pending and stopped workers.
        raise SweepInterrupted(len(records), total, store.out if store else None,
                               records) from None
    if failures:
        raise SweepFailed(failures, total)
    # The table comes from the run records on disk when there is an OUT: one per run-id.
    if store is not None:
        records = store.load(wanted)
    runs = runs_frame(records.values(), the_plan.params)
    runs.attrs["system"] = the_plan.system.name
    table = summarize(runs)
    files: list[Path] = []
    if store is not None:
        for name, frame in (("runs.parquet", runs), ("table.parquet", table)):
            files.append(store.write(name, _parquet_bytes(frame)))
        if plots:
            files.extend(write_plots(table, the_plan.params, store.out))
            if the_plan.recovery is not None:
                files.extend(write_stability_map(runs, the_plan.params, store.out))
    return SweepResult(the_plan, records, runs, table, len(todo), files)


def _explain(exc: BaseException) -> str:
    notes = getattr(exc, "__notes__", None)
    if notes:
        return "".join(notes).rstrip()
    return "".join(traceback.format_exception_only(type(exc), exc)).rstrip()


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    plain = frame.copy()
    plain.attrs = {}
    plain.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", text)


def write_plots(table: pd.DataFrame, params: list[str],
                out: str | os.PathLike[str]) -> list[Path]:
    """The sweep's figure as a PNG file in ``out``, written atomically.

    One parameter: ``metric_vs_<param>.png``; two: ``heatmap_<p1>_vs_<p2>.png``. Other grids,
    and tables without entries, draw nothing.
    """
    from faultmesh.simulations.presentation import plots

    if len(params) not in (1, 2) or not plots.sweep_entries(table):
        return []
    figure = plots.sweep(table, params)
    name = f"metric_vs_{_slug(params[0])}.png" if len(params) == 1 else \
        f"heatmap_{_slug(params[0])}_vs_{_slug(params[1])}.png"
    path = Path(out) / name
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110)
    return [path]


def write_stability_map(runs: pd.DataFrame, params: list[str],
                        out: str | os.PathLike[str]) -> list[Path]:
    """A stability sweep over two parameters: ``stability_map_<p1>_vs_<p2>.png`` in ``out``
    (``presentation.stability_plot.stability_map``); other grids draw nothing."""
    from faultmesh.simulations.presentation.stability_plot import stability_map

    if len(params) != 2 or "scenario" in params:
        return []
    figure = stability_map(stability_table(runs), params[0], params[1])
    path = Path(out) / f"stability_map_{_slug(params[0])}_vs_{_slug(params[1])}.png"
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110)
    return [path]


def sweep(system_or_path: System | str | os.PathLike[str], *,
          scenario: str | Iterable[str] | None = None, duration: float | str | None = None,
          seeds: int = 5, grid: Mapping[str, Iterable[Any]] | None = None, base_seed: int = 0,
          backend: Backend = "local", workers: int | None = None, scheduler: str | None = None,
          out: str | os.PathLike[str] | None = None, resume: bool = False, force: bool = False,
          progress: bool | ProgressCallback | None = True,
          stability: RecoveryOptions | bool | None = None) -> pd.DataFrame:
    """Run a spec over a grid of parameter values times ``seeds`` replications.

    ``grid`` maps key paths into the spec to the values to try, e.g.
    ``{"services.cart.replicas": [1, 2, 3], "workload[0].rate": ["100/s", "200/s"]}``;
    ``scenario`` is a scenario name or several (then a grid dimension of its own). Returns one
    row per run: ``run_id``, ``point``, ``replication``, ``seed``, ``scenario``, the parameters,
    then metrics (``<entry>/availability``, ``<entry>/latency_p99_s``, ``<service>/utilization``,
    ...). ``summarize(df)`` gives the means with confidence intervals, and
    ``faultmesh.plots.sweep`` draws them. ``backend`` is ``"local"`` (process pool), ``"dask"``
    (a LocalCluster, or the cluster at ``scheduler``) or ``"serial"``; results do not depend on
    it. With ``out``, runs are kept on disk as they finish, with ``runs.parquet``,
    ``table.parquet`` and plots at the end; ``resume`` runs only the missing ones.
    ``progress``: a bar on stderr (True), nothing (False), or a callback
    ``(done, total, record)``.

    ``stability=True`` (or ``RecoveryOptions``) makes it a stability sweep: the scenario's
    faults are a trigger, and each row also has ``recovered`` (1.0 or 0.0),
    ``time_to_recover_s``, ``availability_before``/``_after`` and ``predicted`` (the
    verifier's ``overload_recovery`` status at that point); ``stability_table(runs)`` folds
    them per point and ``faultmesh.plots.stability_map`` draws them (written to ``out`` too).
    """
    system = load_system(system_or_path)
    options: dict[str, Any] = dict(
        scenario=scenario, duration=duration, seeds=seeds, grid=grid, base_seed=base_seed,
        backend=backend, workers=workers, scheduler=scheduler, out=out, resume=resume,
        force=force, stability=stability)
    if progress is True:
        from faultmesh.simulations.presentation.progress import ProgressBar

        with ProgressBar(f"sweep {system.name}") as bar:
            return run_sweep(system, progress=bar, **options).runs
    return run_sweep(system, progress=progress or None, **options).runs


__all__ = ["ProgressCallback", "SweepResult", "run_sweep", "sweep", "write_plots",
           "write_stability_map"]
