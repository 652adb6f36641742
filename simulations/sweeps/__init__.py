"""Sweeps: one spec run many times, over a grid of parameter values and seeds, in parallel.

``--set PATH=V1,V2,...`` names a key path into the spec document and the values to try; the
grid is their cartesian product (and the scenarios', when several are given), each point run
``seeds`` times with seeds derived from the point and the replication, so the numbers do not
depend on the backend or the number of workers. The package, in the order a sweep uses it:

``grid``      ``--set`` parsing: key paths (``model.spec.edit``'s grammar) and YAML values
``plan``      the plan: grid points as validated Systems (written in by ``model.spec.edit``,
              the editor repairs use too), one ``RunTask`` per run, seeds and run ids
``backends``  where runs execute: serial, a local process pool, or Dask; the ``run_one``
              hook (replace ``backends.run_one`` to wrap every run)
``store``     the output directory: ``plan.json`` and one record per finished run (resume)
``tables``    runs as a DataFrame, and means with Student-t confidence intervals
``run``       the orchestration: ``run_sweep`` / ``sweep``, progress reports, the outputs
``errors``    ``SweepInputError``, ``SweepInterrupted``, ``SweepFailed``
``stability`` stability sweeps: recovery from a scenario's trigger per run, the verifier's
              ``overload_recovery`` per point, the boundary's agreement (``stability=True``)

Figures of a sweep are ``faultmesh.plots.sweep`` (presentation); the command line's progress
bar is ``presentation.progress.ProgressBar``, given to a sweep as its progress callback.
``simulations.sweep`` is this package's ``sweep`` function (the package is named ``sweeps`` so
that the two never clash).
"""

from __future__ import annotations

from faultmesh.simulations.sweeps.backends import BACKENDS, Backend, simulate_run
from faultmesh.simulations.sweeps.errors import SweepFailed, SweepInputError, SweepInterrupted
from faultmesh.simulations.sweeps.grid import parse_grid, parse_path, parse_set, split_values
from faultmesh.simulations.sweeps.plan import Plan, Point, RunTask, derive_seed, plan, run_id_for
from faultmesh.simulations.sweeps.run import (
    ProgressCallback,
    SweepResult,
    run_sweep,
    sweep,
    write_plots,
)
from faultmesh.simulations.sweeps.stability import (
    Agreement,
    RecoveryOptions,
    boundary_agreement,
    stability_table,
)
from faultmesh.simulations.sweeps.store import RunStore, record_for
from faultmesh.simulations.sweeps.tables import metrics_of, runs_frame, summarize, t_quantile

__all__ = [
    "BACKENDS",
    "Agreement",
    "Backend",
    "Plan",
    "Point",
    "ProgressCallback",
    "RecoveryOptions",
    "RunStore",
    "RunTask",
    "SweepFailed",
    "SweepInputError",
    "SweepInterrupted",
    "SweepResult",
    "boundary_agreement",
    "derive_seed",
    "metrics_of",
    "parse_grid",
    "parse_path",
    "parse_set",
    "plan",
    "record_for",
    "run_id_for",
    "run_sweep",
    "runs_frame",
    "simulate_run",
    "split_values",
    "stability_table",
    "summarize",
    "sweep",
    "t_quantile",
    "write_plots",
]
